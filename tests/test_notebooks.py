"""The notebooks run top to bottom in a real Jupyter kernel (nbclient + ipykernel), asserts included.

Each runs from a fresh copy in a temp folder, against the test Redis (REDIS_URL, so no embedded Redis is
started) under a fresh key prefix. In git they are stored without outputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support import ROOT

NOTEBOOKS = ROOT / "notebooks"
EXPECTED = {
    "graph_anatomy.ipynb",
    "approval_interrupt.ipynb",
    "checkpoints_time_travel.ipynb",
    "market_view.ipynb",
}
# Notebooks whose outputs must include a picture (a PNG image output, not text).
PICTURES = {"graph_anatomy.ipynb", "market_view.ipynb", "checkpoints_time_travel.ipynb"}


def test_the_four_notebooks_are_there() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_stored_without_outputs(name: str) -> None:
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    first = cells[0]
    assert first["cell_type"] == "markdown" and "Ollama" in "".join(first["source"])
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name}: clear the outputs"


def images(notebook: Any) -> int:
    return sum(
        1
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_in_a_jupyter_kernel(
    name: str,
    redis_url: str,
    key_prefix: str,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kernel inherits this environment: the test Redis, a fresh prefix, the shared history.
    for key, value in {
        "REDIS_URL": redis_url,
        "REDIS__PREFIX": key_prefix,
        "DATA_DIR": str(tmp_path / "data"),
        "FALLBACK_DATA_DIR": str(shared_data),
        "PYTHONPATH": str(NOTEBOOKS),  # copilot_lab, the notebooks' shared set-up
        "COPILOT_NOTEBOOK_MODEL": "scripted",
    }.items():
        monkeypatch.setenv(key, value)
    copy = tmp_path / name
    shutil.copy(NOTEBOOKS / name, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any failure
    if name in PICTURES:
        assert images(notebook) >= 1, f"{name} drew no image"
    last = notebook.cells[-1]
    assert last.cell_type == "code" and "lab.close()" in last.source  # it stops what it started
