"""Which run notebooks 04-06 read, tried in a real kernel with the notebooks' own first cells."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_first_code_cells(name: str, count: int) -> list[str]:
    """Execute the first ``count`` code cells of a committed notebook in a fresh kernel; their text outputs."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"][:count]
    nb.cells = code
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    return ["".join(o.get("text", "")) for c in nb.cells for o in c.outputs]


def test_a_named_empty_folder_stops_notebook_04_at_its_setup(tmp_path, monkeypatch):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    monkeypatch.setenv("SIMCLR_RUN", str(empty))
    monkeypatch.setenv("SIMCLR_CHECKPOINTS", str(tmp_path / "checkpoints"))
    with pytest.raises(CellExecutionError) as err:
        run_first_code_cells("04_linear_evaluation.ipynb", 2)
    message = str(err.value)
    assert "CheckpointError" in message and "empty-run: $SIMCLR_RUN names this run folder but it holds no last.pt" \
        in message
    assert list(empty.iterdir()) == [] and not (tmp_path / "checkpoints").exists()


def test_notebook_04_reads_the_reference_weights_by_name(tmp_path, monkeypatch):
    """SIMCLR_RUN=reference, offline: the setup cell says which run and why; the data is the bundled subset."""
    monkeypatch.setenv("SIMCLR_RUN", "reference")
    monkeypatch.setenv("SIMCLR_DATA", "bundled")
    monkeypatch.setenv("SIMCLR_CHECKPOINTS", str(tmp_path / "checkpoints"))
    text = "\n".join(run_first_code_cells("04_linear_evaluation.ipynb", 2))
    assert "run: reference, the weights shipped with the course (45 epochs of the cpu profile" in text
    assert "named by $SIMCLR_RUN" in text
    assert "run reference: 45 epochs, imagenet stem" in text and "3,000 labelled training images" in text
    assert not (tmp_path / "checkpoints").exists()  # nothing trained, nothing written
