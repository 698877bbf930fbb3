import logging
from pathlib import Path

import pytest

from simclr_helpers.config import get_profile
from simclr_helpers.data import DataSpec
from simclr_helpers.errors import CheckpointError, DataError
from simclr_helpers.runs import Run, choose_run, load_pretrain_data, resolve_data


def test_data_spec_comes_from_argument_env_or_profile(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    monkeypatch.setenv("SIMCLR_DATA_CACHE", str(tmp_path / "cache"))
    assert resolve_data(get_profile("smoke"), None) == DataSpec("bundled")
    # The cpu profile's CIFAR-10 comes from the download cache (test_colab.py covers the download itself).
    assert resolve_data(get_profile("cpu"), None, fetch=False) == DataSpec("torchvision", str(tmp_path / "cache"))
    monkeypatch.setenv("SIMCLR_DATA", str(tmp_path))
    assert resolve_data(get_profile("cpu"), None) == DataSpec("unlabelled", str(tmp_path))  # an empty folder
    (tmp_path / "train").mkdir()
    assert resolve_data(get_profile("cpu"), None) == DataSpec("image_folder", str(tmp_path))
    with pytest.raises(DataError, match="elsewhere: no such folder"):
        resolve_data(get_profile("cpu"), "elsewhere")
    assert resolve_data(get_profile("cpu"), "elsewhere", download=True) == DataSpec("torchvision", "elsewhere")


def test_monitor_queries_are_held_out_of_pretraining(monkeypatch):
    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    data = load_pretrain_data(get_profile("smoke"))
    train, (bank, held) = data.train, data.monitor
    assert len(train) == 2700 and len(held) == 300 and len(bank) <= len(train)
    seen = {bytes(img.numpy()) for img in train.images}
    assert not any(bytes(img.numpy()) in seen for img in held.images)


def test_an_existing_run_is_opened_without_training(tiny_run, tiny_profile, caplog):
    caplog.set_level(logging.INFO, logger="simclr_helpers")
    run = Run(tiny_run.checkpoint.parent, tiny_profile, "test", named=False)
    assert run.pretrained() == tiny_run.checkpoint and caplog.messages == []


def test_a_missing_classifier_is_trained_beside_the_run(tiny_run, tiny_profile, tmp_path, caplog):
    import shutil

    caplog.set_level(logging.INFO, logger="simclr_helpers")
    shutil.copy(tiny_run.checkpoint, tmp_path / "last.pt")
    run = Run(tmp_path, tiny_profile, "test", named=False)
    path = run.classifier()
    assert path == tmp_path / "classifier.pt" == run.classifier_out and path.exists()
    assert any("training the linear probe now" in m for m in caplog.messages)
    assert run.classifier() == path


def test_which_run_the_notebooks_read(tiny_run, tiny_profile, tmp_path, monkeypatch):
    """RUN "auto": $SIMCLR_RUN if set (a folder or `reference`), else notebook 03's run if there, else the
    reference weights; "mine" and "reference" choose without looking; anything else is one sentence."""
    import shutil

    from simclr_helpers.errors import SimclrError

    monkeypatch.delenv("SIMCLR_RUN", raising=False)
    monkeypatch.setenv("SIMCLR_CHECKPOINTS", str(tmp_path / "ckpts"))
    mine = tmp_path / "ckpts" / tiny_profile.name
    assert choose_run(tiny_profile).is_reference  # notebook 03 not run yet
    assert "notebook 03 has not been run" in choose_run(tiny_profile).why
    assert choose_run(tiny_profile, "mine").folder == mine and not choose_run(tiny_profile, "mine").named
    mine.mkdir(parents=True)
    shutil.copy(tiny_run.checkpoint, mine / "last.pt")
    assert choose_run(tiny_profile).folder == mine
    assert choose_run(tiny_profile, "reference").is_reference
    monkeypatch.setenv("SIMCLR_RUN", str(tiny_run.checkpoint.parent))
    run = choose_run(tiny_profile)
    assert run.folder == tiny_run.checkpoint.parent and run.named and "SIMCLR_RUN" in run.why
    monkeypatch.setenv("SIMCLR_RUN", "reference")
    assert choose_run(tiny_profile).is_reference and choose_run(tiny_profile, "mine").folder == mine
    with pytest.raises(SimclrError, match='RUN = "yours" is not one of the choices; set RUN in the setup cell'):
        choose_run(tiny_profile, "yours")


def test_a_named_empty_folder_is_refused_and_stays_empty(tiny_profile, tmp_path, monkeypatch):
    """A folder named by $SIMCLR_RUN without last.pt: one sentence, and nothing is trained or written into it."""
    monkeypatch.setenv("SIMCLR_RUN", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    run = choose_run(tiny_profile)
    messages = []
    for call in (run.check, run.pretrained, run.classifier, run.open):
        with pytest.raises(CheckpointError, match="SIMCLR_RUN names this run folder but it holds no last.pt"):
            call()
    assert list((tmp_path / "empty").iterdir()) == [] and messages == []


def test_a_relative_data_path_is_found_from_the_notebooks_folder(tmp_path, monkeypatch):
    """A run started in the course's folder records `data/...`; notebooks run in `notebooks/` and still find it."""
    for folder in ("notebooks", "simclr_helpers", "data/cifar/train"):
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks")
    assert DataSpec("image_folder", "data/cifar").local_path() == tmp_path / "data" / "cifar"
    assert DataSpec("image_folder", "elsewhere").local_path() == Path("elsewhere")  # not there: as given
