"""Runtime helpers every training and measuring module needs: device, seeds, precision, CPUs, steps.

A leaf module: it imports nothing else of the package, so ``train``, ``supervised``,
``distributed``, ``notebook`` and the lab wing (``lab.benchmark``, ``lab.results``) can all stand on it without
importing the training loop for a helper.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random number generators (all devices)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_count() -> int:
    """CPUs this process may use (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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

    def grad_scaler(self, device_type: str = "cuda") -> torch.amp.GradScaler:
        """The loss scaler: enabled for fp16 (its small range underflows small gradients), a no-op otherwise."""
        return torch.amp.GradScaler(device_type, enabled=self.scaler)


def pick_precision(device: torch.device, amp: bool = True) -> Precision:
    """bf16 on GPUs that run it natively (compute capability 8.0+), fp16 + loss scaling on older GPUs, else fp32.

    The capability decides, not ``torch.cuda.is_bf16_supported()``: that answers True on a
    T4 (capability 7.5) because bf16 can be emulated there, slowly. On CPUs fp32 stays:
    measured on a 2-core CPU that reports bf16 instructions, bf16 autocast made a training
    step slower (0.73-0.84x).
    """
    if not amp or device.type != "cuda":
        return Precision(None, False)
    if torch.cuda.get_device_capability(device)[0] >= 8:
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


def to_device(x: torch.Tensor, device, channels_last: bool) -> torch.Tensor:
    """A batch of views on the training device, in the model's memory layout."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def backward_and_step(loss: torch.Tensor, optimizer, scaler: torch.amp.GradScaler | None = None) -> None:
    """Gradients of ``loss`` and one optimiser step, through the loss scaler (a disabled one, or None, for fp32
    and bf16: then ``scale``, ``step`` and ``update`` are plain ``backward`` and ``step``)."""
    scaler = scaler or torch.amp.GradScaler(loss.device.type, enabled=False)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device=None):
    """Index tensors of one pass over ``n`` items: slices of a fresh ``randperm``, the last partial batch dropped.

    The permutation is drawn when the first batch is asked for, so the generator's draws
    interleave with those of whatever uses the batches exactly as in a hand-written loop.
    """
    perm = torch.randperm(n, generator=generator, device=device)
    for i in range(n // batch_size):
        yield perm[i * batch_size:(i + 1) * batch_size]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base lr: linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                           warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The course's one learning-rate schedule, stepped once per optimiser step (pretraining and supervised)."""
    warmup_steps = min(total_steps, warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total_steps, warmup_steps))


_ALLOCATOR_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse instead of returning it to the system.

    Opt-in, process-wide: the command line calls it when it starts (``pretrain``,
    ``benchmark``, ``reproduce``); a notebook user who wants it runs it once in the kernel.
    By default glibc serves every allocation above a (moving) threshold with fresh pages
    from the kernel and hands them back on free, so each large temporary tensor of a CPU
    training step (a batch of views, an activation) page-faults its memory in again.
    Measured on a 2-core machine, that was a third of the batched augmentation's time.
    This does what the MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ environment variables
    do (they are read only when a process starts). The cost: the process keeps its peak
    memory until it exits. Returns whether the setting took effect (False off glibc, e.g.
    on macOS or Windows).
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


def allocator_tuned() -> bool:
    """Whether ``keep_freed_memory`` has taken effect in this process."""
    return _ALLOCATOR_TUNED
