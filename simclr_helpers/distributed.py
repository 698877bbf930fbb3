"""Data-parallel pretraining over several processes: the plumbing ``torchrun`` needs.

``torchrun --nproc_per_node=N -m simclr_helpers pretrain ...`` starts N copies of the
command and tells each its place through environment variables (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). This module turns them
into a process group and answers the few questions the training loop asks: how many
processes are there, which one is this, is it the one that writes files, which images
are its own. The training itself uses what torch and lightly provide:
``DistributedDataParallel`` averages the gradients, ``SyncBatchNorm`` shares batch
statistics, ``NTXentLoss(gather_distributed=True)`` shares the negatives.

Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) every helper here is a no-op and a
run is exactly the single-process run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from .errors import SimclrError
from .runtime import pick_device

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(SimclrError):
    """A multi-process run that cannot start as asked (batch split, devices, SyncBatchNorm)."""


def env_world_size() -> int:
    """The number of processes ``torchrun`` started (``$WORLD_SIZE``), 1 without it."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(value)
    except ValueError:
        raise DistributedError(f"WORLD_SIZE={value!r} is not a number; start several processes with "
                               "torchrun, which sets it.") from None
    if world < 1:
        raise DistributedError(f"WORLD_SIZE={world} must be 1 or more; start several processes with torchrun.")
    return world


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's number on its machine (``$LOCAL_RANK``): which GPU it takes."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, logs and progress bars."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if is_distributed():
        dist.barrier()


def init_from_env(device: str | None = None) -> torch.device:
    """Join the process group ``torchrun`` describes in the environment; return this process's device.

    GPUs: NCCL, one GPU per process, ``cuda:LOCAL_RANK``. CPU (``--device cpu``, or no GPU):
    gloo. Collectives that wait longer than torch's default timeout (NCCL 10 min, gloo
    30 min) fail; a process that crashes makes ``torchrun`` stop the others at once.
    """
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE is set but {', '.join(missing)} not; start several processes "
                               "with `torchrun --nproc_per_node=N -m simclr_helpers pretrain ...`.")
    dev = pick_device(device)
    if dev.type == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        if dev.index is not None and dev.index != local:
            raise DistributedError(f"--device {device} would put several processes on one GPU; pass --device "
                                   "cuda and each process takes the GPU numbered by its LOCAL_RANK.")
        gpus = torch.cuda.device_count()
        if local >= gpus:
            raise DistributedError(f"process {local} on this machine has no GPU of its own ({gpus} visible); "
                                   "start at most one process per GPU (--nproc_per_node).")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    return dev


def cleanup() -> None:
    """Leave the process group (also after an error, so no process keeps waiting on a dead peer's sockets)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device: str | None = None) -> Iterator[str | None]:
    """``with process_group(args.device) as device:`` the block runs inside torchrun's process group.

    Yields the device this process trains on (``cuda:LOCAL_RANK`` or ``cpu``); without
    ``WORLD_SIZE`` > 1 it yields ``device`` unchanged and starts nothing. The group is
    destroyed on the way out, on errors too.
    """
    if env_world_size() == 1:
        yield device
        return
    try:
        yield str(init_from_env(device))
    finally:
        cleanup()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. a download), the others after it (no two writers at once).

    torch has no such helper (Lightning and Accelerate do); it is two barriers.
    """
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def rank_device(device: torch.device) -> torch.device:
    """The device of this process: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` when there are several."""
    if is_distributed() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def per_rank_batch(global_batch: int, world: int) -> int:
    """The batch of one process: the profile's (global) batch split evenly over ``world`` processes.

    The profile's batch size is the *global* batch, so the learning rate (linear in the
    global batch), the steps per epoch and the schedule do not depend on how many
    processes share the work.
    """
    if global_batch % world:
        raise DistributedError(f"the batch of {global_batch} images does not split evenly over {world} processes; "
                               f"pass --batch-size a multiple of {world}.")
    return global_batch // world


def rank_seed(seed: int, rank: int) -> int:
    """A seed for this rank's shuffling and views: the profile's seed on rank 0 (so a single
    process is unchanged), far-apart seeds on the others (``seed + epoch`` never collides)."""
    return seed + 1_000_003 * rank


def shard_indices(n: int, rank: int, world: int) -> torch.Tensor:
    """Indices of this rank's share of ``n`` images: every ``world``-th one, starting at ``rank``.

    Shards are equal in size (the last ``n % world`` images, fewer than ``world``, are left
    out), so every process takes the same number of steps per epoch: with unequal shards
    one process would wait forever for a step the others never take. Interleaving keeps
    each shard a sample of the whole set even when the images are sorted by class.
    ``DistributedSampler`` splits the same way but for DataLoaders; here the shard is
    sliced once and lives on the device.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    return torch.arange(rank, n - n % world, world)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (itself in a single process)."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()


def all_gather_objects(obj) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def check_same(value, what: str) -> None:
    """Fail on every rank at once if ranks disagree on ``value`` (rather than deadlock later)."""
    values = all_gather_objects(value)
    if any(v != values[0] for v in values):
        raise DistributedError(f"the processes disagree on {what} ({values}); --out must be a folder every "
                               "process reads the same way (a shared file system across machines).")


def use_sync_bn(requested: bool | None, device: torch.device, world: int) -> bool:
    """Whether to turn the model's BatchNorm layers into ``SyncBatchNorm``.

    Each process sees only its share of the batch; plain BatchNorm normalises with that
    share's statistics, SyncBatchNorm with the whole global batch's, as one process would.
    Default: on with several GPUs, off on CPUs, because torch's SyncBatchNorm (up to
    2.14 at least) raises on CPU tensors. Nothing to synchronise in a single process.
    """
    if world == 1:
        return False
    if requested is None:
        return device.type != "cpu"
    if requested and device.type == "cpu":
        raise DistributedError("SyncBatchNorm runs only on GPUs (torch rejects CPU tensors); drop --sync-bn "
                               "or pass --no-sync-bn for a multi-process run on CPUs.")
    return requested
