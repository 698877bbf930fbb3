"""Pretraining: NT-Xent on two augmented views, SGD + warm-up + cosine, resumable checkpoints.

Notebook 03 writes the training step out and explains it; ``pretrain`` is the same
loop with the plumbing (data, resume, checkpoints, logs, kNN monitor) for the command
line and for long headless runs. Two input pipelines share the loop:

* ``"fast"`` (default): the training set lives on the device as one uint8 tensor,
  batches are slices of a random permutation, views come from the batched
  augmentation, and both views go through the network in one forward pass.
* ``"seed"``: the blog post's pipeline, kept as a reference: lightly's
  ``SimCLRTransform`` on PIL images in DataLoader workers, two forward passes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from torch import nn

from . import distributed
from .augment import BatchedSimCLRAugment, lightly_transform
from .checkpoints import load_checkpoint, save_checkpoint
from .config import NORMALIZE, Profile, default_checkpoint_dir
from .data import ImageTensors
from .models import SimCLRModel

PIPELINES = ("fast", "seed")


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Precision:
    """How the forward pass runs on a device: autocast dtype (None = fp32) and loss scaling."""

    dtype: torch.dtype | None
    scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self, device_type: str):
        """The forward pass's context: autocast to ``dtype``, or plain fp32 when ``dtype`` is None."""
        return torch.autocast(device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


def pick_precision(device: torch.device, amp: bool = True) -> Precision:
    """bf16 on GPUs that do it natively (compute capability 8.0+), fp16 + scaler on older GPUs, else fp32."""
    if not amp or device.type != "cuda":
        return Precision(None, False)
    if torch.cuda.get_device_capability(device)[0] >= 8:
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


def make_optimizer(model: nn.Module, profile: Profile) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay, lr scaled linearly with the batch (lr_per_256 * B / 256).

    B is the profile's batch size, the *global* batch: with N processes each takes B / N
    images per step, and the lr, the steps per epoch and the schedule are those of one
    process with batch B, whatever N is.
    """
    lr = profile.lr_per_256 * profile.batch_size / 256
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=profile.momentum,
                           weight_decay=profile.weight_decay)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base lr: linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer, steps_per_epoch: int, profile: Profile):
    total = steps_per_epoch * profile.epochs
    warm = min(total, steps_per_epoch * profile.warmup_epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warm))


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device=None):
    """Index tensors of one pass over ``n`` items: slices of a fresh ``randperm``, the last partial batch dropped.

    The permutation is drawn when the first batch is asked for, so the generator's draws
    interleave with those of whatever uses the batches exactly as in a hand-written loop.
    """
    perm = torch.randperm(n, generator=generator, device=device)
    for i in range(n // batch_size):
        yield perm[i * batch_size:(i + 1) * batch_size]


class FastBatches:
    """Shuffled batches sliced from a device-resident uint8 tensor, with batched views."""

    def __init__(self, images: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.images, self.batch_size, self.generator = images, batch_size, generator
        self.augment = BatchedSimCLRAugment(generator=generator)

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self):
        for idx in shuffled_batches(len(self.images), self.batch_size, self.generator, self.images.device):
            batch = self.images[idx]
            views = self.augment(torch.cat((batch, batch)))  # both views in one call: fewer, larger ops
            yield views[: len(batch)], views[len(batch):]


class _PILViews(torch.utils.data.Dataset):
    """uint8 tensors -> PIL images -> lightly's SimCLRTransform (the seed's per-image path)."""

    def __init__(self, images: torch.Tensor):
        self.images = images.cpu()
        self.transform = lightly_transform()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i].permute(1, 2, 0).numpy()))


_ALLOCATOR_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse instead of returning it to the system.

    By default glibc serves every allocation above a (moving) threshold with fresh pages from
    the kernel and hands them back on free, so each large temporary tensor of a CPU training
    step (a batch of views, an activation) page-faults its memory in again. Measured on a
    2-core machine, that was a third of the batched augmentation's time. This does what the
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ environment variables do (they are read only
    when a process starts). The cost: the process keeps its peak memory until it exits.
    Returns whether the setting took effect (False off glibc, e.g. on macOS or Windows).
    """
    global _ALLOCATOR_TUNED
    if not _ALLOCATOR_TUNED:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
            _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
                libc.mallopt(m_trim_threshold, 1 << 30))
        except (OSError, AttributeError):
            _ALLOCATOR_TUNED = False
    return _ALLOCATOR_TUNED


def cpu_count() -> int:
    """CPUs this process may use (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def seed_loader(images: torch.Tensor, batch_size: int, workers: int | None = None, seed: int = 0):
    """The seed's DataLoader, but with as many workers as there are CPUs (not a fixed 8)."""
    if workers is None:
        workers = cpu_count()
    return torch.utils.data.DataLoader(
        _PILViews(images), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
    )


def to_device(x: torch.Tensor, device, channels_last: bool) -> torch.Tensor:
    """A batch of views on the training device, in the model's memory layout."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def training_step(model: nn.Module, criterion: nn.Module, optimizer, scaler, x0: torch.Tensor,
                  x1: torch.Tensor, precision: Precision, one_pass: bool = True) -> torch.Tensor:
    """One SimCLR step: embed both views, NT-Xent in fp32, backward, update. Returns the loss."""
    with precision.autocast(x0.device.type):
        if one_pass:  # both views in one forward pass: one kernel launch per layer, BN over 2B images
            z0, z1 = model(torch.cat([x0, x1])).chunk(2)
        else:  # the seed's way
            z0, z1 = model(x0), model(x1)
    loss = criterion(z0.float(), z1.float())
    backward_and_step(loss, optimizer, scaler)
    return loss.detach()


def backward_and_step(loss: torch.Tensor, optimizer, scaler=None) -> None:
    """Gradients of ``loss`` and one optimiser step, through the fp16 gradient scaler when there is one."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def save_pretrain_checkpoint(path: str | Path, model: SimCLRModel, optimizer, scheduler, profile: Profile,
                             metrics: list[dict], train: ImageTensors, generator: torch.Generator | None = None,
                             scaler=None, pipeline: str = "fast", rng_ranks: list | None = None) -> Path:
    """Everything needed to resume the run or to evaluate its backbone (notebook 03 and ``pretrain``).

    ``model`` is the unwrapped model (no DDP ``module.`` prefixes), so any number of
    processes can load the checkpoint. ``rng_ranks``: every process's generator state in
    a multi-process run (``rng`` is rank 0's); only then are ``world_size`` and
    ``rng_ranks`` stored, so a single-process checkpoint keeps its keys (notebook 03 lists them).
    """
    multi = {"world_size": len(rng_ranks), "rng_ranks": rng_ranks} if rng_ranks else {}
    return save_checkpoint({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
        "rng": generator.get_state() if generator is not None else None,
        "epoch": metrics[-1]["epoch"] if metrics else 0, "metrics": metrics,
        "settings": profile.to_dict(), "normalize": NORMALIZE, "classes": list(train.classes),
        "data_source": train.source, "num_train": len(train), "pipeline": pipeline,
        "torch_version": str(torch.__version__), **multi,
    }, path, kind="simclr")


@dataclass
class PretrainResult:
    checkpoint: Path
    metrics: list[dict]
    settings: dict
    seconds: float
    device: str
    precision: str
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        last = self.metrics[-1] if self.metrics else {}
        knn = [m["knn_top1"] for m in self.metrics if m.get("knn_top1") is not None]
        return {"checkpoint": str(self.checkpoint), "epochs": last.get("epoch"), "final_loss": last.get("loss"),
                "knn_top1_monitor": knn[-1] if knn else None, "seconds": round(self.seconds, 1),
                "device": self.device, "precision": self.precision, "profile": self.settings.get("name"),
                "stem": self.settings.get("stem"), "batch_size": self.settings.get("batch_size")}


def _write_logs(out_dir: Path, metrics: list[dict]) -> None:
    if not metrics:
        return
    keys = list(dict.fromkeys(k for m in metrics for k in m))
    tmp = out_dir / ".metrics.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(metrics)
    tmp.replace(out_dir / "metrics.csv")
    tmp = out_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    tmp.replace(out_dir / "metrics.json")


def pretrain(profile: Profile, train: ImageTensors, out_dir: str | Path | None = None, *,
             resume: bool = False, device: str | None = None, pipeline: str = "fast",
             amp: bool = True, channels_last: bool | None = None, compile: bool = False,
             monitor: tuple[ImageTensors, ImageTensors] | None = None, progress: bool = True,
             on_epoch_end: Callable[[dict], None] | None = None, log: Callable[[str], None] | None = print,
             sync_bn: bool | None = None) -> PretrainResult:
    """Pretrain a SimCLR model on ``train`` with the sizes of ``profile``.

    Writes ``last.pt`` (atomically, after every epoch), ``metrics.csv`` and
    ``metrics.json`` to ``out_dir``. With ``resume`` it continues from ``last.pt``
    at the next epoch with the optimizer, schedule and random-number state it had.
    ``monitor`` = (bank, queries): labelled images (held out from the *training*
    set) for the kNN monitor every ``profile.knn_every`` epochs.

    Inside a process group (``torchrun``, see ``distributed``) each process trains on its
    own shard of ``train`` with ``profile.batch_size // world_size`` images per step (the
    profile's batch is the global batch, see ``make_optimizer``), the model wrapped in
    DistributedDataParallel, negatives gathered across processes, and with ``sync_bn``
    (default: on GPUs) SyncBatchNorm. Rank 0 alone logs, runs the monitor and writes
    files. A resume with another number of processes continues weights, optimizer,
    schedule and epoch, but draws a new data order (per-process random streams do not
    carry over to a different number of processes).
    """
    from tqdm.auto import tqdm

    from .evaluate import knn_monitor

    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; choose {PIPELINES}")
    world, rank = distributed.world_size(), distributed.rank()
    if rank != 0:  # rank 0 alone logs and shows progress
        log, progress = None, False
    log = log or (lambda s: None)
    dev = distributed.rank_device(pick_device(device))
    keep_freed_memory()  # CPU-side temporaries: batches of views on CPU, and the seed's workers
    out_dir = Path(out_dir) if out_dir is not None else default_checkpoint_dir() / profile.name
    ckpt_path = out_dir / "last.pt"

    state = None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, kind="simclr")
        # The run continues with the settings it was started with; only the number of
        # epochs may be changed (to extend a finished run).
        profile = Profile.from_dict(state["settings"]).with_overrides(epochs=profile.epochs)
    elif resume:
        log(f"no checkpoint at {ckpt_path} yet; starting a new run")
    distributed.check_same(state["epoch"] if state else None, f"the epoch to resume from {ckpt_path}")

    seed_everything(profile.seed)
    model = SimCLRModel(stem=profile.stem, projection_dim=profile.projection_dim).to(dev)
    if distributed.use_sync_bn(sync_bn, dev, world):  # same parameters and state_dict names as BatchNorm
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last is None:  # NHWC suits cuDNN's tensor cores and oneDNN on CPUs alike
        channels_last = True
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = pick_precision(dev, amp)
    criterion = NTXentLoss(temperature=profile.temperature, gather_distributed=world > 1)
    optimizer = make_optimizer(model, profile)
    batch_size = distributed.per_rank_batch(profile.batch_size, world)
    shard = train.subset(distributed.shard_indices(len(train), rank, world)) if world > 1 else train
    steps = len(shard) // batch_size  # the batches FastBatches yields; shards are equal, so on every rank
    if steps == 0:
        raise ValueError(f"{len(train)} training images are fewer than one batch of {profile.batch_size}")
    scheduler = make_scheduler(optimizer, steps, profile)
    scaler = torch.amp.GradScaler("cuda") if precision.scaler else None
    generator = torch.Generator(device=dev).manual_seed(distributed.rank_seed(profile.seed, rank))

    metrics: list[dict] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        metrics = list(state["metrics"])
        start_epoch = int(state["epoch"])
        rngs = state.get("rng_ranks") or [state["rng"]]
        if len(rngs) == world:
            generator.set_state(rngs[rank])
        else:  # random streams of N processes cannot become those of M: a new data order from here on
            generator.manual_seed(distributed.rank_seed(profile.seed + start_epoch, rank))
            log(f"{ckpt_path} was written by {len(rngs)} process(es), this run has {world}: weights, optimizer, "
                "schedule and epoch continue, the data order and views are drawn afresh")
        log(f"resuming {ckpt_path} at epoch {start_epoch + 1}/{profile.epochs}")
    if start_epoch >= profile.epochs:
        log(f"{ckpt_path} already finished {start_epoch} epochs; nothing to do")

    step_model = model  # `model` stays unwrapped: checkpoints without `module.` prefixes, the monitor
    if world > 1:  # DDP averages the gradients over the processes, so every rank takes the same step
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    step_model = torch.compile(step_model) if compile else step_model
    if pipeline == "fast":
        batches = FastBatches(shard.images.to(dev), batch_size, generator)
    else:
        batches = seed_loader(shard.images, batch_size, seed=distributed.rank_seed(profile.seed, rank))
    t_run = time.perf_counter()
    for epoch in range(start_epoch, profile.epochs):
        model.train()
        if pipeline == "seed":
            batches.generator.manual_seed(distributed.rank_seed(profile.seed + epoch, rank))
        total, n_steps = torch.zeros((), device=dev), 0
        t0 = time.perf_counter()
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{profile.epochs}", disable=not progress,
                   leave=False, unit="batch")
        for x0, x1 in bar:
            x0, x1 = to_device(x0, dev, channels_last), to_device(x1, dev, channels_last)
            loss = training_step(step_model, criterion, optimizer, scaler, x0, x1, precision,
                                 one_pass=pipeline == "fast")
            scheduler.step()
            total += loss
            n_steps += 1
            if n_steps % 10 == 0 or n_steps == steps:
                bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{scheduler.get_last_lr()[0]:.4f}")
        bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        total = distributed.all_reduce_mean(total)  # the global batch's loss: the mean over processes
        rng_ranks = distributed.all_gather_objects(generator.get_state()) if world > 1 else None
        row = {"epoch": epoch + 1, "loss": round(float(total) / max(1, n_steps), 5),
               "lr": round(scheduler.get_last_lr()[0], 6), "seconds": round(seconds, 2),
               "images_per_s": round(n_steps * profile.batch_size / seconds, 1), "knn_top1": None}
        if monitor is not None and rank == 0 and profile.knn_every and ((epoch + 1) % profile.knn_every == 0
                                                                         or epoch + 1 == profile.epochs):
            row["knn_top1"] = round(knn_monitor(model.backbone, monitor[0], monitor[1], dev, k=profile.knn_k), 4)
        metrics.append(row)
        if rank == 0:
            save_pretrain_checkpoint(ckpt_path, model, optimizer, scheduler, profile, metrics, train,
                                     generator=generator, scaler=scaler, pipeline=pipeline, rng_ranks=rng_ranks)
            _write_logs(out_dir, metrics)
        distributed.barrier()  # the other ranks wait for rank 0's monitor and files
        knn = f", kNN top-1 {row['knn_top1']:.1%}" if row["knn_top1"] is not None else ""
        log(f"epoch {epoch + 1:>3}/{profile.epochs}: loss {row['loss']:.4f}, lr {row['lr']:.4f}, "
            f"{row['images_per_s']:.0f} img/s, {seconds:.1f} s{knn}")
        if on_epoch_end is not None:
            on_epoch_end(row)
    return PretrainResult(ckpt_path, metrics, profile.to_dict(), time.perf_counter() - t_run, str(dev), precision.name)


def load_simclr(path: str | Path, device: str | None = None) -> tuple[SimCLRModel, dict]:
    """A pretrained SimCLR model (eval mode) and its checkpoint dict."""
    state = load_checkpoint(path, kind="simclr")
    s = state["settings"]
    model = SimCLRModel(stem=s["stem"], projection_dim=s["projection_dim"])
    model.load_state_dict(state["model"])
    return model.to(pick_device(device)).eval(), state
