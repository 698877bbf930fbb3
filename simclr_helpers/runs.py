"""Whole runs as the command line starts them: pick the data, pretrain, evaluate, save results.

Kept apart from ``train`` and ``evaluate`` (which hold the ideas) so that the
notebooks and the CLI share the same plumbing: notebooks 03-06 call
``load_or_pretrain`` to reuse notebook 03's checkpoint or train a small one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import torch

from .config import PROFILES, Profile, default_checkpoint_dir, default_data_root
from .data import load_cifar10, load_unlabelled_folder
from .errors import DataError

Log = Callable[[str], None]
MONITOR_FRACTION = 0.1  # share of the training set held out as kNN-monitor queries
MONITOR_BANK = 10_000  # at most this many training images in the monitor's kNN bank (keeps it to seconds)


def resolve_data(profile: Profile, data: str | Path | None) -> str:
    """The data spec of a run: the argument, else ``$SIMCLR_DATA``, else the profile's default."""
    if data:
        return str(data)
    env = default_data_root()
    if env is not None:
        return str(env)
    if profile.data == "bundled":
        return "bundled"
    raise DataError(f"the {profile.name} profile needs CIFAR-10: pass --data PATH (an extracted image folder "
                    "or a torchvision root; add --download to fetch it) or set $SIMCLR_DATA.")


def load_pretrain_data(profile: Profile, data: str | Path | None = None, download: bool = False,
                       log: Log | None = print) -> dict:
    """Training images (class-balanced ``train_limit``), kNN-monitor split, the data spec, and the
    CIFAR-10 splits they were drawn from (``None`` for an unlabelled folder), so that ``reproduce``
    evaluates without reading the images a second time."""
    log = log or (lambda s: None)
    spec = resolve_data(profile, data)
    t0 = time.perf_counter()
    root = Path(spec).expanduser()
    labelled = (spec == "bundled" or download or (root / "train").is_dir()
                or (root / "cifar-10-batches-py").is_dir() or not root.is_dir())
    splits = None
    if labelled:
        splits = load_cifar10(spec, download=download)
        labelled_train = splits.train.balanced_subset(profile.train_limit, profile.seed)
        # The monitor's queries are held out of pretraining too: a network that has seen
        # an image (even unlabelled) finds its twin in the bank, and the monitor flatters.
        train, held = labelled_train.split(MONITOR_FRACTION, seed=profile.seed)
        monitor = (train.balanced_subset(MONITOR_BANK, profile.seed), held)
    else:
        train, monitor = load_unlabelled_folder(root), None
    log(f"data: {train.source}, {len(train)} training images ({time.perf_counter() - t0:.1f} s to load)")
    return {"train": train, "monitor": monitor, "spec": spec, "splits": splits}


def run_pretrain(profile: Profile, data: dict, out: str | Path | None = None, log: Log | None = print,
                 **kwargs):
    from .train import pretrain

    out_dir = Path(out) if out else default_checkpoint_dir() / profile.name
    profile = profile.with_overrides(extra={**profile.extra, "data": data["spec"]})
    return pretrain(profile, data["train"], out_dir, monitor=data["monitor"], log=log, **kwargs)


def _checkpoint_data(settings: dict, data: str | Path | None, splits=None):
    """The data spec a checkpoint was trained on (or ``data``) and its CIFAR-10 splits (loaded unless given)."""
    spec = str(data) if data else settings.get("extra", {}).get("data", "bundled")
    if splits is not None:
        return spec, splits
    if spec != "bundled" and not Path(spec).expanduser().exists():
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
    from .train import load_simclr, pick_device, seed_everything

    log = log or (lambda s: None)
    model, state = load_simclr(checkpoint, device="cpu")
    settings = state["settings"]
    spec, splits = _checkpoint_data(settings, data)
    if random_init:
        seed_everything(settings["seed"])
        backbone = build_backbone(settings["stem"])
    else:
        backbone = model.backbone
    dev = pick_device(device)
    backbone = backbone.to(dev)
    t0 = time.perf_counter()
    res = evaluate_backbone(backbone, splits.train, splits.test, method, state["normalize"], dev,
                            k=settings["knn_k"], linear_epochs=settings["linear_epochs"], progress=progress)
    result = {"method": method, "backbone": "random-init" if random_init else "simclr",
              "top1": round(res["top1"], 4), "checkpoint": str(checkpoint), "epochs": int(state["epoch"]),
              "stem": settings["stem"], "profile": settings["name"], "data": splits.train.source.split("/")[0],
              "n_train": len(splits.train), "n_test": len(splits.test), "seconds": round(time.perf_counter() - t0, 1)}
    if method == "linear":
        result["train_top1"] = round(res["train_top1"], 4)
        name = "classifier_random_init.pt" if random_init else "classifier.pt"
        path = Path(out) if out else Path(checkpoint).with_name(name)
        save_classifier(path, backbone.cpu(), res["fc"], settings["stem"], splits.train.classes,
                        state["normalize"], {k: result[k] for k in ("checkpoint", "backbone", "epochs", "top1")})
        result["classifier"] = str(path)
    log(f"{method} top-1 ({result['backbone']}): {result['top1']:.1%}")
    return result


def _profile_dir(profile: Profile, checkpoint_dir: str | Path | None) -> Path:
    return Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir() / profile.name


def load_or_pretrain(profile: Profile, checkpoint_dir: str | Path | None = None,
                     log: Log | None = print, device: str | None = None) -> Path:
    """Notebook 03's checkpoint if it exists, else a small pretraining run right now (and say so)."""
    path = _profile_dir(profile, checkpoint_dir) / "last.pt"
    if path.exists():
        return path
    (log or print)(f"no {profile.name}/{path.name} yet (notebook 03 has not been run with the {profile.name} "
                   "profile): training one now")
    return run_pretrain(profile, load_pretrain_data(profile, log=log), path.parent, log=log, device=device).checkpoint


def load_or_make_classifier(profile: Profile, checkpoint_dir: str | Path | None = None,
                            log: Log | None = print, device: str | None = None) -> Path:
    """Notebook 04's classifier if it exists, else a linear probe on notebook 03's backbone now."""
    path = _profile_dir(profile, checkpoint_dir) / "classifier.pt"
    if path.exists():
        return path
    (log or print)(f"no {profile.name}/{path.name} yet (notebook 04 has not been run with the {profile.name} "
                   "profile): training the linear probe now")
    simclr = load_or_pretrain(profile, path.parent, log=log, device=device)
    return Path(run_evaluate(simclr, method="linear", out=path, device=device, log=log, progress=False)["classifier"])


def run_report(checkpoint: str | Path, data: str | Path | None = None, device: str | None = None,
               fractions=None, supervised: bool = True, probe_epochs: int = 10, log: Log | None = print,
               progress: bool = True, splits=None) -> dict:
    """Everything the results table says about one pretraining checkpoint, measured now.

    kNN and linear top-1 of the SimCLR backbone and of a random-init backbone of the same
    stem; label efficiency (linear probes on 1%, 10% and 100% of the labels, and, with
    ``supervised``, the same stem trained from scratch on those labels for as many steps
    as the pretraining took); the probe on projection-head outputs z instead of backbone
    features h; and the cached-probe speed-up over the seed's way (``probe_epochs``).
    Every accuracy is on the test split; nothing here chooses anything by test accuracy.
    ``splits``: the CIFAR-10 splits if the caller has them loaded already.
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
    from .results import describe_data, hardware
    from .supervised import SupervisedRecipe, predict, train_supervised
    from .train import load_simclr, pick_device, seed_everything

    log = log or (lambda s: None)
    fractions = tuple(fractions or LABEL_FRACTIONS)
    dev = pick_device(device)
    model, state = load_simclr(checkpoint, device=dev)
    settings = state["settings"]
    spec, splits = _checkpoint_data(settings, data, splits)
    train, test = splits.train, splits.test
    y_train, y_test, n_classes = train.labels.cpu(), test.labels.cpu(), len(train.classes)
    stats, epochs_probe = state["normalize"], settings["linear_epochs"]
    seed_everything(settings["seed"])
    backbones = {"simclr": freeze(model.backbone), "random_init": freeze(build_backbone(settings["stem"]).to(dev))}
    feats = {}
    for name, backbone in backbones.items():
        feats[name] = (extract_features(backbone, train, stats, device=dev, progress=progress, desc=f"{name} train"),
                       extract_features(backbone, test, stats, device=dev, progress=progress, desc=f"{name} test"))
    row = {"knn": {}, "linear": {}, "label_efficiency": {}}
    for name, (f_train, f_test) in feats.items():
        row["knn"][name] = round(knn_accuracy(f_train, y_train, f_test, y_test, n_classes, k=settings["knn_k"]).top1, 4)
        log(f"kNN top-1 ({name}): {row['knn'][name]:.1%}")
    for fraction in fractions:
        cell = row["label_efficiency"].setdefault(str(fraction), {})
        for name, (f_train, f_test) in feats.items():
            cell[name] = round(probe_with_labels(f_train, y_train, f_test, y_test, fraction, n_classes,
                                                 epochs_probe, settings["seed"]), 4)
        log(f"linear probe, {fraction:.0%} of the labels: SimCLR {cell['simclr']:.1%}, "
            f"random init {cell['random_init']:.1%}")
    full = row["label_efficiency"].get("1.0") or row["label_efficiency"][str(max(fractions))]
    row["linear"] = {"simclr": full["simclr"], "random_init": full["random_init"]}
    # z = g(h): the projection head on the cached backbone features (eval mode: its BatchNorm is frozen too).
    head = model.projection_head.eval()
    with torch.no_grad():
        z_train, z_test = (head(f.to(dev)).float().cpu() for f in feats["simclr"])
    row["linear_z"] = round(probe_with_labels(z_train, y_train, z_test, y_test, 1.0, n_classes, epochs_probe,
                                              settings["seed"]), 4)
    log(f"linear probe on z (projection head): {row['linear_z']:.1%} vs h (backbone): {row['linear']['simclr']:.1%}")
    if probe_epochs:
        row["probe_speed"] = probe_speed(model.backbone, train, probe_epochs, stats, dev, progress=progress)
        log(f"linear probe, {probe_epochs} epochs: cached {row['probe_speed']['cached_s']:.1f} s, the seed's way "
            f"{row['probe_speed']['seed_way_s']:.1f} s ({row['probe_speed']['speedup']:.1f}x)")
    steps = int(state["epoch"]) * (int(state["num_train"]) // settings["batch_size"])
    if supervised:
        t0 = time.perf_counter()
        for fraction in fractions:
            idx = label_subset(y_train, fraction, settings["seed"])
            recipe = SupervisedRecipe(steps=steps, batch_size=settings["batch_size"], seed=settings["seed"])
            net = train_supervised(train.subset(idx), settings["stem"], recipe, dev, stats, progress=progress)
            top1 = accuracy_from(predict(net, test, stats), y_test).top1
            row["label_efficiency"][str(fraction)]["supervised"] = round(top1, 4)
            log(f"supervised from scratch, {fraction:.0%} of the labels ({len(idx)} images, {steps} steps): {top1:.1%}")
        row["supervised_seconds"] = round(time.perf_counter() - t0, 1)
    metrics = state["metrics"]
    row.update({
        "profile": settings["name"], "data": describe_data(spec), "stem": settings["stem"],
        "epochs": int(state["epoch"]), "batch_size": settings["batch_size"], "hardware": hardware(dev),
        "pretrain_seconds": round(sum(m["seconds"] for m in metrics), 1),
        "monitor_knn": next((m["knn_top1"] for m in reversed(metrics) if m.get("knn_top1") is not None), None),
        "supervised_steps": steps if supervised else None, "n_train": len(train), "n_test": len(test),
        "torch": str(torch.__version__).split("+")[0], "lightly": version("lightly"),
        "date": time.strftime("%Y-%m-%d"),
    })
    return row


def run_reproduce(profile: Profile, data: str | Path | None = None, out: str | Path | None = None,
                  device: str | None = None, supervised: bool = True, fractions=None, probe_epochs: int = 10,
                  log: Log | None = print, progress: bool = True) -> dict:
    """One row of the results table: pretrain (or resume a finished or interrupted run), then ``run_report``."""
    data_info = load_pretrain_data(profile, data, log=log)
    row_id = _row_id(profile, data_info["spec"])
    out_dir = Path(out) if out else default_checkpoint_dir() / row_id
    result = run_pretrain(profile, data_info, out_dir, log=log, resume=True, device=device, progress=progress)
    row = run_report(result.checkpoint, data_info["spec"], device, fractions, supervised, probe_epochs, log, progress,
                     splits=data_info["splits"])
    row["id"] = row_id
    command = f"python -m simclr_helpers reproduce --profile {profile.name}"
    if profile.stem != PROFILES[profile.name].stem:
        command += f" --stem {profile.stem}"
    if profile.epochs != PROFILES[profile.name].epochs:
        command += f" --epochs {profile.epochs}"
    if data_info["spec"] != "bundled":
        command += " --data CIFAR10_DIR"
    if not supervised:
        command += " --no-supervised"
    if probe_epochs != 10:
        command += f" --probe-epochs {probe_epochs}"
    row["command"] = command + " --record"
    return row


def _row_id(profile: Profile, spec: str) -> str:
    """``<profile>-<stem>[-<N>ep][-cifar10]``: what sets a row apart from the profile's defaults."""
    epochs = "" if profile.epochs == PROFILES[profile.name].epochs else f"-{profile.epochs}ep"
    return f"{profile.name}-{profile.stem}{epochs}" + ("" if spec == "bundled" else "-cifar10")
