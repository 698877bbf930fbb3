import sys

import pytest
import torch

from simclr_helpers.checkpoints import load_checkpoint
from simclr_helpers.config import NORMALIZE
from simclr_helpers.train import pretrain, warmup_cosine


def test_warmup_then_cosine_to_zero():
    lrs = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] < 0.001


def test_run_writes_checkpoint_logs_and_normalisation(tiny_run, tiny_profile):
    state = load_checkpoint(tiny_run.checkpoint, kind="simclr")
    assert state["epoch"] == tiny_profile.epochs
    assert state["normalize"] == NORMALIZE
    assert state["settings"]["epochs"] == tiny_profile.epochs
    assert [m["epoch"] for m in state["metrics"]] == [1, 2]
    assert all(m["knn_top1"] is not None for m in state["metrics"])
    out = tiny_run.checkpoint.parent
    assert (out / "metrics.csv").read_text().startswith("epoch,loss,lr")
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def _train(bundled, profile, out, **kw):
    train = bundled.train.balanced_subset(192)
    return pretrain(profile, train, out, progress=False, log=None, **kw)


def test_killed_and_resumed_run_matches_an_uninterrupted_one(bundled, tiny_profile, tmp_path):
    profile = tiny_profile.with_overrides(epochs=3, knn_every=0)
    full = _train(bundled, profile, tmp_path / "full")

    def kill_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(bundled, profile, tmp_path / "cut", on_epoch_end=kill_after_first_epoch)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = _train(bundled, profile, tmp_path / "cut", resume=True)

    assert [m["epoch"] for m in resumed.metrics] == [1, 2, 3]
    assert [m["lr"] for m in resumed.metrics] == [m["lr"] for m in full.metrics]
    a = load_checkpoint(full.checkpoint)
    b = load_checkpoint(resumed.checkpoint)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 3 * (190 // 64)  # 19 per class
    # Same data order, same views, same weights: the resumed run is the same run.
    assert [m["loss"] for m in resumed.metrics] == pytest.approx([m["loss"] for m in full.metrics], rel=1e-4)
    for k in a["model"]:
        assert torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=1e-5), k


def test_resume_of_a_finished_run_does_nothing(tiny_run, tiny_profile, bundled):
    before = load_checkpoint(tiny_run.checkpoint)["metrics"]
    res = pretrain(tiny_profile, bundled.train.balanced_subset(320), tiny_run.checkpoint.parent, resume=True,
                   progress=False, log=None)
    assert res.metrics == before


def test_seed_pipeline_runs_the_same_loop(bundled, tiny_profile, tmp_path):
    profile = tiny_profile.with_overrides(epochs=1, knn_every=0)
    res = pretrain(profile, bundled.train.balanced_subset(128), tmp_path, pipeline="seed", progress=False, log=None)
    assert res.metrics[0]["epoch"] == 1 and res.metrics[0]["loss"] > 0
    assert load_checkpoint(res.checkpoint)["pipeline"] == "seed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_allocator_keeps_freed_memory_on_linux():
    from simclr_helpers.train import keep_freed_memory

    assert keep_freed_memory() and keep_freed_memory()  # takes effect, and a second call is harmless


def test_fast_batches_make_two_different_views_of_the_same_images(bundled):
    from simclr_helpers.train import FastBatches

    images = bundled.train.images[:64]
    batches = FastBatches(images, 16, torch.Generator().manual_seed(0))
    x0, x1 = next(iter(batches))
    assert x0.shape == x1.shape == (16, 3, 32, 32)
    assert not torch.allclose(x0, x1)  # independent parameters for the two views
    # Both views of row i come from the same source image: their mean colours agree far better
    # than those of different images.
    same = (x0.mean(dim=(2, 3)) - x1.mean(dim=(2, 3))).abs().mean()
    other = (x0.mean(dim=(2, 3)) - x1.roll(1, 0).mean(dim=(2, 3))).abs().mean()
    assert same < other
