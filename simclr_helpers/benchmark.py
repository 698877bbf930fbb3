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
    """Views per second of lightly's SimCLRTransform on PIL images in a DataLoader (two views per image).

    Each repeat starts fresh workers, waits for their first batch, times ``batches`` more and
    shuts the workers down, so nothing keeps running into the next measurement.
    """
    loader = seed_loader(images, batch_size, workers=workers)
    rates = []
    for _ in range(repeats):
        batches_of_views = _Endless(loader)
        next(batches_of_views)  # warm-up: the workers are running
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
    """Views per second of the batched augmentation on ``device`` (data already there).

    Measured as training uses it (``train.FastBatches``): a shuffled batch sliced from the
    device-resident images, both views made in one call.
    """
    data = images.to(device)
    aug = BatchedSimCLRAugment(generator=torch.Generator(device=device).manual_seed(0))
    g = torch.Generator(device=device).manual_seed(1)

    def views():
        batch = data[torch.randint(0, len(data), (batch_size,), device=device, generator=g)]
        return aug(torch.cat((batch, batch)))

    for _ in range(3):  # warm-up: allocator, thread pool
        views()
    _sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            views()
        _sync(device)
        rates.append(2 * batch_size * batches / (time.perf_counter() - t0))
    return statistics.median(rates)


def augment_throughputs(images: torch.Tensor, batch_size: int = 256, device="cpu", workers: int | None = None,
                        batches: int = 8, repeats: int = 5) -> dict:
    """Both augmentation pipelines measured in alternation, so both see the same machine load.

    A shared machine speeds up and slows down over seconds; timing one pipeline after the
    other would fold that drift into the ratio. Here every repeat times the seed pipeline
    and then the batched one; the result holds the median views/s of each and the median
    of the per-repeat ratios.
    """
    from .train import keep_freed_memory

    keep_freed_memory()  # as pretrain does
    seed, fast = [], []
    for _ in range(repeats):
        seed.append(seed_augment_throughput(images, batch_size, workers, batches, repeats=1))
        fast.append(batched_augment_throughput(images, batch_size, device, batches, repeats=1))
    return {"seed": statistics.median(seed), "fast": statistics.median(fast),
            "ratio": statistics.median(f / s for f, s in zip(fast, seed, strict=True))}


def _training_throughput(make_batches, model, criterion, optimizer, scaler, precision, device, one_pass: bool,
                         steps: int, channels_last: bool) -> float:
    """Images per second (each image = two views) of ``steps`` full training steps.

    The batches come from ``make_batches()``, started afresh (DataLoader workers included),
    warmed up with one step that is not timed, and stopped afterwards.
    """
    from .train import to_device, training_step

    endless = _Endless(make_batches())

    def step():
        x0, x1 = next(endless)
        x0, x1 = to_device(x0, device, channels_last), to_device(x1, device, channels_last)
        training_step(model, criterion, optimizer, scaler, x0, x1, precision, one_pass=one_pass)
        return len(x0)

    step()  # warm-up: workers, allocator, cuDNN autotuning
    _sync(device)
    t0 = time.perf_counter()
    n = sum(step() for _ in range(steps))
    _sync(device)
    rate = n / (time.perf_counter() - t0)
    _stop_workers(endless.it)
    return rate


def run_benchmark(images: torch.Tensor, device=None, batch_size: int = 256, stem: str = "imagenet",
                  steps: int = 5, repeats: int = 3, compile: bool = False, log=print,
                  augment_batches: int = 16, augment_repeats: int = 7) -> dict:
    """The seed's pipeline against the fast path on this machine: augmentation and full training steps.

    Both comparisons alternate the two pipelines repeat by repeat and report medians. Each
    seed measurement starts its DataLoader workers before the clock and takes one untimed
    batch or step first; batches the workers prepare meanwhile count for the seed, so any
    bias favours the seed's pipeline.
    """
    from lightly.loss import NTXentLoss

    from .config import get_profile
    from .models import SimCLRModel
    from .train import (
        FastBatches,
        Precision,
        cpu_count,
        keep_freed_memory,
        make_optimizer,
        pick_device,
        pick_precision,
        seed_everything,
    )

    log = log or (lambda s: None)
    dev = pick_device(device)
    result_allocator = keep_freed_memory()  # as pretrain does: the same allocator for both pipelines
    cpus = cpu_count()
    profile = get_profile("smoke").with_overrides(batch_size=batch_size, stem=stem)
    result = {"device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
              "torch": str(torch.__version__), "batch_size": batch_size, "stem": stem, "cpus": cpus,
              "images": len(images), "glibc_keeps_freed_memory": result_allocator}

    log(f"augmentation: seed pipeline (lightly SimCLRTransform, DataLoader with {cpus} workers) "
        f"and batched, {augment_repeats} alternating repeats ...")
    aug = augment_throughputs(images, batch_size, dev, cpus, augment_batches, augment_repeats)
    result["seed_augment_views_per_s"] = round(aug["seed"])
    result["fast_augment_views_per_s"] = round(aug["fast"])
    result["augment_speedup"] = round(aug["ratio"], 2)

    fast_precision = pick_precision(dev)
    channels_last = True  # the fast path's memory format on every device (train.pretrain's default)
    result["seed_dtype"], result["fast_dtype"] = "fp32", fast_precision.name
    runners = {}
    for pipeline in ("seed", "fast"):
        seed_everything(0)
        model = SimCLRModel(stem=stem).to(dev)
        precision = Precision(None, False) if pipeline == "seed" else fast_precision
        use_cl = channels_last and pipeline == "fast"
        if use_cl:
            model = model.to(memory_format=torch.channels_last)
        step_model = torch.compile(model) if compile and pipeline == "fast" else model
        if pipeline == "seed":
            def make_batches():
                return seed_loader(images, batch_size, workers=cpus)
        else:
            fast_batches = FastBatches(images.to(dev), batch_size, torch.Generator(device=dev).manual_seed(0))

            def make_batches(batches=fast_batches):
                return batches
        args = (make_batches, step_model, NTXentLoss(temperature=profile.temperature), make_optimizer(model, profile),
                torch.amp.GradScaler("cuda") if precision.scaler else None, precision, dev)
        runners[pipeline] = (args, {"one_pass": pipeline == "fast", "steps": steps, "channels_last": use_cl})
    log(f"training steps: seed and fast pipelines, {repeats} alternating repeats ...")
    rates = {"seed": [], "fast": []}
    for _ in range(repeats):
        for pipeline, (args, kwargs) in runners.items():
            rates[pipeline].append(_training_throughput(*args, **kwargs))
    for name, values in rates.items():
        rate = statistics.median(values)
        result[f"{name}_train_images_per_s"] = round(rate, 1)
        result[f"{name}_seconds_per_cifar10_epoch"] = round(50_000 / rate, 2)
    result["train_speedup"] = round(statistics.median(f / s for f, s in zip(rates["fast"], rates["seed"],
                                                                             strict=True)), 2)
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


def probe_speed(backbone: torch.nn.Module, train, epochs: int = 10, stats: dict | None = None, device=None,
                batch_size: int = 256, progress: bool = False) -> dict:
    """Seconds for ``epochs`` epochs of linear-probe training: on cached features vs the seed's way.

    Cached (the course): the frozen backbone runs once over the training images, then the
    probe trains on the stored features. The seed's way: every epoch runs every batch
    through the backbone again before the probe's step. Both use the same frozen backbone
    (eval mode), the same optimiser and the same number of epochs.
    """
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from .augment import to_model_input
    from .config import NORMALIZE
    from .evaluate import extract_features, freeze, train_linear_probe

    stats = stats or NORMALIZE
    dev = device or next(backbone.parameters()).device
    freeze(backbone)
    n_classes = len(train.classes)
    _sync(dev)
    t0 = time.perf_counter()
    features = extract_features(backbone, train, stats, batch_size=batch_size, device=dev)
    train_linear_probe(features, train.labels.cpu(), n_classes, epochs=epochs)
    cached = time.perf_counter() - t0

    fc = torch.nn.Linear(features.shape[1], n_classes).to(dev)
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3, weight_decay=1e-6)
    images, labels = train.images, train.labels
    g = torch.Generator().manual_seed(0)
    channels_last = next(backbone.parameters()).is_contiguous(memory_format=torch.channels_last)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in tqdm(range(epochs), desc="probe, the seed's way", disable=not progress, leave=False, unit="epoch"):
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), batch_size):
            idx = perm[i:i + batch_size]
            x = to_model_input(images[idx].to(dev), stats)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                h = backbone(x).float().flatten(1)
            loss = F.cross_entropy(fc(h), labels[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _sync(dev)
    seed_way = time.perf_counter() - t0
    return {"epochs": epochs, "images": len(images), "cached_s": round(cached, 2), "seed_way_s": round(seed_way, 2),
            "speedup": round(seed_way / cached, 1)}
