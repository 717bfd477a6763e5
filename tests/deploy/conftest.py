"""Helpers for running the container's entry point outside Docker (no Docker engine on this machine)."""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import MANAGEMENT_TOKEN

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def container_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment a container of the image would have, with this checkout standing in for /app."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        DATA_DIR=str(tmp_path),
        MANAGEMENT_TOKEN=MANAGEMENT_TOKEN,
        LOG_FORMAT="console",
        LLM_PROXY_EVENT_BUS="in-memory",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def run_entrypoint(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def pg_database():
    """A fresh, empty PostgreSQL database for one test (dropped afterwards); yields its URL."""
    name = f"llmproxy_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def container_db(tmp_path, request):
    """The database of a container under test: a fresh PostgreSQL database when the suite runs on PostgreSQL
    (advisory-lock path), else a SQLite file under DATA_DIR (file-lock path). Yields (env overrides, tables())."""
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        url = request.getfixturevalue("pg_database")
        yield {"DATABASE_URL": url}, lambda: pg_tables(url)
    else:
        yield {}, lambda: sqlite_tables(tmp_path / "llm-proxy.sqlite3")


def sqlite_tables(path: Path) -> set[str]:
    import sqlite3

    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def pg_tables(url: str) -> set[str]:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}
