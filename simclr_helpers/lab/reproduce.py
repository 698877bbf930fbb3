"""One row of the results table, measured: ``reproduce`` pretrains (or resumes) a run and ``run_report``
measures everything the README's tables say about it; ``reference_precision`` measures what storing the
reference weights in fp16 costs (``export-reference --data``).

The learner opens runs through ``runs``; this module only measures them, for the results file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..checkpoints import load_simclr
from ..config import PROFILES, Profile, default_checkpoint_dir
from ..data import DataSpec, load_cifar10
from ..runs import load_pretrain_data, resumed_settings, run_pretrain, run_splits
from .results import stamp

logger = logging.getLogger(__name__)

def run_report(checkpoint: str | Path, data: str | Path | None = None, device: str | None = None,
               fractions=None, supervised: bool = True, probe_epochs: int = 10, progress: bool = True,
               splits=None, supervised_steps: int | None = None) -> dict:
    """Everything the results table says about one pretraining checkpoint, measured now.

    kNN and linear top-1 of the SimCLR backbone and of a random-init backbone of the same
    stem; label efficiency (linear probes on 1%, 10% and 100% of the labels, and, with
    ``supervised``, the same stem trained from scratch on those labels for as many steps
    as the pretraining took, or ``supervised_steps`` when given); the probe on
    projection-head outputs z instead of backbone features h; and the cached-probe speed-up
    over the blog's way (``probe_epochs``). Every accuracy is on the test split; nothing
    here chooses anything by test accuracy. ``splits``: the CIFAR-10 splits if the caller
    has them loaded already.
    """
    from ..evaluate import (
        LABEL_FRACTIONS,
        accuracy_from,
        extract_features,
        freeze,
        knn_accuracy,
        label_subset,
        probe_with_labels,
    )
    from ..models import random_init_backbone
    from ..runtime import pick_device
    from ..supervised import SupervisedRecipe, predict, train_supervised
    from .benchmark import probe_speed

    fractions = tuple(fractions or LABEL_FRACTIONS)
    dev = pick_device(device)
    model, record = load_simclr(checkpoint, device=dev)
    p = record.profile
    spec, splits = run_splits(record, data, splits)
    train, test = splits.train, splits.test
    y_train, y_test, n_classes = train.labels.cpu(), test.labels.cpu(), len(train.classes)
    stats = record.normalize
    backbones = {"simclr": freeze(model.backbone), "random_init": freeze(random_init_backbone(p.stem, p.seed).to(dev))}
    feats = {}
    for name, backbone in backbones.items():
        feats[name] = (extract_features(backbone, train, stats, device=dev, progress=progress, desc=f"{name} train"),
                       extract_features(backbone, test, stats, device=dev, progress=progress, desc=f"{name} test"))
    row = {"knn": {}, "linear": {}, "label_efficiency": {}}
    for name, (f_train, f_test) in feats.items():
        row["knn"][name] = round(knn_accuracy(f_train, y_train, f_test, y_test, n_classes, k=p.knn_k).top1, 4)
        logger.info(f"kNN top-1 ({name}): {row['knn'][name]:.1%}")
    for fraction in fractions:
        cell = row["label_efficiency"].setdefault(str(fraction), {})
        for name, (f_train, f_test) in feats.items():
            cell[name] = round(probe_with_labels(f_train, y_train, f_test, y_test, fraction, n_classes,
                                                 p.linear_epochs, p.seed), 4)
        logger.info(f"linear probe, {fraction:.0%} of the labels: SimCLR {cell['simclr']:.1%}, "
                    f"random init {cell['random_init']:.1%}")
    full = row["label_efficiency"].get("1.0") or row["label_efficiency"][str(max(fractions))]
    row["linear"] = {"simclr": full["simclr"], "random_init": full["random_init"]}
    # z = g(h): the projection head on the cached backbone features (eval mode: its BatchNorm is frozen too).
    head = model.projection_head.eval()
    with torch.no_grad():
        z_train, z_test = (head(f.to(dev)).float().cpu() for f in feats["simclr"])
    row["linear_z"] = round(probe_with_labels(z_train, y_train, z_test, y_test, 1.0, n_classes, p.linear_epochs,
                                              p.seed), 4)
    logger.info(f"linear probe on z (projection head): {row['linear_z']:.1%} vs h (backbone): "
                f"{row['linear']['simclr']:.1%}")
    if probe_epochs:
        row["probe_speed"] = probe_speed(model.backbone, train, probe_epochs, stats, dev, progress=progress)
        logger.info(f"linear probe, {probe_epochs} epochs: cached {row['probe_speed']['cached_s']:.1f} s, the blog's "
                    f"way {row['probe_speed']['blog_way_s']:.1f} s ({row['probe_speed']['speedup']:.1f}x)")
    steps = supervised_steps or record.steps
    if supervised:
        t0 = time.perf_counter()
        for fraction in fractions:
            idx = label_subset(y_train, fraction, p.seed)
            recipe = SupervisedRecipe(steps=steps, batch_size=p.batch_size, seed=p.seed)
            net = train_supervised(train.subset(idx), p.stem, recipe, dev, stats, progress=progress)
            top1 = accuracy_from(predict(net, test, stats), y_test).top1
            row["label_efficiency"][str(fraction)]["supervised"] = round(top1, 4)
            logger.info(f"supervised from scratch, {fraction:.0%} of the labels ({len(idx)} images, {steps} steps): "
                        f"{top1:.1%}")
        row["supervised_seconds"] = round(time.perf_counter() - t0, 1)
    metrics = record.metrics
    row.update({
        "profile": p.name, "data": spec.describe(), "stem": p.stem,
        "epochs": record.epoch, "batch_size": p.batch_size, "lr_per_256": p.lr_per_256,
        "pretrain_seconds": round(sum(m["seconds"] for m in metrics), 1),
        "monitor_knn": next((m["knn_top1"] for m in reversed(metrics) if m.get("knn_top1") is not None), None),
        "supervised_steps": steps if supervised else None, "pretrain_steps": record.steps,
        "schedule": {"epochs": p.epochs, "warmup_epochs": p.warmup_epochs, "steps_per_epoch": record.steps_per_epoch,
                     "peak_lr": p.peak_lr},
        "metrics": metrics,
        "n_train": len(train), "n_test": len(test),
        **stamp(dev),
    })
    return row


def run_reproduce(profile: Profile, data: str | Path | None = None, out: str | Path | None = None,
                  device: str | None = None, supervised: bool = True, fractions=None, probe_epochs: int = 10,
                  progress: bool = True, supervised_steps: int | None = None) -> dict:
    """One row of the results table: pretrain (or resume a finished or interrupted run), then ``run_report``.
    The command line adds the command that made the row (``cli.command_line``)."""
    data_info = load_pretrain_data(profile, data)
    row_id = _row_id(profile, data_info.spec)
    out_dir = Path(out) if out else default_checkpoint_dir() / row_id
    if (out_dir / "last.pt").exists():  # the run it resumes must be the one the arguments describe
        default = PROFILES[profile.name]
        resumed_settings(out_dir / "last.pt", **{key: getattr(profile, key) for key in ("stem", "epochs", "lr_per_256")
                                                 if getattr(profile, key) != getattr(default, key)})
    result = run_pretrain(profile, data_info, out_dir, resume=True, device=device, progress=progress)
    row = run_report(result.checkpoint, data_info.spec, device, fractions, supervised, probe_epochs, progress,
                     splits=data_info.splits, supervised_steps=supervised_steps)
    row["id"] = row_id
    return row


def _row_id(profile: Profile, spec: DataSpec) -> str:
    """``<profile>-<stem>[-<N>ep][-cifar10]``: what sets a row apart from the profile's defaults."""
    epochs = "" if profile.epochs == PROFILES[profile.name].epochs else f"-{profile.epochs}ep"
    return f"{profile.name}-{profile.stem}{epochs}" + ("" if spec.kind == "bundled" else "-cifar10")


def reference_precision(run_dir: str | Path, reference: str | Path, sha256: str, data: str | Path | None,
                        device: str | None = None, progress: bool = True) -> dict:
    """What storing the reference weights in fp16 costs: kNN and linear-probe top-1 on the test split with the
    run's fp32 weights and with the fp16 file, each pair compared on the same test images (``stats.paired``).
    ``export-reference --data`` prints it; the README quotes it."""
    from ..checkpoints import ClassifierRecord, reference_payload
    from ..evaluate import extract_features, knn_classify
    from ..predict import classifier_from_record
    from ..runtime import pick_device
    from ..stats import paired

    run_dir, dev = Path(run_dir), pick_device(device)
    splits = load_cifar10(data)
    versions = {"fp32": ClassifierRecord.load(run_dir / "classifier.pt"),
                "fp16": ClassifierRecord.from_dict(reference_payload("classifier", Path(reference), sha256))}
    correct, top1 = {}, {}
    for name, record in versions.items():
        backbone, fc = classifier_from_record(record, dev).model  # backbone, then the linear layer
        f_train = extract_features(backbone, splits.train, record.normalize, device=dev, progress=progress,
                                   desc=f"{name} train")
        f_test = extract_features(backbone, splits.test, record.normalize, device=dev, progress=progress,
                                  desc=f"{name} test")
        with torch.no_grad():
            linear = fc.cpu()(f_test).argmax(1)
        knn = knn_classify(f_train, splits.train.labels, f_test, len(splits.train.classes), k=200)
        for method, predictions in (("knn", knn), ("linear", linear)):
            correct[(method, name)] = (predictions == splits.test.labels).numpy()
            top1[f"{method}_{name}"] = round(float(correct[(method, name)].mean()), 4)
    return {**top1, "n_test": len(splits.test),
            **{method: str(paired("fp16", correct[(method, "fp16")], "fp32", correct[(method, "fp32")]))
               for method in ("knn", "linear")}}
