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
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from torch import nn

from . import distributed
from .augment import CIFAR_AUGMENT, AugmentConfig, BatchedSimCLRAugment
from .blog import blog_loader, blog_optimizer, blog_training_step
from .checkpoints import RunRecord, save_pretrain_checkpoint
from .config import Profile, default_checkpoint_dir
from .data import DataSpec, ImageTensors
from .errors import DataError, TrainingError
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

logger = logging.getLogger(__name__)
logger.addFilter(lambda record: distributed.rank() == 0)  # rank 0 alone speaks in a multi-process run
PIPELINES = ("fast", "blog")


def make_optimizer(model: nn.Module, profile: Profile) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay at ``profile.peak_lr``, lr_per_256 scaled linearly to the batch B.

    B is the profile's batch size, the *global* batch: with N processes each takes B / N
    images per step, and the lr, the steps per epoch and the schedule are those of one
    process with batch B, whatever N is.
    """
    return torch.optim.SGD(model.parameters(), lr=profile.peak_lr, momentum=profile.momentum,
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


@dataclass
class TrainingSetup:
    """Everything an epoch of SimCLR needs, built once (``training_setup``) and used by ``train_one_epoch``:
    by ``pretrain``, the ablations, the benchmark and notebook 03 alike."""

    model: SimCLRModel  # unwrapped: what checkpoints and the kNN monitor see
    step_model: nn.Module  # what the steps call: the model, or its DDP or compiled wrapper
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None  # None: the blog's optimiser has no schedule
    scaler: torch.amp.GradScaler  # enabled only for fp16
    precision: Precision
    batches: FastBatches | torch.utils.data.DataLoader
    generator: torch.Generator  # the data order and the views
    pipeline: str = "fast"
    channels_last: bool = True

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def step(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch of two views (the blog's pipeline: its own step). Returns the loss."""
        if self.pipeline == "blog":
            return blog_training_step(self.step_model, self.criterion, self.optimizer,
                                      to_device(x0, self.device, self.channels_last),
                                      to_device(x1, self.device, self.channels_last))
        return training_step(self.step_model, self.criterion, self.optimizer, self.scaler, x0, x1, self.precision,
                             self.channels_last)


def training_setup(profile: Profile, images: torch.Tensor, device=None, *, seed: int | None = None,
                   augment: AugmentConfig = CIFAR_AUGMENT, pipeline: str = "fast", amp: bool = True,
                   channels_last: bool = True, compile: bool = False, temperature: float | None = None,
                   optimizer: str = "course", resume: RunRecord | None = None, world: int = 1, rank: int = 0,
                   sync_bn: bool | None = None, workers: int | None = None) -> TrainingSetup:
    """Model, loss, optimiser, schedule, scaler, precision and batches for SimCLR on uint8 ``images``.

    ``seed`` (default the profile's) seeds the weights and, through a generator of its own, the data order
    and the views. ``optimizer``: ``"course"`` (SGD with momentum, weight decay, warm-up and cosine) or
    ``"blog"`` (the blog's plain SGD without a schedule). ``resume``: a run record whose weights, optimiser,
    schedule and scaler state are loaded (before any wrapping). With ``world`` processes, ``images`` is this
    process's shard and each step takes ``profile.batch_size // world`` of them; the model is wrapped in
    DistributedDataParallel and the loss gathers the negatives of every process.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; choose {PIPELINES}")
    dev = torch.device(device) if device is not None else pick_device()
    seed = profile.seed if seed is None else seed
    seed_everything(seed)
    model = SimCLRModel(stem=profile.stem, projection_dim=profile.projection_dim).to(dev)
    if distributed.use_sync_bn(sync_bn, dev, world):  # same parameters and state_dict names as BatchNorm
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:  # NHWC suits cuDNN's tensor cores and oneDNN on CPUs alike
        model = model.to(memory_format=torch.channels_last)
    precision = Precision(None, False) if pipeline == "blog" else pick_precision(dev, amp)
    criterion = NTXentLoss(temperature=temperature or profile.temperature, gather_distributed=world > 1)
    batch_size = distributed.per_rank_batch(profile.batch_size, world)
    generator = torch.Generator(device=dev).manual_seed(distributed.rank_seed(seed, rank))
    if pipeline == "fast":
        batches = FastBatches(images.to(dev), batch_size, generator, augment)
    else:
        batches = blog_loader(images, batch_size, seed=distributed.rank_seed(seed, rank), workers=workers)
    if len(batches) == 0:
        raise DataError(f"{len(images) * world} training images are fewer than one batch of {profile.batch_size}; "
                        "use a smaller --batch-size or more images.")
    if optimizer == "blog":
        optim, scheduler = blog_optimizer(model), None
    else:
        optim = make_optimizer(model, profile)
        scheduler = make_scheduler(optim, len(batches), profile)
    scaler = precision.grad_scaler(dev.type)  # a no-op unless fp16
    if resume is not None:
        model.load_state_dict(resume.model)
        optim.load_state_dict(resume.optimizer)
        if scheduler is not None:
            scheduler.load_state_dict(resume.scheduler)
        if resume.scaler:
            scaler.load_state_dict(resume.scaler)
    step_model = model
    if world > 1:  # DDP averages the gradients over the processes, so every rank takes the same step
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    step_model = torch.compile(step_model) if compile else step_model
    return TrainingSetup(model, step_model, criterion, optim, scheduler, scaler, precision, batches, generator,
                         pipeline, channels_last)


def train_one_epoch(setup: TrainingSetup, progress: bool = True, desc: str = "") -> tuple[torch.Tensor, int]:
    """One pass over the batches: a SimCLR step on each, the learning rate moved on after every step.
    Returns the summed loss (a tensor on the device, so that no step waits for it) and the number of steps."""
    from tqdm.auto import tqdm

    setup.model.train()
    total, steps = torch.zeros((), device=setup.device), 0
    bar = tqdm(setup.batches, desc=desc, disable=not progress, leave=False, unit="batch")
    for x0, x1 in bar:
        loss = setup.step(x0, x1)              # forward both views, NT-Xent, backward, update
        if setup.scheduler is not None:
            setup.scheduler.step()             # warm-up + cosine, per step
        total += loss
        steps += 1
        if steps % 10 == 0:
            bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{setup.optimizer.param_groups[0]['lr']:.4f}")
    bar.close()
    return total, steps


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
             sync_bn: bool | None = None, overwrite: bool = False) -> PretrainResult:
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

    A folder that already holds a run is never trained over without ``resume`` (continue it) or
    ``overwrite`` (replace it), and a loss that stops being finite stops the run before its
    checkpoint is written, so the last good epoch stays on disk.
    """
    from .evaluate import knn_monitor

    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; choose {PIPELINES}")
    world, rank = distributed.world_size(), distributed.rank()
    if rank != 0:  # rank 0 alone shows progress (and logs: the logger's filter)
        progress = False
    dev = distributed.rank_device(pick_device(device))
    out_dir = Path(out_dir) if out_dir is not None else default_checkpoint_dir() / profile.name
    ckpt_path = out_dir / "last.pt"
    spec = DataSpec.resolve(data)

    state = None
    if not resume and not overwrite and ckpt_path.exists() and distributed.rank() == 0:
        done = RunRecord.load(ckpt_path).epoch
        raise TrainingError(f"{ckpt_path} already holds a run ({done} epochs); continue it with --resume, "
                            "train into another folder with --out, or pass --overwrite to replace it.")
    if resume and ckpt_path.exists():
        state = RunRecord.load(ckpt_path)
        # The run continues with the settings it was started with; only the number of epochs may
        # grow (the run is extended): a run is never cut short by a smaller number.
        if profile.epochs < state.profile.epochs:
            raise TrainingError(f"{ckpt_path} was started for {state.profile.epochs} epochs, not {profile.epochs}; "
                                "resume it with its own number of epochs (or more, to extend it), or train a new "
                                "run into another folder with --out.")
        if profile.epochs > state.profile.epochs:
            logger.info(f"extending {ckpt_path} from {state.profile.epochs} to {profile.epochs} epochs: its "
                        f"warm-up + cosine schedule now ends at epoch {profile.epochs}")
        profile = state.profile.with_overrides(epochs=profile.epochs)
        spec = state.data
    elif resume:
        logger.info(f"no checkpoint at {ckpt_path} yet; starting a new run")
    distributed.check_same(state.epoch if state else None, f"the epoch to resume from {ckpt_path}")

    shard = train.subset(distributed.shard_indices(len(train), rank, world)) if world > 1 else train
    setup = training_setup(profile, shard.images, dev, augment=augment, pipeline=pipeline, amp=amp,
                           channels_last=True if channels_last is None else channels_last, compile=compile,
                           resume=state, world=world, rank=rank, sync_bn=sync_bn)
    model, generator, scheduler = setup.model, setup.generator, setup.scheduler

    metrics: list[dict] = []
    start_epoch = 0
    if state is not None:
        metrics = list(state.metrics)
        start_epoch = state.epoch
        rngs = state.rng_ranks or [state.rng]
        if len(rngs) == world:
            generator.set_state(rngs[rank])
        else:  # random streams of N processes cannot become those of M: a new data order from here on
            generator.manual_seed(distributed.rank_seed(profile.seed + start_epoch, rank))
            logger.info(f"{ckpt_path} was written by {len(rngs)} process(es), this run has {world}: weights, "
                        "optimizer, schedule and epoch continue, the data order and views are drawn afresh")
        if start_epoch < profile.epochs:
            logger.info(f"resuming {ckpt_path} at epoch {start_epoch + 1}/{profile.epochs}")
    if start_epoch >= profile.epochs:
        logger.info(f"{ckpt_path} already finished {start_epoch} epochs; nothing to do")

    t_run = time.perf_counter()
    for epoch in range(start_epoch, profile.epochs):
        if pipeline == "blog":
            setup.batches.generator.manual_seed(distributed.rank_seed(profile.seed + epoch, rank))
        t0 = time.perf_counter()
        total, n_steps = train_one_epoch(setup, progress, desc=f"epoch {epoch + 1}/{profile.epochs}")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        total = distributed.all_reduce_mean(total)  # the global batch's loss: the mean over processes
        if not torch.isfinite(total):  # NaN weights must never replace the last good checkpoint
            kept = f"{ckpt_path} keeps epoch {metrics[-1]['epoch']}" if metrics else "nothing was saved"
            raise TrainingError(f"the loss stopped being finite in epoch {epoch + 1} (lr_per_256 "
                                f"{profile.lr_per_256}); {kept}. Lower the learning rate (--lr-per-256) and start "
                                "again.")
        rng_ranks = distributed.all_gather_objects(generator.get_state()) if world > 1 else None
        row = {"epoch": epoch + 1, "loss": round(float(total) / max(1, n_steps), 5),
               "lr": round(scheduler.get_last_lr()[0], 6), "seconds": round(seconds, 2),
               "images_per_s": round(n_steps * profile.batch_size / seconds, 1), "knn_top1": None}
        if monitor is not None and rank == 0 and knn_due(profile, epoch + 1):
            row["knn_top1"] = round(knn_monitor(model.backbone, monitor[0], monitor[1], dev, k=profile.knn_k), 4)
        metrics.append(row)
        if rank == 0:
            save_pretrain_checkpoint(ckpt_path, model, setup.optimizer, scheduler, profile, metrics, train, spec,
                                     generator=generator, scaler=setup.scaler, pipeline=pipeline,
                                     rng_ranks=rng_ranks)
            _write_logs(out_dir, metrics)
        distributed.barrier()  # the other ranks wait for rank 0's monitor and files
        knn = f", kNN top-1 {row['knn_top1']:.1%}" if row["knn_top1"] is not None else ""
        logger.info(f"epoch {epoch + 1:>3}/{profile.epochs}: loss {row['loss']:.4f}, lr {row['lr']:.4f}, "
                    f"{row['images_per_s']:.0f} img/s, {seconds:.1f} s{knn}")
        if epoch == start_epoch and epoch + 1 < profile.epochs:
            per_epoch = time.perf_counter() - t0  # training, monitor and checkpoint: what each epoch will cost
            logger.info(f"{per_epoch:.0f} s per epoch on {dev}: {profile.epochs - epoch - 1} epochs left, "
                        f"{finish_estimate(per_epoch, profile.epochs - epoch - 1)}")
        if on_epoch_end is not None:
            on_epoch_end(row)
    return PretrainResult(ckpt_path, metrics, profile, time.perf_counter() - t_run, str(dev), setup.precision.name)
