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
