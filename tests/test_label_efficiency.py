"""Label efficiency: four curves on the same subsets, budgets chosen on validation images, resumable."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from simclr_helpers.data import CIFARSplits
from simclr_helpers.lab import label_efficiency as le


@pytest.fixture(scope="module")
def small_splits(bundled):
    return CIFARSplits(bundled.train.balanced_subset(600), bundled.test.balanced_subset(200))


def test_packed_correctness_round_trips():
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 1000, 10_000):
        bits = rng.random(n) < 0.6
        assert np.array_equal(le.unpack(le.pack(bits), n), bits)
    assert len(le.pack(np.ones(10_000, bool))) < 1700  # 10,000 test images in about 1.7 kB


def test_validation_is_the_pretraining_runs_held_out_split(bundled):
    """The validation images are exactly the kNN-monitor queries ``load_pretrain_data`` held out of pretraining."""
    from simclr_helpers.config import get_profile
    from simclr_helpers.runs import load_pretrain_data

    data = load_pretrain_data(get_profile("smoke"))
    pool, validation = le.split_validation(bundled.train)
    assert pool.images.equal(data.train.images) and validation.images.equal(data.monitor[1].images)


def test_curves_budgets_and_resume(tiny_run, small_splits, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="simclr_helpers")
    store = tmp_path / "store.jsonl"
    grid, probe_grid = {0.1: (1, 2), 1.0: (1,)}, (2,)  # the profile's linear_epochs (5) joins the probes' grid
    result = le.run_label_efficiency(tiny_run.checkpoint, small_splits, (0.1, 1.0), grid, store, "cpu",
                                     progress=False, probe_grid=probe_grid)
    entries = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(entries) == 2 * 2 * 2 + 2 + 1 + 2 + 1  # probes (2 budgets) at both fractions, then the trained grids
    assert caplog.messages[0] == ("label efficiency: 0 runs already done, 8 to go, and up to 6 more where validation "
                                  "is still rising (a grid ends at the first budget that does not improve it)")
    cell = result["fractions"]["0.1"]
    assert set(cell) == set(le.METHODS)
    for method in le.TRAINED:  # the chosen budget is the best on validation, the grid is kept
        assert set(cell[method]["grid"]) == {"1", "2"}
        assert cell[method]["val_top1"] == max(cell[method]["grid"].values())
        assert cell[method]["curve"] and all("val_top1" in point for point in cell[method]["curve"])
        assert cell[method]["seconds"] == pytest.approx(sum(  # what the grid's runs cost, from the store
            e["seconds"] for e in entries if (e["method"], e["fraction"]) == (method, 0.1)), abs=0.11)
    for method in le.PROBES:  # the probes' budget is chosen on the same validation split
        assert set(cell[method]["grid"]) == {"2", "5"}
        assert cell[method]["val_top1"] == max(cell[method]["grid"].values())
        chosen = next(e for e in entries if (e["method"], e["fraction"], e["epochs"]) == (method, 0.1,
                                                                                           cell[method]["epochs"]))
        assert chosen["test_correct"] == cell[method]["test_correct"]
    assert result["probe_epochs"] == 5  # the budget keeps naming the default probe budget
    n_pool = result["n_pool"]
    assert cell["probe-simclr"]["n_labels"] == cell["scratch"]["n_labels"] == pytest.approx(0.1 * n_pool, abs=10)
    assert result["fractions"]["1.0"]["finetune"]["n_labels"] == n_pool
    correct = le.unpack(cell["scratch"]["test_correct"], result["n_test"])
    assert correct.mean() == pytest.approx(cell["scratch"]["test_top1"], abs=1e-4)

    # Fine-tuning against training from scratch at every budget both ran, each budget's own runs paired.
    gaps = le.gaps_by_budget(result, store, 0.1)
    assert [e for e, _ in gaps] == sorted(int(e) for e in cell["scratch"]["grid"]) == [1, 2]
    for epochs, gap in gaps:
        pair = [next(e for e in entries if (e["method"], e["fraction"], e["epochs"]) == (m, 0.1, epochs))
                for m in ("finetune", "scratch")]
        assert gap.gap == pytest.approx(pair[0]["test_top1"] - pair[1]["test_top1"], abs=1e-3)
    assert le.gaps_by_budget({**result, "n_test": result["n_test"] + 1}, store, 0.1) == []  # another budget's
    assert le.gaps_by_budget(result, tmp_path / "none.jsonl", 0.1) == []

    again = le.run_label_efficiency(tiny_run.checkpoint, small_splits, (0.1, 1.0), grid, store, "cpu",
                                    progress=False, probe_grid=probe_grid)
    assert caplog.messages[-1].startswith("label efficiency: 14 runs already done, 0 to go, and up to 0 more")
    assert again["fractions"] == result["fractions"]

    # The store read without training: complete for these grids (also with the checkpoint spelled as another
    # path to the same run/last.pt), incomplete for a longer one.
    for checkpoint in (tiny_run.checkpoint, os.path.relpath(tiny_run.checkpoint)):
        summary, missing = le.stored_summary(checkpoint, small_splits, store, (0.1, 1.0), grid,
                                             probe_grid=probe_grid)
        assert missing == [] and summary["fractions"] == result["fractions"]
        assert summary["seconds"] == result["seconds"] and summary["n_test"] == result["n_test"]
    summary, missing = le.stored_summary(tiny_run.checkpoint, small_splits, store, (0.1, 1.0),
                                         {0.1: (1, 2, 4), 1.0: (1,)}, probe_grid=(2, 10))
    longer = [("probe-simclr", 0.1, 10), ("probe-random", 0.1, 10), ("probe-simclr", 1.0, 10),
              ("probe-random", 1.0, 10), ("scratch", 0.1, 4), ("finetune", 0.1, 4)]

    def rising(method, fraction):  # every stored budget of the curve beat the shorter ones on validation
        vals = [e["val_top1"] for e in sorted(entries, key=lambda e: e["epochs"])
                if (e["method"], e["fraction"]) == (method, fraction)]
        return all(v > max(vals[:i]) for i, v in enumerate(vals) if i)

    assert missing == [job for job in longer if rising(*job[:2])]
    assert (summary is None) == bool(missing)


def test_a_grid_ends_where_validation_stops_improving():
    """Budgets are walked upwards; the first one that does not beat every shorter budget on validation ends the
    grid (it is kept and reported), and nothing longer is run; an unrun budget is the next job, the rest may follow."""
    def done(*vals):
        return {("scratch", 0.1, e): {"val_top1": v} for e, v in zip((25, 50, 100, 200), vals)}

    grid = (25, 50, 100, 200)
    assert le._walk("scratch", 0.1, grid, done(0.53, 0.60, 0.59)) == (
        [("scratch", 0.1, 25), ("scratch", 0.1, 50), ("scratch", 0.1, 100)], [])
    assert le._walk("scratch", 0.1, grid, done(0.53, 0.53)) == ([("scratch", 0.1, 25), ("scratch", 0.1, 50)], [])
    assert le._walk("scratch", 0.1, grid, done(0.53, 0.60)) == (
        [("scratch", 0.1, 25), ("scratch", 0.1, 50), ("scratch", 0.1, 100)], [200])
    assert le._walk("scratch", 0.1, grid, done(0.53, 0.60, 0.61, 0.62)) == (
        [("scratch", 0.1, e) for e in grid], [])  # still rising at the top: the grid was too short
    assert le._walk("scratch", 0.1, grid, {}) == ([("scratch", 0.1, 25)], [50, 100, 200])


def test_the_measured_grids_are_the_defaults(tiny_run, small_splits, tmp_path):
    """Without ``grid``, the trained curves try ``EPOCH_GRID`` (the grids the recorded measurement used) and the
    probes ``PROBE_GRID``, which holds the default probe budget, so stored runs of that budget are reused."""
    assert le.EPOCH_GRID == {0.01: (100, 200, 400, 800), 0.1: (25, 50, 100, 200, 400), 1.0: (6, 12, 24, 48)}
    assert 100 in le.PROBE_GRID and list(le.PROBE_GRID) == sorted(le.PROBE_GRID)
    summary, missing = le.stored_summary(tiny_run.checkpoint, small_splits, tmp_path / "none.jsonl")
    probes = sorted({*le.PROBE_GRID, 5})  # the tiny profile's linear_epochs joins the grid
    assert summary is None
    assert missing == ([(m, f, probes[0]) for f in le.FRACTIONS for m in le.PROBES]  # each grid's first budget
                       + [(m, f, le.EPOCH_GRID[f][0]) for f in le.FRACTIONS for m in le.TRAINED])
    assert le.default_store("reference").name == "reference.jsonl"
    assert le.default_store(tiny_run.checkpoint).name == f"{Path(tiny_run.checkpoint).parent.name}.jsonl"


def test_finetuning_starts_from_the_pretrained_backbone(tiny_run, small_splits, monkeypatch):
    """fine-tune and from-scratch differ only in their start: the SimCLR backbone, or random weights."""
    import simclr_helpers.supervised as supervised

    starts = {}
    real = supervised.train_supervised

    def spy(train, stem, recipe, device=None, stats=None, progress=False, init=None, validation=None, **kw):
        starts[init is None] = recipe
        return real(train, stem, recipe, device, stats, progress, init, validation, **kw)

    monkeypatch.setattr(supervised, "train_supervised", spy)
    le.run_label_efficiency(tiny_run.checkpoint, small_splits, (1.0,), {1.0: (1,)}, None, "cpu",
                            methods=("scratch", "finetune"), progress=False)
    assert set(starts) == {True, False} and starts[True] == starts[False]  # the same recipe for both
    assert starts[True].augment == "pad-crop" and starts[True].epochs == 1


def test_the_command_records_its_summary_and_refuses_bad_arguments(tiny_run, tmp_path, capsys):
    from simclr_helpers.cli import main
    from simclr_helpers.lab.results import load

    results = tmp_path / "results.json"
    args = ["label-efficiency", "--checkpoint", str(tiny_run.checkpoint), "--fractions", "1.0",
            "--methods", "probe-simclr,probe-random", "--probe-grid", "2", "--store", str(tmp_path / "s.jsonl")]
    assert main([*args, "--record", str(results)]) == 0
    out = capsys.readouterr().out
    assert "100% of the labels, linear probe, SimCLR features: test top-1" in out
    stored = load(results)["label_efficiency"]
    assert set(stored["fractions"]["1.0"]) == {"probe-simclr", "probe-random"} and stored["n_test"] == 1000
    assert set(stored["fractions"]["1.0"]["probe-simclr"]["grid"]) == {"2", "5"}  # with the profile's 5 epochs
    assert "--probe-grid 2" in stored["command"]
    with pytest.raises(SystemExit) as info:  # a budget of 0 epochs: refused where argparse reads it
        main([*args, "--grid", "1.0:0"])
    assert info.value.code == 2 and "argument --grid: 0 is too small" in capsys.readouterr().err
    assert main([*args, "--methods", "magic"]) == 2
    assert "unknown method(s) magic" in capsys.readouterr().err


def _summary(n=2000):
    """A summary as ``summarise`` makes it, with chosen per-image correctness: fine-tuning right on 70% of the
    images, from scratch on 60% of them, the probes on 50% and 20%, nested so the paired counts are known."""
    rng = np.random.default_rng(0)
    order = rng.permutation(n)

    def entry(share, epochs=None):
        ok = np.zeros(n, bool)
        ok[order[: int(share * n)]] = True
        return {"epochs": epochs or 100, "n_labels": 450, "val_top1": share, "test_top1": share,
                "test_correct": le.pack(ok), "grid": {"10": share - 0.01, "20": share}, "curve": []}

    cell = {"probe-simclr": entry(0.5), "probe-random": entry(0.2), "scratch": entry(0.6, 20),
            "finetune": entry(0.7, 20)}
    return {"checkpoint": "reference", "stem": "imagenet", "n_pool": 45000, "n_validation": 5000, "n_test": n,
            "probe_epochs": 100, "batch_size": 256, "fractions": {"0.01": cell}, "seconds": 3600.0,
            "hardware": "a test", "date": "2026-01-01"}


def test_paired_comparisons_and_the_readme_table_read_the_stored_correctness():
    from simclr_helpers.lab.results import label_efficiency_table

    summary = _summary()
    found = {(c.a, c.b): c for _, c in le.comparisons(summary)}
    assert len(found) == len(le.COMPARISONS)
    tuned = found[(le.LABELS["finetune"], le.LABELS["scratch"])]
    assert tuned.gap == pytest.approx(0.1) and tuned.resolved  # 200 images only fine-tuning gets right, 0 the other way
    assert "200 discordant" in tuned.method
    assert le.curves(summary)[le.LABELS["scratch"]] == {0.01: 0.6}
    table = label_efficiency_table(summary)
    assert "| 1% (450 images) |" in table and "60.0% [" in table and "20 epochs" in table
    assert str(tuned) in table and "10 ep 59.0% / 20 ep 60.0%" in table
    assert "50.0% [" in table and "100 epochs" in table  # the probes' chosen budget, from their own grid
    assert ("Linear probes on the frozen features: their epochs chosen the same way, their grids walked as far as "
            "validation kept improving, which ran 10, 20 epochs") in table
    for cell in summary["fractions"].values():  # a summary measured with one probe budget says it was fixed
        for method in le.PROBES:
            cell[method]["grid"] = {"100": cell[method]["val_top1"]}
    table = label_efficiency_table(summary)
    assert "Linear probes: a fixed 100 epochs on the frozen features." in table and "The trained curves'" in table
    assert label_efficiency_table(None).startswith("Not measured yet")


def test_recorded_summary_is_found_only_for_its_checkpoint_and_test_set(tmp_path):
    from simclr_helpers.lab.results import record_result, recorded_label_efficiency

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": [], "benchmarks": [], "sweeps": []}))
    assert recorded_label_efficiency("reference", 2000, path) is None
    record_result("label_efficiency", _summary(), path)
    assert recorded_label_efficiency("reference", 2000, path)["n_pool"] == 45000
    assert recorded_label_efficiency("reference", 10_000, path) is None
    assert recorded_label_efficiency("checkpoints/smoke/last.pt", 2000, path) is None


def test_the_command_line_names_the_default_grids():
    """--grid's help spells EPOCH_GRID out (the command line does not import the lab to build it): they must agree."""
    from simclr_helpers.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["label-efficiency"]
    help_text = " ".join(next(a for a in sub._actions if a.dest == "grid").help.split())
    grids = " ".join(f"{f}:{','.join(map(str, e))}" for f, e in le.EPOCH_GRID.items())
    assert grids in help_text
