import pytest

from simclr_helpers.config import NORMALIZE, PROFILES, default_checkpoint_dir, get_profile, project_root
from simclr_helpers.errors import SimclrError


def test_profile_by_argument_environment_or_default(monkeypatch):
    monkeypatch.delenv("SIMCLR_PROFILE", raising=False)
    assert get_profile().name == "smoke"
    monkeypatch.setenv("SIMCLR_PROFILE", "gpu")
    assert get_profile().name == "gpu" and get_profile("cpu").name == "cpu"
    monkeypatch.setenv("SIMCLR_PROFILE", "huge")
    with pytest.raises(SimclrError, match="unknown profile 'huge'"):
        get_profile()


def test_profiles_differ_only_in_sizes():
    sizes = {"name", "epochs", "batch_size", "stem", "data", "train_limit", "warmup_epochs",
             "knn_every"}
    base = PROFILES["smoke"].to_dict()
    for profile in PROFILES.values():
        differing = {k for k, v in profile.to_dict().items() if base[k] != v}
        assert differing <= sizes, differing


def test_overrides_skip_none():
    p = get_profile("smoke").with_overrides(epochs=3, batch_size=None)
    assert p.epochs == 3 and p.batch_size == get_profile("smoke").batch_size


def test_checkpoint_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SIMCLR_CHECKPOINTS", str(tmp_path))
    assert default_checkpoint_dir() == tmp_path
    monkeypatch.delenv("SIMCLR_CHECKPOINTS")
    assert default_checkpoint_dir() == project_root() / "checkpoints"


def test_one_normalisation_constant():
    assert len(NORMALIZE["mean"]) == len(NORMALIZE["std"]) == 3
    assert all(0.2 < s < 0.3 for s in NORMALIZE["std"])  # CIFAR-10's, not (0.5, 0.5, 0.5)


def test_profile_round_trips_through_a_checkpoint_dict():
    p = get_profile("cpu").with_overrides(epochs=2, temperature=0.5)
    from simclr_helpers.config import Profile

    assert Profile.from_dict({**p.to_dict(), "a_field_from_another_version": 1}) == p


def test_peak_lr_is_the_per_256_rate_scaled_to_the_batch_and_what_training_uses():
    from torch import nn

    from simclr_helpers.train import make_optimizer

    assert PROFILES["cpu"].peak_lr == pytest.approx(0.12) and PROFILES["gpu"].peak_lr == pytest.approx(0.24)
    profile = PROFILES["smoke"].with_overrides(batch_size=64, lr_per_256=0.3)
    assert profile.peak_lr == pytest.approx(0.075)
    assert make_optimizer(nn.Linear(2, 2), profile).defaults["lr"] == profile.peak_lr
    assert "peak_lr" not in profile.to_dict()  # derived, not stored in a checkpoint
