"""The repository explains itself: the files an open-source project needs, and benchmarks that run from a clone."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

ROOT = Path(__file__).resolve().parent.parent
BENCH_TARGETS = {"bench": "bench/run.sh", "bench-stream": "bench/stream.sh"}
# Documents whose relative links must resolve inside the repository.
LINKED_DOCS = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md", "bench/README.md", "docs/compatibility.md"]


@pytest.mark.parametrize(
    "path", ["LICENSE", "CONTRIBUTING.md", "CHANGELOG.md", "docs/compatibility.md", "bench/run.sh", "bench/stream.sh"]
)
def test_the_repository_has_the_file(path):
    assert (ROOT / path).is_file(), f"{path} is missing"


def test_the_license_is_mit_in_the_projects_own_name():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 The LLM Proxy authors" in text


def test_the_changelog_keeps_an_unreleased_section_above_the_first_release():
    text = (ROOT / "CHANGELOG.md").read_text()
    unreleased, first_release = text.index("## [Unreleased]"), text.index("## [0.1.0]")
    assert unreleased < first_release
    for heading in ("### Added", "### Changed", "### Security"):
        assert heading in text[unreleased:first_release], f"Unreleased lacks {heading}"


def make_recipe(target: str) -> list[str]:
    """The command lines of a Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


@pytest.mark.parametrize("target", sorted(BENCH_TARGETS))
def test_the_make_bench_targets_run_scripts_inside_the_repository(target):
    recipe = make_recipe(target)
    assert recipe, f"make {target} has no commands"
    assert not any("../" in line for line in recipe), f"make {target} reaches outside the repository: {recipe}"
    script = recipe[0].split()[0]
    assert script == BENCH_TARGETS[target]
    assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"


@pytest.mark.parametrize("script", sorted(BENCH_TARGETS.values()))
def test_every_file_a_bench_script_uses_is_in_bench(script):
    text = (ROOT / script).read_text()
    used = set(re.findall(r"\$here/([\w.-]+)", text))
    assert used, f"{script} names no file beside it"
    missing = sorted(name for name in used if not (ROOT / "bench" / name).is_file())
    assert not missing, f"{script} uses files that are not in bench/: {missing}"


def test_no_document_tells_you_to_run_a_benchmark_from_outside_the_repository():
    files = [ROOT / "Makefile", *ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *(ROOT / "scripts").glob("*.sh")]
    files += [f for f in (ROOT / "bench").iterdir() if f.is_file()]
    offenders = [
        str(f.relative_to(ROOT)) for f in files if re.search(r"\.\./shared/bench/[\w-]+\.(sh|lua)", f.read_text())
    ]
    assert not offenders, f"these still run ../shared/bench/...: {offenders}"


@pytest.mark.parametrize("doc", LINKED_DOCS)
def test_relative_links_resolve_inside_the_repository(doc):
    path = ROOT / doc
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        linked = (path.parent / target.split("#")[0]).resolve()
        if not linked.exists() or ROOT not in linked.parents:
            broken.append(target)
    assert not broken, f"{doc} links to what is not in the repository: {broken}"


def minimal_path(tmp_path: Path) -> str:
    """A PATH with only the shell tools the scripts need before their own checks (no nginx, wrk, node, curl)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "basename", "mkdir"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


@pytest.mark.parametrize(
    ("script", "packages"), [("bench/run.sh", ["wrk", "curl"]), ("bench/stream.sh", ["nodejs", "curl"])]
)
def test_a_bench_script_without_its_tools_stops_naming_the_debian_packages(tmp_path, script, packages):
    env = {"PATH": minimal_path(tmp_path), "BENCH_TMP": str(tmp_path / "tmp"), "BENCH_PEERS_DIR": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / script), str(ROOT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert "apt-get install -y" in result.stderr
    for package in packages:
        assert package in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("peer", "says"),
    [("litellm", "BENCH_INSTALL_PEERS=1"), ("portkey", "needs node")],
)
def test_a_peer_that_is_not_installed_is_skipped_with_a_line_saying_how_to_install_it(tmp_path, peer, says):
    script = f'peers_dir={tmp_path}/peers tmp={tmp_path}; . {ROOT}/bench/lib.sh; peer_ready {peer}; echo "status=$?"'
    result = subprocess.run(
        ["bash", "-c", script], env={"PATH": minimal_path(tmp_path)}, capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "status=1"
    assert f"SKIP target={peer}:" in result.stderr
    assert says in result.stderr
