"""Hygiene of the committed notebooks: what strict nbval and readers on GitHub rely on."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_backbone_dissection", "02_augmentations", "03_pretraining", "04_linear_evaluation",
            "05_embeddings_tsne", "06_predict_single_image"]
LONG_RUN = "cpu-imagenet-45ep-cifar10"  # the results row of the reference weights notebooks 04-06 were executed with
LONG_RUN_NOTEBOOKS = ("04", "05", "06")
MACHINE_PATH = re.compile(r"(/(root|home|Users|work|tmp|private|var/folders)/[\w.-]+)|([A-Za-z]:\\\\Users\\\\)")


def _cells(nb):
    return json.loads(nb.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_the_six_notebooks_exist():
    assert [nb.stem for nb in NOTEBOOKS][:6] == EXPECTED


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_top_to_bottom(nb):
    code = [c for c in _cells(nb) if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert all(isinstance(n, int) for n in counts), "every code cell has been executed"
    assert counts == list(range(1, len(code) + 1)), "one top-to-bottom run in a fresh kernel"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_clean(nb):
    assert nb.stat().st_size < 1_500_000
    for cell in _cells(nb):
        for out in cell.get("outputs", []):
            text = json.dumps(out)
            assert not MACHINE_PATH.search(text), f"machine path in the outputs of: {_source(cell)[:80]}"
            assert "image/svg+xml" not in out.get("data", {}), "figures are PNG"
            assert out.get("output_type") != "error", f"an error output: {_source(cell)[:80]}"
            if not _source(cell).startswith("# NBVAL_IGNORE_OUTPUT"):
                assert not re.search(r"0x[0-9a-f]{8,}", text), "a memory address in a compared output"
                assert not (out.get("output_type") == "stream" and out.get("name") == "stderr"), \
                    f"stderr in a compared cell: {_source(cell)[:80]}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_shared_opening_and_closing(nb):
    cells = _cells(nb)
    first, last = _source(cells[0]), _source(cells[-1])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# ")
    assert "colab.research.google.com/github/" in first and f"/notebooks/{nb.name})" in first
    assert "**Learning goals.**" in first and first.count("\n- ") >= 3
    for profile in ("smoke", "cpu", "colab", "gpu"):
        assert f"| `{profile}` |" in first
    if nb.stem[:2] in LONG_RUN_NOTEBOOKS:  # what a reader on GitHub sees comes from the reference weights, named
        assert "stored outputs come from one top-to-bottom run with the reference weights" in first
        assert f"`{LONG_RUN}`" in first and "with the `smoke` profile" in first  # ... and what a reader gets
    else:
        assert "stored outputs come from one top-to-bottom run with the `smoke` profile" in first
    assert "## Summary" in last and "## Exercises" in last
    setup = _source(cells[1])
    assert '"google.colab" in sys.modules' in setup and "setup(seed=0, profile=PROFILE" in setup
    assert 'PROFILE = "auto"' in setup  # the profile is one visible variable (a Colab form field)
    if nb.stem[:2] in LONG_RUN_NOTEBOOKS:  # ... and so is the run they read
        assert 'RUN = "auto"' in setup and "run=RUN)" in setup


def test_the_long_run_behind_the_notebooks_is_recorded():
    """Notebook 03 draws the run whose checkpoint 04-06 were executed with, from its shipped metrics file."""
    from simclr_helpers.lab.results import load, metrics_file

    assert f'LONG_RUN = "{LONG_RUN}"' in "".join(_source(c) for c in _cells(NOTEBOOKS[2]))
    row = next((r for r in load()["rows"] if r["id"] == LONG_RUN), None)
    assert row is not None, f"{LONG_RUN} is not a row of the results file"
    assert row["n_test"] == 10_000 and metrics_file(LONG_RUN).is_file()
    for nb in NOTEBOOKS[3:6]:
        outputs = json.dumps([c.get("outputs", []) for c in _cells(nb)])
        assert "run: reference, the weights shipped with the course (45 epochs" in outputs, \
            f"{nb.name} was not executed with the reference weights"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_some_outputs_are_compared(nb):
    """Strict nbval compares every cell not marked; each notebook has deterministic cells it checks."""
    code = [_source(c) for c in _cells(nb) if c["cell_type"] == "code"]
    compared = [s for s in code if not s.startswith("# NBVAL_IGNORE_OUTPUT")]
    assert compared, "no output of this notebook is compared"
    assert code[0].startswith("# NBVAL_IGNORE_OUTPUT")  # the setup cell prints the machine's device


def test_readme_links_every_notebook():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.name}" in readme
