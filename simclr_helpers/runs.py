"""Whole runs as the command line starts them: pick the data, pretrain, evaluate, save results.

Kept apart from ``train`` and ``evaluate`` (which hold the ideas) so that the
notebooks and the CLI share the same plumbing: notebooks 03-06 call
``load_or_pretrain`` to reuse notebook 03's checkpoint or train a small one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import torch

from .checkpoints import RunRecord
from .config import ENV_RUN, PROFILES, Profile, default_checkpoint_dir, default_data_root
from .data import DataSpec, cached_cifar10, load_cifar10, load_unlabelled_folder
from .errors import CheckpointError, DataError

Log = Callable[[str], None]
MONITOR_FRACTION = 0.1  # share of the training set held out as kNN-monitor queries
MONITOR_BANK = 10_000  # at most this many training images in the monitor's kNN bank (keeps it to seconds)


def resolve_data(profile: Profile, data: str | Path | DataSpec | None, download: bool = False,
                 fetch: bool = True, log: Log | None = print) -> DataSpec:
    """The data of a run: the argument, else ``$SIMCLR_DATA``, else the profile's default: the bundled
    subset, or CIFAR-10 in the download cache (``data.cached_cifar10``: downloaded there once when
    it is missing, unless ``fetch`` is False; without a network, one sentence on using a local copy)."""
    if data:
        return DataSpec.resolve(data, download)
    env = default_data_root()
    if env is not None:
        return DataSpec.resolve(env, download)
    if profile.data == "bundled":
        return DataSpec("bundled")
    return cached_cifar10(f"the {profile.name} profile needs CIFAR-10", fetch=fetch, log=log)


def load_pretrain_data(profile: Profile, data: str | Path | DataSpec | None = None, download: bool = False,
                       log: Log | None = print) -> dict:
    """Training images (class-balanced ``train_limit``), kNN-monitor split, the data spec, and the
    CIFAR-10 splits they were drawn from (``None`` for an unlabelled folder), so that ``reproduce``
    evaluates without reading the images a second time."""
    log = log or (lambda s: None)
    spec = resolve_data(profile, data, download, log=log)
    t0 = time.perf_counter()
    splits = None
    if spec.labelled:
        splits = load_cifar10(spec, download=download)
        labelled_train = splits.train.balanced_subset(profile.train_limit, profile.seed)
        # The monitor's queries are held out of pretraining too: a network that has seen
        # an image (even unlabelled) finds its twin in the bank, and the monitor flatters.
        train, held = labelled_train.split(MONITOR_FRACTION, seed=profile.seed)
        monitor = (train.balanced_subset(MONITOR_BANK, profile.seed), held)
    else:
        train, monitor = load_unlabelled_folder(spec.path), None
    if spec.kind == "torchvision":  # downloaded (or found) now: later loads need no --download
        spec = DataSpec("torchvision", spec.path)
    log(f"data: {train.source}, {len(train)} training images ({time.perf_counter() - t0:.1f} s to load)")
    return {"train": train, "monitor": monitor, "spec": spec, "splits": splits}


def run_pretrain(profile: Profile, data: dict, out: str | Path | None = None, log: Log | None = print,
                 **kwargs):
    """``train.pretrain`` on what ``load_pretrain_data`` returned (its data spec goes into the checkpoint)."""
    from .train import pretrain

    out_dir = Path(out) if out else default_checkpoint_dir() / profile.name
    return pretrain(profile, data["train"], out_dir, data=data["spec"], monitor=data["monitor"], log=log, **kwargs)


def run_splits(record: RunRecord, data: str | Path | DataSpec | None = None, splits=None):
    """The data spec a run was trained on (or ``data``) and its CIFAR-10 splits (loaded unless given)."""
    spec = DataSpec.resolve(data) if data else record.data
    if splits is not None:
        return spec, splits
    if not spec.labelled:
        raise DataError(f"{spec}: this run was pretrained on unlabelled images; pass --data PATH with labelled "
                        "CIFAR-10 to evaluate it.")
    if spec.path is not None and not spec.local_path().exists():
        raise DataError(f"{spec}: the data this checkpoint was trained on is not there; pass --data PATH.")
    return spec, load_cifar10(spec)


def run_evaluate(checkpoint: str | Path, method: str = "knn", random_init: bool = False,
                 data: str | Path | None = None, out: str | Path | None = None, device: str | None = None,
                 log: Log | None = print, progress: bool = True) -> dict:
    """Evaluate a pretraining checkpoint (or a random-init backbone of the same stem) on CIFAR-10.

    The kNN bank / linear-probe training set is the full training split, the queries
    the test split. ``linear`` also writes a classifier checkpoint for ``predict``.
    """
    from .evaluate import evaluate_backbone, save_classifier
    from .models import build_backbone
    from .runtime import pick_device, seed_everything
    from .train import load_simclr

    log = log or (lambda s: None)
    model, record = load_simclr(checkpoint, device="cpu")
    p = record.profile
    _, splits = run_splits(record, data)
    if random_init:
        seed_everything(p.seed)
        backbone = build_backbone(p.stem)
    else:
        backbone = model.backbone
    dev = pick_device(device)
    backbone = backbone.to(dev)
    t0 = time.perf_counter()
    res = evaluate_backbone(backbone, splits.train, splits.test, method, record.normalize, dev,
                            k=p.knn_k, linear_epochs=p.linear_epochs, progress=progress)
    result = {"method": method, "backbone": "random-init" if random_init else "simclr",
              "top1": round(res["top1"], 4), "checkpoint": str(checkpoint), "epochs": record.epoch,
              "stem": p.stem, "profile": p.name, "data": splits.train.source.split("/")[0],
              "n_train": len(splits.train), "n_test": len(splits.test), "seconds": round(time.perf_counter() - t0, 1)}
    if method == "linear":
        result["train_top1"] = round(res["train_top1"], 4)
        name = "classifier_random_init.pt" if random_init else "classifier.pt"
        path = Path(out) if out else Path(checkpoint).with_name(name)
        save_classifier(path, backbone.cpu(), res["fc"], p.stem, splits.train.classes,
                        record.normalize, {k: result[k] for k in ("checkpoint", "backbone", "epochs", "top1")})
        result["classifier"] = str(path)
    log(f"{method} top-1 ({result['backbone']}): {result['top1']:.1%}")
    return result


def run_dir(profile: Profile, checkpoint_dir: str | Path | None = None) -> Path:
    """The folder of the run notebooks 03-06 read and write: ``checkpoint_dir`` if given, else
    ``$SIMCLR_RUN`` (a run folder made by ``pretrain`` or ``reproduce``, such as the long CIFAR-10
    run), else the profile's folder under ``$SIMCLR_CHECKPOINTS`` (default ``checkpoints/<profile>``)."""
    if checkpoint_dir:
        return Path(checkpoint_dir)
    return named_run() or default_checkpoint_dir() / profile.name


def named_run() -> Path | None:
    """``$SIMCLR_RUN`` as a folder, or None when it is not set."""
    value = os.environ.get(ENV_RUN)
    return Path(value).expanduser().resolve() if value else None


def load_or_pretrain(profile: Profile, checkpoint_dir: str | Path | None = None,
                     log: Log | None = print, device: str | None = None) -> Path:
    """The run's checkpoint (``run_dir``) if it exists, else a small pretraining run right now (and say so).

    A folder named by ``$SIMCLR_RUN`` must hold a checkpoint: nothing is trained into it behind the user's back.
    """
    folder = run_dir(profile, checkpoint_dir)
    path = folder / "last.pt"
    if path.exists():
        return path
    if checkpoint_dir is None and named_run() is not None:
        raise CheckpointError(f"{path}: ${ENV_RUN} names this run folder but it holds no last.pt; point ${ENV_RUN} at "
                              "a folder written by `pretrain` or `reproduce`, or unset it to use the profile's run.")
    (log or print)(f"no {profile.name}/{path.name} yet (notebook 03 has not been run with the {profile.name} "
                   "profile): training one now")
    return run_pretrain(profile, load_pretrain_data(profile, log=log), folder, log=log, device=device).checkpoint


def load_or_make_classifier(profile: Profile, checkpoint_dir: str | Path | None = None,
                            log: Log | None = print, device: str | None = None) -> Path:
    """Notebook 04's classifier if it exists, else a linear probe on notebook 03's backbone now."""
    path = run_dir(profile, checkpoint_dir) / "classifier.pt"
    if path.exists():
        return path
    simclr = load_or_pretrain(profile, checkpoint_dir, log=log, device=device)
    (log or print)(f"no {profile.name}/{path.name} yet (notebook 04 has not been run with the {profile.name} "
                   "profile): training the linear probe now")
    return Path(run_evaluate(simclr, method="linear", out=path, device=device, log=log, progress=False)["classifier"])


def run_report(checkpoint: str | Path, data: str | Path | None = None, device: str | None = None,
               fractions=None, supervised: bool = True, probe_epochs: int = 10, log: Log | None = print,
               progress: bool = True, splits=None, supervised_steps: int | None = None) -> dict:
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
    from .benchmark import probe_speed
    from .evaluate import (
        LABEL_FRACTIONS,
        accuracy_from,
        extract_features,
        freeze,
        knn_accuracy,
        label_subset,
        probe_with_labels,
    )
    from .models import build_backbone
    from .results import hardware
    from .runtime import pick_device, seed_everything
    from .supervised import SupervisedRecipe, predict, train_supervised
    from .train import load_simclr

    log = log or (lambda s: None)
    fractions = tuple(fractions or LABEL_FRACTIONS)
    dev = pick_device(device)
    model, record = load_simclr(checkpoint, device=dev)
    p = record.profile
    spec, splits = run_splits(record, data, splits)
    train, test = splits.train, splits.test
    y_train, y_test, n_classes = train.labels.cpu(), test.labels.cpu(), len(train.classes)
    stats = record.normalize
    seed_everything(p.seed)
    backbones = {"simclr": freeze(model.backbone), "random_init": freeze(build_backbone(p.stem).to(dev))}
    feats = {}
    for name, backbone in backbones.items():
        feats[name] = (extract_features(backbone, train, stats, device=dev, progress=progress, desc=f"{name} train"),
                       extract_features(backbone, test, stats, device=dev, progress=progress, desc=f"{name} test"))
    row = {"knn": {}, "linear": {}, "label_efficiency": {}}
    for name, (f_train, f_test) in feats.items():
        row["knn"][name] = round(knn_accuracy(f_train, y_train, f_test, y_test, n_classes, k=p.knn_k).top1, 4)
        log(f"kNN top-1 ({name}): {row['knn'][name]:.1%}")
    for fraction in fractions:
        cell = row["label_efficiency"].setdefault(str(fraction), {})
        for name, (f_train, f_test) in feats.items():
            cell[name] = round(probe_with_labels(f_train, y_train, f_test, y_test, fraction, n_classes,
                                                 p.linear_epochs, p.seed), 4)
        log(f"linear probe, {fraction:.0%} of the labels: SimCLR {cell['simclr']:.1%}, "
            f"random init {cell['random_init']:.1%}")
    full = row["label_efficiency"].get("1.0") or row["label_efficiency"][str(max(fractions))]
    row["linear"] = {"simclr": full["simclr"], "random_init": full["random_init"]}
    # z = g(h): the projection head on the cached backbone features (eval mode: its BatchNorm is frozen too).
    head = model.projection_head.eval()
    with torch.no_grad():
        z_train, z_test = (head(f.to(dev)).float().cpu() for f in feats["simclr"])
    row["linear_z"] = round(probe_with_labels(z_train, y_train, z_test, y_test, 1.0, n_classes, p.linear_epochs,
                                              p.seed), 4)
    log(f"linear probe on z (projection head): {row['linear_z']:.1%} vs h (backbone): {row['linear']['simclr']:.1%}")
    if probe_epochs:
        row["probe_speed"] = probe_speed(model.backbone, train, probe_epochs, stats, dev, progress=progress)
        log(f"linear probe, {probe_epochs} epochs: cached {row['probe_speed']['cached_s']:.1f} s, the blog's way "
            f"{row['probe_speed']['blog_way_s']:.1f} s ({row['probe_speed']['speedup']:.1f}x)")
    steps = supervised_steps or record.steps
    if supervised:
        t0 = time.perf_counter()
        for fraction in fractions:
            idx = label_subset(y_train, fraction, p.seed)
            recipe = SupervisedRecipe(steps=steps, batch_size=p.batch_size, seed=p.seed)
            net = train_supervised(train.subset(idx), p.stem, recipe, dev, stats, progress=progress)
            top1 = accuracy_from(predict(net, test, stats), y_test).top1
            row["label_efficiency"][str(fraction)]["supervised"] = round(top1, 4)
            log(f"supervised from scratch, {fraction:.0%} of the labels ({len(idx)} images, {steps} steps): {top1:.1%}")
        row["supervised_seconds"] = round(time.perf_counter() - t0, 1)
    metrics = record.metrics
    row.update({
        "profile": p.name, "data": spec.describe(), "stem": p.stem,
        "epochs": record.epoch, "batch_size": p.batch_size, "lr_per_256": p.lr_per_256, "hardware": hardware(dev),
        "pretrain_seconds": round(sum(m["seconds"] for m in metrics), 1),
        "monitor_knn": next((m["knn_top1"] for m in reversed(metrics) if m.get("knn_top1") is not None), None),
        "supervised_steps": steps if supervised else None, "pretrain_steps": record.steps,
        "schedule": {"epochs": p.epochs, "warmup_epochs": p.warmup_epochs, "steps_per_epoch": record.steps_per_epoch,
                     "peak_lr": p.lr_per_256 * p.batch_size / 256},
        "metrics": metrics,
        "n_train": len(train), "n_test": len(test),
        "torch": str(torch.__version__).split("+")[0], "lightly": version("lightly"),
        "date": time.strftime("%Y-%m-%d"),
    })
    return row


def run_reproduce(profile: Profile, data: str | Path | None = None, out: str | Path | None = None,
                  device: str | None = None, supervised: bool = True, fractions=None, probe_epochs: int = 10,
                  log: Log | None = print, progress: bool = True, supervised_steps: int | None = None) -> dict:
    """One row of the results table: pretrain (or resume a finished or interrupted run), then ``run_report``."""
    data_info = load_pretrain_data(profile, data, log=log)
    row_id = _row_id(profile, data_info["spec"])
    out_dir = Path(out) if out else default_checkpoint_dir() / row_id
    result = run_pretrain(profile, data_info, out_dir, log=log, resume=True, device=device, progress=progress)
    row = run_report(result.checkpoint, data_info["spec"], device, fractions, supervised, probe_epochs, log, progress,
                     splits=data_info["splits"], supervised_steps=supervised_steps)
    row["id"] = row_id
    command = f"python -m simclr_helpers reproduce --profile {profile.name}"
    if profile.stem != PROFILES[profile.name].stem:
        command += f" --stem {profile.stem}"
    if profile.epochs != PROFILES[profile.name].epochs:
        command += f" --epochs {profile.epochs}"
    if profile.lr_per_256 != PROFILES[profile.name].lr_per_256:
        command += f" --lr-per-256 {profile.lr_per_256:g}"
    if data_info["spec"].kind != "bundled":
        command += " --data CIFAR10_DIR"
    if not supervised:
        command += " --no-supervised"
    elif supervised_steps:
        command += f" --supervised-steps {supervised_steps}"
    if probe_epochs != 10:
        command += f" --probe-epochs {probe_epochs}"
    row["command"] = command + " --record"
    return row


def _row_id(profile: Profile, spec: DataSpec) -> str:
    """``<profile>-<stem>[-<N>ep][-cifar10]``: what sets a row apart from the profile's defaults."""
    epochs = "" if profile.epochs == PROFILES[profile.name].epochs else f"-{profile.epochs}ep"
    return f"{profile.name}-{profile.stem}{epochs}" + ("" if spec.kind == "bundled" else "-cifar10")


def recorded_row(record: RunRecord, path: str | Path | None = None) -> dict | None:
    """The results file's row of this run (same id and epochs), or None: notebook 04 shows a recorded run's
    supervised baselines from it instead of training them again for as long as the README's row did."""
    from .results import RESULTS_FILE, load

    p = record.profile
    same = {"id": _row_id(p, record.data), "epochs": record.epoch, "batch_size": p.batch_size,
            "lr_per_256": p.lr_per_256}
    return next((r for r in load(path or RESULTS_FILE)["rows"] if all(r.get(k) == v for k, v in same.items())), None)
