import pytest

from simclr_helpers.config import get_profile
from simclr_helpers.errors import DataError
from simclr_helpers.runs import load_or_make_classifier, load_or_pretrain, load_pretrain_data, resolve_data


def test_data_spec_comes_from_argument_env_or_profile(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    assert resolve_data(get_profile("smoke"), None) == "bundled"
    with pytest.raises(DataError, match="needs CIFAR-10"):
        resolve_data(get_profile("cpu"), None)
    monkeypatch.setenv("SIMCLR_DATA", str(tmp_path))
    assert resolve_data(get_profile("cpu"), None) == str(tmp_path)
    assert resolve_data(get_profile("cpu"), "elsewhere") == "elsewhere"


def test_monitor_queries_are_held_out_of_pretraining(monkeypatch):
    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    data = load_pretrain_data(get_profile("smoke"), log=None)
    train, (bank, held) = data["train"], data["monitor"]
    assert len(train) == 2700 and len(held) == 300 and len(bank) <= len(train)
    seen = {bytes(img.numpy()) for img in train.images}
    assert not any(bytes(img.numpy()) in seen for img in held.images)


def test_load_or_pretrain_reuses_an_existing_checkpoint(tiny_run, tiny_profile):
    messages = []
    path = load_or_pretrain(tiny_profile, tiny_run.checkpoint.parent, log=messages.append)
    assert path == tiny_run.checkpoint and messages == []


def test_load_or_make_classifier_trains_the_probe_when_missing(tiny_run, tiny_profile, tmp_path):
    import shutil

    shutil.copy(tiny_run.checkpoint, tmp_path / "last.pt")
    messages = []
    path = load_or_make_classifier(tiny_profile, tmp_path, log=messages.append)
    assert path == tmp_path / "classifier.pt" and path.exists()
    assert any("training the linear probe now" in m for m in messages)
    assert load_or_make_classifier(tiny_profile, tmp_path, log=messages.append) == path
