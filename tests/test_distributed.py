"""Multi-process pretraining: torchrun for real, DDP + gathered negatives against one process, the helpers.

Everything runs on CPUs with gloo, two processes at most, so the file stays short on a
two-core machine.
"""

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from simclr_helpers import distributed
from simclr_helpers.checkpoints import RunRecord, load_simclr
from simclr_helpers.cli import main
from simclr_helpers.distributed import DistributedError

SMOKE_ARGS = ["pretrain", "--profile", "smoke", "--data", "bundled", "--batch-size", "64", "--train-limit", "200"]


# ------------------------------------------------------------------ torchrun, end to end --

def torchrun(*args, timeout=300):
    """``torchrun --nproc_per_node=2 -m simclr_helpers ...`` in a subprocess, as a user starts it."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "simclr_helpers", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_torchrun_two_processes_then_resume_in_one(tmp_path, capsys):
    out = tmp_path / "run"
    proc = torchrun(*SMOKE_ARGS, "--epochs", "1", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # one JSON document: rank 1 printed nothing
    assert summary["epochs"] == 1 and summary["batch_size"] == 64
    # Rank 0 alone logs and writes: one data line, one epoch line, one set of files.
    assert proc.stderr.count("data: bundled") == 1 and proc.stderr.count("epoch   1/1:") == 1
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "metrics.csv", "metrics.json"]
    state = RunRecord.load(out / "last.pt")
    assert len(state.rng_ranks) == 2 and state.epoch == 1
    assert not torch.equal(state.rng_ranks[0], state.rng_ranks[1])  # each rank its own random stream
    steps = 180 // 64  # 200 balanced images minus the 10 % monitor hold-out; the global batch sets the steps
    assert state.scheduler["last_epoch"] == steps == state.steps
    assert state.metrics[0]["knn_top1"] is not None  # the monitor ran (on rank 0)
    # The unwrapped model was saved: it loads in a single process.
    assert not any(k.startswith("module.") for k in state.model)
    model, _ = load_simclr(out / "last.pt", device="cpu")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 128)

    # 2 -> 1 process: epoch, schedule and weights continue; the data order is drawn afresh (and said so).
    # One thread, like each torchrun process: on a busy two-core machine a second one makes it 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*SMOKE_ARGS, "--epochs", "2", "--out", str(out), "--resume"]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "written by 2 process(es), this run has 1" in err and "resuming" in err and "epoch 2/2" in err
    resumed = RunRecord.load(out / "last.pt")
    assert [m["epoch"] for m in resumed.metrics] == [1, 2]
    assert resumed.rng_ranks is None  # a single-process checkpoint again
    assert resumed.scheduler["last_epoch"] == 2 * steps
    assert resumed.optimizer["state"]  # the momentum buffers came along


def test_a_rank_other_than_0_says_nothing(bundled, tiny_profile, tmp_path, monkeypatch, capsys, caplog):
    """Every process runs pretrain; rank 0 alone logs (the others would repeat its lines)."""
    from simclr_helpers.lines import show_lines
    from simclr_helpers.train import pretrain

    show_lines("stdout")  # as a notebook's setup does
    caplog.set_level(logging.INFO, logger="simclr_helpers")
    images, profile = bundled.train.balanced_subset(128), tiny_profile.with_overrides(epochs=1, knn_every=0)
    pretrain(profile, images, tmp_path / "rank0", resume=True, progress=False)
    assert "starting a new run" in capsys.readouterr().out and len(caplog.messages) == 2  # that line, the epoch's
    caplog.clear()
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    pretrain(profile, images, tmp_path / "rank1", resume=True, progress=False)
    assert capsys.readouterr() == ("", "") and caplog.messages == []


def test_a_failing_rank_stops_the_run_instead_of_hanging(tmp_path):
    """Rank 0 cannot write its checkpoint (OUT is below a file) while rank 1 waits at the barrier:
    rank 0 leaves the process group and exits, torchrun stops rank 1, the run ends with an error."""
    (tmp_path / "a-file").touch()
    out = tmp_path / "a-file" / "run"
    proc = torchrun(*SMOKE_ARGS, "--epochs", "1", "--out", out, timeout=120)  # a hang fails the test here
    assert proc.returncode != 0
    assert "NotADirectoryError" in proc.stderr  # rank 0's error, reported
    assert not out.exists()


# ------------------------------------------- DDP + gathered negatives == one process, 2b --

B = 4  # images per rank; the single process takes 2 * B


def _model_and_views():
    """The same weights and the same two views in every process (seeded, CPU: bit-identical)."""
    from simclr_helpers.models import SimCLRModel

    torch.manual_seed(0)
    model = SimCLRModel(stem="imagenet", projection_dim=16)
    # Eval-mode BatchNorm: in train mode each rank would normalise with the statistics of its
    # own 2B images and the single process with those of all 4B, so the embeddings would
    # differ before the loss is even computed. Eval mode uses the stored statistics, the same
    # everywhere, and isolates what is tested here: the loss and DDP. (SyncBatchNorm would
    # be the train-mode answer, but torch rejects CPU tensors; see the test below.)
    model.eval()
    x0, x1 = torch.randn(2, 2 * B, 3, 32, 32).unbind(0)
    return model, x0, x1


def _loss_and_grads(model, criterion, x0, x1):
    z0, z1 = model(torch.cat([x0, x1])).chunk(2)
    loss = criterion(z0, z1)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _relative_error(grads, reference):
    """The largest gradient difference, relative to the largest reference gradient, over all tensors."""
    return max(float((g - r).abs().max() / r.abs().max().clamp_min(1e-12)) for g, r in zip(grads, reference))


def _rank_worker(rank, world, init_file, out_dir):
    from lightly.loss import NTXentLoss

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        for gather in (True, False):
            model, x0, x1 = _model_and_views()
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            mine = slice(rank * B, (rank + 1) * B)
            criterion = NTXentLoss(temperature=0.2, gather_distributed=gather)
            loss, grads = _loss_and_grads(ddp, criterion, x0[mine], x1[mine])
            dist.all_reduce(loss)  # each rank's loss covers its own rows; their mean is the global loss
            results[gather] = {"loss": loss / world, "grads": grads}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_with_gathered_negatives_equal_one_process_with_twice_the_batch(tmp_path):
    from lightly.loss import NTXentLoss

    torch.multiprocessing.spawn(_rank_worker, args=(2, tmp_path / "init", tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    model, x0, x1 = _model_and_views()
    loss, grads = _loss_and_grads(model, NTXentLoss(temperature=0.2), x0, x1)

    gathered = ranks[0][True]
    for g0, g1 in zip(gathered["grads"], ranks[1][True]["grads"]):
        assert torch.equal(g0, g1)  # DDP: every rank holds the same (averaged) gradient
    assert gathered["loss"] == pytest.approx(float(loss), rel=1e-5)
    assert _relative_error(gathered["grads"], grads) < 1e-4

    # Without gathering each rank contrasts only against its own B images: a different loss
    # (fewer, easier negatives) and different gradients.
    local = ranks[0][False]
    assert float(local["loss"]) < float(loss) - 0.1
    assert _relative_error(local["grads"], grads) > 1e-2


def test_syncbatchnorm_rejects_cpu_tensors_so_it_is_off_on_cpu():
    """If a torch release learns SyncBatchNorm on CPUs, this fails: then let ``use_sync_bn`` default to on."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        bn = torch.nn.SyncBatchNorm(3).train()
        with pytest.raises(ValueError, match="expected input tensor to be on GPU"):
            bn(torch.randn(4, 3, 2, 2))
    finally:
        dist.destroy_process_group()


# -------------------------------------------------------------------------- helpers --

@pytest.mark.parametrize("n, world", [(12, 1), (12, 2), (12, 3), (12, 4), (13, 2), (11, 4)])
def test_shards_are_equal_disjoint_and_cover_the_images(n, world):
    shards = [distributed.shard_indices(n, r, world).tolist() for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # the same number of steps on every rank
    seen = sorted(i for s in shards for i in s)
    assert seen == sorted(set(seen))  # no image twice
    assert seen == list(range(n - n % world))  # every image once, except fewer than `world` left over
    if n % world == 0:
        assert seen == list(range(n))


def test_shards_mix_the_sorted_classes():
    labels = torch.arange(10).repeat_interleave(10)  # sorted by class, as a balanced subset is
    for r in range(2):
        assert set(labels[distributed.shard_indices(100, r, 2)].tolist()) == set(range(10))
    with pytest.raises(ValueError):
        distributed.shard_indices(10, 2, 2)


def test_global_batch_splits_evenly_or_says_how():
    assert distributed.per_rank_batch(512, 1) == 512
    assert distributed.per_rank_batch(512, 4) == 128
    with pytest.raises(DistributedError, match="multiple of 3"):
        distributed.per_rank_batch(128, 3)


def test_rank_seeds_keep_rank_0_and_never_collide():
    assert distributed.rank_seed(7, 0) == 7  # a single process is unchanged
    seeds = {distributed.rank_seed(7 + epoch, rank) for epoch in range(1000) for rank in range(8)}
    assert len(seeds) == 8000


def test_sync_bn_default_on_gpus_off_on_cpus_and_refused_on_cpus():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert distributed.use_sync_bn(None, gpu, 2) and not distributed.use_sync_bn(None, cpu, 2)
    assert not distributed.use_sync_bn(True, gpu, 1)  # one process: nothing to synchronise
    assert not distributed.use_sync_bn(False, gpu, 2)
    with pytest.raises(DistributedError, match="--no-sync-bn"):
        distributed.use_sync_bn(True, cpu, 2)


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.process_group("cpu") as device:
        assert device == "cpu" and not dist.is_initialized()
        assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
        distributed.barrier()
        with distributed.main_first():
            pass
        t = torch.tensor(3.0)
        assert distributed.all_reduce_mean(t) is t
        assert distributed.all_gather_objects("x") == ["x"]
        distributed.check_same(5, "anything")
    assert distributed.rank_device(torch.device("cuda")) == torch.device("cuda")


def test_world_size_without_torchrun_is_one_clear_sentence(monkeypatch, capsys):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="torchrun"):
        with distributed.process_group("cpu"):
            pass
    assert not dist.is_initialized()
    assert main(SMOKE_ARGS) == 2  # the command line: one sentence, status 2
    err = capsys.readouterr().err
    assert "RANK" in err and err.strip().count("\n") == 0
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="not a number"):
        distributed.env_world_size()
