"""Whole runs as the command line starts them: pick the data, pretrain, evaluate, save results.

Kept apart from ``train`` and ``evaluate`` (which hold the ideas) so that the
notebooks and the CLI share the same plumbing: notebooks 03-06 call
``load_or_pretrain`` to reuse notebook 03's checkpoint or train a small one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .config import Profile, default_checkpoint_dir, default_data_root
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
    """Training images (class-balanced ``train_limit``), kNN-monitor split and the data spec."""
    log = log or (lambda s: None)
    spec = resolve_data(profile, data)
    t0 = time.perf_counter()
    root = Path(spec).expanduser()
    labelled = (spec == "bundled" or download or (root / "train").is_dir()
                or (root / "cifar-10-batches-py").is_dir() or not root.is_dir())
    if labelled:
        labelled_train = load_cifar10(spec, download=download).train.balanced_subset(profile.train_limit,
                                                                                     profile.seed)
        # The monitor's queries are held out of pretraining too: a network that has seen
        # an image (even unlabelled) finds its twin in the bank, and the monitor flatters.
        train, held = labelled_train.split(MONITOR_FRACTION, seed=profile.seed)
        monitor = (train.balanced_subset(MONITOR_BANK, profile.seed), held)
    else:
        train, monitor = load_unlabelled_folder(root), None
    log(f"data: {train.source}, {len(train)} training images ({time.perf_counter() - t0:.1f} s to load)")
    return {"train": train, "monitor": monitor, "spec": spec}


def run_pretrain(profile: Profile, data: dict, out: str | Path | None = None, log: Log | None = print,
                 **kwargs):
    from .train import pretrain

    out_dir = Path(out) if out else default_checkpoint_dir() / profile.name
    profile = profile.with_overrides(extra={**profile.extra, "data": data["spec"]})
    return pretrain(profile, data["train"], out_dir, monitor=data["monitor"], log=log, **kwargs)


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
    spec = str(data) if data else settings.get("extra", {}).get("data", "bundled")
    if spec != "bundled" and not Path(spec).expanduser().exists():
        raise DataError(f"{spec}: the data this checkpoint was trained on is not there; pass --data PATH.")
    splits = load_cifar10(spec)
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
