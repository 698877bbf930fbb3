"""One repository address: every Colab badge and install cell agrees with ``config.REPOSITORY``,
and ``set-repository`` moves all of them to a fork at once (and back, byte for byte)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from simclr_helpers.config import REPOSITORY, colab_badge, colab_url, install_spec
from simclr_helpers.errors import SimclrError
from simclr_helpers.repository import BADGE, INSTALL, addresses, set_repository

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/([^/\s)]+)/notebooks/([^\s)]+)")


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_the_address_helpers():
    assert colab_url("03_pretraining.ipynb") == (
        f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/03_pretraining.ipynb")
    assert colab_badge("03_pretraining.ipynb") == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url('03_pretraining.ipynb')})")
    assert install_spec() == f"simclr-helpers @ git+https://github.com/{REPOSITORY}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_points_at_the_repository_and_the_notebook_itself(nb):
    first = _source(json.loads(nb.read_text())["cells"][0])
    assert colab_badge(nb.name) in first.splitlines()
    assert [m.groups() for m in COLAB.finditer(first)] == [(REPOSITORY, "main", nb.name)]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_install_cell_installs_from_the_repository(nb):
    cells = json.loads(nb.read_text())["cells"]
    setup = _source(cells[1])
    pip = [line for line in setup.splitlines() if "%pip install" in line]
    assert len(pip) == 1 and f'"{install_spec()}"' in pip[0], pip
    for cell in cells:  # no other address anywhere in the notebook
        assert addresses(_source(cell)) <= {REPOSITORY}


def test_readme_badges_point_at_the_repository_and_existing_notebooks():
    readme = (ROOT / "README.md").read_text()
    for nb in NOTEBOOKS:
        assert colab_badge(nb.name) in readme
    found = [m.groups() for m in COLAB.finditer(readme)]
    assert len(found) >= len(NOTEBOOKS)
    for repository, branch, name in found:
        assert (repository, branch) == (REPOSITORY, "main") and (ROOT / "notebooks" / name).is_file(), name
    assert addresses(readme) <= {REPOSITORY}


def test_patterns_find_the_address_in_a_notebooks_raw_json():
    raw = (ROOT / "notebooks" / NOTEBOOKS[0].name).read_text()
    assert {m.group(1) for m in BADGE.finditer(raw)} == {REPOSITORY}
    assert {m.group(1) for m in INSTALL.finditer(raw)} == {REPOSITORY}


@pytest.fixture
def course_copy(tmp_path):
    """The files set-repository rewrites, copied."""
    (tmp_path / "simclr_helpers").mkdir()
    shutil.copy(ROOT / "simclr_helpers" / "config.py", tmp_path / "simclr_helpers" / "config.py")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    return tmp_path


def test_set_repository_moves_every_address_to_a_fork_and_back(course_copy):
    before = {p: p.read_bytes() for p in course_copy.rglob("*") if p.is_file()}
    changed = set_repository("a-fork/simclr-course", course_copy)
    assert {p.name for p in changed} == {"config.py", "README.md", *(nb.name for nb in NOTEBOOKS)}
    for nb in NOTEBOOKS:
        cells = json.loads((course_copy / "notebooks" / nb.name).read_text())["cells"]  # still valid JSON
        assert colab_badge(nb.name, "a-fork/simclr-course") in _source(cells[0])
        assert install_spec("a-fork/simclr-course") in _source(cells[1])
        assert REPOSITORY not in (course_copy / "notebooks" / nb.name).read_text()
    readme = (course_copy / "README.md").read_text()
    assert addresses(readme) == {"a-fork/simclr-course"} and "github.com/lightly-ai/lightly" in readme
    assert 'REPOSITORY = "a-fork/simclr-course"' in (course_copy / "simclr_helpers" / "config.py").read_text()
    assert set_repository("a-fork/simclr-course", course_copy) == []  # nothing left to change
    set_repository(REPOSITORY, course_copy)
    assert {p: p.read_bytes() for p in course_copy.rglob("*") if p.is_file()} == before


def test_set_repository_refuses_bad_names_and_other_folders(course_copy, tmp_path):
    for bad in ("no-slash", "a/b/c", "-a/b", "a b/c", "a/b c"):
        with pytest.raises(SimclrError, match="OWNER/NAME"):
            set_repository(bad, course_copy)
    with pytest.raises(SimclrError, match="not the course's folder"):
        set_repository("a/b", tmp_path / "simclr_helpers")


def test_set_repository_command(course_copy, capsys):
    from simclr_helpers.cli import main

    assert main(["set-repository", "someone/simclr", "--root", str(course_copy)]) == 0
    out = capsys.readouterr().out
    assert "rewrote notebooks/01_backbone_dissection.ipynb" in out and "now point at someone/simclr" in out
