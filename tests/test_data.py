"""Data loading, the bundled subset, and images of every kind PIL can open."""

import io
import json
import urllib.error
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_helpers import data as D
from simclr_helpers.errors import DataError, ImageError


def test_bundled_subset_is_balanced_small_and_documented(bundled):
    assert D.BUNDLED_SUBSET.stat().st_size <= 5_000_000
    for split, per_class in ((bundled.train, 300), (bundled.test, 100)):
        assert split.images.shape == (per_class * 10, 3, 32, 32) and split.images.dtype == torch.uint8
        assert torch.equal(split.labels.bincount(), torch.full((10,), per_class))
        assert split.classes == D.CIFAR10_CLASSES
    doc = (D.BUNDLED_SUBSET.parent / "SUBSET.md").read_text()
    assert "sha256" in doc and "build-subset" in doc


def test_bundled_manifest_matches_the_file():
    import hashlib

    manifest = json.loads((D.BUNDLED_SUBSET.parent / "SUBSET.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(D.BUNDLED_SUBSET.read_bytes()).hexdigest()


def _image_folder(root, per_class=3, classes=D.CIFAR10_CLASSES, seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i:04d}.jpg", quality=90)
    return root


def test_image_folder_loads_with_sorted_classes(tmp_path):
    root = _image_folder(tmp_path / "cifar")
    splits = D.load_cifar10(root)
    assert splits.train.images.shape == (30, 3, 32, 32)
    assert splits.train.classes == D.CIFAR10_CLASSES
    assert splits.test.labels.tolist() == [c for c in range(10) for _ in range(3)]


def test_build_subset_is_reproducible_and_byte_identical(tmp_path):
    root = _image_folder(tmp_path / "cifar", per_class=5)
    a = D.build_subset(root, tmp_path / "a.zip", train_per_class=2, test_per_class=1, seed=3)
    b = D.build_subset(root, tmp_path / "b.zip", train_per_class=2, test_per_class=1, seed=3)
    assert a["sha256"] == b["sha256"]
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = zf.namelist()
        assert len(names) == 30
        first = names[0]
        assert zf.read(first) == (root / first).read_bytes()


def test_balanced_subset_and_split(bundled):
    sub = bundled.train.balanced_subset(100)
    assert len(sub) == 100 and torch.equal(sub.labels.bincount(), torch.full((10,), 10))
    rest, held = bundled.train.split(0.1)
    assert len(held) == 300 and len(rest) == 2700
    both = torch.cat([rest.images, held.images]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == torch.unique(bundled.train.images.flatten(1), dim=0).shape[0]


def test_missing_and_empty_folders_are_named(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        D.load_cifar10(tmp_path / "nowhere")
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty.*no images"):
        D.load_cifar10(tmp_path / "empty")
    with pytest.raises(DataError, match="no image files"):
        D.load_unlabelled_folder(tmp_path / "empty")


def test_unreadable_image_in_a_folder_is_named(tmp_path):
    root = _image_folder(tmp_path / "cifar", per_class=1)
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"broken\.jpg"):
        D.load_cifar10(root)


def test_torchvision_root_missing_and_download_failure(tmp_path, monkeypatch):
    import torchvision.datasets

    (tmp_path / "tv" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DataError, match="--download"):
        D.load_cifar10(tmp_path / "tv")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"could not download.*--data"):
        D.load_cifar10(tmp_path / "new", download=True)


def test_unlabelled_folder_of_photos(tmp_path):
    for i, size in enumerate([(640, 480), (20, 50), (32, 32)]):
        Image.new("RGB", size, (i * 80, 10, 200)).save(tmp_path / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    d = D.load_unlabelled_folder(tmp_path)
    assert d.images.shape == (3, 3, 32, 32) and (d.labels == -1).all()


# ------------------------------------------------------- any image to RGB --

def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "1", "RGBA", "LA", "P", "CMYK", "I;16", "I", "F", "RGB"])
def test_every_mode_becomes_rgb_32(mode):
    base = Image.linear_gradient("L").resize((64, 48))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base, dtype=np.uint16) * 257)
        assert img.mode == "I;16"
    elif mode == "P":
        img = base.convert("RGB").quantize(16)
    else:
        img = base.convert(mode)
    fmt = {"CMYK": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    out = D.open_image(_save(img, fmt))
    assert out.mode == "RGB" and out.size == (32, 32)
    arr = np.asarray(out)
    assert arr.max() > 100  # not clipped to black
    assert arr.min() < 200 or mode == "1"  # not clipped to white (the 16-bit pitfall)


def test_sixteen_bit_is_scaled_not_clipped():
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    out = D.to_rgb(Image.fromarray(arr))
    assert abs(int(np.asarray(out)[0, 0, 0]) - 128) <= 1


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    assert np.asarray(D.to_rgb(img))[0, 0].tolist() == [255, 255, 255]
    pal = Image.new("P", (32, 32), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert np.asarray(D.to_rgb(pal))[0, 0].tolist() == [255, 255, 255]


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (60, 30), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 30, 30))  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    out = D.to_rgb(Image.open(io.BytesIO(_save(img, "JPEG", exif=exif))))
    assert out.size == (30, 60)
    arr = np.asarray(out)
    assert arr[:25].mean() > 200 and arr[-25:].mean() < 50  # white on top after rotation


def test_tiny_and_huge_images(tmp_path):
    assert D.open_image(_save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")).size == (32, 32)
    big = Image.new("RGB", (6000, 4000), (10, 200, 30))
    path = tmp_path / "big.jpg"
    big.save(path, quality=80)
    out = D.open_image(path)
    assert out.size == (32, 32) and np.asarray(out)[16, 16, 1] > 150


def test_bad_image_files_raise_one_sentence(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    good = _save(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    for name, pattern in (("missing.jpg", "no such file"), ("empty.jpg", "empty"),
                          ("text.png", "not an image"), ("cut.jpg", "damaged or truncated")):
        with pytest.raises(ImageError, match=pattern) as info:
            D.open_image(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
        # The file and the reason are attributes: nobody parses the message back into a path.
        assert info.value.path == str(tmp_path / name) and pattern in info.value.reason
        assert str(info.value) == f"{tmp_path / name}: {info.value.reason}" and name not in info.value.reason
    with pytest.raises(ImageError) as info:
        D.open_image(b"no image: at all")  # a colon in the bytes, none in what is reported
    assert info.value.path == "<bytes>" and info.value.reason.startswith("not an image file PIL can read")
