"""Throughput measurements: the blog post's input pipeline (``blog``) against the batched one.

Notebook 02 calls these for a quick comparison; ``python -m simclr_helpers benchmark`` runs
them all. Every timing warms up first, synchronises the GPU before reading the clock and
reports the median of repeats. The command line tunes the allocator before it measures
(``runtime.keep_freed_memory``); a notebook measures with whatever the kernel has.
"""

from __future__ import annotations

import logging
import statistics
import time

import torch

from ..augment import BatchedSimCLRAugment
from ..blog import blog_loader, probe_epoch_blog_way
from ..runtime import allocator_tuned, cpu_count, pick_device, pick_precision

logger = logging.getLogger(__name__)


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


def blog_augment_throughput(images: torch.Tensor, batch_size: int = 256, workers: int | None = None,
                            batches: int = 8, repeats: int = 3) -> float:
    """Views per second of lightly's SimCLRTransform on PIL images in a DataLoader (two views per image).

    Each repeat starts fresh workers, waits for their first batch, times ``batches`` more and
    shuts the workers down, so nothing keeps running into the next measurement.
    """
    loader = blog_loader(images, batch_size, workers=workers)
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
    other would fold that drift into the ratio. Here every repeat times the blog's pipeline
    and then the batched one; the result holds the median views/s of each and the median
    of the per-repeat ratios.
    """
    blog, fast = [], []
    for _ in range(repeats):
        blog.append(blog_augment_throughput(images, batch_size, workers, batches, repeats=1))
        fast.append(batched_augment_throughput(images, batch_size, device, batches, repeats=1))
    return {"blog": statistics.median(blog), "fast": statistics.median(fast),
            "ratio": statistics.median(f / s for f, s in zip(fast, blog, strict=True))}


def _training_throughput(make_batches, step, steps: int) -> float:
    """Images per second (each image = two views) of ``steps`` full training steps.

    The batches come from ``make_batches()``, started afresh (DataLoader workers included),
    warmed up with one step that is not timed, and stopped afterwards. ``step(x0, x1)``
    takes one training step.
    """
    endless = _Endless(make_batches())

    def one():
        x0, x1 = next(endless)
        step(x0, x1)
        return len(x0)

    one()  # warm-up: workers, allocator, cuDNN autotuning
    _sync_all()
    t0 = time.perf_counter()
    n = sum(one() for _ in range(steps))
    _sync_all()
    rate = n / (time.perf_counter() - t0)
    _stop_workers(endless.it)
    return rate


def _sync_all() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def run_benchmark(images: torch.Tensor, device=None, batch_size: int = 256, stem: str = "imagenet",
                  steps: int = 5, repeats: int = 3, compile: bool = False,
                  augment_batches: int = 16, augment_repeats: int = 7, workers: int | None = None) -> dict:
    """The blog's pipeline against the fast path on this machine: augmentation and full training steps.

    Both comparisons alternate the two pipelines repeat by repeat and report medians. Each
    blog measurement starts its DataLoader workers (``workers``, default one per CPU; the
    blog used 8) before the clock and takes one untimed batch or step first; batches the
    workers prepare meanwhile count for the blog, so any bias favours the blog's pipeline.
    """
    from ..config import get_profile
    from ..train import training_setup

    dev = pick_device(device)
    workers = cpu_count() if workers is None else workers
    profile = get_profile("smoke").with_overrides(batch_size=batch_size, stem=stem)
    result = {"device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
              "torch": str(torch.__version__), "batch_size": batch_size, "stem": stem, "cpus": cpu_count(),
              "workers": workers, "images": len(images), "glibc_keeps_freed_memory": allocator_tuned()}

    logger.info(f"augmentation: the blog's pipeline (lightly SimCLRTransform, DataLoader with {workers} workers) "
                f"and batched, {augment_repeats} alternating repeats ...")
    aug = augment_throughputs(images, batch_size, dev, workers, augment_batches, augment_repeats)
    result["blog_augment_views_per_s"] = round(aug["blog"])
    result["fast_augment_views_per_s"] = round(aug["fast"])
    result["augment_speedup"] = round(aug["ratio"], 2)

    fast_precision = pick_precision(dev)
    result["blog_dtype"], result["fast_dtype"] = "fp32", fast_precision.name
    runners = {}
    for pipeline in ("blog", "fast"):  # the course's set-up and step (train.training_setup), timed step by step
        # the fast path as train.pretrain runs it: channels_last, one forward pass, autocast on GPUs
        setup = training_setup(profile, images, dev, seed=0, pipeline=pipeline, channels_last=pipeline == "fast",
                               compile=compile and pipeline == "fast", workers=workers)
        if pipeline == "blog":
            def make_batches():  # a fresh DataLoader: its workers start for every measurement
                return blog_loader(images, batch_size, workers=workers)
        else:
            def make_batches(batches=setup.batches):
                return batches
        runners[pipeline] = (make_batches, setup.step)
    logger.info(f"training steps: the blog's and the fast pipeline, {repeats} alternating repeats ...")
    rates = {"blog": [], "fast": []}
    for _ in range(repeats):
        for pipeline, (make_batches, step) in runners.items():
            rates[pipeline].append(_training_throughput(make_batches, step, steps))
    for name, values in rates.items():
        rate = statistics.median(values)
        result[f"{name}_train_images_per_s"] = round(rate, 1)
        result[f"{name}_seconds_per_cifar10_epoch"] = round(50_000 / rate, 2)
    result["train_speedup"] = round(statistics.median(f / s for f, s in zip(rates["fast"], rates["blog"],
                                                                             strict=True)), 2)
    result["compile"] = compile
    return result


def format_table(r: dict) -> str:
    """The benchmark result as a small text table."""
    rows = [
        ("augmentation (views/s)", f"{r['blog_augment_views_per_s']:,}", f"{r['fast_augment_views_per_s']:,}",
         f"{r['augment_speedup']:.1f}x"),
        ("training (images/s, 2 views each)", f"{r['blog_train_images_per_s']:,.0f}",
         f"{r['fast_train_images_per_s']:,.0f}", f"{r['train_speedup']:.2f}x"),
        ("seconds per CIFAR-10 epoch (50k images)", f"{r['blog_seconds_per_cifar10_epoch']:,.1f}",
         f"{r['fast_seconds_per_cifar10_epoch']:,.1f}", ""),
    ]
    head = (f"device {r['device']} | torch {r['torch']} | batch {r['batch_size']} | {r['stem']} stem | "
            f"blog {r['blog_dtype']} with {r.get('workers', r['cpus'])} workers, fast {r['fast_dtype']}"
            f"{' + compile' if r['compile'] else ''} | {r['cpus']} CPUs")
    lines = [head, f"{'':<42}{'blog':>12}{'fast':>12}{'fast/blog':>11}"]
    lines += [f"{a:<42}{b:>12}{c:>12}{d:>11}" for a, b, c, d in rows]
    return "\n".join(lines)


def probe_speed(backbone: torch.nn.Module, train, epochs: int = 10, stats: dict | None = None, device=None,
                batch_size: int = 256, progress: bool = False) -> dict:
    """Seconds for ``epochs`` epochs of linear-probe training: on cached features vs the blog's way.

    Cached (the course): the frozen backbone runs once over the training images, then the
    probe trains on the stored features. The blog's way: every epoch runs every batch
    through the backbone again before the probe's step. Both use the same frozen backbone
    (eval mode), the same optimiser and the same number of epochs.
    """
    from tqdm.auto import tqdm

    from ..config import NORMALIZE
    from ..evaluate import extract_features, freeze, train_linear_probe

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
    g = torch.Generator().manual_seed(0)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in tqdm(range(epochs), desc="probe, the blog's way", disable=not progress, leave=False, unit="epoch"):
        probe_epoch_blog_way(backbone, fc, opt, train.images, train.labels, stats, batch_size, g)
    _sync(dev)
    blog_way = time.perf_counter() - t0
    return {"epochs": epochs, "images": len(train.images), "cached_s": round(cached, 2),
            "blog_way_s": round(blog_way, 2), "speedup": round(blog_way / cached, 1)}


def step_flops_per_image(stem: str = "imagenet", batch_size: int = 32, projection_dim: int = 128) -> float:
    """FLOPs of one SimCLR training step per image (two views, forward and backward), counted by torch.

    ``torch.utils.flop_counter`` counts the convolutions and matrix products as the model
    runs, so the figure follows the stem and the head without a hand-written formula.
    """
    from lightly.loss import NTXentLoss
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import SimCLRModel

    model = SimCLRModel(stem=stem, projection_dim=projection_dim)
    x = torch.randn(2 * batch_size, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        z0, z1 = model(x).chunk(2)
        NTXentLoss()(z0, z1).backward()
    return counter.get_total_flops() / batch_size


def matmul_gflops(device="cpu", n: int = 4096, repeats: int = 5) -> float:
    """The fp32 GFLOP/s this device reaches on one large matrix product: what its math library can attain.

    A training step cannot go faster per FLOP than this, so the ratio of the two says how much
    room is left.
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up
    _sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def training_sweep(images: torch.Tensor, device=None, batch_sizes=(64, 128, 256, 512), stem: str = "imagenet",
                   steps: int = 5, repeats: int = 5, compile: bool = False) -> dict:
    """Fast-path training throughput for several batch sizes (and, with ``compile``, with and without it).

    The variants take turns repeat by repeat, so a drift in the machine's load touches all of
    them alike; each figure is the median of ``repeats``, and every variant is warmed up once
    (for a compiled model that includes compiling) before the first timed repeat.
    """
    from ..config import get_profile
    from ..train import training_setup

    dev = pick_device(device)
    precision = pick_precision(dev)
    variants = [(b, c) for b in batch_sizes for c in ((False, True) if compile else (False,))]
    runners = {}
    for batch_size, compiled in variants:
        profile = get_profile("smoke").with_overrides(batch_size=batch_size, stem=stem)
        setup = training_setup(profile, images, dev, seed=0, compile=compiled)
        runners[(batch_size, compiled)] = (lambda b=setup.batches: b, setup.step)
        t0 = time.perf_counter()
        _training_throughput(*runners[(batch_size, compiled)], steps=1)  # warm-up (and compile)
        logger.info(f"batch {batch_size}{' + compile' if compiled else ''}: warmed up in "
                    f"{time.perf_counter() - t0:.1f} s")
    rates = {key: [] for key in runners}
    for r in range(repeats):
        for key, (make_batches, step) in runners.items():
            rates[key].append(_training_throughput(make_batches, step, steps))
        logger.info(f"repeat {r + 1}/{repeats} done")
    flops = step_flops_per_image(stem)
    peak = matmul_gflops(dev)
    rows = []
    for (batch_size, compiled), values in rates.items():
        rate = statistics.median(values)
        row = {"batch_size": batch_size, "compile": compiled, "images_per_s": round(rate, 1),
               "images_per_s_all": [round(v, 1) for v in values], "gflops": round(rate * flops / 1e9, 1)}
        if compile and not compiled:
            with_compile = rates[(batch_size, True)]
            row["compile_speedup"] = round(statistics.median(c / v for c, v in zip(with_compile, values)), 3)
        rows.append(row)
    return {"device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
            "torch": str(torch.__version__), "stem": stem, "cpus": cpu_count(), "precision": precision.name,
            "steps": steps, "repeats": repeats, "gflop_per_image": round(flops / 1e9, 3),
            "matmul_gflops": round(peak, 1), "rows": rows}


def format_sweep(r: dict) -> str:
    """The sweep as a small text table, with the share of the device's matrix-product rate each reaches."""
    lines = [f"device {r['device']} | torch {r['torch']} | {r['stem']} stem | {r['precision']} | {r['cpus']} CPUs | "
             f"{r['gflop_per_image']:.3f} GFLOP per image (2 views, forward + backward) | "
             f"matrix product {r['matmul_gflops']:.0f} GFLOP/s",
             f"{'batch':>6} {'compile':>8} {'images/s':>10} {'GFLOP/s':>9} {'of matmul':>10} {'compile gain':>13}"]
    for row in r["rows"]:
        gain = f"{row['compile_speedup']:.2f}x" if "compile_speedup" in row else ""
        lines.append(f"{row['batch_size']:>6} {'yes' if row['compile'] else 'no':>8} {row['images_per_s']:>10,.0f} "
                     f"{row['gflops']:>9,.0f} {row['gflops'] / r['matmul_gflops']:>10.0%} {gain:>13}")
    return "\n".join(lines)
