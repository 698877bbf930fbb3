import logging
import sys

import pytest
import torch

from simclr_helpers.checkpoints import RunRecord
from simclr_helpers.config import NORMALIZE
from simclr_helpers.data import DataSpec
from simclr_helpers.runtime import warmup_cosine
from simclr_helpers.train import finish_estimate, knn_due, pretrain


def test_warmup_then_cosine_to_zero():
    lrs = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] < 0.001


def test_run_writes_checkpoint_logs_and_normalisation(tiny_run, tiny_profile):
    record = RunRecord.load(tiny_run.checkpoint)
    assert record.epoch == tiny_profile.epochs
    assert record.normalize == NORMALIZE
    assert record.profile == tiny_profile and record.data == DataSpec("bundled")
    assert [m["epoch"] for m in record.metrics] == [1, 2]
    assert all(m["knn_top1"] is not None for m in record.metrics)
    out = tiny_run.checkpoint.parent
    assert (out / "metrics.csv").read_text().startswith("epoch,loss,lr")
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def _train(bundled, profile, out, **kw):
    train = bundled.train.balanced_subset(192)
    return pretrain(profile, train, out, progress=False, **kw)


def test_killed_and_resumed_run_matches_an_uninterrupted_one(bundled, tiny_profile, tmp_path):
    profile = tiny_profile.with_overrides(epochs=3, knn_every=0)
    full = _train(bundled, profile, tmp_path / "full")

    def kill_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(bundled, profile, tmp_path / "cut", on_epoch_end=kill_after_first_epoch)
    assert RunRecord.load(tmp_path / "cut" / "last.pt").epoch == 1
    resumed = _train(bundled, profile, tmp_path / "cut", resume=True)

    assert [m["epoch"] for m in resumed.metrics] == [1, 2, 3]
    assert [m["lr"] for m in resumed.metrics] == [m["lr"] for m in full.metrics]
    a = RunRecord.load(full.checkpoint)
    b = RunRecord.load(resumed.checkpoint)
    assert a.scheduler["last_epoch"] == b.scheduler["last_epoch"] == 3 * (190 // 64) == a.steps  # 19 per class
    # Same data order, same views, same weights: the resumed run is the same run.
    assert [m["loss"] for m in resumed.metrics] == pytest.approx([m["loss"] for m in full.metrics], rel=1e-4)
    for k in a.model:
        assert torch.allclose(a.model[k].float(), b.model[k].float(), atol=1e-5), k


def test_resume_of_a_finished_run_does_nothing(tiny_run, tiny_profile, bundled):
    before = RunRecord.load(tiny_run.checkpoint).metrics
    res = pretrain(tiny_profile, bundled.train.balanced_subset(320), tiny_run.checkpoint.parent, resume=True,
                   progress=False)
    assert res.metrics == before


def test_blog_pipeline_runs_the_same_loop(bundled, tiny_profile, tmp_path):
    profile = tiny_profile.with_overrides(epochs=1, knn_every=0)
    res = pretrain(profile, bundled.train.balanced_subset(128), tmp_path, pipeline="blog", progress=False)
    assert res.metrics[0]["epoch"] == 1 and res.metrics[0]["loss"] > 0
    assert RunRecord.load(res.checkpoint).pipeline == "blog"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_allocator_keeps_freed_memory_on_linux():
    from simclr_helpers.runtime import keep_freed_memory

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


def test_knn_monitor_schedule_and_never_with_zero(tiny_profile):
    p = tiny_profile.with_overrides(epochs=5, knn_every=2)
    assert [e for e in range(1, 6) if knn_due(p, e)] == [2, 4, 5]  # every 2 epochs and after the last
    assert not any(knn_due(p.with_overrides(knn_every=0), e) for e in range(1, 6))


def test_finish_estimate_names_the_time_left():
    assert finish_estimate(120, 10, now=0).startswith("about 20 min more, done at ")
    assert finish_estimate(600, 30, now=0).startswith("about 5.0 h more")


def test_run_prints_the_expected_finish_after_its_first_epoch(bundled, tiny_profile, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="simclr_helpers")
    pretrain(tiny_profile.with_overrides(knn_every=0), bundled.train.balanced_subset(128), tmp_path, progress=False)
    assert any("s per epoch on cpu: 1 epochs left, about" in line for line in caplog.messages), caplog.messages


def test_a_folder_with_a_run_is_never_trained_over_silently(tiny_run, tiny_profile, bundled):
    from simclr_helpers.errors import TrainingError

    before = tiny_run.checkpoint.read_bytes()
    with pytest.raises(TrainingError, match=r"already holds a run \(2 epochs\); continue it with --resume"):
        pretrain(tiny_profile, bundled.train.balanced_subset(320), tiny_run.checkpoint.parent, progress=False)
    assert tiny_run.checkpoint.read_bytes() == before


def test_a_loss_that_stops_being_finite_keeps_the_last_good_checkpoint(bundled, tiny_profile, tmp_path,
                                                                       monkeypatch):
    from simclr_helpers import train
    from simclr_helpers.errors import TrainingError

    profile = tiny_profile.with_overrides(epochs=2, knn_every=0)
    with pytest.raises(TrainingError, match="the loss stopped being finite in epoch 1 .*nothing was saved"):
        _train(bundled, profile.with_overrides(lr_per_256=float("nan")), tmp_path / "nan")
    assert not (tmp_path / "nan" / "last.pt").exists()  # NaN weights were never written

    _train(bundled, profile.with_overrides(epochs=1), tmp_path / "run")  # one good epoch on disk
    good = (tmp_path / "run" / "last.pt").read_bytes()
    real_step = train.TrainingSetup.step
    monkeypatch.setattr(train.TrainingSetup, "step", lambda self, x0, x1: real_step(self, x0, x1) * float("nan"))
    with pytest.raises(TrainingError, match=r"in epoch 2 .* keeps epoch 1\. Lower the learning rate"):
        _train(bundled, profile, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "last.pt").read_bytes() == good


def test_fewer_images_than_one_batch_is_a_data_error(bundled, tiny_profile, tmp_path):
    from simclr_helpers.errors import DataError

    with pytest.raises(DataError, match="10 training images are fewer than one batch of 64"):
        pretrain(tiny_profile, bundled.train.subset(torch.arange(10)), tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists()


def test_the_command_line_refuses_a_folder_with_a_run_and_replaces_it_when_told(tiny_run, tmp_path, capsys):
    import shutil

    from simclr_helpers.cli import main

    shutil.copy(tiny_run.checkpoint, tmp_path / "last.pt")
    before = (tmp_path / "last.pt").read_bytes()
    args = ["pretrain", "--profile", "smoke", "--epochs", "1", "--batch-size", "64", "--train-limit", "200",
            "--out", str(tmp_path)]
    assert main(args) == 2
    assert "already holds a run (2 epochs)" in capsys.readouterr().err
    assert (tmp_path / "last.pt").read_bytes() == before
    assert main(args + ["--overwrite"]) == 0
    assert RunRecord.load(tmp_path / "last.pt").epoch == 1
