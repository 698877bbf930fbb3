"""A store of finished runs: one JSON line per run, appended as the run ends, so that a long experiment
(``ablate``, ``label-efficiency``) killed midway continues where it stopped when started again.

Every line carries the experiment's budget (the settings all its runs share); a store of another
budget is refused, so runs of different budgets never mix. A line half-written by a killed process
is dropped, and that run is simply done again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .errors import SimclrError


def read_store(path: str | Path, budget: dict, key: Callable[[dict], tuple]) -> dict:
    """The finished runs in a store, ``{key(entry): entry}``; every one must be of the given budget."""
    path = Path(path)
    if not path.exists():
        return {}
    done = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a run killed while writing its line: that run is done again
                break
            raise SimclrError(f"{path}: line {number} is not JSON; the store is damaged, so move it away and "
                              "start the experiment again.") from None
        if entry.get("budget") != budget:
            raise SimclrError(f"{path}: holds runs of another budget ({entry.get('budget')}); give this budget "
                              "its own --store file.")
        done[key(entry)] = entry
    return done


def stored_budget(path: str | Path) -> dict | None:
    """The budget a store's runs share, read from its first line; None for a missing, empty or damaged store."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text().split("\n", 1)[0]).get("budget")
    except json.JSONDecodeError:
        return None


def append_store(path: str | Path, entry: dict) -> None:
    """Append one finished run to the store and flush it to disk before the next run starts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        text = path.read_text()
        if text and not text.endswith("\n"):  # a line half-written by a killed run: drop it
            path.write_text(text[: text.rfind("\n") + 1])
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
