"""Checkpoints: atomic writes, safe loads (``weights_only=True``), a kind and a format version.

Two kinds exist. ``simclr``: the pretraining state (model, optimizer, schedule,
metrics, settings), written every epoch by ``train.pretrain`` and resumable.
``classifier``: backbone + linear layer + class names + normalisation, everything
prediction needs (written by ``evaluate`` with the linear method). The seed loaded a
``simclr.pth`` its training code never saved (course guide, mistake 6).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path

import torch

from .errors import CheckpointError

FORMAT_VERSION = 1
KINDS = ("simclr", "classifier")


def save_checkpoint(payload: dict, path: str | Path, kind: str) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A run killed mid-write leaves the previous checkpoint intact.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "kind": kind, "format_version": FORMAT_VERSION}
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
    """Load a checkpoint safely and check its kind; every failure is one clear sentence."""
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
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise CheckpointError(f"{path}: not a checkpoint of this course (no 'kind' field); "
                              "create one with `python -m simclr_helpers pretrain`.")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {data.get('format_version')} is not the supported "
                              f"format {FORMAT_VERSION}; re-create it with this version of the course.")
    if kind is not None and data["kind"] != kind:
        hint = {"simclr": "pass a pretraining checkpoint (checkpoints/.../last.pt)",
                "classifier": "create one with `evaluate --method linear --checkpoint ...` and pass that"}[kind]
        raise CheckpointError(f"{path}: is a {data['kind']} checkpoint, but a {kind} checkpoint is needed; {hint}.")
    return data
