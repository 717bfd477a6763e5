"""The requirement files agree: each lock file pins exactly what its `.in` file needs (the direct dependencies
and what they require, extras included), inside the ranges the `.in` file allows, and nothing else.

Checked offline against the installed distributions, which `make install` takes from the lock files.
"""

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

ROOT = Path(__file__).resolve().parents[1]


def direct(filename: str) -> list[Requirement]:
    """The requirements of a `.in` file, following its `-r` includes."""
    found = []
    for line in (ROOT / filename).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += direct(line.removeprefix("-r ").strip())
        elif line:
            found.append(Requirement(line))
    return found


def pinned(filename: str) -> dict[str, str]:
    """The `name==version` lines of a lock file, following its `-r` includes, by canonical name."""
    pins = {}
    for line in (ROOT / filename).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(pinned(line.removeprefix("-r ").strip()))
        elif line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
            assert match, f"{filename}: {line!r} is not an exact pin"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def needed(requirements: list[Requirement]) -> set[str]:
    """The canonical names of these requirements and of everything they require, as installed."""
    seen: set[str] = set()
    todo = [(requirement.name, set(requirement.extras)) for requirement in requirements]
    while todo:
        name, extras = todo.pop()
        seen.add(canonicalize_name(name))
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            key = canonicalize_name(requirement.name)
            if key not in seen or requirement.extras:
                todo.append((requirement.name, set(requirement.extras)))
    return seen


def check(in_file: str, lock_file: str) -> None:
    requirements = direct(in_file)
    pins = pinned(lock_file)
    for requirement in requirements:
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} of {in_file} is not pinned in {lock_file}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock_file} pins {requirement.name} {version}"
        )
    assert set(pins) - needed(requirements) == set(), f"pinned in {lock_file} but needed by nothing in {in_file}"
    assert needed(requirements) - set(pins) == set(), f"needed by {in_file} but not pinned in {lock_file}"


def test_the_runtime_lock_pins_exactly_what_requirements_in_needs():
    check("requirements.in", "requirements.txt")


def test_the_development_lock_pins_exactly_what_requirements_dev_in_needs():
    check("requirements-dev.in", "requirements-dev.txt")


def test_the_installed_versions_are_the_locked_ones():
    wrong = {
        name: (version, importlib.metadata.version(name))
        for name, version in pinned("requirements-dev.txt").items()
        if importlib.metadata.version(name) != version
    }
    assert wrong == {}, "installed versions differ from the lock: run `make install`"
