"""Every accuracy the README's prose quotes is one the results file holds.

The generated tables are checked by ``results --check``; this test checks the sentences around them. A
percentage written with decimals (``63.4%``, ``67.02%``) in the README's prose, outside the generated blocks
and code blocks, must equal, at the precision it is written with, a figure of
``simclr_helpers/assets/results.json``: a measurement (a fraction such as 0.634, or a percentage), or an
entry of its ``quoted`` list, which names the source of a figure someone else measured. Percentages without
decimals (1% of the labels, 30% of a GPU's peak) are shares, not measurements, and are not checked.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "simclr_helpers" / "assets" / "results.json"
GENERATED = re.compile(r"<!-- ([\w-]+):start.*?<!-- \1:end -->", flags=re.S)
CODE = re.compile(r"```.*?```", flags=re.S)
FIGURE = re.compile(r"(?<![\d.])(\d+\.\d+)%")


def prose(readme: str) -> str:
    """The README without its generated blocks and code blocks."""
    return CODE.sub("", GENERATED.sub("", readme))


def numbers(value) -> list[float]:
    """Every number in a JSON value, nested anywhere."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []


def held(figure: str, values: list[float]) -> bool:
    """Whether a figure written as ``figure`` percent is one of the values, as a fraction or a percentage."""
    places = len(figure.split(".")[1])
    target = float(figure)
    return any(abs(round(v * 100, places) - target) < 1e-9 or abs(round(v, places) - target) < 1e-9
               for v in values)


def unheld(readme: str, results: dict) -> list[str]:
    values = numbers(results)
    return [f"{f}%" for f in FIGURE.findall(prose(readme)) if not held(f, values)]


def test_every_accuracy_in_the_readme_prose_is_in_the_results_file():
    readme, results = README.read_text(), json.loads(RESULTS.read_text())
    assert FIGURE.findall(prose(readme)), "the README quotes no figure: is the pattern still right?"
    assert unheld(readme, results) == []


def test_every_quoted_figure_names_its_source():
    for entry in json.loads(RESULTS.read_text()).get("quoted", []):
        assert entry["source"] and entry["what"] and isinstance(entry["value"], (int, float))


@pytest.mark.parametrize("edit", ["headline", "table", "code"])
def test_an_edited_figure_is_caught_in_prose_and_only_there(edit):
    readme, results = README.read_text(), json.loads(RESULTS.read_text())
    headline = FIGURE.findall(prose(readme))[0]  # the first figure of the prose: the headline's kNN top-1
    changed = f"{float(headline) + 10:.{len(headline.split('.')[1])}f}"
    if edit == "headline":
        assert unheld(readme.replace(f"{headline}%", f"{changed}%", 1), results) == [f"{changed}%"]
    elif edit == "table":  # a generated block is results --check's business
        assert unheld(readme + f"\n<!-- x:start -->\n| {changed}% |\n<!-- x:end -->\n", results) == []
    else:
        assert unheld(readme + f"\n```\nprint('{changed}%')\n```\n", results) == []


def test_the_check_reads_fractions_and_percentages_at_the_written_precision():
    assert held("63.4", [0.6337]) and held("63.37", [0.6337]) and held("84.8", [84.8])
    assert not held("63.5", [0.6337]) and not held("63.38", [0.6337])
