"""The notebooks run top to bottom against the real Redis and the shared data (their asserts included)."""

import ast
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list[dict[str, Any]]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
async def test_notebook_runs(path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.chdir(ROOT / "notebooks")
    cells = code_cells(path)
    assert cells, f"{path.name} has no code cells"
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    try:
        for index, cell in enumerate(cells):
            source = "".join(cell["source"])
            code = compile(source, f"{path.name}[{index}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)  # a cell with top-level await compiles to a coroutine
            if result is not None:
                await result
    finally:
        os.chdir(ROOT)


def test_notebooks_exist() -> None:
    assert any(p.name == "graph_and_checkpoints.ipynb" for p in NOTEBOOKS)
