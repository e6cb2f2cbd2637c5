"""The README's module table and the tree stay equal, so a newcomer's map
of the code base is the code base."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _table_modules() -> set:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Development", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        prefix = ""
        for name in re.findall(r"`([^`]+)`", cell):
            if "/" in name:
                prefix = name.rsplit("/", 1)[0] + "/"
                names.add(name)
            else:
                names.add(prefix + name)
    return names


def test_the_development_table_names_every_module_and_only_those():
    package = ROOT / "secretrun"
    tree = {str(p.relative_to(package)) for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    table = _table_modules()
    assert sorted(tree - table) == [], "modules missing from README's Development table"
    assert sorted(table - tree) == [], "README's Development table names modules that do not exist"
