"""Checkpoints: one typed record per kind, atomic writes, safe loads (``weights_only=True``), a format version.

Two kinds exist, each a dataclass with ``save`` and ``load``:

* :class:`RunRecord` (kind ``simclr``): a pretraining run: its profile, its data, the
  normalisation, the class names, the epoch, the metrics and the state dicts (model,
  optimizer, schedule, random state), written every epoch by ``train.pretrain`` (and notebook 03's
  loop) through ``save_pretrain_checkpoint`` and resumable; ``load_simclr`` opens its model.
* :class:`ClassifierRecord` (kind ``classifier``): backbone + linear layer + class names +
  normalisation, everything prediction needs (written by ``evaluate`` with the linear method).

On disk a record is a dict of tensors and plain values, so ``torch.load(weights_only=True)``
reads it without running code. The blog post loaded a ``simclr.pth`` its training code never
saved (README, "What the course fixes", mistake 6).

The **reference weights** (the README's long CIFAR-10 run: its backbone, projection head and
linear probe, in fp16) ship with the package in ``assets/reference/``. The name ``reference``
opens them wherever a checkpoint or a run can be named (``load_checkpoint("reference", kind)``
gives either kind, so ``RunRecord.load``, ``ClassifierRecord.load``, ``evaluate --checkpoint``,
``predict --checkpoint`` and ``$SIMCLR_RUN`` all take it). Their sha256 is recorded here and
checked at every load; nothing ever writes to them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import NORMALIZE, Profile
from .data import DataSpec, ImageTensors
from .errors import CheckpointError
from .models import SimCLRModel
from .runtime import pick_device

# 2: one typed record per kind; the data a run used is its own field (1 kept it inside the settings).
FORMAT_VERSION = 2
KINDS = ("simclr", "classifier")
_MAKE = {"simclr": "`python -m simclr_helpers pretrain`",
         "classifier": "`python -m simclr_helpers evaluate --method linear --checkpoint .../last.pt`"}


REFERENCE = "reference"  # the name that opens the shipped weights
REFERENCE_FILE = Path(__file__).with_name("assets") / "reference" / "simclr-resnet18-cifar10-45ep.pt"
REFERENCE_SHA256 = "79094531bb29cb33aaedc87ae274ade651e43c81f0cff965dc982d0e58ba5e3b"
REFERENCE_ROW = "cpu-imagenet-45ep-cifar10"  # the results file's row of the run they come from
_RESTORE = ("restore it with `git checkout -- simclr_helpers/assets/reference/` in the course's folder, or "
            "reinstall the package")


def is_reference(path) -> bool:
    """Whether ``path`` names the shipped reference weights (the word ``reference``)."""
    return path is not None and str(path) == REFERENCE


def read_reference(path: Path = REFERENCE_FILE, sha256: str = REFERENCE_SHA256) -> dict:
    """The shipped weights file's contents, after checking that its bytes are the ones the package records.

    Read and checked once per process for as long as the file is unchanged (a notebook opens it several times)."""
    shown = f"simclr_helpers/assets/reference/{path.name}"
    if not path.is_file():
        raise CheckpointError(f"{shown}: the reference weights are not installed (the package was installed without "
                              "its data files); reinstall it from the course's folder with `pip install -e .`.")
    stat = path.stat()
    return _read_checked(path, sha256, shown, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_checked(path: Path, sha256: str, shown: str, size: int, mtime_ns: int) -> dict:
    blob = path.read_bytes()
    if blob.startswith(b"version https://git-lfs"):
        raise CheckpointError(f"{shown}: holds a Git LFS pointer, not the weights; {_RESTORE}.")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise CheckpointError(f"{shown}: its sha256 begins {digest[:12]}, not {sha256[:12]} as the package records "
                              f"(the file was edited, truncated or replaced); {_RESTORE}.")
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def reference_payload(kind: str | None = None, path: Path = REFERENCE_FILE, sha256: str = REFERENCE_SHA256) -> dict:
    """The reference weights as a checkpoint of ``kind`` (``simclr`` by default, or ``classifier``), in fp32."""
    raw = read_reference(path, sha256)
    model = {k: v.float() if v.is_floating_point() else v for k, v in raw["model"].items()}
    fc = {k: v.float() for k, v in raw["fc"].items()}
    run = raw["run"]
    if kind == "classifier":
        backbone = {k.removeprefix("backbone."): v for k, v in model.items() if k.startswith("backbone.")}
        payload = {"backbone": backbone, "fc": fc, "stem": run["profile"]["stem"], "classes": run["classes"],
                   "normalize": run["normalize"], "image_size": 32, "source": {**raw["probe"], "run": REFERENCE}}
    else:
        kind = "simclr"
        payload = {**run, "model": model}
    return {**payload, "kind": kind, "format_version": FORMAT_VERSION}


def export_reference(run: RunRecord, classifier: ClassifierRecord, path: str | Path) -> dict:
    """Write the reference weights file from a finished run and its linear probe: fp16 tensors (half the size),
    the run's record without its optimiser and random state; returns the file's size and sha256."""
    run_backbone = {k.removeprefix("backbone."): v for k, v in run.model.items() if k.startswith("backbone.")}
    if any(not torch.equal(run_backbone[k], v) for k, v in classifier.backbone.items()):
        raise CheckpointError("the classifier's backbone is not the run's; train the probe on this run's last.pt")
    half = {k: v.half() if v.is_floating_point() else v for k, v in run.model.items()}
    record = {k: v for k, v in run.to_dict().items() if k not in RunRecord.STATE}
    record["data"] = {"kind": "torchvision", "path": None}  # CIFAR-10 wherever this machine keeps it
    raw = {"kind": "reference", "row": REFERENCE_ROW, "dtype": "float16", "run": record, "model": half,
           "fc": {k: v.half() for k, v in classifier.fc.items()},
           "probe": {k: v for k, v in classifier.source.items() if k != "checkpoint"}}  # no machine paths
    path = _write_atomically(raw, path)
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def save_checkpoint(payload: dict, path: str | Path, kind: str) -> Path:
    """Write ``payload`` to ``path`` atomically (``_write_atomically``): a run killed mid-write leaves the
    previous checkpoint intact."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    return _write_atomically({**payload, "kind": kind, "format_version": FORMAT_VERSION}, path)


def _write_atomically(payload: dict, path: str | Path) -> Path:
    """``torch.save`` into a temporary file in the same folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, kind: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint safely and check its kind; every failure is one clear sentence.

    ``reference`` opens the shipped reference weights as either kind (``reference_payload``)."""
    if is_reference(path):
        return reference_payload(kind)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint; run `python -m simclr_helpers pretrain` "
                              "(or `evaluate --method linear` for a classifier) to create one.")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass the checkpoint file inside it (e.g. last.pt).")
    try:
        with warnings.catch_warnings():
            # A damaged file can look like an unusual pickle protocol; the error below says it better.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln), "")
        detail = detail.split(" was not")[0].replace("WeightsUnpickler error: ", "")
        if not detail:
            raise CheckpointError(f"{path}: not a readable checkpoint (not a PyTorch file, or damaged).") from None
        raise CheckpointError(f"{path}: refused to load: it holds objects other than tensors and plain "
                              f"values, which could run code ({detail}); only load "
                              "checkpoints written by this course.") from None
    except Exception as exc:  # noqa: BLE001
        # Damaged bytes reach the unpickler's internals, which fail with whatever they trip over
        # (IndexError, KeyError, struct.error, UnicodeDecodeError, ... besides RuntimeError/EOFError);
        # every one of them means the same thing to the user: this file cannot be read.
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a PyTorch file: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).") from None
    if isinstance(data, dict) and data.get("kind") == "reference":
        raise CheckpointError(f"{path}: holds the course's reference weights; open them by the name `{REFERENCE}` "
                              f"(for example --checkpoint {REFERENCE}).")
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise CheckpointError(f"{path}: not a checkpoint of this course (no 'kind' field); "
                              "create one with `python -m simclr_helpers pretrain`.")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        age = "an earlier" if isinstance(version, int) and version < FORMAT_VERSION else "another"
        raise CheckpointError(f"{path}: checkpoint format {version} comes from {age} version of the course, which "
                              f"reads format {FORMAT_VERSION}; re-create it with {_MAKE[data['kind']]}.")
    if kind is not None and data["kind"] != kind:
        hint = {"simclr": "pass a pretraining checkpoint (checkpoints/.../last.pt)",
                "classifier": "create one with `evaluate --method linear --checkpoint ...` and pass that"}[kind]
        raise CheckpointError(f"{path}: is a {data['kind']} checkpoint, but a {kind} checkpoint is needed; {hint}.")
    return data


class _Record:
    """What both records share: a kind, an atomic save, and a load that checks the fields are there."""

    KIND = ""
    REQUIRED: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.to_dict(), path, kind=self.KIND)

    @classmethod
    def _read(cls, path: str | Path, map_location) -> dict:
        path = Path(path)
        data = load_checkpoint(path, kind=cls.KIND, map_location=map_location)
        missing = [n for n in cls.REQUIRED if n not in data]
        if missing:
            raise CheckpointError(f"{path}: the checkpoint lacks {', '.join(missing)}; it is damaged or was not "
                                  f"written by this course: re-create it with {_MAKE[cls.KIND]}.")
        return data


@dataclass
class RunRecord(_Record):
    """A pretraining run as it is saved after every epoch: what it is, how far it got, its state.

    Notebooks and commands read fields (``record.profile.stem``, ``record.data``), never string keys.
    """

    profile: Profile
    data: DataSpec
    normalize: dict
    classes: list[str]
    num_train: int  # images in the pretraining set (all processes together)
    epoch: int = 0
    metrics: list[dict] = field(default_factory=list)
    model: dict = field(default_factory=dict)  # the unwrapped model's state dict (no DDP ``module.``)
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None
    rng: torch.Tensor | None = None  # rank 0's generator state
    rng_ranks: list | None = None  # every process's generator state, in a multi-process run
    pipeline: str = "fast"
    torch_version: str = field(default_factory=lambda: str(torch.__version__))

    KIND = "simclr"
    REQUIRED = ("profile", "data", "normalize", "classes", "num_train", "epoch", "metrics", "model")
    STATE = ("model", "optimizer", "scheduler", "scaler", "rng", "rng_ranks")

    @property
    def steps_per_epoch(self) -> int:
        return self.num_train // self.profile.batch_size

    @property
    def steps(self) -> int:
        """Optimiser steps the run has taken."""
        return self.epoch * self.steps_per_epoch

    def to_dict(self) -> dict:
        return {"profile": self.profile.to_dict(), "data": self.data.to_dict(), "normalize": dict(self.normalize),
                "classes": list(self.classes), "num_train": int(self.num_train), "epoch": int(self.epoch),
                "metrics": list(self.metrics), "pipeline": self.pipeline, "torch_version": self.torch_version,
                **{name: getattr(self, name) for name in self.STATE}}

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> RunRecord:
        return cls.from_dict(cls._read(path, map_location))

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        return cls(profile=Profile.from_dict(data["profile"]), data=DataSpec.from_dict(data["data"]),
                   normalize=data["normalize"], classes=list(data["classes"]), num_train=int(data["num_train"]),
                   epoch=int(data["epoch"]), metrics=list(data["metrics"]), pipeline=data.get("pipeline", "fast"),
                   torch_version=data.get("torch_version", ""), **{name: data.get(name) for name in cls.STATE})


def save_pretrain_checkpoint(path: str | Path, model: SimCLRModel, optimizer, scheduler, profile: Profile,
                             metrics: list[dict], train: ImageTensors, data: DataSpec | str | None = None,
                             generator: torch.Generator | None = None, scaler=None, pipeline: str = "fast",
                             rng_ranks: list | None = None) -> Path:
    """Everything needed to resume the run or to evaluate its backbone (notebook 03 and ``pretrain``).

    ``model`` is the unwrapped model (no DDP ``module.`` prefixes), so any number of
    processes can load the checkpoint. ``rng_ranks``: every process's generator state in
    a multi-process run (``rng`` is rank 0's).
    """
    return RunRecord(
        profile=profile, data=DataSpec.resolve(data), normalize=NORMALIZE, classes=list(train.classes),
        num_train=len(train), epoch=metrics[-1]["epoch"] if metrics else 0, metrics=metrics,
        model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        rng=generator.get_state() if generator is not None else None, rng_ranks=rng_ranks, pipeline=pipeline,
    ).save(path)


def load_simclr(path: str | Path, device: str | None = None) -> tuple[SimCLRModel, RunRecord]:
    """A pretrained SimCLR model (eval mode) and its checkpoint's record."""
    record = RunRecord.load(path)
    model = SimCLRModel(stem=record.profile.stem, projection_dim=record.profile.projection_dim)
    model.load_state_dict(record.model)
    return model.to(pick_device(device)).eval(), record


@dataclass
class ClassifierRecord(_Record):
    """A frozen backbone and its linear layer, with everything prediction needs and nothing it must guess."""

    backbone: dict  # state dict
    fc: dict  # state dict of the linear layer
    stem: str
    classes: list[str]
    normalize: dict
    image_size: int = 32
    source: dict = field(default_factory=dict)  # which run, backbone (simclr / random-init), epochs, test top-1

    KIND = "classifier"
    REQUIRED = ("backbone", "fc", "stem", "classes", "normalize")

    def to_dict(self) -> dict:
        return {"backbone": self.backbone, "fc": self.fc, "stem": self.stem, "classes": list(self.classes),
                "normalize": dict(self.normalize), "image_size": int(self.image_size), "source": dict(self.source)}

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> ClassifierRecord:
        return cls.from_dict(cls._read(path, map_location))

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierRecord:
        return cls(backbone=data["backbone"], fc=data["fc"], stem=data["stem"], classes=list(data["classes"]),
                   normalize=data["normalize"], image_size=int(data.get("image_size", 32)),
                   source=dict(data.get("source", {})))
