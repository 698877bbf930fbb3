import os
import pickle
import random

import pytest
import torch

from simclr_helpers import checkpoints as C
from simclr_helpers.errors import CheckpointError


def test_round_trip_has_kind_and_version(tmp_path):
    path = C.save_checkpoint({"w": torch.ones(3), "settings": {"a": 1}}, tmp_path / "c.pt", "simclr")
    data = C.load_checkpoint(path, kind="simclr")
    assert data["kind"] == "simclr" and data["format_version"] == C.FORMAT_VERSION
    assert torch.equal(data["w"], torch.ones(3))


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = C.save_checkpoint({"epoch": 1}, tmp_path / "last.pt", "simclr")

    def dies_half_way(obj, fh):
        fh.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(C.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        C.save_checkpoint({"epoch": 2}, path, "simclr")
    monkeypatch.undo()
    assert C.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_missing_folder_and_garbage(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        C.load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        C.load_checkpoint(tmp_path)
    (tmp_path / "notes.pt").write_text("these are my training notes, not weights\n")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        C.load_checkpoint(tmp_path / "notes.pt")
    good = C.save_checkpoint({"w": torch.ones(1000)}, tmp_path / "good.pt", "simclr")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        C.load_checkpoint(tmp_path / "cut.pt")


@pytest.mark.parametrize("prefix", [b"", b"\x80\x02", b"\x80\x04", b"PK\x03\x04"],
                         ids=["raw", "pickle2", "pickle4", "zip"])
def test_any_garbage_is_one_clear_error(tmp_path, prefix):
    # Random bytes make the unpickler fail in many different ways (IndexError, KeyError, struct.error, ...);
    # each must come out as the same clear CheckpointError, never a raw traceback.
    rng = random.Random(0)
    junk = tmp_path / "junk.pt"
    for _ in range(300):
        junk.write_bytes(prefix + rng.randbytes(rng.randrange(1, 400)))
        with pytest.raises(CheckpointError, match="not a readable checkpoint|refused to load"):
            C.load_checkpoint(junk)


def test_foreign_and_old_checkpoints(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this course"):
        C.load_checkpoint(tmp_path / "other.pt")
    torch.save({"kind": "simclr", "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99 comes from another version"):
        C.load_checkpoint(tmp_path / "future.pt")
    # A checkpoint of format 1 (the data spec inside the settings) gets one sentence saying how to re-create it.
    torch.save({"kind": "simclr", "format_version": 1, "settings": {"extra": {"data": "bundled"}}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"format 1 comes from an earlier version of the course, which reads "
                                              r"format 2; re-create it with `python -m simclr_helpers pretrain`"):
        C.RunRecord.load(tmp_path / "old.pt")
    torch.save({"kind": "classifier", "format_version": 1}, tmp_path / "old_clf.pt")
    with pytest.raises(CheckpointError, match="re-create it with `python -m simclr_helpers evaluate --method linear"):
        C.ClassifierRecord.load(tmp_path / "old_clf.pt")


def test_wrong_kind_says_what_is_needed(tmp_path):
    path = C.save_checkpoint({}, tmp_path / "s.pt", "simclr")
    with pytest.raises(CheckpointError, match="is a simclr checkpoint, but a classifier checkpoint is needed"):
        C.load_checkpoint(path, kind="classifier")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_crafted_pickle_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as fh:
        pickle.dump({"kind": "simclr", "format_version": 1, "x": _Exploit()}, fh)
    torch.save({"kind": "simclr", "format_version": 1, "x": _Exploit()}, "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError, match="refused to load|not a readable"):
            C.load_checkpoint(name)
    assert not (tmp_path / "PWNED").exists()


def test_run_record_round_trips_every_field(tmp_path):
    from simclr_helpers.config import NORMALIZE, get_profile
    from simclr_helpers.data import DataSpec

    record = C.RunRecord(profile=get_profile("cpu").with_overrides(epochs=3), data=DataSpec("image_folder", "cifar"),
                         normalize=NORMALIZE, classes=["a", "b"], num_train=1000, epoch=2,
                         metrics=[{"epoch": 1}, {"epoch": 2}], model={"w": torch.ones(2)},
                         rng=torch.ByteTensor([1, 2]), pipeline="blog")
    back = C.RunRecord.load(record.save(tmp_path / "last.pt"))
    assert back.profile == record.profile and back.data == record.data and back.classes == ["a", "b"]
    assert (back.epoch, back.num_train, back.metrics, back.pipeline) == (2, 1000, record.metrics, "blog")
    assert back.steps_per_epoch == 1000 // 256 and back.steps == 2 * (1000 // 256)
    assert torch.equal(back.model["w"], torch.ones(2)) and torch.equal(back.rng, record.rng)
    raw = torch.load(tmp_path / "last.pt", weights_only=True)  # plain tensors and values on disk
    assert raw["data"] == {"kind": "image_folder", "path": "cifar"} and "extra" not in raw["profile"]


def test_a_record_with_missing_fields_is_one_clear_error(tmp_path):
    path = C.save_checkpoint({"profile": {}}, tmp_path / "half.pt", "simclr")
    with pytest.raises(CheckpointError, match="lacks data, normalize, classes"):
        C.RunRecord.load(path)
