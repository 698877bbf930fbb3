"""Whole runs as the command line starts them: pick the data, pretrain, evaluate.

Kept apart from ``train`` and ``evaluate`` (which hold the ideas) so that the
notebooks and the CLI share the same plumbing (measuring a run for the results table is the lab's:
``lab.reproduce``): notebooks 04-06 open the run that
``choose_run`` picks (notebook 03's, a folder named by ``$SIMCLR_RUN``, or the
reference weights) through one :class:`Run`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .checkpoints import REFERENCE, RunRecord, is_reference, load_simclr, read_reference
from .config import ENV_RUN, Profile, default_checkpoint_dir, default_data_root
from .data import CIFARSplits, DataSpec, ImageTensors, cached_cifar10, load_cifar10, load_unlabelled_folder
from .errors import CheckpointError, DataError, SimclrError, TrainingError

logger = logging.getLogger(__name__)
MONITOR_FRACTION = 0.1  # share of the training set held out as kNN-monitor queries
MONITOR_BANK = 10_000  # at most this many training images in the monitor's kNN bank (keeps it to seconds)


def resolve_data(profile: Profile, data: str | Path | DataSpec | None, download: bool = False,
                 fetch: bool = True) -> DataSpec:
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
    return cached_cifar10(f"the {profile.name} profile needs CIFAR-10", fetch=fetch)


@dataclass(frozen=True)
class PretrainData:
    """What pretraining reads: its training images, the kNN monitor's (bank, held-out queries), where they came
    from, and the CIFAR-10 splits they were drawn from (``None`` for an unlabelled folder), so that
    ``reproduce`` evaluates without reading the images a second time."""

    train: ImageTensors
    monitor: tuple[ImageTensors, ImageTensors] | None
    spec: DataSpec
    splits: CIFARSplits | None


def load_pretrain_data(profile: Profile, data: str | Path | DataSpec | None = None,
                       download: bool = False) -> PretrainData:
    """Training images (class-balanced ``train_limit``) and the kNN monitor's split: a :class:`PretrainData`."""
    spec = resolve_data(profile, data, download)
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
    logger.info(f"data: {train.source}, {len(train)} training images ({time.perf_counter() - t0:.1f} s to load)")
    return PretrainData(train=train, monitor=monitor, spec=spec, splits=splits)


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


def run_pretrain(profile: Profile, data: dict, out: str | Path | None = None, **kwargs):
    """``train.pretrain`` on what ``load_pretrain_data`` returned (its data spec goes into the checkpoint)."""
    from .train import pretrain

    out_dir = Path(out) if out else default_checkpoint_dir() / profile.name
    return pretrain(profile, data.train, out_dir, data=data.spec, monitor=data.monitor, **kwargs)


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
                 progress: bool = True) -> dict:
    """Evaluate a pretraining checkpoint (or a random-init backbone of the same stem) on CIFAR-10.

    The kNN bank / linear-probe training set is the full training split, the queries
    the test split. ``linear`` also writes a classifier checkpoint for ``predict``.
    """
    from .evaluate import evaluate_backbone, save_classifier
    from .models import random_init_backbone
    from .runtime import pick_device

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
              "top1": round(res.top1, 4), "checkpoint": str(checkpoint), "epochs": record.epoch,
              "stem": p.stem, "profile": p.name, "data": splits.train.source.split("/")[0],
              "n_train": len(splits.train), "n_test": len(splits.test), "seconds": round(time.perf_counter() - t0, 1)}
    if method == "linear":
        result["train_top1"] = round(res.train_top1, 4)
        name = "classifier_random_init.pt" if random_init else "classifier.pt"
        folder = default_checkpoint_dir() / REFERENCE if is_reference(checkpoint) else Path(checkpoint).parent
        path = Path(out) if out else folder / name  # never into the shipped reference weights
        save_classifier(path, backbone, res.fc, p.stem, splits.train.classes,
                        record.normalize, {k: result[k] for k in ("checkpoint", "backbone", "epochs", "top1")})
        result["classifier"] = str(path)
    logger.info(f"{method} top-1 ({result['backbone']}): {result['top1']:.1%}")
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

    def pretrained(self, device: str | None = None) -> Path | str:
        """The run's checkpoint; the profile's own folder without one gets a small pretraining run now (said)."""
        self.check()
        if self.exists():
            return self.checkpoint
        logger.info(f"no {self.profile.name}/last.pt yet (notebook 03 has not been run with the "
                    f"{self.profile.name} profile): training one now")
        data = load_pretrain_data(self.profile)
        return run_pretrain(self.profile, data, self.folder, device=device).checkpoint

    def open(self, device=None):
        """The SimCLR model (eval mode) and the run's record."""
        return load_simclr(self.pretrained(device), device=device)

    def record(self, device: str | None = None) -> RunRecord:
        return RunRecord.load(self.pretrained(device))

    def data(self, record: RunRecord | None = None) -> CIFARSplits:
        """The labelled images the run was pretrained on: its training split for probes and kNN banks, its test
        split for the final figures. The reference's CIFAR-10 comes from ``$SIMCLR_DATA`` or the download cache;
        where neither can be had (no network), the bundled subset stands in, and a line says so."""
        record = record or self.record()
        if not self.is_reference:
            return run_splits(record)[1]
        try:
            return load_cifar10(record.data)
        except DataError as exc:
            logger.info(f"data: {exc} Meanwhile the bundled subset stands in (3,000 training and 1,000 test "
                        "images), so the figures differ from the stored ones.")
            return load_cifar10("bundled")

    def classifier(self, device: str | None = None) -> Path | str:
        """The run's linear probe: ``reference``'s own, or notebook 04's ``classifier.pt``, trained now if missing."""
        if self.folder is None:
            self.check()
            return REFERENCE
        path = self.folder / "classifier.pt"
        if path.exists():
            return path
        simclr = self.pretrained(device)
        logger.info(f"no {self.folder.name}/{path.name} yet (notebook 04 has not been run with this run): "
                    "training the linear probe now")
        return Path(run_evaluate(simclr, method="linear", out=path, device=device, progress=False)["classifier"])

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
    return DataSpec.resolve(env) if env else cached_cifar10(fetch=False)


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
