"""Data: CIFAR-10 (torchvision or an image folder), the bundled offline subset, own photos.

Everything ends up as an :class:`ImageTensors`: one uint8 tensor ``(N, 3, 32, 32)``
plus labels and class names, small enough (150 MB for all of CIFAR-10) to sit on
the training device, so augmentation and training never wait on a DataLoader.
Taught in notebook 02 (the data and its views) and used by every notebook.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import ENV_DATA, ENV_DATA_CACHE, IMAGE_SIZE
from .errors import DataError, ImageError
from .lines import quiet

logger = logging.getLogger(__name__)
BUNDLED_SUBSET = Path(__file__).with_name("assets") / "cifar10_subset.zip"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


@dataclass
class ImageTensors:
    """A labelled (or unlabelled, labels = -1) set of 32x32 RGB images as uint8 tensors."""

    images: torch.Tensor  # (N, 3, 32, 32) uint8
    labels: torch.Tensor  # (N,) int64, -1 where unknown
    classes: tuple[str, ...]
    source: str  # where the images came from, for logs and checkpoints

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> ImageTensors:
        return ImageTensors(self.images.to(device), self.labels.to(device), self.classes, self.source)

    def subset(self, index: torch.Tensor) -> ImageTensors:
        index = index.to(self.images.device)
        return ImageTensors(self.images[index], self.labels[index], self.classes, self.source)

    def balanced_subset(self, limit: int | None, seed: int = 0) -> ImageTensors:
        """At most ``limit`` images, the same number from every class (seeded, reproducible)."""
        if limit is None or limit >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        labels = self.labels.cpu()
        per_class = max(1, limit // max(1, len(self.classes)))
        picks = []
        for c in range(len(self.classes)):
            idx = torch.nonzero(labels == c).flatten()
            picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
        index = torch.cat(picks) if picks else torch.arange(limit)
        return self.subset(index.sort().values)

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageTensors, ImageTensors]:
        """A seeded random split into (the rest, a held-out ``fraction``)."""
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        n_held = int(round(len(self) * fraction))
        return self.subset(perm[n_held:].sort().values), self.subset(perm[:n_held].sort().values)


@dataclass
class CIFARSplits:
    train: ImageTensors
    test: ImageTensors


# ------------------------------------------------------------ data specs --

@dataclass(frozen=True)
class DataSpec:
    """What a run's data is: the one answer to "what kind of data is this path?".

    ``kind`` is ``bundled`` (the offline subset in the package), ``image_folder``
    (``train/<class>/`` and ``test/<class>/``, such as the CIFAR-10 JPEG archive extracted),
    ``torchvision`` (a ``torchvision.datasets.CIFAR10`` root, or one to download into) or
    ``unlabelled`` (any other folder of images: own photos, pretraining only).
    """

    kind: str
    path: str | None = None

    @classmethod
    def resolve(cls, data: str | Path | DataSpec | None, download: bool = False) -> DataSpec:
        """The spec of ``data``: ``None`` or ``"bundled"``, or a path, looked at on disk."""
        if isinstance(data, DataSpec):
            return data
        if data is None or str(data) == "bundled":
            return cls("bundled")
        root = Path(data).expanduser()
        if (root / "train").is_dir():
            return cls("image_folder", str(data))
        if (root / "cifar-10-batches-py").is_dir() or download:
            return cls("torchvision", str(data))
        if root.is_file():
            raise DataError(f"{root}: is a file; extract the archive and point --data at the folder that holds "
                            "train/ and test/.")
        if not root.exists():
            raise DataError(f"{root}: no such folder; point --data at CIFAR-10 (an image folder or a "
                            "torchvision root) or add --download to fetch it there.")
        return cls("unlabelled", str(data))

    @property
    def labelled(self) -> bool:
        return self.kind != "unlabelled"

    def local_path(self) -> Path | None:
        """The folder on this machine: a relative path is taken from the current folder, or else from the
        course's folder (a run started in the course's folder is then found from notebooks/ too)."""
        if self.path is None:
            return None
        path = Path(self.path).expanduser()
        if not path.is_absolute() and not path.exists():
            from .config import project_root

            in_course = project_root() / path
            if in_course.exists():
                return in_course
        return path

    def describe(self) -> str:
        """A short description for tables (no machine paths)."""
        if self.kind == "torchvision" and self.path is None:
            return "CIFAR-10 (from $SIMCLR_DATA or the download cache)"
        return {"bundled": "bundled subset", "image_folder": "CIFAR-10 (full, image folder)",
                "torchvision": "CIFAR-10 (torchvision download)"}.get(self.kind, "unlabelled images")

    def __str__(self) -> str:
        return self.path if self.path is not None else self.kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path}

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        return cls(d["kind"], d.get("path"))


# ---------------------------------------------------------------- images --

def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB: EXIF rotation applied, transparency on white, 16-bit scaled.

    The blog post's prediction script passed ``Image.open(path)`` straight to the model,
    so greyscale, RGBA, palette and 16-bit images broke it (README, "What the course fixes", mistake 8;
    notebook 06 shows each case).
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16- or 32-bit greyscale: convert("RGB") would clip everything above 255 to white.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        array = (array - lo) / (hi - lo or 1.0) * 255.0
        image = Image.fromarray(array.astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def resize_center(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """The central square, scaled to ``size`` x ``size`` (keeps proportions; PIL's ``ImageOps.fit``)."""
    if image.size == (size, size):
        return image
    return ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)


def open_image(source: str | Path | bytes, size: int = IMAGE_SIZE) -> Image.Image:
    """Open any image file PIL can read as a ``size`` x ``size`` RGB image.

    Raises :class:`ImageError` with one sentence naming the file and the problem.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            image = Image.open(io.BytesIO(source))
        else:
            path = Path(source)
            if not path.exists():
                raise ImageError(name, "no such file; check the path.")
            if path.is_dir():
                raise ImageError(name, "is a folder, not an image file.")
            if path.stat().st_size == 0:
                raise ImageError(name, "the file is empty (0 bytes); it is not an image.")
            image = Image.open(path)
        # Let JPEG decode at a reduced scale when the picture is huge (fast, little memory).
        image.draft("RGB", (size * 4, size * 4))
        image.load()
        return resize_center(to_rgb(image), size)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not an image file PIL can read (unknown or unsupported format).") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"the image is too large to open safely ({exc}).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(name, f"the image file is damaged or truncated ({exc}).") from None


def pil_to_uint8(image: Image.Image) -> np.ndarray:
    """An RGB PIL image as a (3, H, W) uint8 array."""
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def _decode_many(sources: list, names: list[str]) -> np.ndarray:
    """Decode images in a thread pool (PIL releases the GIL while decoding)."""
    def one(item):
        src, name = item
        try:
            return pil_to_uint8(open_image(src))
        except ImageError as exc:
            raise DataError(f"unreadable image in the data folder: {exc} Remove or replace it.") from None

    out = np.empty((len(sources), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, arr in enumerate(pool.map(one, zip(sources, names), chunksize=256)):
            out[i] = arr
    return out


# ---------------------------------------------------------- image folders --

def _list_class_folder(split_dir: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Image files and labels of ``split_dir/<class>/*``, classes in sorted order (torchvision's helpers)."""
    from torchvision.datasets.folder import find_classes, make_dataset

    try:
        classes = [c for c in find_classes(str(split_dir))[0] if not c.startswith(".")]  # no .ipynb_checkpoints
    except FileNotFoundError:  # no class folders at all
        return [], [], ()
    samples = make_dataset(str(split_dir), {c: i for i, c in enumerate(classes)}, extensions=tuple(IMAGE_SUFFIXES),
                           allow_empty=True)
    return [Path(f) for f, _ in samples], [label for _, label in samples], tuple(classes)


def load_image_folder(root: str | Path, split: str) -> ImageTensors:
    """``root/<split>/<class>/*.jpg`` (the layout of the CIFAR-10 JPEG archive) as tensors."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: no such folder; an image folder needs train/<class>/ and test/<class>/.")
    files, labels, classes = _list_class_folder(split_dir)
    if not files:
        raise DataError(f"{split_dir}: no images found in its class folders; expected {split}/<class>/*.jpg.")
    images = _decode_many(files, [str(f) for f in files])
    source = f"image folder {Path(root).name}/{split}"
    return ImageTensors(torch.from_numpy(images), torch.tensor(labels), classes, source)


def load_unlabelled_folder(root: str | Path) -> ImageTensors:
    """Every image below ``root`` (own photos, any size), labels -1, for pretraining only."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder.")
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root}: no image files (.jpg, .png, ...) found in it or below it.")
    images = _decode_many(files, [str(f) for f in files])
    return ImageTensors(torch.from_numpy(images), torch.full((len(files),), -1), (), f"unlabelled folder {root.name}")


# ------------------------------------------------------------- torchvision --

CIFAR10_DOWNLOAD_MB = 170  # cifar-10-python.tar.gz


def cifar10_cache_dir() -> Path:
    """Where CIFAR-10 is downloaded to when a run needs it and no data is given:
    ``$SIMCLR_DATA_CACHE``, else ``simclr-step-by-step/cifar10`` in the user's cache folder
    (``$XDG_CACHE_HOME``, default ``~/.cache``)."""
    env = os.environ.get(ENV_DATA_CACHE)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "simclr-step-by-step" / "cifar10"


def shown(path: str | Path) -> str:
    """``path`` for messages and notebook outputs, the home folder written as ``~``."""
    path, home = Path(path).expanduser(), Path.home()
    try:
        return str(Path("~") / path.relative_to(home))
    except ValueError:
        return str(path)


def _is_cache(root: str | Path) -> bool:
    try:
        return Path(root).expanduser().resolve() == cifar10_cache_dir().resolve()
    except OSError:
        return False


def cached_cifar10(reason: str = "this run needs CIFAR-10", fetch: bool = True) -> DataSpec:
    """CIFAR-10 in the download cache (``cifar10_cache_dir``) as a data spec.

    With ``fetch`` and nothing there yet, ``torchvision.datasets.CIFAR10`` downloads it now
    (once: later runs find ``cifar-10-batches-py`` there; torchvision checks the archive's
    MD5). Without a network that ends in one :class:`DataError` that starts with ``reason``
    and says how to point at a local copy instead. Without ``fetch`` nothing is read or
    downloaded: the spec only names the place.
    """
    root = cifar10_cache_dir()
    if fetch and not (root / "cifar-10-batches-py").is_dir():
        logger.info(f"downloading CIFAR-10 ({CIFAR10_DOWNLOAD_MB} MB, once) into {shown(root)}")
        download_cifar10(root, reason)
    return DataSpec("torchvision", str(root))


def download_cifar10(root: str | Path, reason: str = "this run needs CIFAR-10") -> Path:
    """Download and extract CIFAR-10 into ``root`` with torchvision (nothing happens if it is there and intact)."""
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _download_lock(root):  # one download at a time, also across processes (torchrun)
            CIFAR10(str(root), train=False, download=True)  # the archive holds both splits
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad checksum a RuntimeError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{reason}: could not download it into {shown(root)} ({detail}); without a network, "
                        f"point --data PATH or ${ENV_DATA} at a local copy (an extracted image folder with "
                        "train/ and test/, or a torchvision root).") from None
    return root


@contextmanager
def _download_lock(root: Path):
    """An exclusive lock on ``root`` while downloading, where the platform has ``fcntl`` (not on Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(root / ".download.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_torchvision_cifar10(root: str | Path, download: bool = False) -> CIFARSplits:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``; with ``download=True`` it fetches it."""
    from torchvision.datasets import CIFAR10

    if download:
        download_cifar10(root, "CIFAR-10 is needed here")
    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = CIFAR10(str(root), train=train, download=False)
        except RuntimeError as exc:  # not found / corrupt, download=False
            raise DataError(
                f"{root}: no CIFAR-10 found there ({exc}); pass --download to fetch it, "
                "or point --data at an extracted image folder (train/<class>/, test/<class>/)."
            ) from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        splits[split] = ImageTensors(images, torch.tensor(ds.targets), tuple(ds.classes),
                                     f"torchvision CIFAR-10/{split}")
    return CIFARSplits(splits["train"], splits["test"])


# ---------------------------------------------------------- bundled subset --

def load_bundled() -> CIFARSplits:
    """The offline CIFAR-10 subset shipped in the package (see assets/SUBSET.md)."""
    if not BUNDLED_SUBSET.exists():
        raise DataError(f"the bundled subset {BUNDLED_SUBSET.name} is missing from the package; reinstall it.")
    splits: dict[str, ImageTensors] = {}
    with zipfile.ZipFile(BUNDLED_SUBSET) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg"))
        for split in ("train", "test"):
            members = [n for n in names if n.startswith(split + "/")]
            labels = [CIFAR10_CLASSES.index(n.split("/")[1]) for n in members]
            blobs = [zf.read(n) for n in members]
            images = _decode_many(blobs, members)
            splits[split] = ImageTensors(torch.from_numpy(images), torch.tensor(labels), CIFAR10_CLASSES,
                                         f"bundled CIFAR-10 subset/{split}")
    return CIFARSplits(splits["train"], splits["test"])


def load_cifar10(data: str | Path | DataSpec | None = None, download: bool = False) -> CIFARSplits:
    """CIFAR-10 from wherever it is.

    ``data`` is ``None`` or ``"bundled"`` (the offline subset), an image folder with
    ``train/`` and ``test/`` (such as the extracted JPEG archive), or a torchvision
    root (``cifar-10-batches-py`` inside, or to be downloaded there with ``download``).
    A torchvision spec without a path (the reference weights' data) means CIFAR-10 wherever
    this machine keeps it: ``$SIMCLR_DATA``, else the download cache (``cached_cifar10``).
    """
    spec = DataSpec.resolve(data, download)
    if spec.kind == "bundled":
        return load_bundled()
    if spec.kind == "torchvision" and spec.path is None:  # CIFAR-10 wherever this machine keeps it
        env = os.environ.get(ENV_DATA)
        if env:
            spec = DataSpec.resolve(env)
        else:
            with quiet():  # load_cifar10 says nothing, even when it downloads
                spec = cached_cifar10("CIFAR-10 is needed here")
    root = spec.local_path()
    if spec.kind == "image_folder":
        return CIFARSplits(load_image_folder(root, "train"), load_image_folder(root, "test"))
    if spec.kind == "torchvision":  # the course's own download cache is fetched again if a new machine lacks it
        return load_torchvision_cifar10(root, download=download or _is_cache(root))
    raise DataError(f"{root}: neither an image folder (train/<class>/, test/<class>/) nor a torchvision "
                    "CIFAR-10 root; add --download to fetch CIFAR-10 there.")


# ------------------------------------------------------- building a subset --

def build_subset(source: str | Path, out: str | Path, train_per_class: int = 300,
                 test_per_class: int = 100, seed: int = 0) -> dict:
    """Write a class-balanced CIFAR-10 subset as a zip of JPEGs (the bundled asset).

    ``source`` is an image folder (train/<class>/*.jpg, test/<class>/*.jpg); its JPEG
    bytes are copied unchanged, so the subset is bit-identical to its source. The
    pick is seeded, so the same source and seed give the same file.
    """
    import hashlib
    import random

    source, out = Path(source), Path(out)
    rng = random.Random(seed)
    counts: dict[str, dict[str, int]] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for split, per_class in (("train", train_per_class), ("test", test_per_class)):
            files, labels, classes = _list_class_folder(source / split)
            if tuple(classes) != CIFAR10_CLASSES:
                raise DataError(f"{source / split}: expected the ten CIFAR-10 class folders, found {classes}.")
            counts[split] = {}
            for c, name in enumerate(classes):
                mine = [f for f, lab in zip(files, labels) if lab == c]
                for f in sorted(rng.sample(mine, per_class)):
                    info = zipfile.ZipInfo(f"{split}/{name}/{f.name}", date_time=(2020, 1, 1, 0, 0, 0))
                    zf.writestr(info, f.read_bytes())
                counts[split][name] = per_class
    tmp.replace(out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {"file": out.name, "bytes": out.stat().st_size, "sha256": digest, "seed": seed, "counts": counts}
