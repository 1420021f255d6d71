"""The packages import only downwards: config and prompts <- tools <- graph <- server. An upward import (a
tool reaching into the graph, the graph into the server) fails here, with the file and the line."""

from __future__ import annotations

import ast

import pytest

from tests.support import ROOT

# What each package may import of the project's own packages.
ALLOWED = {
    "config": {"config"},
    "prompts": {"prompts", "config"},
    "tools": {"tools", "config", "prompts"},
    "graph": {"graph", "tools", "config", "prompts"},
    "server": {"server", "graph", "tools", "config", "prompts"},
}


def imports_of(package: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in ALLOWED:
                    found.append((str(path.relative_to(ROOT)), node.lineno, top))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    found = imports_of(package)
    assert found, f"{package}/ imports nothing of the project: the scan is broken"
    upward = [f"{file}:{line} imports {top}" for file, line, top in found if top not in ALLOWED[package]]
    assert not upward, upward
