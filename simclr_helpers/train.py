"""Pretraining: NT-Xent on two augmented views, SGD + warm-up + cosine, resumable checkpoints.

Notebook 03 writes the training loop out and explains it; ``pretrain`` is the same loop
(a test runs one epoch of each and compares the weights) with the plumbing (data, resume,
checkpoints, logs, kNN monitor) for the command line and for long headless runs. Two
input pipelines share the loop:

* ``"fast"`` (default): the training set lives on the device as one uint8 tensor,
  batches are slices of a random permutation, views come from the batched
  augmentation, and both views go through the network in one forward pass.
* ``"blog"``: the blog post's pipeline (``blog``): lightly's ``SimCLRTransform``
  on PIL images in DataLoader workers, one forward pass per view.

The small runtime helpers (device, precision, seeds, the optimiser step) live in ``runtime``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from torch import nn

from . import distributed
from .augment import CIFAR_AUGMENT, AugmentConfig, BatchedSimCLRAugment
from .blog import blog_loader, blog_training_step
from .checkpoints import RunRecord
from .config import NORMALIZE, Profile, default_checkpoint_dir
from .data import DataSpec, ImageTensors
from .models import SimCLRModel
from .runtime import (
    Precision,
    backward_and_step,
    pick_device,
    pick_precision,
    seed_everything,
    shuffled_batches,
    to_device,
    warmup_cosine_schedule,
)

PIPELINES = ("fast", "blog")


def make_optimizer(model: nn.Module, profile: Profile) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay, lr scaled linearly with the batch (lr_per_256 * B / 256).

    B is the profile's batch size, the *global* batch: with N processes each takes B / N
    images per step, and the lr, the steps per epoch and the schedule are those of one
    process with batch B, whatever N is.
    """
    lr = profile.lr_per_256 * profile.batch_size / 256
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=profile.momentum,
                           weight_decay=profile.weight_decay)


def make_scheduler(optimizer, steps_per_epoch: int, profile: Profile):
    """Warm-up for ``profile.warmup_epochs``, then cosine decay to zero at the last step."""
    return warmup_cosine_schedule(optimizer, steps_per_epoch * profile.epochs, steps_per_epoch * profile.warmup_epochs)


def knn_due(profile: Profile, epoch: int) -> bool:
    """Whether the kNN monitor runs after ``epoch`` (1-based): every ``knn_every`` epochs and after the last
    (never when ``knn_every`` is 0)."""
    return bool(profile.knn_every) and (epoch % profile.knn_every == 0 or epoch == profile.epochs)


class FastBatches:
    """Shuffled batches sliced from a device-resident uint8 tensor, with batched views."""

    def __init__(self, images: torch.Tensor, batch_size: int, generator: torch.Generator,
                 augment: AugmentConfig = CIFAR_AUGMENT):
        self.images, self.batch_size, self.generator = images, batch_size, generator
        self.augment = BatchedSimCLRAugment(augment, generator=generator)

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self):
        for idx in shuffled_batches(len(self.images), self.batch_size, self.generator, self.images.device):
            batch = self.images[idx]
            views = self.augment(torch.cat((batch, batch)))  # both views in one call: fewer, larger ops
            yield views[: len(batch)], views[len(batch):]


def training_step(model: nn.Module, criterion: nn.Module, optimizer, scaler, x0: torch.Tensor,
                  x1: torch.Tensor, precision: Precision, channels_last: bool = True) -> torch.Tensor:
    """One SimCLR step: both views in one forward pass, NT-Xent in fp32, backward, update. Returns the loss.

    Notebook 03 writes this step out line by line.
    """
    views = to_device(torch.cat([x0, x1]), x0.device, channels_last)
    with precision.autocast(views.device.type):
        z0, z1 = model(views).chunk(2)  # one pass over the network; BatchNorm sees all 2N views
    loss = criterion(z0.float(), z1.float())
    backward_and_step(loss, optimizer, scaler)
    return loss.detach()


def save_pretrain_checkpoint(path: str | Path, model: SimCLRModel, optimizer, scheduler, profile: Profile,
                             metrics: list[dict], train: ImageTensors, data: DataSpec | str | None = None,
                             generator: torch.Generator | None = None, scaler=None, pipeline: str = "fast",
                             rng_ranks: list | None = None) -> Path:
    """Everything needed to resume the run or to evaluate its backbone (notebook 03 and ``pretrain``).

    ``model`` is the unwrapped model (no DDP ``module.`` prefixes), so any number of
    processes can load the checkpoint. ``rng_ranks``: every process's generator state in
    a multi-process run (``rng`` is rank 0's).
    """
    return RunRecord(
        profile=profile, data=DataSpec.resolve(data), normalize=NORMALIZE, classes=list(train.classes),
        num_train=len(train), epoch=metrics[-1]["epoch"] if metrics else 0, metrics=metrics,
        model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler else None,
        rng=generator.get_state() if generator is not None else None, rng_ranks=rng_ranks, pipeline=pipeline,
    ).save(path)


@dataclass
class PretrainResult:
    checkpoint: Path
    metrics: list[dict]
    profile: Profile
    seconds: float
    device: str
    precision: str

    def summary(self) -> dict:
        last = self.metrics[-1] if self.metrics else {}
        knn = [m["knn_top1"] for m in self.metrics if m.get("knn_top1") is not None]
        return {"checkpoint": str(self.checkpoint), "epochs": last.get("epoch"), "final_loss": last.get("loss"),
                "knn_top1_monitor": knn[-1] if knn else None, "seconds": round(self.seconds, 1),
                "device": self.device, "precision": self.precision, "profile": self.profile.name,
                "stem": self.profile.stem, "batch_size": self.profile.batch_size}


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


def finish_estimate(seconds_per_epoch: float, epochs_left: int, now: float | None = None) -> str:
    """"about 12 min more, done at 14:05": what a learner wants to know after the first epoch."""
    left = seconds_per_epoch * epochs_left
    done = time.strftime("%H:%M", time.localtime((now or time.time()) + left))
    span = f"{left / 3600:.1f} h" if left >= 5400 else f"{max(1, round(left / 60))} min"
    return f"about {span} more, done at {done}"


def pretrain(profile: Profile, train: ImageTensors, out_dir: str | Path | None = None, *,
             data: DataSpec | str | None = None, resume: bool = False, device: str | None = None,
             pipeline: str = "fast", amp: bool = True, channels_last: bool | None = None, compile: bool = False,
             augment: AugmentConfig = CIFAR_AUGMENT, monitor: tuple[ImageTensors, ImageTensors] | None = None,
             progress: bool = True, on_epoch_end: Callable[[dict], None] | None = None,
             log: Callable[[str], None] | None = print, sync_bn: bool | None = None) -> PretrainResult:
    """Pretrain a SimCLR model on ``train`` with the sizes of ``profile``.

    Writes ``last.pt`` (a :class:`~simclr_helpers.checkpoints.RunRecord`, atomically, after
    every epoch), ``metrics.csv`` and ``metrics.json`` to ``out_dir``. ``data``: the spec of
    the data ``train`` came from, kept in the checkpoint so that evaluation finds its test
    split. With ``resume`` it continues from ``last.pt`` at the next epoch with the
    optimizer, schedule and random-number state it had. ``monitor`` = (bank, queries):
    labelled images (held out from the *training* set) for the kNN monitor every
    ``profile.knn_every`` epochs. ``augment``: the view recipe of the fast pipeline (the
    ablations in notebook 02 remove one piece at a time).

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
    out_dir = Path(out_dir) if out_dir is not None else default_checkpoint_dir() / profile.name
    ckpt_path = out_dir / "last.pt"
    spec = DataSpec.resolve(data)

    state = None
    if resume and ckpt_path.exists():
        state = RunRecord.load(ckpt_path)
        # The run continues with the settings it was started with; only the number of
        # epochs may be changed (to extend a finished run).
        profile = state.profile.with_overrides(epochs=profile.epochs)
        spec = state.data
    elif resume:
        log(f"no checkpoint at {ckpt_path} yet; starting a new run")
    distributed.check_same(state.epoch if state else None, f"the epoch to resume from {ckpt_path}")

    seed_everything(profile.seed)
    model = SimCLRModel(stem=profile.stem, projection_dim=profile.projection_dim).to(dev)
    if distributed.use_sync_bn(sync_bn, dev, world):  # same parameters and state_dict names as BatchNorm
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last is None:  # NHWC suits cuDNN's tensor cores and oneDNN on CPUs alike
        channels_last = True
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = Precision(None, False) if pipeline == "blog" else pick_precision(dev, amp)
    criterion = NTXentLoss(temperature=profile.temperature, gather_distributed=world > 1)
    optimizer = make_optimizer(model, profile)
    batch_size = distributed.per_rank_batch(profile.batch_size, world)
    shard = train.subset(distributed.shard_indices(len(train), rank, world)) if world > 1 else train
    steps = len(shard) // batch_size  # the batches FastBatches yields; shards are equal, so on every rank
    if steps == 0:
        raise ValueError(f"{len(train)} training images are fewer than one batch of {profile.batch_size}")
    scheduler = make_scheduler(optimizer, steps, profile)
    scaler = precision.grad_scaler()
    generator = torch.Generator(device=dev).manual_seed(distributed.rank_seed(profile.seed, rank))

    metrics: list[dict] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        if scaler is not None and state.scaler:
            scaler.load_state_dict(state.scaler)
        metrics = list(state.metrics)
        start_epoch = state.epoch
        rngs = state.rng_ranks or [state.rng]
        if len(rngs) == world:
            generator.set_state(rngs[rank])
        else:  # random streams of N processes cannot become those of M: a new data order from here on
            generator.manual_seed(distributed.rank_seed(profile.seed + start_epoch, rank))
            log(f"{ckpt_path} was written by {len(rngs)} process(es), this run has {world}: weights, optimizer, "
                "schedule and epoch continue, the data order and views are drawn afresh")
        if start_epoch < profile.epochs:
            log(f"resuming {ckpt_path} at epoch {start_epoch + 1}/{profile.epochs}")
    if start_epoch >= profile.epochs:
        log(f"{ckpt_path} already finished {start_epoch} epochs; nothing to do")

    step_model = model  # `model` stays unwrapped: checkpoints without `module.` prefixes, the monitor
    if world > 1:  # DDP averages the gradients over the processes, so every rank takes the same step
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    step_model = torch.compile(step_model) if compile else step_model
    if pipeline == "fast":
        batches = FastBatches(shard.images.to(dev), batch_size, generator, augment)
    else:
        batches = blog_loader(shard.images, batch_size, seed=distributed.rank_seed(profile.seed, rank))
    t_run = time.perf_counter()
    for epoch in range(start_epoch, profile.epochs):
        model.train()
        if pipeline == "blog":
            batches.generator.manual_seed(distributed.rank_seed(profile.seed + epoch, rank))
        total, n_steps = torch.zeros((), device=dev), 0
        t0 = time.perf_counter()
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{profile.epochs}", disable=not progress,
                   leave=False, unit="batch")
        for x0, x1 in bar:
            if pipeline == "fast":
                loss = training_step(step_model, criterion, optimizer, scaler, x0, x1, precision, channels_last)
            else:
                loss = blog_training_step(step_model, criterion, optimizer, to_device(x0, dev, channels_last),
                                          to_device(x1, dev, channels_last))
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
        if monitor is not None and rank == 0 and knn_due(profile, epoch + 1):
            row["knn_top1"] = round(knn_monitor(model.backbone, monitor[0], monitor[1], dev, k=profile.knn_k), 4)
        metrics.append(row)
        if rank == 0:
            save_pretrain_checkpoint(ckpt_path, model, optimizer, scheduler, profile, metrics, train, spec,
                                     generator=generator, scaler=scaler, pipeline=pipeline, rng_ranks=rng_ranks)
            _write_logs(out_dir, metrics)
        distributed.barrier()  # the other ranks wait for rank 0's monitor and files
        knn = f", kNN top-1 {row['knn_top1']:.1%}" if row["knn_top1"] is not None else ""
        log(f"epoch {epoch + 1:>3}/{profile.epochs}: loss {row['loss']:.4f}, lr {row['lr']:.4f}, "
            f"{row['images_per_s']:.0f} img/s, {seconds:.1f} s{knn}")
        if epoch == start_epoch and epoch + 1 < profile.epochs:
            per_epoch = time.perf_counter() - t0  # training, monitor and checkpoint: what each epoch will cost
            log(f"{per_epoch:.0f} s per epoch on {dev}: {profile.epochs - epoch - 1} epochs left, "
                f"{finish_estimate(per_epoch, profile.epochs - epoch - 1)}")
        if on_epoch_end is not None:
            on_epoch_end(row)
    return PretrainResult(ckpt_path, metrics, profile, time.perf_counter() - t_run, str(dev), precision.name)


def load_simclr(path: str | Path, device: str | None = None) -> tuple[SimCLRModel, RunRecord]:
    """A pretrained SimCLR model (eval mode) and its checkpoint's record."""
    record = RunRecord.load(path)
    model = SimCLRModel(stem=record.profile.stem, projection_dim=record.profile.projection_dim)
    model.load_state_dict(record.model)
    return model.to(pick_device(device)).eval(), record
