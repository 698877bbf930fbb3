"""A Colab runtime, as far as a CPU can play one: the notebooks' setup with ``google.colab`` faked
(and a faked GPU), the profile picked by the hardware, CIFAR-10 arriving by itself, checkpoints on Drive.

Nothing is installed or downloaded: ``google.colab`` and ``google.colab.drive`` are stand-in
modules, the GPU is ``torch.cuda``'s answers replaced, and ``torchvision.datasets.CIFAR10`` is a
fake that "downloads" by creating its folder.
"""

import os
import shutil
import sys
import types
import urllib.error
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from simclr_helpers import config, notebook
from simclr_helpers.config import (
    COLAB_EPOCHS,
    COLAB_SECONDS_PER_EPOCH_ESTIMATE,
    PROFILES,
    get_profile,
    profile_for_gpu,
)
from simclr_helpers.data import DataSpec, cifar10_cache_dir, load_cifar10, shown
from simclr_helpers.errors import DataError, SimclrError
from simclr_helpers.runs import choose_run, load_pretrain_data, resolve_data

ENV = ("SIMCLR_PROFILE", "SIMCLR_DATA", "SIMCLR_CHECKPOINTS", "SIMCLR_RUN", "SIMCLR_DATA_CACHE")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No course variables set (monkeypatch restores them, also those ``setup`` sets); the download cache in tmp."""
    for name in ENV:
        monkeypatch.setenv(name, "x")  # recorded, so that teardown restores the original state
        monkeypatch.delenv(name)
    monkeypatch.setenv("SIMCLR_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_download(monkeypatch):
    """Any call of torchvision's CIFAR10 fails the test: setting up must not download anything."""
    import torchvision.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("CIFAR10 was called")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", refuse)


def fake_gpu(monkeypatch, capability, memory_gb, name):
    """``torch.cuda`` answers as on a machine with this GPU (nothing runs on it)."""
    props = SimpleNamespace(name=name, major=capability[0], minor=capability[1], total_memory=int(memory_gb * 1e9),
                            multi_processor_count=40)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # a T4 says True too (emulation)


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """``google.colab`` and ``google.colab.drive`` in sys.modules; ``drive.mount`` records its calls."""
    mounts = []

    def mount(path, *args, **kwargs):
        mounts.append(path)
        (tmp_path / "content" / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)

    google = types.ModuleType("google")
    google_colab = types.ModuleType("google.colab")
    drive = types.ModuleType("google.colab.drive")
    drive.mount = mount
    google_colab.drive = drive
    google.colab = google_colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    monkeypatch.setattr(notebook, "DRIVE_MOUNT", str(tmp_path / "content" / "drive"))
    return mounts


@pytest.fixture
def not_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


# ------------------------------------------------------------------ profile by hardware --

@pytest.mark.parametrize("capability, memory_gb, expected", [
    (None, None, "smoke"),  # no GPU
    ((7, 5), 15.8, "colab"),  # free Colab T4
    ((7, 0), 34.1, "colab"),  # V100 32 GB: older than 8.0
    ((8, 6), 16.9, "colab"),  # RTX A4000: new, but 16 GB
    ((8, 0), 42.4, "gpu"),  # A100 40 GB
    ((8, 9), 23.8, "gpu"),  # L4
    ((9, 0), 85.0, "gpu"),  # H100
])
def test_profile_is_sized_to_the_gpu(capability, memory_gb, expected):
    assert profile_for_gpu(capability, memory_gb and int(memory_gb * 1e9)) == expected


def test_auto_takes_the_environment_first_then_the_hardware(monkeypatch, clean_env):
    assert get_profile("auto").name == "smoke"  # this machine has no GPU (or torch.cuda says so below)
    fake_gpu(monkeypatch, (7, 5), 15.8, "Tesla T4")
    assert get_profile("auto").name == "colab"
    assert config.auto_profile_name() == ("colab", "Tesla T4, capability 7.5, 16 GB")
    monkeypatch.setenv("SIMCLR_PROFILE", "cpu")
    assert get_profile("auto").name == "cpu" and get_profile("smoke").name == "smoke"
    monkeypatch.setenv("SIMCLR_PROFILE", "auto")
    assert get_profile().name == "colab"
    assert get_profile().name == get_profile("auto").name


def test_colab_profile_full_cifar10_cifar_stem_sized_for_20_to_25_minutes():
    p = PROFILES["colab"]
    assert (p.data, p.stem, p.train_limit, p.batch_size, p.epochs) == ("path", "cifar", None, 512, COLAB_EPOCHS)
    assert 20 <= COLAB_EPOCHS * COLAB_SECONDS_PER_EPOCH_ESTIMATE / 60 <= 25


def test_colab_estimate_follows_from_the_counted_flops():
    """The calculation written down in config.py: 45,000 images x the counted FLOPs at 30% of a T4's 65 TFLOP/s,
    plus 2.3 s of augmentation, monitor and checkpoint per epoch."""
    from simclr_helpers.lab.benchmark import step_flops_per_image

    flops = step_flops_per_image("cifar", batch_size=2)
    assert flops / 1e9 == pytest.approx(6.66, rel=0.01)
    per_epoch = 45_000 * flops / (0.30 * 65e12) + 1.0 + 0.8 + 0.5
    assert per_epoch == pytest.approx(COLAB_SECONDS_PER_EPOCH_ESTIMATE, abs=0.2)


# --------------------------------------------------------------------- data by itself --

class FakeCIFAR10:
    """torchvision's CIFAR10 as far as the course uses it; a "download" creates the folder once."""

    downloads: list = []

    def __init__(self, root, train=True, download=False, **kwargs):
        folder = os.path.join(root, "cifar-10-batches-py")
        if download and not os.path.isdir(folder):
            FakeCIFAR10.downloads.append(root)
            os.makedirs(folder)
        if not os.path.isdir(folder):
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        n = 100 if train else 20
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(n)]
        self.classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def online(monkeypatch):
    import torchvision.datasets

    FakeCIFAR10.downloads = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    return FakeCIFAR10.downloads


@pytest.fixture
def offline(monkeypatch):
    import torchvision.datasets

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", unreachable)


def test_with_a_network_cifar10_is_downloaded_once_into_the_cache(clean_env, online):
    cache = clean_env
    spec = resolve_data(get_profile("colab"), None)
    assert spec == DataSpec("torchvision", str(cache)) and cifar10_cache_dir() == cache
    assert online == [str(cache)] and (cache / "cifar-10-batches-py").is_dir()
    for _ in range(2):  # later runs find it there
        data = load_pretrain_data(get_profile("cpu"))
        assert data.spec == DataSpec("torchvision", str(cache)) and len(data.train) == 90
    assert online == [str(cache)]


def test_without_a_network_one_sentence_says_how_to_use_a_local_copy(clean_env, offline):
    with pytest.raises(DataError) as info:
        resolve_data(get_profile("colab"), None)
    message = str(info.value)
    assert message.startswith("the colab profile needs CIFAR-10: could not download it into ")
    assert "--data PATH" in message and "$SIMCLR_DATA" in message and "Temporary failure" in message
    assert "\n" not in message and message.count(". ") == 0 and message.endswith(".")
    with pytest.raises(DataError, match=r"needs CIFAR-10.*--data PATH or \$SIMCLR_DATA"):
        load_pretrain_data(get_profile("cpu"))


def test_a_given_path_or_simclr_data_is_never_replaced_by_a_download(clean_env, offline, tmp_path, monkeypatch):
    (tmp_path / "mine" / "train").mkdir(parents=True)
    assert resolve_data(get_profile("colab"), tmp_path / "mine") == DataSpec("image_folder", str(tmp_path / "mine"))
    monkeypatch.setenv("SIMCLR_DATA", str(tmp_path / "mine"))
    assert resolve_data(get_profile("colab"), None) == DataSpec("image_folder", str(tmp_path / "mine"))
    assert resolve_data(get_profile("smoke"), None) == DataSpec("image_folder", str(tmp_path / "mine"))
    monkeypatch.delenv("SIMCLR_DATA")
    assert resolve_data(get_profile("smoke"), None) == DataSpec("bundled")


def test_a_new_machine_fetches_the_cache_a_checkpoint_names_again(clean_env, online):
    """A checkpoint on Drive names the download cache; a fresh Colab runtime does not have it yet."""
    spec = DataSpec("torchvision", str(clean_env))
    assert not clean_env.exists()
    splits = load_cifar10(spec)
    assert len(splits.train) == 100 and online == [str(clean_env)]
    elsewhere = DataSpec("torchvision", str(clean_env.parent / "not-the-cache"))
    with pytest.raises(DataError, match="no CIFAR-10 found there"):  # someone else's folder: never downloaded into
        load_cifar10(elsewhere)


def test_paths_are_shown_with_a_tilde():
    from pathlib import Path

    assert shown(Path.home() / ".cache" / "x") == str(Path("~") / ".cache" / "x")


# ------------------------------------------------------------- the notebooks' setup cell --

def test_setup_on_colab_without_a_gpu(clean_env, colab, no_download, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = notebook.setup(seed=0, profile="auto", quiet=True)
    assert s.on_colab and not s.in_drive and colab == []
    assert s.profile.name == "smoke" and s.device.type == "cpu"
    assert s.precision.name == "fp32" and not s.precision.scaler
    assert s.data == DataSpec("bundled")


@pytest.mark.parametrize("capability, memory_gb, name, profile, precision, scaler", [
    ((7, 5), 15.8, "Tesla T4", "colab", torch.float16, True),
    ((9, 0), 85.0, "NVIDIA H100 80GB HBM3", "gpu", torch.bfloat16, False),
])
def test_setup_on_colab_with_a_gpu(clean_env, colab, no_download, monkeypatch, capsys,
                                   capability, memory_gb, name, profile, precision, scaler):
    fake_gpu(monkeypatch, capability, memory_gb, name)
    s = notebook.setup(seed=0, profile="auto")
    assert s.on_colab and s.device.type == "cuda"
    assert s.profile == PROFILES[profile]
    assert s.precision.dtype == precision and s.precision.scaler == scaler
    assert s.data == DataSpec("torchvision", str(clean_env))  # where CIFAR-10 will be downloaded to, not yet
    assert not clean_env.exists()
    out = capsys.readouterr().out
    major, minor = capability
    assert f"profile: {profile} ({name}, capability {major}.{minor}" in out and name in out
    assert ("fp16 + loss scaling" if scaler else "bf16") in out
    assert "downloaded on first use" in out and "170 MB, once" in out


def test_the_profile_variable_wins_over_the_hardware(clean_env, colab, no_download, monkeypatch):
    fake_gpu(monkeypatch, (7, 5), 15.8, "Tesla T4")
    s = notebook.setup(seed=0, profile="smoke", quiet=True)
    assert s.profile.name == "smoke" and s.precision.name == "fp16" and s.data == DataSpec("bundled")
    with pytest.raises(SimclrError, match="unknown profile 'huge'"):
        notebook.setup(seed=0, profile="huge", quiet=True)


def test_keep_in_drive_mounts_drive_and_moves_the_checkpoints_there(clean_env, colab, no_download, monkeypatch,
                                                                   tmp_path):
    fake_gpu(monkeypatch, (7, 5), 15.8, "Tesla T4")
    s = notebook.setup(seed=0, profile="auto", keep_in_drive=True, quiet=True)
    folder = tmp_path / "content" / "drive" / "MyDrive" / "simclr-step-by-step" / "checkpoints"
    assert colab == [str(tmp_path / "content" / "drive")]  # mounted once, at Colab's mount point
    assert s.in_drive and s.checkpoint_dir == folder / "colab" and folder.is_dir()
    assert os.environ["SIMCLR_CHECKPOINTS"] == str(folder)  # what `!python -m simclr_helpers ...` inherits
    assert choose_run(s.profile, "mine").folder == s.checkpoint_dir  # what notebooks 04-06 read as yours
    shown_as = s.relative(s.checkpoint_dir / "last.pt")
    assert shown_as == "Google Drive: MyDrive/simclr-step-by-step/checkpoints/colab/last.pt"


def test_a_run_on_drive_resumes_in_a_new_runtime(clean_env, colab, monkeypatch, tmp_path, tiny_run, tiny_profile,
                                                 bundled, capsys):
    """The first runtime wrote last.pt to Drive and ended; a new one sets up again and continues from it."""
    from simclr_helpers.checkpoints import RunRecord
    from simclr_helpers.train import pretrain

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = notebook.setup(seed=0, profile="smoke", keep_in_drive=True, quiet=True)
    (s.checkpoint_dir).mkdir(parents=True)
    shutil.copy(tiny_run.checkpoint, s.checkpoint_dir / "last.pt")  # what the first runtime left on Drive
    monkeypatch.delenv("SIMCLR_CHECKPOINTS")  # a new runtime: nothing of the old process is left
    s = notebook.setup(seed=0, profile="smoke", keep_in_drive=True, quiet=True)
    assert choose_run(s.profile).pretrained() == s.checkpoint_dir / "last.pt"  # notebooks 04-06
    train = bundled.train.balanced_subset(320)
    capsys.readouterr()
    result = pretrain(tiny_profile.with_overrides(epochs=3), train, resume=True,
                      progress=False)  # `pretrain --resume` with no --out: $SIMCLR_CHECKPOINTS/<profile>
    assert result.checkpoint == s.checkpoint_dir / "last.pt"
    lines = capsys.readouterr().out.splitlines()  # printed in the cell, as setup arranged
    assert any(line.startswith("resuming ") and "at epoch 3/3" in line for line in lines), lines
    assert RunRecord.load(result.checkpoint).epoch == 3


def test_keep_in_drive_off_colab_says_so_and_changes_nothing(clean_env, not_colab, capsys):
    s = notebook.setup(seed=0, profile="smoke", keep_in_drive=True)
    out = capsys.readouterr().out
    assert notebook.NOT_ON_COLAB in out
    assert notebook.NOT_ON_COLAB.count(".") == 1 and notebook.NOT_ON_COLAB.endswith(".")
    assert "SIMCLR_CHECKPOINTS" not in os.environ and not s.in_drive and not s.on_colab
    assert s.relative(s.checkpoint_dir / "last.pt") == "checkpoints/smoke/last.pt"


def test_nothing_is_mounted_unless_asked(clean_env, colab, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    notebook.setup(seed=0, quiet=True)
    notebook.setup(seed=0, keep_in_drive=False, quiet=True)
    assert colab == [] and "SIMCLR_CHECKPOINTS" not in os.environ


def test_a_refused_drive_mount_is_one_sentence(clean_env, colab, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise ValueError("mount failed")

    monkeypatch.setattr(sys.modules["google.colab.drive"], "mount", refuse)
    with pytest.raises(SimclrError, match=r"Google Drive was not mounted \(mount failed\).*KEEP_IN_DRIVE = False"):
        notebook.setup(seed=0, keep_in_drive=True, quiet=True)
    assert "SIMCLR_CHECKPOINTS" not in os.environ
