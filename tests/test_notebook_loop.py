"""Notebook 03 writes the training loop out; ``train.pretrain`` runs the same loop with the plumbing.

This test runs the notebook's own cells (the set-up cell and the loop cell, as they are committed) for one
epoch and ``pretrain`` for one epoch from the same seed on the same images, and requires identical weights:
if either loop drifts (an extra step, another order, another schedule), it fails.
"""

import json
from pathlib import Path

import torch
from lightly.loss import NTXentLoss

import simclr_helpers.runs as runs
from simclr_helpers.data import DataSpec
from simclr_helpers.notebook import Session
from simclr_helpers.train import pretrain

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_pretraining.ipynb"


def _cell(needle: str) -> str:
    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    hits = [c for c in cells if needle in c]
    assert len(hits) == 1, f"notebook 03 has {len(hits)} code cells with {needle!r}"
    return hits[0]


def test_notebook_loop_equals_pretrain(bundled, tiny_profile, tmp_path, monkeypatch):
    profile = tiny_profile.with_overrides(epochs=1, knn_every=1)
    train = bundled.train.balanced_subset(200)
    bank, held = train.split(0.25)
    data = runs.PretrainData(train, (bank, held), DataSpec("bundled"), None)
    monkeypatch.setattr(runs, "load_pretrain_data", lambda *a, **k: data)

    ns = {"S": Session(profile, torch.device("cpu"), tmp_path / "notebook"), "torch": torch,
          "NTXentLoss": NTXentLoss}
    torch.manual_seed(123)  # the notebook's earlier cells have drawn random numbers: the loop must not depend on it
    exec(_cell("model = SimCLRModel("), ns)
    exec(_cell("for epoch in range(profile.epochs):"), ns)

    result = pretrain(profile, train, tmp_path / "package", data=data.spec, monitor=(bank, held), progress=False)
    package = torch.load(result.checkpoint, weights_only=True)["model"]
    notebook = ns["model"].state_dict()
    assert package.keys() == notebook.keys()
    for name, value in package.items():
        assert torch.equal(value, notebook[name]), f"{name} differs between notebook 03's loop and pretrain"
    assert ns["metrics"][0]["loss"] == result.metrics[0]["loss"]
    assert ns["metrics"][0]["knn_top1"] == result.metrics[0]["knn_top1"]
