"""docker/Dockerfile, read as text (no Docker engine here), and the build steps it runs, run for real."""

import re
import subprocess

import pytest

from tests.deploy.conftest import DOCKER, ROOT, container_env

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

DOCKERFILE = (DOCKER / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def index_of(keyword: str, contains: str = "") -> int:
    return next(i for i, (kw, args) in enumerate(instructions()) if kw == keyword and contains in args)


def test_the_image_is_slim_python_3_11():
    assert instructions()[0] == ("FROM", "python:3.11-slim")


def test_dependencies_are_installed_in_their_own_layer_before_the_source_is_copied():
    copy_requirements = index_of("COPY", "requirements.txt")
    install = index_of("RUN", "pip install")
    copy_source = index_of("COPY", ". /app")
    assert copy_requirements < install < copy_source
    assert "requirements-dev" not in DOCKERFILE  # test tools stay out of the image


def test_it_runs_as_a_non_root_user_with_a_healthcheck_on_ready_and_the_entrypoint():
    user = index_of("USER")
    assert instructions()[user][1].split(":")[0] not in ("root", "0")
    assert user < index_of("ENTRYPOINT")
    assert "docker/healthcheck.py" in instructions()[index_of("HEALTHCHECK")][1]
    assert instructions()[index_of("ENTRYPOINT")][1] == '["/app/docker/entrypoint.sh"]'
    assert instructions()[index_of("CMD")][1] == '["web"]'


def test_collectstatic_at_build_collects_the_admin_and_the_vendored_chart_library(tmp_path):
    run = instructions()[index_of("RUN", "collectstatic")][1]
    assert index_of("COPY", ". /app") < index_of("RUN", "collectstatic") < index_of("USER")
    command = run.split("&&")[0].split()
    env = container_env(tmp_path, STATIC_ROOT=str(tmp_path / "static"))
    env.update(item.split("=", 1) for item in command if "=" in item and not item.startswith("-"))
    argv = [item for item in command if "=" not in item or item.startswith("-")]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static/vendor/chart.umd.min.js").is_file()
    assert (tmp_path / "static/usage/usage-dashboard.js").is_file()
    assert (tmp_path / "static/admin/css/base.css").is_file()


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = {line.strip() for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".env", "data", "staticfiles"} <= ignored
