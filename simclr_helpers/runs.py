"""Whole runs as the command line starts them: pick the data, pretrain, evaluate, save results.

Kept apart from ``train`` and ``evaluate`` (which hold the ideas) so that the
notebooks and the CLI share the same plumbing: notebooks 04-06 open the run that
``choose_run`` picks (notebook 03's, a folder named by ``$SIMCLR_RUN``, or the
reference weights) through one :class:`Run`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import torch

from .checkpoints import REFERENCE, RunRecord, is_reference, read_reference
from .config import ENV_RUN, PROFILES, Profile, default_checkpoint_dir, default_data_root
from .data import CIFARSplits, DataSpec, cached_cifar10, load_cifar10, load_unlabelled_folder
from .errors import CheckpointError, DataError, SimclrError, TrainingError

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


# The settings a run is started with, as the command line names them: ``--resume`` continues a run with these.
RESUME_FLAGS = {"name": "--profile", "epochs": "--epochs", "batch_size": "--batch-size", "stem": "--stem",
                "lr_per_256": "--lr-per-256", "train_limit": "--train-limit"}


def resumed_settings(checkpoint: str | Path, **given) -> tuple[Profile, DataSpec]:
    """The profile and data a run continues with under ``--resume``: those its record holds (epochs, schedule,
    batch, stem, training images), so a resumed run ends as the uninterrupted run would have.

    ``given``: the values of ``RESUME_FLAGS`` the command line was given (None where not). One that contradicts
    the record is one sentence (:class:`TrainingError`); only ``epochs`` may differ, and only upwards: the run
    is then extended, its warm-up + cosine schedule stretched to end at the new last epoch.
    """
    record = RunRecord.load(checkpoint)
    recorded = record.profile

    def shown(key, value):
        return f"{RESUME_FLAGS[key]} {value}" if value is not None else f"no {RESUME_FLAGS[key]}"

    clashes = [key for key, value in given.items() if value is not None and value != getattr(recorded, key)
               and not (key == "epochs" and value > recorded.epochs)]
    if clashes:
        was = ", ".join(shown(key, getattr(recorded, key)) for key in clashes)
        now = ", ".join(shown(key, given[key]) for key in clashes)
        shorter = " (a run can be extended, not cut short)" if "epochs" in clashes else ""
        raise TrainingError(f"{checkpoint} was started with {was}, not {now}, and a run is resumed as it was "
                            f"started{shorter}; leave out {' and '.join(RESUME_FLAGS[k] for k in clashes)}, or train "
                            "a new run into another folder with --out.")
    return recorded.with_overrides(epochs=given.get("epochs")), record.data


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
    from .models import random_init_backbone
    from .runtime import pick_device
    from .train import load_simclr

    log = log or (lambda s: None)
    model, record = load_simclr(checkpoint, device="cpu")
    p = record.profile
    _, splits = run_splits(record, data)
    backbone = random_init_backbone(p.stem, p.seed) if random_init else model.backbone
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
        folder = default_checkpoint_dir() / REFERENCE if is_reference(checkpoint) else Path(checkpoint).parent
        path = Path(out) if out else folder / name  # never into the shipped reference weights
        save_classifier(path, backbone.cpu(), res["fc"], p.stem, splits.train.classes,
                        record.normalize, {k: result[k] for k in ("checkpoint", "backbone", "epochs", "top1")})
        result["classifier"] = str(path)
    log(f"{method} top-1 ({result['backbone']}): {result['top1']:.1%}")
    return result


RUN_CHOICES = ("auto", "reference", "mine")  # the RUN field of notebooks 04-06


@dataclass(frozen=True)
class Run:
    """The run notebooks 04-06 read: a run folder (``last.pt``, ``classifier.pt``) or the reference weights.

    ``choose_run`` picks it and says why. ``open`` gives its model and record, ``data`` the labelled
    images to evaluate it on, ``classifier`` its linear probe. A run chosen by name (``$SIMCLR_RUN``
    or the reference) is only ever read: nothing is trained into it, and a named folder without
    ``last.pt`` is one sentence. Only the profile's own folder (notebook 03's run) is trained when missing.
    """

    folder: Path | None  # None: the reference weights shipped with the package
    profile: Profile  # the session's profile: what notebook 03 trains, and what is trained if "mine" is missing
    why: str  # why this run, for the setup cell's line
    named: bool = True  # chosen by name: read only

    @property
    def is_reference(self) -> bool:
        return self.folder is None

    @property
    def name(self) -> str:
        return REFERENCE if self.folder is None else self.folder.name

    @property
    def classifier_out(self) -> Path:
        """Where notebook 04 keeps the probe it trains: beside ``last.pt``; for the reference, in
        ``checkpoints/reference/`` (the shipped file is never written)."""
        return (default_checkpoint_dir() / REFERENCE if self.folder is None else self.folder) / "classifier.pt"

    @property
    def checkpoint(self) -> Path | str:
        """What ``load_simclr`` and ``evaluate --checkpoint`` take: ``last.pt``, or ``reference``."""
        return REFERENCE if self.folder is None else self.folder / "last.pt"

    def exists(self) -> bool:
        return self.folder is None or (self.folder / "last.pt").exists()

    def check(self) -> None:
        """A run named by ``$SIMCLR_RUN`` must hold ``last.pt`` (one sentence, and nothing written), and the
        reference weights must be intact (``checkpoints.read_reference``)."""
        if self.folder is None:
            read_reference()
        elif self.named and not self.exists():
            raise CheckpointError(f"{self.folder.name}: ${ENV_RUN} names this run folder but it holds no last.pt; "
                                  f"point ${ENV_RUN} at a folder written by `pretrain` or `reproduce`, or at "
                                  "`reference`, or unset it.")

    def pretrained(self, log: Log | None = print, device: str | None = None) -> Path | str:
        """The run's checkpoint; the profile's own folder without one gets a small pretraining run now (said)."""
        self.check()
        if self.exists():
            return self.checkpoint
        (log or print)(f"no {self.profile.name}/last.pt yet (notebook 03 has not been run with the "
                       f"{self.profile.name} profile): training one now")
        data = load_pretrain_data(self.profile, log=log)
        return run_pretrain(self.profile, data, self.folder, log=log, device=device).checkpoint

    def open(self, device=None, log: Log | None = print):
        """The SimCLR model (eval mode) and the run's record."""
        from .train import load_simclr

        return load_simclr(self.pretrained(log, device), device=device)

    def record(self, log: Log | None = print, device: str | None = None) -> RunRecord:
        return RunRecord.load(self.pretrained(log, device))

    def data(self, record: RunRecord | None = None, log: Log | None = print) -> CIFARSplits:
        """The labelled images the run was pretrained on: its training split for probes and kNN banks, its test
        split for the final figures. The reference's CIFAR-10 comes from ``$SIMCLR_DATA`` or the download cache;
        where neither can be had (no network), the bundled subset stands in, and a line says so."""
        record = record or self.record(log)
        if not self.is_reference:
            return run_splits(record)[1]
        try:
            return load_cifar10(record.data)
        except DataError as exc:
            (log or print)(f"data: {exc} Meanwhile the bundled subset stands in (3,000 training and 1,000 test "
                           "images), so the figures differ from the stored ones.")
            return load_cifar10("bundled")

    def classifier(self, log: Log | None = print, device: str | None = None) -> Path | str:
        """The run's linear probe: ``reference``'s own, or notebook 04's ``classifier.pt``, trained now if missing."""
        if self.folder is None:
            self.check()
            return REFERENCE
        path = self.folder / "classifier.pt"
        if path.exists():
            return path
        simclr = self.pretrained(log, device)
        (log or print)(f"no {self.folder.name}/{path.name} yet (notebook 04 has not been run with this run): "
                       "training the linear probe now")
        return Path(run_evaluate(simclr, method="linear", out=path, device=device, log=log, progress=False)
                    ["classifier"])

    def classifier_argument(self) -> str:
        """The run's probe as ``predict --checkpoint`` takes it: ``reference``, or a path relative to here."""
        path = self.classifier()
        return path if is_reference(path) else os.path.relpath(path)

    def describe(self, relative: Callable[[Path], str] = str) -> str:
        """One line for the setup cell: which run, what it is, and why it was chosen."""
        if not self.exists():
            return f"run: {relative(self.folder)}, not trained yet ({self.why}); notebook 04 trains it"
        record = RunRecord.load(self.checkpoint)
        p = record.profile
        what = (f"{record.epoch} epochs of the {p.name} profile, {p.stem} stem, batch {p.batch_size}, "
                f"{record.num_train:,} images of {record.data.describe()}")
        if self.folder is None:
            return f"run: reference, the weights shipped with the course ({what}); {self.why}"
        return f"run: {relative(self.folder)} ({what}); {self.why}"


def reference_data() -> DataSpec:
    """Where the reference weights' CIFAR-10 comes from, without reading or downloading anything:
    ``$SIMCLR_DATA``, else the download cache."""
    env = default_data_root()
    return DataSpec.resolve(env) if env else cached_cifar10(fetch=False, log=None)


def choose_run(profile: Profile, choice: str = "auto") -> Run:
    """The run for notebooks 04-06: ``reference`` (the shipped weights), ``mine`` (notebook 03's run of
    ``profile``), or ``auto``: ``$SIMCLR_RUN`` if set (a run folder, or ``reference``), else notebook 03's
    run if it exists, else the reference weights."""
    if choice not in RUN_CHOICES:
        raise SimclrError(f'RUN = "{choice}" is not one of the choices; set RUN in the setup cell to '
                          + ", ".join(f'"{c}"' for c in RUN_CHOICES) + ".")
    mine = default_checkpoint_dir() / profile.name
    env = os.environ.get(ENV_RUN)
    if choice == "auto" and env:
        if is_reference(env):
            return Run(None, profile, f"named by ${ENV_RUN}")
        return Run(Path(env).expanduser().resolve(), profile, f"named by ${ENV_RUN}")
    if choice == "reference":
        return Run(None, profile, 'RUN = "reference"')
    if choice == "mine":
        return Run(mine, profile, f'RUN = "mine": notebook 03\'s run of the {profile.name} profile', named=False)
    if (mine / "last.pt").exists():
        return Run(mine, profile, f"notebook 03's run of the {profile.name} profile (RUN = \"auto\")", named=False)
    return Run(None, profile, f"notebook 03 has not been run with the {profile.name} profile (RUN = \"auto\"; "
                              "\"mine\" trains that run instead)")


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
    from .models import random_init_backbone
    from .results import hardware
    from .runtime import pick_device
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
    backbones = {"simclr": freeze(model.backbone), "random_init": freeze(random_init_backbone(p.stem, p.seed).to(dev))}
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
                     "peak_lr": p.peak_lr},
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
    if (out_dir / "last.pt").exists():  # the run it resumes must be the one the arguments describe
        default = PROFILES[profile.name]
        resumed_settings(out_dir / "last.pt", **{key: getattr(profile, key) for key in ("stem", "epochs", "lr_per_256")
                                                 if getattr(profile, key) != getattr(default, key)})
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


def reference_precision(run_dir: str | Path, reference: str | Path, sha256: str, data: str | Path | None,
                        device: str | None = None, progress: bool = True) -> dict:
    """What storing the reference weights in fp16 costs: kNN and linear-probe top-1 on the test split with the
    run's fp32 weights and with the fp16 file, each pair compared on the same test images (``stats.paired``).
    ``export-reference --data`` prints it; the README quotes it."""
    from .checkpoints import ClassifierRecord, reference_payload
    from .evaluate import extract_features, knn_classify
    from .predict import classifier_from_record
    from .runtime import pick_device
    from .stats import paired

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
