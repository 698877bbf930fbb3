"""The course reads like a good book: the big picture first, papers to read on, and no number in the prose that
no output of the notebook (or the results file) backs."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[1-6]_*.ipynb"))
RESULTS = ROOT / "simclr_helpers" / "assets" / "results.json"
PAPER_SITES = ("arxiv.org", "jmlr.org", "openaccess.thecvf.com", "proceedings.neurips.cc", "papers.nips.cc",
               "proceedings.mlr.press", "doi.org", "distill.pub", "openreview.net", "aclanthology.org")
PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%")


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _prose(text: str) -> str:
    """Markdown without inline code and link targets: the sentences a reader reads."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]))
        for mime in ("text/plain", "text/markdown", "text/html"):
            if mime in out.get("data", {}):
                parts.append("".join(out["data"][mime]))
    return "\n".join(parts)


def _results_percentages() -> set[float]:
    """Every fraction in the results file, as a percentage with one decimal (how the tables print them)."""
    found: set[float] = set()

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, float | int) and not isinstance(value, bool) and 0 <= value <= 1:
            found.add(round(100 * value, 1))

    if RESULTS.exists():
        walk(json.loads(RESULTS.read_text()))
    return found


def unbacked_percentages(cells: list[dict], known: set[float]) -> list[str]:
    """Percentages in the markdown of ``cells`` that no output of those cells and nothing in ``known`` holds.

    A prose figure written with d decimals is backed by any known figure that rounds to it at d decimals.
    """
    backed = set(known)
    for cell in cells:
        backed |= {float(m) for m in PERCENT.findall(_output_text(cell))}
    missing = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for match in PERCENT.finditer(_prose(_source(cell))):
            text = match.group(1)
            decimals = len(text.split(".")[1]) if "." in text else 0
            if not any(round(q, decimals) == float(text) for q in backed):
                missing.append(f"{text}% in: ...{_source(cell)[max(0, match.start() - 60):match.end() + 20]}...")
    return missing


def test_the_six_notebooks_are_checked():
    assert [nb.name[:2] for nb in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


def test_notebook_01_opens_with_the_framework_figure():
    cells = _cells(NOTEBOOKS[0])
    opening = _source(cells[0])
    assert "SimCLR" in opening and "views" in opening
    code = [_source(c) for c in cells if c["cell_type"] == "code"]
    figure = next(i for i, src in enumerate(code) if "simclr_framework(" in src)
    assert figure <= 1, "the framework figure comes right after the setup cell"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_ends_with_further_reading_and_papers(nb):
    last = _source(_cells(nb)[-1])
    assert "## Further reading" in last, "the last cell ends with a Further reading block"
    reading = last.split("## Further reading", 1)[1]
    links = re.findall(r"\]\((https?://[^)\s]+)\)", reading)
    assert any(any(site in link for site in PAPER_SITES) for link in links), "at least one paper link"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_percentage_in_the_prose_that_no_output_backs(nb):
    missing = unbacked_percentages(_cells(nb), _results_percentages())
    assert not missing, "percentages in the text that no output or result holds:\n" + "\n".join(missing)


@pytest.mark.parametrize("nb", NOTEBOOKS[:5], ids=lambda p: p.stem)
def test_the_blog_is_called_the_blog(nb):
    """"seed" means a random seed only; the blog post is "the blog" (README, "What the course fixes")."""
    for cell in _cells(nb):
        text = _prose(_source(cell)) if cell["cell_type"] == "markdown" else _source(cell)
        assert not re.search(r"\bthe seed's\b|\bseed mistake\b|\bthe seed (?:post|pipeline|ran|froze|asked)",
                             text, re.I), text[:120]


def test_the_percentage_check_catches_an_unbacked_figure():
    cells = [{"cell_type": "markdown", "source": ["The probe reaches 38.9% and kNN 36%."]},
             {"cell_type": "code", "source": [], "outputs": [{"output_type": "stream", "text": ["36.2%\n"]}]}]
    assert [m.split("%")[0] for m in unbacked_percentages(cells, set())] == ["38.9"]
    assert unbacked_percentages(cells, {38.9}) == []
    code_only = [{"cell_type": "markdown", "source": ["`f'{x:.1%}'` and [a](https://x.org/50%25)"]}]
    assert unbacked_percentages(code_only, set()) == []
