"""The notebooks in notebooks/ run to the end, and are committed without outputs.

Each notebook reads ``CAPSIM_NOTEBOOK_QUICK=1`` (documented in its first cell) and shrinks
its runs, grids and seeds, so that it runs in a few seconds. Each runs in a fresh
``python3`` kernel from its own folder, as Jupyter starts it, with temporary files in a
folder of this module's own, removed afterwards. Most of a quick notebook's time is the
kernel starting and importing pandas, matplotlib and capsim, so the notebooks run three
at a time (about 17 s for four notebooks, against 36 s one at a time, on a loaded 2-core
machine).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

_MISSING = "{} is not installed; pip install -e '.[notebooks]' runs the notebooks"
nbformat = pytest.importorskip("nbformat", reason=_MISSING.format("nbformat"))
nbclient = pytest.importorskip("nbclient", reason=_MISSING.format("nbclient"))
pytest.importorskip("ipykernel", reason=_MISSING.format("ipykernel"))

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Seconds a cell may take in quick mode before the run fails: a hang, not slowness (the
#: longest cell takes a few seconds on a loaded 2-core machine).
CELL_TIMEOUT_S = 180
#: Notebooks run at once.
PARALLEL = 3


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


async def _execute(path: Path, env: dict[str, str], limit: asyncio.Semaphore):
    """The notebook at ``path`` executed in quick mode, or the exception that stopped it."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(path.parent)}},  # relative paths as in Jupyter
    )
    async with limit:
        try:
            await client.async_execute(env=env)
        except Exception as exc:  # CellExecutionError names the cell and the traceback
            return exc
    return notebook


@pytest.fixture(scope="module")
def executed() -> dict[Path, object]:
    """Every notebook executed in quick mode: path -> the executed notebook, or the
    exception that stopped it."""
    # A short path: a process pool's sockets go under TMPDIR, and a Unix socket's path is
    # limited to about 100 characters.
    folder = tempfile.mkdtemp(prefix="capsim-nb-")
    env = {
        **os.environ,
        "CAPSIM_NOTEBOOK_QUICK": "1",
        "TMPDIR": folder,
        # Hypothesis keeps its files under the working folder (notebooks/) unless told.
        "HYPOTHESIS_STORAGE_DIRECTORY": os.path.join(folder, "hypothesis"),
    }

    async def run_all() -> list:
        limit = asyncio.Semaphore(PARALLEL)
        return await asyncio.gather(*(_execute(path, env, limit) for path in NOTEBOOKS))

    try:
        return dict(zip(NOTEBOOKS, asyncio.run(run_all()), strict=True))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for number, cell in enumerate(_code_cells(notebook), start=1):
        assert cell.outputs == [], f"{path.name}: code cell {number} has outputs"
        assert cell.execution_count is None, f"{path.name}: code cell {number} was executed"
    assert "CAPSIM_NOTEBOOK_QUICK" in notebook.cells[0].source, (
        f"{path.name}: the first cell should say how to run it in quick mode"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_in_quick_mode(path, executed):
    notebook = executed[path]
    if isinstance(notebook, Exception):
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(notebook))  # the traceback's colours
        pytest.fail(f"{path.name} failed in quick mode:\n{message}", pytrace=False)
    outputs = [output for cell in _code_cells(notebook) for output in cell.outputs]
    warnings = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not warnings, f"{path.name} wrote to stderr (a reader sees it):\n" + "\n".join(warnings)
    if any("plt." in cell.source or "capsim.plot." in cell.source for cell in notebook.cells):
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert images, f"{path.name} draws plots but showed no image"
