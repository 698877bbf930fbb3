"""Profiles, paths, the repository's address and the one normalisation constant of the course.

A profile only sets *sizes* (epochs, batch, how much data, which stem); every
profile runs the same code. Notebook 03 explains the choice of each number.
``auto`` is not a profile of its own: it names one by the hardware it finds
(``auto_profile_name``).
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
ENV_DATA_CACHE = "SIMCLR_DATA_CACHE"  # where CIFAR-10 is downloaded to when no data is given

# The one place that names the course's GitHub repository: the Colab badges, the notebooks'
# install cell and the README are checked against it (tests/test_repository_address.py), and
# `python -m simclr_helpers set-repository OWNER/NAME` rewrites all of them for a fork.
REPOSITORY = "simclr-step-by-step/simclr-step-by-step"
REPOSITORY_BRANCH = "main"


def colab_url(notebook: str, repository: str = REPOSITORY) -> str:
    """The address that opens ``notebook`` (a file name in notebooks/) from GitHub in Colab."""
    return (f"https://colab.research.google.com/github/{repository}/blob/{REPOSITORY_BRANCH}/"
            f"notebooks/{notebook}")


def colab_badge(notebook: str, repository: str = REPOSITORY) -> str:
    """The "Open In Colab" badge of ``notebook`` as Markdown (the notebooks' first cell, the README's table)."""
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook, repository)})")


def install_spec(repository: str = REPOSITORY) -> str:
    """What the notebooks' setup cell gives ``%pip install`` on Colab: the package from GitHub."""
    return f"simclr-helpers @ git+https://github.com/{repository}"


def scaled_lr(lr_per_256: float, batch_size: int) -> float:
    """The linear scaling rule: a learning rate given per 256 images, for a batch of ``batch_size`` images
    (pretraining's peak, ``Profile.peak_lr``, and the supervised baselines' alike)."""
    return lr_per_256 * batch_size / 256


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

    @property
    def peak_lr(self) -> float:
        """The learning rate at the end of the warm-up: ``lr_per_256`` scaled to the (global) batch."""
        return scaled_lr(self.lr_per_256, self.batch_size)

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


# The `colab` profile, sized from first principles for a free Colab T4 (an ESTIMATE: not
# measured on a GPU; the run prints its measured seconds per epoch and finish time after
# its first epoch, and `python -m simclr_helpers gpu-check` measures it on any GPU):
#
# * Work: one step of the CIFAR-stem ResNet-18 costs 6.66 GFLOP per image (two views,
#   forward + backward; `lab.benchmark.step_flops_per_image("cifar")` counts it), so an epoch of
#   45,000 pretraining images is 45,000 x 6.66 GFLOP = 300 TFLOP.
# * Rate: a T4 peaks at about 65 TFLOP/s in fp16 on its tensor cores; ResNet-18 training
#   reaches maybe 25-35% of that (small 32x32 feature maps, BatchNorm and ReLU are memory-bound,
#   and the 70 W card lowers its clock under load): 16-23 TFLOP/s, so 13-18 s per epoch
#   (15.4 s at 30%).
# * Overheads of the fast path: the batched augmentation on the GPU (about 1 s per epoch:
#   memory-bound passes over 90,000 small views), the kNN monitor every 5 epochs (features of
#   15,000 images, 1.1 GFLOP each, in fp32: about 4 s at half the T4's 8 TFLOP/s, so about
#   0.8 s per epoch) and the checkpoint written every epoch (about 92 MB: 0.5 s on the
#   runtime's disk, perhaps 1-3 s on Google Drive). Together about 17.7 s per epoch at 30%
#   (15.5-20.7 s at 35-25%).
# * Epochs: 70 x 17.7 s = about 21 minutes of pretraining (18-24 min), within the 20-25
#   minutes aimed at; checkpoints on Google Drive may add 1-3 minutes.
# * Batch: 512, the largest power of two that fits with room to spare: autograd keeps about
#   13 MB per view in fp32 (at most: counted on a CPU with saved-tensor hooks), about half in fp16,
#   so 1,024 views take about 7 GB of the T4's 15 GB; 1,024 images would need about 13 GB.
# * Warm-up 5 epochs (7% of the run; the `gpu` profile warms up for 10 of 200), kNN monitor every 5.
COLAB_EPOCHS = 70
COLAB_SECONDS_PER_EPOCH_ESTIMATE = 17.7  # on a T4, at 30% of its fp16 peak, overheads included; not measured

PROFILES: dict[str, Profile] = {
    # Bundled offline subset, a couple of minutes on two CPU cores. Tests and CI.
    "smoke": Profile(name="smoke", epochs=10, batch_size=128, stem="imagenet", data="bundled", knn_every=2),
    # A laptop-sized run on real CIFAR-10 (about 16 minutes of pretraining on two CPU cores).
    "cpu": Profile(name="cpu", epochs=8, batch_size=256, stem="imagenet", data="path", knn_every=2),
    # Full CIFAR-10 on a free Colab T4 (or any GPU older than capability 8.0 or under 20 GB):
    # about 21 minutes of pretraining, an estimate (the calculation is above).
    "colab": Profile(name="colab", epochs=COLAB_EPOCHS, batch_size=512, stem="cifar", data="path",
                     warmup_epochs=5, knn_every=5),
    # Full CIFAR-10 on one GPU with the CIFAR stem.
    "gpu": Profile(name="gpu", epochs=200, batch_size=512, stem="cifar", data="path", warmup_epochs=10,
                   knn_every=10),
}

AUTO = "auto"  # pick the profile by the hardware (auto_profile_name)
PROFILE_CHOICES = (AUTO, *PROFILES)
GPU_PROFILES = ("colab", "gpu")  # sized for a GPU: hours of work on a CPU
CPU_PROFILES = ("smoke", "cpu")  # sized for a CPU
# A GPU older than this compute capability (a T4 is 7.5) or smaller than this gets the `colab` profile.
BIG_GPU_CAPABILITY = (8, 0)
BIG_GPU_MEMORY_GB = 20


def profile_for_gpu(capability: tuple[int, int] | None, memory_bytes: int | None = None) -> str:
    """The profile sized for a GPU: ``colab`` below compute capability 8.0 or 20 GB (a free Colab
    T4: 7.5, 15 GB), ``gpu`` for bigger and newer ones; ``smoke`` without a GPU (``capability`` None)."""
    if capability is None:
        return "smoke"
    if tuple(capability) < BIG_GPU_CAPABILITY or (memory_bytes or 0) < BIG_GPU_MEMORY_GB * 1e9:
        return "colab"
    return "gpu"


def gpu_summary(index: int = 0) -> dict | None:
    """Name, compute capability and memory of CUDA device ``index``, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    return {"name": torch.cuda.get_device_name(index), "capability": tuple(torch.cuda.get_device_capability(index)),
            "memory_bytes": int(props.total_memory)}


def auto_profile_name() -> tuple[str, str]:
    """``auto``: ``$SIMCLR_PROFILE`` if set, else the profile sized for the first GPU, else ``smoke``.

    Returns the name and the reason, for the notebooks' setup line.
    """
    env = os.environ.get(ENV_PROFILE)
    if env and env != AUTO:
        return env, f"${ENV_PROFILE}"
    gpu = gpu_summary()
    if gpu is None:
        return "smoke", "no GPU"
    major, minor = gpu["capability"]
    return (profile_for_gpu(gpu["capability"], gpu["memory_bytes"]),
            f"{gpu['name']}, capability {major}.{minor}, {gpu['memory_bytes'] / 1e9:.0f} GB")


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$SIMCLR_PROFILE``, else ``smoke``; ``auto`` picks one by
    the hardware (``auto_profile_name``)."""
    name = name or os.environ.get(ENV_PROFILE) or "smoke"
    if name == AUTO:
        name = auto_profile_name()[0]
    if name not in PROFILES:
        from .errors import SimclrError

        raise SimclrError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILE_CHOICES)} "
            f"(argument --profile or ${ENV_PROFILE})"
        )
    return PROFILES[name]


def no_gpu_sentence(name: str, source: str, notebook: bool) -> str:
    """One sentence for a GPU-sized profile (``GPU_PROFILES``) where torch finds no GPU: a Colab runtime
    started without one (Runtime > Change runtime type), or a laptop. ``source`` says where the name
    came from (``PROFILE = "colab"``, ``$SIMCLR_PROFILE``, ``--profile colab``); a notebook's way out is
    its PROFILE field, the command line's ``--profile`` or ``--device cpu``."""
    if notebook:
        cpu = " or ".join(f'"{n}"' for n in CPU_PROFILES)
        way_out = f" and run the setup cell again, or set PROFILE to {cpu}, the profiles sized for a CPU"
        where = "this runtime"
    else:
        cpu = " or ".join(f"--profile {n}" for n in CPU_PROFILES)
        way_out = f", use {cpu} (sized for a CPU), or add --device cpu to train it on the CPU anyway"
        where = "this machine"
    return (f"the {name} profile ({source}) is sized for a GPU and {where} has none: on Colab choose a GPU "
            f"under Runtime > Change runtime type{way_out}.")


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
