"""The README's configuration table documents every variable of .env.example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_variable_of_env_example_is_in_the_readme_configuration_table():
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Documentation")]
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert not missing, f"add these to the README's configuration table: {missing}"


def test_every_test_named_in_the_threat_model_exists():
    """docs/security.md backs each line with `file::test` (or `::test` for the file named before it)."""
    text = (ROOT / "docs" / "security.md").read_text()
    missing, current = [], None
    for path, name in re.findall(r"`(?:([\w/]+\.py))?::(\w+)`", text):
        current = path or current
        source = ROOT / "tests" / current
        if not source.exists() or not re.search(rf"^(async )?def {name}\(", source.read_text(), flags=re.M):
            missing.append(f"{current}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
    assert len(re.findall(r"::\w+`", text)) > 40
