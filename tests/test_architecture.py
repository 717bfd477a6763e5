"""Checks of the code's shape that anyone can run: every module imports in any order, the project's packages
import each other without cycles, and per-process state sits only in modules that are allowed to hold it.

The packages are found from INSTALLED_APPS (the local ones, plus `llmproxy`), so a new app is checked without
editing this file. The allow-lists below record today's debt; each entry says why it is there, and a test fails
when an entry is no longer needed, so the lists only ever shrink.
"""

import ast
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from django.conf import settings

# Touches no database: run once, not again on PostgreSQL (the Makefile's test-postgres).
pytestmark = pytest.mark.db_independent

ROOT = Path(settings.BASE_DIR)

# Imports that close a cycle between packages, as (importer, imported), each kept on purpose and named in
# docs/architecture.md ("Layout"). Removing them all leaves no cycle.
_COMPOSITION_ROOT = (
    "llmproxy is two things in one package: the shared framework the apps import (llmproxy.manage, services, "
    "redis, compat, lifecycle) and the composition root that wires the apps in (settings, urls.py, asgi.py, "
    "celery.py, the admin site's dashboard); only the root imports the apps"
)
_INVALIDATION = (
    "project and token services tell the running proxy's caches about a change after it commits "
    "(llmproxy.proxy.invalidation), while the proxy reads the models: revocation within a second needs both"
)
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {
    ("llmproxy", "audit"): _COMPOSITION_ROOT,
    ("llmproxy", "dispatch"): _COMPOSITION_ROOT,
    ("llmproxy", "instrumentation"): _COMPOSITION_ROOT,
    ("llmproxy", "llmproxy.proxy"): _COMPOSITION_ROOT,
    ("llmproxy", "projects"): _COMPOSITION_ROOT,
    ("llmproxy", "tokens"): _COMPOSITION_ROOT,
    ("projects", "llmproxy.proxy"): _INVALIDATION,
    ("tokens", "llmproxy.proxy"): _INVALIDATION,
}

# The one module allowed a `global` statement: where the process's owner object lives.
ALLOWED_GLOBALS: dict[str, str] = {
    "llmproxy.proxy.state": "the owner objects' module: it holds the process's one ProxyRuntime, installed by "
    "ProxyConfig.ready() and replaced by tests",
}


# --- what the project is made of ------------------------------------------------------------------------


def _package_of(dotted: str) -> str | None:
    """The longest prefix of `dotted` that is a package directory of this repository, if any."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if (ROOT.joinpath(*parts[:end]) / "__init__.py").is_file():
            return ".".join(parts[:end])
    return None


def graph_nodes() -> list[str]:
    """`llmproxy` and every local app of INSTALLED_APPS (an app inside another package is a node of its own)."""
    local = {_package_of(entry) for entry in settings.INSTALLED_APPS}
    return sorted({"llmproxy"} | {name for name in local if name})


def project_modules() -> dict[str, Path]:
    """Every module of the top-level packages of `graph_nodes()`, by dotted name."""
    modules = {}
    for top in sorted({node.split(".")[0] for node in graph_nodes()}):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """What the module imports anywhere in its body (module level and inside functions), as dotted names."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from package import module` imports the module
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return found


def node_of(module: str, nodes: list[str]) -> str | None:
    matches = [node for node in nodes if module == node or module.startswith(node + ".")]
    return max(matches, key=len) if matches else None


def package_graph() -> dict[str, set[str]]:
    nodes = graph_nodes()
    modules = project_modules()
    graph: dict[str, set[str]] = {node: set() for node in nodes}
    for name, path in modules.items():
        source = node_of(name, nodes)
        for target in imported_modules(name, path, set(modules)):
            destination = node_of(target, nodes)
            if source and destination and destination != source:
                graph[source].add(destination)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a closed path (first node repeated at the end), or None when it is acyclic."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for following in sorted(graph.get(node, ())):
            if state.get(following) == "open":
                return [*path[path.index(following) :], following]
            if following not in state and (cycle := walk(following, [*path, following])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start, [start])):
            return cycle
    return None


def without(graph: dict[str, set[str]], edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    return {node: {t for t in targets if (node, t) not in edges} for node, targets in graph.items()}


# --- imports in any order --------------------------------------------------------------------------------

IMPORT_ALL = """
import importlib, json, sys, traceback
import django
django.setup()
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def orders() -> dict[str, list[str]]:
    names = sorted(project_modules())
    shuffled = {f"shuffled (seed {seed})": random.Random(seed).sample(names, len(names)) for seed in (1,)}
    return {"alphabetical": names, "reversed": names[::-1], **shuffled}


def test_the_packages_checked_include_every_local_app():
    assert {"llmproxy", "llmproxy.proxy", "projects", "tokens", "audit", "instrumentation", "dispatch"} <= set(
        graph_nodes()
    )
    assert len(project_modules()) > 50


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_process_whatever_the_order():
    # As a server is started: llmproxy/asgi.py refuses to import without production-grade secrets, on
    # purpose; tests/conftest.py puts them in the environment this process passes on.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmproxy.settings", "PYTHONPATH": str(ROOT)}
    # Warnings at import time are errors too, except ResourceWarning (see pyproject.toml's filterwarnings).
    command = [sys.executable, "-W", "error", "-W", "default::ResourceWarning", "-c", IMPORT_ALL]
    runs = {  # one process per order, all at once
        label: subprocess.Popen([*command, json.dumps(names)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for label, names in orders().items()
    }
    results = {label: (process.communicate(timeout=120)[0], process.returncode) for label, process in runs.items()}
    for label, (out, code) in results.items():
        assert code == 0, f"{label}: the importing process failed"
        assert json.loads(out.strip().splitlines()[-1]) == {}, f"{label}: modules that failed to import"


def test_manage_py_check_passes_with_warnings_as_errors():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmproxy.settings"}
    checked = subprocess.run(
        [sys.executable, "-W", "error", "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout


# --- package cycles --------------------------------------------------------------------------------------


def test_the_packages_import_each_other_without_cycles_beyond_the_allowed_imports():
    cycle = find_cycle(without(package_graph(), ALLOWED_CYCLE_EDGES))
    assert cycle is None, f"an import cycle between packages: {' -> '.join(cycle)} (break it, or justify an edge)"


def test_every_allowed_import_still_closes_a_cycle_so_the_list_only_shrinks():
    graph = package_graph()
    stale = [
        (importer, imported)
        for importer, imported in ALLOWED_CYCLE_EDGES
        if imported not in graph[importer] or not _closes_a_cycle(graph, importer, imported)
    ]
    assert stale == [], "these imports no longer close a cycle: remove them from ALLOWED_CYCLE_EDGES"


def _closes_a_cycle(graph: dict[str, set[str]], importer: str, imported: str) -> bool:
    """Whether `imported` leads back to `importer`."""
    seen, todo = set(), [imported]
    while todo:
        node = todo.pop()
        if node == importer:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function_level_import(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from b.models import Thing\n    return Thing\n")
    assert imported_modules("a.late", module, set()) == {"b.models"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle(without({"a": {"b"}, "b": {"c"}, "c": {"a"}}, {("c", "a"): ""})) is None


# --- module globals --------------------------------------------------------------------------------------


def modules_with_global_statements() -> set[str]:
    return {
        name
        for name, path in project_modules().items()
        if any(isinstance(node, ast.Global) for node in ast.walk(ast.parse(path.read_text(), str(path))))
    }


def test_no_global_statement_outside_the_allowed_modules():
    unexpected = modules_with_global_statements() - set(ALLOWED_GLOBALS)
    assert unexpected == set(), "module state belongs to an owner object (or justify it in ALLOWED_GLOBALS)"


def test_every_allowed_global_module_still_has_one_so_the_list_only_shrinks():
    gone = set(ALLOWED_GLOBALS) - modules_with_global_statements()
    assert gone == set(), "these modules no longer use `global`: remove them from ALLOWED_GLOBALS"
