"""``python -m simclr_helpers gpu-check``: what anyone with a GPU runs first, in at most 8 minutes.

One command, one JSON object on stdout (progress on stderr). In order, each stage only if
the time left allows it (a stage left out is named in ``skipped``, a stage that fails in
``errors``, and the others still run):

1. the GPU: name, compute capability, memory, the profile ``auto`` picks for it and the
   precision training runs in (bf16 from capability 8.0, fp16 with loss scaling below);
2. a short pretraining of the ``colab`` profile (3 epochs of full CIFAR-10: ``--data``,
   ``$SIMCLR_DATA``, the download cache or a download; the bundled subset if none can be
   had) and the kNN top-1 of its checkpoint; from the measured seconds per epoch, the time
   the full ``colab`` run would take on this GPU, beside the estimate for a T4;
3. fast-path training throughput at batch 512 for both stems (``benchmark.training_sweep``);
4. the blog's pipeline against the fast path for both stems (``benchmark.run_benchmark``);
5. the same sweeps with and without ``torch.compile``, if at least ``COMPILE_NEEDS_S`` are left.

Without a GPU it says so in one sentence and the command exits with status 2.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import (
    COLAB_EPOCHS,
    COLAB_SECONDS_PER_EPOCH_ESTIMATE,
    Profile,
    auto_profile_name,
    get_profile,
    gpu_summary,
)
from ..errors import DataError, SimclrError
from ..runtime import pick_precision

logger = logging.getLogger(__name__)
BUDGET_S = 8 * 60
PRETRAIN_EPOCHS = 3  # the first epoch warms up (cuDNN autotuning); the others are what a run costs
PRETRAIN_SHARE = 0.45  # of the budget, for loading the data, the short pretraining and its kNN
SWEEP_NEEDS_S = 30
BENCHMARK_NEEDS_S = 60
COMPILE_NEEDS_S = 200  # compiling a training step takes a minute or two and cannot be cut short
FULL_CIFAR10_TRAIN = 45_000  # pretraining images of the colab profile (50,000 less the monitor's 10%)
NO_GPU = ("no GPU found (torch.cuda.is_available() is False): gpu-check measures a CUDA GPU; on Colab choose "
          "Runtime > Change runtime type > T4 GPU.")


class _TimeUp(Exception):
    """Raised from the epoch callback to end the short pretraining early."""


def gpu_check(data: str | None = None, device: str = "cuda", budget_s: float = BUDGET_S) -> dict:
    """Run the stages above on ``device`` within ``budget_s`` seconds; return what they measured."""
    t_start = time.perf_counter()

    def left() -> float:
        return budget_s - (time.perf_counter() - t_start)

    if not torch.cuda.is_available() or torch.device(device).type != "cuda":
        raise SimclrError(NO_GPU)
    dev = torch.device(device)
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    gpu = gpu_summary(index)
    precision = pick_precision(dev)
    result = {
        "gpu": {"name": gpu["name"], "capability": ".".join(map(str, gpu["capability"])),
                "memory_gb": round(gpu["memory_bytes"] / 1e9, 1)},
        "auto_profile": auto_profile_name()[0], "precision": precision.name, "loss_scaling": precision.scaler,
        "torch": str(torch.__version__), "budget_s": budget_s,
        "estimate": {"colab_seconds_per_epoch_on_a_t4": COLAB_SECONDS_PER_EPOCH_ESTIMATE,
                     "colab_minutes_on_a_t4": round(COLAB_EPOCHS * COLAB_SECONDS_PER_EPOCH_ESTIMATE / 60, 1),
                     "note": "estimated from FLOPs (config.py), not measured on a GPU"},
        "skipped": [], "errors": [],
    }
    logger.info(f"gpu-check on {gpu['name']} (capability {result['gpu']['capability']}, "
                f"{result['gpu']['memory_gb']} GB), {precision.name}; at most {budget_s / 60:.0f} min")

    def stage(name: str, needs_s: float, run: Callable[[], object]):
        if left() < needs_s:
            result["skipped"].append(f"{name} ({left():.0f} s left, needs about {needs_s:.0f} s)")
            logger.info(f"skipped: {name}")
            return None
        logger.info(f"--- {name} ({left():.0f} s left)")
        try:
            return run()
        except Exception as exc:  # noqa: BLE001  (one stage failing must not hide what the others measure)
            detail = str(exc).splitlines()[0] if str(exc) else ""
            result["errors"].append(f"{name}: {type(exc).__name__}: {detail}")
            logger.info(f"failed: {name}: {type(exc).__name__}: {detail}")
            return None

    images = {}

    def pretraining():
        res, train = short_pretraining(data, dev, budget_s * PRETRAIN_SHARE)
        images["train"] = train
        return res

    result["pretraining"] = stage("short colab pretraining and kNN", 60, pretraining)
    if "train" not in images:  # the pretraining stage did not get as far as its data
        from ..data import load_bundled

        images["train"] = load_bundled().train.images
    train = images["train"]

    from .benchmark import run_benchmark, training_sweep

    result["sweep"] = {}
    for stem in ("cifar", "imagenet"):
        result["sweep"][stem] = stage(f"training throughput, {stem} stem", SWEEP_NEEDS_S, lambda stem=stem: (
            training_sweep(train, dev, (512,), stem, steps=10, repeats=3, compile=False)))
    result["benchmark"] = {}
    for stem in ("cifar", "imagenet"):
        result["benchmark"][stem] = stage(f"blog pipeline vs fast path, {stem} stem", BENCHMARK_NEEDS_S,
                                          lambda stem=stem: run_benchmark(
                                              train, dev, 256, stem, steps=5, repeats=3,
                                              augment_batches=8, augment_repeats=3))
    result["sweep_compiled"] = {}
    for stem in ("cifar", "imagenet"):
        result["sweep_compiled"][stem] = stage(f"torch.compile, {stem} stem", COMPILE_NEEDS_S, lambda stem=stem: (
            training_sweep(train, dev, (512,), stem, steps=10, repeats=3, compile=True)))
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    return result


def short_pretraining(data: str | None, device: torch.device, budget_s: float,
                      profile: Profile | None = None) -> tuple[dict, torch.Tensor]:
    """A few epochs of the ``colab`` profile (or ``profile``), stopped early when ``budget_s`` runs
    out, and kNN top-1 of the checkpoint; returns the figures and the training images (uint8, CPU)."""
    from ..checkpoints import RunRecord
    from ..runs import load_pretrain_data, run_evaluate, run_pretrain

    t0 = time.perf_counter()
    profile = profile or get_profile("colab").with_overrides(epochs=PRETRAIN_EPOCHS)
    try:
        loaded = load_pretrain_data(profile, data)
    except DataError as exc:
        logger.info(f"{exc} gpu-check goes on with the bundled subset (the timings then do not scale to CIFAR-10).")
        loaded = load_pretrain_data(profile, "bundled")
    n_train = len(loaded.train)
    walls = [time.perf_counter()]

    def on_epoch_end(row: dict) -> None:
        walls.append(time.perf_counter())
        epoch_wall = walls[-1] - walls[-2]
        if row["epoch"] < profile.epochs and time.perf_counter() - t0 + 1.5 * epoch_wall > budget_s * 0.75:
            raise _TimeUp  # keep a quarter of the stage for the kNN evaluation

    with tempfile.TemporaryDirectory(prefix="simclr-gpu-check-") as tmp:
        stopped_early = False
        try:
            run_pretrain(profile, loaded, Path(tmp), device=str(device), progress=False,
                         on_epoch_end=on_epoch_end)
        except _TimeUp:
            stopped_early = True
            logger.info("short pretraining stopped early to stay within the time")
        checkpoint = Path(tmp) / "last.pt"
        metrics = RunRecord.load(checkpoint).metrics
        knn = run_evaluate(checkpoint, method="knn", device=str(device), progress=False)
    train_s = [m["seconds"] for m in metrics]
    wall_s = [b - a for a, b in zip(walls, walls[1:])]
    steady = train_s[1:] or train_s  # the first epoch includes the warm-up
    steady_wall = wall_s[1:] or wall_s
    full = n_train == FULL_CIFAR10_TRAIN
    res = {
        "data": loaded.spec.describe(), "train_images": n_train, "epochs": len(metrics),
        "stopped_early": stopped_early, "batch_size": profile.batch_size, "stem": profile.stem,
        "train_seconds_per_epoch": [round(s, 2) for s in train_s],
        "wall_seconds_per_epoch": [round(s, 2) for s in wall_s],  # training, monitor (last epoch), checkpoint
        "images_per_s": metrics[-1]["images_per_s"] if metrics else None,
        "loss": [m["loss"] for m in metrics], "monitor_knn_top1": metrics[-1].get("knn_top1") if metrics else None,
        "knn_top1": knn["top1"], "knn_seconds": knn["seconds"], "knn_test_images": knn["n_test"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if full and steady_wall:
        per_epoch = statistics.median(steady_wall)
        res["projected_colab_minutes_on_this_gpu"] = round(COLAB_EPOCHS * per_epoch / 60, 1)
        logger.info(f"the full colab profile ({COLAB_EPOCHS} epochs) would take about "
                    f"{res['projected_colab_minutes_on_this_gpu']} min on this GPU "
                    f"(estimate for a T4: {COLAB_EPOCHS * COLAB_SECONDS_PER_EPOCH_ESTIMATE / 60:.0f} min)")
    else:
        res["projected_colab_minutes_on_this_gpu"] = None
        res["projection_note"] = "needs full CIFAR-10 (pass --data PATH or allow the download)"
    res["steady_train_seconds_per_epoch"] = round(statistics.median(steady), 2) if steady else None
    return res, loaded.train.images
