"""The ablation command: the course's training loop with one piece changed, measured and recorded."""

import json
import subprocess
import sys

import pytest
import torch

from simclr_helpers.blog import BLOG_LR
from simclr_helpers.checkpoints import RunRecord
from simclr_helpers.config import get_profile
from simclr_helpers.errors import SimclrError
from simclr_helpers.lab import ablations, results


@pytest.fixture(scope="module")
def tiny():
    return get_profile("smoke").with_overrides(epochs=1, batch_size=32, knn_every=0, knn_k=20)


def test_the_full_recipe_is_train_pretrain(tmp_path, bundled, tiny):
    """The ablation's loop produces the very weights of ``train.pretrain`` (same seed, data and recipe)."""
    from simclr_helpers.train import pretrain

    images = bundled.train.balanced_subset(100)
    model = ablations.pretrain_variant(ablations.VARIANTS["full"], tiny, images.images, seed=tiny.seed)
    run = pretrain(tiny, images, tmp_path, progress=False)
    reference = RunRecord.load(run.checkpoint).model
    for name, value in model.state_dict().items():
        assert torch.equal(value, reference[name]), name


def test_variants_change_one_thing_each():
    full = ablations.VARIANTS["full"]
    assert full.augment == ablations.CIFAR_AUGMENT and full.temperature is None and full.optimizer == "course"
    assert ablations.VARIANTS["no-crop"].augment.min_scale == 1.0
    assert ablations.VARIANTS["no-crop"].augment.ratio == (1.0, 1.0)
    assert ablations.VARIANTS["no-colour"].augment.cj_prob == 0.0
    assert ablations.VARIANTS["no-grey"].augment.gray_prob == 0.0
    crop = ablations.VARIANTS["crop-only"].augment
    assert crop.cj_prob == crop.gray_prob == 0.0 and crop.min_scale == full.augment.min_scale
    colour = ablations.VARIANTS["colour-only"].augment
    assert colour.min_scale == 1.0 and colour.hflip_prob == 0.0 and colour.cj_prob > 0 and colour.gray_prob > 0
    assert {v.temperature for v in ablations.VARIANTS.values()} == {None, 0.1, 0.5}
    assert ablations.VARIANTS["blog-optimizer"].optimizer == "blog"
    assert all(key in ablations.VARIANTS for pairs in ablations.GROUPS.values() for key, _ in pairs)
    assert ablations.parse_variants("full, no-crop,full") == ["full", "no-crop"]
    assert ablations.parse_variants(None) == list(ablations.VARIANTS)
    with pytest.raises(SimclrError, match="unknown variant"):
        ablations.parse_variants("full,no-such")


def test_the_blog_optimizer_keeps_its_learning_rate(bundled, tiny, monkeypatch):
    """Plain SGD at 0.06 and no schedule: the optimiser the variant's training used steps the model's own
    parameters, and after training it still holds lr 0.06, without momentum or weight decay."""
    from simclr_helpers import train
    from simclr_helpers.models import random_init_backbone

    used, real_epoch = [], train.train_one_epoch
    monkeypatch.setattr(train, "train_one_epoch", lambda setup, **kw: used.append(setup) or real_epoch(setup, **kw))
    model = ablations.pretrain_variant(ablations.VARIANTS["blog-optimizer"], tiny, bundled.train.images[:64], seed=1)
    assert len(used) == tiny.epochs and used[0].model is model and used[0].scheduler is None
    opt = used[0].optimizer
    assert [p for group in opt.param_groups for p in group["params"]] == list(model.parameters())
    assert [(g["lr"], g["momentum"], g["weight_decay"]) for g in opt.param_groups] == [(0.06, 0, 0)]
    assert not opt.state  # no momentum buffers: plain SGD
    start = random_init_backbone(tiny.stem, 1)  # where training began: the optimiser did move the weights
    assert not torch.equal(model.backbone[0].weight.detach().contiguous(), start[0].weight)
    assert not model.training


def _fake_result(n_test=1000, variants=None):
    variants = variants or [("full", [0.35, 0.36, 0.34]), ("no-crop", [0.25, 0.26, 0.24]),
                            ("tau-0.1", [0.35, 0.34, 0.36]), ("blog-optimizer", [0.29, 0.3, 0.28])]
    return {"profile": "smoke", "data": "bundled subset", "stem": "imagenet", "batch_size": 128, "epochs": 4,
            "seeds": [0, 1, 2], "n_pretrain": 2700, "n_bank": 3000, "n_test": n_test, "knn_k": 200,
            "device": "cpu", "hardware": "a CPU", "torch": "2", "date": "2026-01-01", "seconds": 840.0,
            "random_init": {"knn": [0.27, 0.27, 0.28]},
            "variants": [{"key": k, "description": ablations.VARIANTS[k].description, "knn": v} for k, v in variants],
            "groups": {g: [list(p) for p in pairs] for g, pairs in ablations.GROUPS.items()}}


def test_groups_summaries_and_honest_comparisons():
    result = _fake_result()
    rows = ablations.group_rows(result, "augmentation")
    assert [r["key"] for r in rows] == ["full", "no-crop"]  # only what was measured, in the chart's order
    assert rows[0]["mean"] == pytest.approx(0.35) and rows[0]["seeds"] == 3
    assert rows[0]["high"] - rows[0]["mean"] == pytest.approx(4.303 * 0.01 / 3 ** 0.5, rel=1e-3)  # t, 2 df
    found = [str(c) for c in ablations.comparisons(result, "augmentation", random_init=True)]
    # no-crop is 10 points below full in every seed: paired by seed, the interval is a point
    assert "no crop - full recipe = -10.0 points, 95% interval [-10.0, -10.0]: resolved" in found[1]
    temperature = ablations.comparisons(result, "temperature")
    assert len(temperature) == 1 and not temperature[0].resolved  # 0.35, 0.34, 0.36 against 0.35, 0.36, 0.34
    assert "4 epochs" in ablations.budget(result) and "1,000 test images" in ablations.budget(result)


def test_show_prints_every_comparison_and_draws_the_gaps(capsys):
    import matplotlib.pyplot as plt

    fig = ablations.show(_fake_result(), "augmentation", random_init=True)
    out = capsys.readouterr().out
    assert "full recipe: kNN top-1 35.0% [" in out and "no crop - random init" in out
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no crop"] and "full recipe" in ax.get_title()
    assert any(line.get_xdata()[0] == 0 for line in ax.lines)  # the zero line
    plt.close("all")
    assert ablations.show(None, "augmentation") is None and "no ablation" in capsys.readouterr().out


def test_results_file_and_readme_block(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": []}))
    assert results.load(path)["ablations"] is None
    assert "Not measured yet" in results.ablation_table(None)
    results.record_result("ablations", _fake_result(), path)
    # the same budget again: its variants are added, a variant measured again is replaced
    again = _fake_result(variants=[("no-crop", [0.2, 0.2, 0.2]), ("no-grey", [0.33, 0.34, 0.35])])
    results.record_result("ablations", again, path)
    stored = results.load(path)["ablations"]
    assert [v["key"] for v in stored["variants"]] == ["full", "tau-0.1", "blog-optimizer", "no-crop", "no-grey"]
    assert stored["variants"][3]["knn"] == [0.2, 0.2, 0.2]
    # another budget replaces the whole entry
    results.record_result("ablations", {**_fake_result(variants=[("full", [0.4, 0.4, 0.4])]), "epochs": 8}, path)
    assert [v["key"] for v in results.load(path)["ablations"]["variants"]] == ["full"]
    assert results.load(path)["rows"] == []  # nothing else of the file is touched
    table = results.ablation_table(_fake_result())
    assert "| `no-crop` |" in table and "random init" in table and "4 epochs" in table
    assert "| 25.0% [" in table and "| -10.0 [-10.0, -10.0]: resolved |" in table
    start, end = results._markers("ablations")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{results.readme_block([])}\n\n{start}\nold\n{end}\n")
    data = results.load(path)
    assert not results.check_readme(readme, data["rows"], [], [], data["ablations"])
    results.write_readme(readme, data["rows"], [], [], data["ablations"])
    assert results.check_readme(readme, data["rows"], [], [], data["ablations"])
    assert "| `full` |" in readme.read_text()


def test_ablate_command_records_a_tiny_run(tmp_path):
    """One epoch, one seed, two variants on 200 images: the command runs end to end and records its result."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": [], "benchmarks": []}))
    proc = subprocess.run([sys.executable, "-m", "simclr_helpers", "ablate", "--epochs", "1", "--seeds", "1",
                           "--variants", "full,blog-optimizer", "--train-limit", "200", "--batch-size", "32",
                           "--record", str(path)], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "SIMCLR_CHECKPOINTS": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "full" in proc.stdout and "blog-optimizer" in proc.stdout and "kNN top-1" in proc.stdout
    stored = results.load(path)["ablations"]
    assert [v["key"] for v in stored["variants"]] == ["full", "blog-optimizer"]
    assert stored["epochs"] == 1 and stored["seeds"] == [0] and stored["n_pretrain"] == 180
    assert stored["n_test"] == 1000 and len(stored["random_init"]["knn"]) == 1
    assert all(0 <= acc <= 1 for v in stored["variants"] for acc in v["knn"])
    profile = get_profile(stored["profile"])  # the optimiser the runs used is in the entry, not left to assume
    assert (stored["lr_per_256"], stored["momentum"], stored["weight_decay"]) == (
        profile.lr_per_256, profile.momentum, profile.weight_decay)
    assert [v["peak_lr"] for v in stored["variants"]] == [pytest.approx(profile.lr_per_256 * 32 / 256), BLOG_LR]
    assert stored["command"].startswith("python -m simclr_helpers ablate --epochs 1 --seeds 1")
    assert stored["command"].endswith("--variants full,blog-optimizer --record")


def test_ablate_command_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "simclr_helpers", "ablate", "--variants", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown variant" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "simclr_helpers", "ablate", "--seeds", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--seeds" in proc.stderr


def test_ablate_help_has_examples(capsys):
    from simclr_helpers.cli import main

    with pytest.raises(SystemExit) as info:
        main(["ablate", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "blog-optimizer" in out


def test_a_killed_ablation_continues_where_it_stopped(tmp_path):
    """Every finished (variant, seed) is in the store as it ends; killed and started again, the ablation runs
    only what is missing and keeps what was there, to the digit."""
    import os
    import signal
    import time

    store = tmp_path / "store.jsonl"
    command = [sys.executable, "-m", "simclr_helpers", "ablate", "--epochs", "1", "--seeds", "2", "--batch-size",
               "32", "--train-limit", "200", "--variants", "full,no-crop", "--store", str(store), "--json"]
    env = {**os.environ, "SIMCLR_PROFILE": "smoke", "TQDM_DISABLE": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if store.exists() and len(store.read_text().splitlines()) >= 3:  # two random-init floors and one run
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = [json.loads(line) for line in store.read_text().splitlines()]
    assert 3 <= len(kept) < 6, "killed after the first pretraining run and before the last"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert f"6 runs; {len(kept)} already in store.jsonl, {6 - len(kept)} to go" in second.stderr
    assert "min left" in second.stderr  # the progress line
    final = [json.loads(line) for line in store.read_text().splitlines()]
    assert final[: len(kept)] == kept and len(final) == 6
    assert sorted((e["key"], e["seed"]) for e in final) == sorted(
        (k, s) for k in ("random-init", "full", "no-crop") for s in (0, 1))
    result = json.loads(second.stdout)
    by_key = {row["key"]: row["knn"] for row in result["variants"]}
    assert by_key["full"] == [e["knn"] for e in final if e["key"] == "full"]


def test_a_store_of_another_budget_is_refused(tmp_path):
    store = tmp_path / "store.jsonl"
    from simclr_helpers.store import append_store, read_store

    def key(entry):
        return entry["key"], entry["seed"]

    append_store(store, {"key": "full", "seed": 0, "knn": 0.3, "seconds": 1.0, "budget": {"epochs": 9}})
    with pytest.raises(SimclrError, match="holds runs of another budget"):
        read_store(store, {"epochs": 1}, key)
    store.write_text(store.read_text() + '{"key": "full", "se')  # a line cut short by a kill
    assert list(read_store(store, {"epochs": 9}, key)) == [("full", 0)]
    append_store(store, {"key": "full", "seed": 1, "knn": 0.3, "seconds": 1.0, "budget": {"epochs": 9}})
    assert list(read_store(store, {"epochs": 9}, key)) == [("full", 0), ("full", 1)]


def test_the_batch_variant_trains_with_its_own_batch_and_learning_rate(bundled, tiny, monkeypatch):
    """batch-64 changes the batch the loop draws and scales the learning rate with it; nothing else."""
    from simclr_helpers import train

    seen = {}
    real_batches, real_optimizer = train.FastBatches, train.make_optimizer

    def batches(images, batch_size, *args, **kwargs):
        seen["batch"] = batch_size
        return real_batches(images, batch_size, *args, **kwargs)

    def optimizer(model, profile):
        seen["lr"] = (opt := real_optimizer(model, profile)).defaults["lr"]
        return opt

    monkeypatch.setattr(train, "FastBatches", batches)
    monkeypatch.setattr(train, "make_optimizer", optimizer)
    variant = ablations.VARIANTS["batch-64"]
    assert variant.augment == ablations.CIFAR_AUGMENT and variant.temperature is None
    ablations.pretrain_variant(variant, tiny.with_overrides(batch_size=128), bundled.train.images[:128], seed=0)
    assert seen == {"batch": 64, "lr": pytest.approx(tiny.lr_per_256 * 64 / 256)}


def test_the_course_stores_hold_the_pilot_and_the_table():
    """Notebook 02 prints the pilot's gaps from these files and notebook 03 the time of a run."""
    names = [p.name for p in ablations.course_stores()]
    assert names == ["cifar10-10k-12ep.jsonl", "cifar10-10k-4ep.jsonl"]
    budget, runs = ablations.read_runs(ablations.course_stores()[0])
    assert budget["epochs"] == 12 and set(runs) == {"random-init", "full", "no-crop", "no-colour"}
    assert sorted(runs["full"]) == [0, 1] and runs["full"][0]["knn"] == 0.4244
    recorded = results.load()["ablations"]
    budget, runs = ablations.read_runs(ablations.course_stores()[1])
    assert budget["epochs"] == recorded["epochs"]
    assert [runs["full"][seed]["knn"] for seed in recorded["seeds"]] == ablations.seeds_of(recorded, "full")


def test_an_empty_store_file_is_one_sentence(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SimclrError, match="empty.jsonl: an empty store file"):
        ablations.read_runs(tmp_path / "empty.jsonl")


def test_bonferroni_lines_compare_each_p_value_with_each_threshold():
    from simclr_helpers.stats import Comparison

    gaps = [Comparison("a", "b", 0.03, 0.01, 0.05, "t", 0.004), Comparison("c", "d", 0.01, -0.01, 0.03, "t", 0.2)]
    assert ablations.bonferroni_lines(gaps, (0.0125, 0.0028)) == [
        "a - b: p = 0.0040; below 0.0125: yes, below 0.0028: no",
        "c - d: p = 0.2000; below 0.0125: no, below 0.0028: no"]
