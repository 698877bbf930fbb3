"""Profiles, paths and the one normalisation constant of the course.

A profile only sets *sizes* (epochs, batch, how much data, which stem); every
profile runs the same code. Notebook 03 explains the choice of each number.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

# Per-channel mean and std of the CIFAR-10 training set (RGB, pixel values in
# [0, 1]). The seed blog post normalised with ImageNet statistics during
# pretraining and with (0.5, 0.5, 0.5) during evaluation and prediction, so the
# three stages saw differently scaled inputs (README, "What the course fixes", mistake 3). Here the
# constant lives in one place and is stored in every checkpoint; prediction
# reads it back from the checkpoint rather than from this module.
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
NORMALIZE = {"mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}

IMAGE_SIZE = 32

ENV_PROFILE = "SIMCLR_PROFILE"
ENV_DATA = "SIMCLR_DATA"
ENV_CHECKPOINTS = "SIMCLR_CHECKPOINTS"
ENV_RUN = "SIMCLR_RUN"  # a run folder (last.pt, classifier.pt) for notebooks 03-06 to read instead of the profile's


@dataclass(frozen=True)
class Profile:
    """Sizes of one run. Every field is a plain value so it fits in a checkpoint."""

    name: str
    epochs: int
    batch_size: int
    stem: str  # "imagenet" or "cifar"
    data: str  # "bundled" or "path" (a path must be given)
    train_limit: int | None = None  # use at most this many training images (class-balanced)
    lr_per_256: float = 0.12  # SGD learning rate for a batch of 256, scaled linearly (lightly: 0.06 per 128)
    warmup_epochs: int = 1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    temperature: float = 0.2  # NT-Xent; 0.2 learns faster than lightly's default 0.5 at batch 128-512
    projection_dim: int = 128
    knn_every: int = 1  # kNN monitor every N epochs (0 = never)
    knn_k: int = 200
    linear_epochs: int = 100
    seed: int = 0

    def with_overrides(self, **kwargs) -> Profile:
        """Return a copy with the non-None keyword arguments applied."""
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> Profile:
        """The profile stored in a checkpoint (fields this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in known})


PROFILES: dict[str, Profile] = {
    # Bundled offline subset, a couple of minutes on two CPU cores. Tests and CI.
    "smoke": Profile(name="smoke", epochs=10, batch_size=128, stem="imagenet", data="bundled", knn_every=2),
    # A laptop-sized run on real CIFAR-10 (about 16 minutes of pretraining on two CPU cores).
    "cpu": Profile(name="cpu", epochs=8, batch_size=256, stem="imagenet", data="path", knn_every=2),
    # Full CIFAR-10 on one GPU with the CIFAR stem.
    "gpu": Profile(name="gpu", epochs=200, batch_size=512, stem="cifar", data="path", warmup_epochs=10,
                   knn_every=10),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$SIMCLR_PROFILE``, else ``smoke``."""
    name = name or os.environ.get(ENV_PROFILE) or "smoke"
    if name not in PROFILES:
        from .errors import SimclrError

        raise SimclrError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
            f"(argument --profile or ${ENV_PROFILE})"
        )
    return PROFILES[name]


def default_data_root() -> Path | None:
    """``$SIMCLR_DATA`` if set (an image folder or a torchvision CIFAR-10 root)."""
    value = os.environ.get(ENV_DATA)
    return Path(value).expanduser() if value else None


def project_root() -> Path:
    """The course's folder when working inside it (so notebooks/ and the CLI share one
    ``checkpoints/``), else the current folder."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "simclr_helpers").is_dir():
            return folder
    return here


def default_checkpoint_dir() -> Path:
    """``$SIMCLR_CHECKPOINTS`` if set, else ``checkpoints/`` in the course's folder."""
    env = os.environ.get(ENV_CHECKPOINTS)
    return Path(env).expanduser() if env else project_root() / "checkpoints"
