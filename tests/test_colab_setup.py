"""What a Colab learner is told in the notebooks' terms: a GPU profile on a runtime without a GPU, a PROFILE
that names no profile (checked before Drive is mounted), and the upload box's ipywidgets 7 value (Colab's)."""

import sys
import types

import pytest
import torch

from simclr_helpers import notebook, widgets
from simclr_helpers.cli import main
from simclr_helpers.errors import SimclrError

ENV = ("SIMCLR_PROFILE", "SIMCLR_DATA", "SIMCLR_CHECKPOINTS", "SIMCLR_RUN")


@pytest.fixture
def colab_without_gpu(monkeypatch, tmp_path):
    """A Colab runtime without a GPU: ``google.colab`` loaded, ``drive.mount`` recording, no course variables."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIMCLR_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mounts = []
    drive = types.ModuleType("google.colab.drive")
    drive.mount = lambda path, *a, **k: mounts.append(path)
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    return mounts


def one_sentence(text: str) -> bool:
    return text.endswith(".") and ". " not in text and "\n" not in text


@pytest.mark.parametrize("profile", ["colab", "gpu"])
@pytest.mark.parametrize("keep_in_drive", [False, True])
def test_a_gpu_profile_without_a_gpu_stops_the_setup_cell_in_one_sentence(colab_without_gpu, profile,
                                                                          keep_in_drive):
    with pytest.raises(SimclrError) as info:
        notebook.setup(seed=0, profile=profile, keep_in_drive=keep_in_drive)
    message = str(info.value)
    assert message.startswith(f'the {profile} profile (PROFILE = "{profile}") is sized for a GPU and this '
                              "runtime has none")
    assert "Runtime > Change runtime type" in message and 'set PROFILE to "smoke" or "cpu"' in message
    assert "--profile" not in message and "$SIMCLR" not in message and one_sentence(message)
    assert colab_without_gpu == []  # stopped before Drive asked for permission (and before any data)


def test_a_gpu_profile_from_the_environment_names_the_variable(colab_without_gpu, monkeypatch):
    monkeypatch.setenv("SIMCLR_PROFILE", "colab")
    with pytest.raises(SimclrError, match=r"^the colab profile \(\$SIMCLR_PROFILE\) is sized for a GPU"):
        notebook.setup(seed=0, profile="auto")


def test_the_cpu_profiles_still_set_up_without_a_gpu(colab_without_gpu):
    for profile in ("smoke", "cpu", "auto"):
        assert notebook.setup(seed=0, profile=profile, quiet=True).device.type == "cpu"


@pytest.mark.parametrize("keep_in_drive", [False, True])
def test_a_bad_profile_names_the_field_and_its_choices_before_drive_is_mounted(colab_without_gpu, keep_in_drive):
    with pytest.raises(SimclrError) as info:
        notebook.setup(seed=0, profile="Colab", keep_in_drive=keep_in_drive)
    message = str(info.value)
    assert message == ("unknown profile 'Colab'; set PROFILE in the setup cell to one of "
                       '"auto", "smoke", "cpu", "colab", "gpu".')
    assert colab_without_gpu == []  # no permission prompt for a typo


def test_a_bad_profile_from_the_environment_says_so(colab_without_gpu, monkeypatch):
    monkeypatch.setenv("SIMCLR_PROFILE", "huge")
    with pytest.raises(SimclrError) as info:
        notebook.setup(seed=0, keep_in_drive=True)
    message = str(info.value)
    assert message.startswith("unknown profile 'huge' in $SIMCLR_PROFILE; set PROFILE in the setup cell to one of")
    assert message.endswith("or unset $SIMCLR_PROFILE.") and "--profile" not in message
    assert colab_without_gpu == []


@pytest.mark.parametrize("profile", ["colab", "gpu"])
def test_pretrain_with_a_gpu_profile_on_a_cpu_asks_for_device_cpu(monkeypatch, capsys, tmp_path, profile):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SIMCLR_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    assert main(["pretrain", "--profile", profile, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: the {profile} profile (--profile {profile}) is sized for a GPU and this machine has none: "
                   "on Colab choose a GPU under Runtime > Change runtime type, use --profile smoke or --profile cpu "
                   "(sized for a CPU), or add --device cpu to train it on the CPU anyway.")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # nothing downloaded or written


def test_pretrain_with_device_cpu_goes_on(monkeypatch, tmp_path):
    """``--device cpu`` is the way on: the run starts (stopped here at its data, which this test withholds)."""
    import simclr_helpers.runs as runs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_data(*args, **kwargs):
        raise SimclrError("reached the data")

    monkeypatch.setattr(runs, "load_pretrain_data", no_data)
    assert main(["pretrain", "--profile", "colab", "--device", "cpu", "--out", str(tmp_path / "run")]) == 2


# ------------------------------------------------------- the upload box on ipywidgets 7 (Colab's) --

def test_the_upload_box_reads_ipywidgets_7s_value():
    """ipywidgets 7 gives {name: {"metadata": {...}, "content": bytes}}; ipywidgets 8 a tuple of dicts."""
    seven = {"ship.jpg": {"metadata": {"name": "ship.jpg", "type": "image/jpeg", "size": 3,
                                       "lastModified": 1790000000000}, "content": b"abc"}}
    eight = ({"name": "ship.jpg", "type": "image/jpeg", "size": 3, "content": memoryview(b"abc")},)
    assert widgets.read_upload(seven) == widgets.read_upload(eight) == ("ship.jpg", b"abc")
    assert widgets.upload_problem(seven) is None and widgets.upload_problem({}) == widgets.NO_FILE_RECEIVED
    big = {"photo.jpg": {"metadata": {"name": "photo.jpg", "size": 3_400_000}, "content": b""}}
    assert widgets.upload_problem(big).startswith("photo.jpg (3.4 MB) did not arrive:")
    empty = {"blank.jpg": {"metadata": {"name": "blank.jpg", "size": 0}, "content": b""}}
    assert widgets.upload_problem(empty) == "blank.jpg: the file is empty (0 bytes); it is not an image."
