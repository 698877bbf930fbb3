"""Throughput measurements: the seed's input pipeline against the batched one.

Notebook 02 calls these for a quick comparison. Every timing warms up first,
synchronises the GPU before reading the clock and reports the median of repeats.
"""

from __future__ import annotations

import statistics
import time

import torch

from .augment import BatchedSimCLRAugment
from .train import seed_loader


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _stop_workers(iterator) -> None:
    """Shut DataLoader workers down now, so they do not compete with the next measurement."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class _Endless:
    """Batches from ``iterable`` for ever, starting it again when it runs out."""

    def __init__(self, iterable):
        self.iterable, self.it = iterable, iter(iterable)

    def __next__(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.iterable)
            return next(self.it)


def seed_augment_throughput(images: torch.Tensor, batch_size: int = 256, workers: int | None = None,
                            batches: int = 8, repeats: int = 3) -> float:
    """Views per second of lightly's SimCLRTransform on PIL images in a DataLoader (two views per image)."""
    loader = seed_loader(images, batch_size, workers=workers)
    rates = []
    batches_of_views = _Endless(loader)
    next(batches_of_views)  # warm-up: starts the workers
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = 0
        for _ in range(batches):
            x0, x1 = next(batches_of_views)
            n += len(x0) + len(x1)
        rates.append(n / (time.perf_counter() - t0))
    _stop_workers(batches_of_views.it)
    return statistics.median(rates)


def batched_augment_throughput(images: torch.Tensor, batch_size: int = 256, device="cpu", batches: int = 8,
                               repeats: int = 3) -> float:
    """Views per second of the batched augmentation on ``device`` (data already there)."""
    data = images.to(device)
    aug = BatchedSimCLRAugment(generator=torch.Generator(device=device).manual_seed(0))
    g = torch.Generator(device=device).manual_seed(1)
    for _ in range(3):  # warm-up: allocator, thread pool
        aug(data[:batch_size])
    _sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            idx = torch.randint(0, len(data), (batch_size,), device=device, generator=g)
            batch = data[idx]
            aug(batch)
            aug(batch)
        _sync(device)
        rates.append(2 * batch_size * batches / (time.perf_counter() - t0))
    return statistics.median(rates)


def _training_throughput(batches, model, criterion, optimizer, scaler, precision, device, one_pass: bool,
                         steps: int, repeats: int, channels_last: bool) -> float:
    """Images per second (each image = two views) of full training steps fed by ``batches``."""
    from .train import to_device, training_step

    endless = _Endless(batches)

    def step():
        x0, x1 = next(endless)
        x0, x1 = to_device(x0, device, channels_last), to_device(x1, device, channels_last)
        training_step(model, criterion, optimizer, scaler, x0, x1, precision, one_pass=one_pass)
        return len(x0)

    for _ in range(2):  # warm-up: workers, allocator, cuDNN autotuning
        step()
    _sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = sum(step() for _ in range(steps))
        _sync(device)
        rates.append(n / (time.perf_counter() - t0))
    _stop_workers(endless.it)
    return statistics.median(rates)


def run_benchmark(images: torch.Tensor, device=None, batch_size: int = 256, stem: str = "imagenet",
                  steps: int = 3, repeats: int = 3, compile: bool = False, log=print) -> dict:
    """The seed's pipeline against the fast path on this machine: augmentation and full training steps."""
    from lightly.loss import NTXentLoss

    from .config import get_profile
    from .models import SimCLRModel
    from .train import FastBatches, Precision, cpu_count, make_optimizer, pick_device, pick_precision, seed_everything

    log = log or (lambda s: None)
    dev = pick_device(device)
    cpus = cpu_count()
    profile = get_profile("smoke").with_overrides(batch_size=batch_size, stem=stem)
    result = {"device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
              "torch": str(torch.__version__), "batch_size": batch_size, "stem": stem, "cpus": cpus,
              "images": len(images)}

    log(f"augmentation: seed pipeline (lightly SimCLRTransform, DataLoader with {cpus} workers) ...")
    result["seed_augment_views_per_s"] = round(seed_augment_throughput(images, batch_size, cpus, 4 * steps, repeats))
    log("augmentation: batched ...")
    result["fast_augment_views_per_s"] = round(batched_augment_throughput(images, batch_size, dev, 4 * steps, repeats))

    fast_precision = pick_precision(dev)
    channels_last = True  # the fast path's memory format on every device (train.pretrain's default)
    result["seed_dtype"], result["fast_dtype"] = "fp32", fast_precision.name
    for name, pipeline in (("seed", "seed"), ("fast", "fast")):
        log(f"training steps: {name} pipeline ...")
        seed_everything(0)
        model = SimCLRModel(stem=stem).to(dev)
        precision = Precision(None, False) if pipeline == "seed" else fast_precision
        use_cl = channels_last and pipeline == "fast"
        if use_cl:
            model = model.to(memory_format=torch.channels_last)
        step_model = torch.compile(model) if compile and pipeline == "fast" else model
        optimizer = make_optimizer(model, profile)
        scaler = torch.amp.GradScaler("cuda") if precision.scaler else None
        if pipeline == "seed":
            batches = seed_loader(images, batch_size, workers=cpus)
        else:
            batches = FastBatches(images.to(dev), batch_size, torch.Generator(device=dev).manual_seed(0))
        rate = _training_throughput(batches, step_model, NTXentLoss(temperature=profile.temperature), optimizer,
                                    scaler, precision, dev, one_pass=pipeline == "fast", steps=steps,
                                    repeats=repeats, channels_last=use_cl)
        result[f"{name}_train_images_per_s"] = round(rate, 1)
        result[f"{name}_seconds_per_cifar10_epoch"] = round(50_000 / rate, 2)
        del batches
    result["augment_speedup"] = round(result["fast_augment_views_per_s"] / result["seed_augment_views_per_s"], 2)
    result["train_speedup"] = round(result["fast_train_images_per_s"] / result["seed_train_images_per_s"], 2)
    result["compile"] = compile
    return result


def format_table(r: dict) -> str:
    """The benchmark result as a small text table."""
    rows = [
        ("augmentation (views/s)", f"{r['seed_augment_views_per_s']:,}", f"{r['fast_augment_views_per_s']:,}",
         f"{r['augment_speedup']:.1f}x"),
        ("training (images/s, 2 views each)", f"{r['seed_train_images_per_s']:,.0f}",
         f"{r['fast_train_images_per_s']:,.0f}", f"{r['train_speedup']:.2f}x"),
        ("seconds per CIFAR-10 epoch (50k images)", f"{r['seed_seconds_per_cifar10_epoch']:,.1f}",
         f"{r['fast_seconds_per_cifar10_epoch']:,.1f}", ""),
    ]
    head = (f"device {r['device']} | torch {r['torch']} | batch {r['batch_size']} | {r['stem']} stem | "
            f"seed {r['seed_dtype']}, fast {r['fast_dtype']}{' + compile' if r['compile'] else ''} | "
            f"{r['cpus']} CPUs")
    lines = [head, f"{'':<42}{'seed':>12}{'fast':>12}{'fast/seed':>11}"]
    lines += [f"{a:<42}{b:>12}{c:>12}{d:>11}" for a, b, c, d in rows]
    return "\n".join(lines)
