"""The reference weights shipped with the package: intact, opened by one name everywhere, and trained."""

import hashlib
import json
import logging
import shutil

import pytest
import torch

from simclr_helpers import checkpoints as C
from simclr_helpers.errors import CheckpointError


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory, tiny_run, classifier_ckpt):
    """A reference file made the way the shipped one was (``export_reference``), from the test suite's tiny run."""
    path = tmp_path_factory.mktemp("reference") / "weights.pt"
    info = C.export_reference(C.RunRecord.load(tiny_run.checkpoint), C.ClassifierRecord.load(classifier_ckpt), path)
    return path, info


def test_export_keeps_the_run_in_fp16_without_its_training_state(small_reference, tiny_run, classifier_ckpt):
    path, info = small_reference
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and info["bytes"] == path.stat().st_size
    raw = torch.load(path, weights_only=True)
    assert all(v.dtype in (torch.float16, torch.int64) for v in raw["model"].values())
    assert "optimizer" not in raw["run"] and "rng" not in raw["run"]
    assert raw["run"]["data"] == {"kind": "torchvision", "path": None}  # CIFAR-10 wherever the user keeps it
    assert "checkpoint" not in raw["probe"]  # the probe's source names no path of the machine that made it

    run = C.reference_payload("simclr", path, info["sha256"])
    original = C.RunRecord.load(tiny_run.checkpoint)
    assert run["kind"] == "simclr" and run["epoch"] == original.epoch and run["metrics"] == original.metrics
    for key, value in original.model.items():  # fp16 rounding only: relative error below 2^-10
        assert run["model"][key].dtype == value.dtype
        assert torch.allclose(run["model"][key], value, rtol=1e-3, atol=1e-4), key

    clf = C.reference_payload("classifier", path, info["sha256"])
    stored = C.ClassifierRecord.load(classifier_ckpt)
    assert clf["kind"] == "classifier" and clf["classes"] == stored.classes and clf["stem"] == stored.stem
    assert set(clf["backbone"]) == set(stored.backbone)
    assert torch.allclose(clf["fc"]["weight"], stored.fc["weight"], rtol=1e-3, atol=1e-4)


def test_an_edited_truncated_or_pointer_file_is_refused_in_one_sentence(small_reference, tmp_path):
    path, info = small_reference
    blob = path.read_bytes()
    cases = {
        "edited": blob[:1000] + bytes([blob[1000] ^ 1]) + blob[1001:],
        "truncated": blob[: len(blob) // 2],
        "pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + info["sha256"].encode() + b"\n",
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.pt"
        bad.write_bytes(content)
        expected = "holds a Git LFS pointer" if name == "pointer" else "its sha256 begins .*, not .* as the package"
        with pytest.raises(CheckpointError, match=expected) as err:
            C.reference_payload("simclr", bad, info["sha256"])
        message = str(err.value)
        assert f"simclr_helpers/assets/reference/{bad.name}" in message and "restore it" in message
        assert message.count(". ") == 0 and "\n" not in message  # one sentence
    with pytest.raises(CheckpointError, match="reference weights are not installed"):
        C.reference_payload("simclr", tmp_path / "missing.pt", info["sha256"])


def test_the_shipped_file_matches_its_recorded_checksum_and_size():
    blob = C.REFERENCE_FILE.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == C.REFERENCE_SHA256
    assert len(blob) < 25_000_000  # small enough to live in the repository and install with the package


def test_the_shipped_weights_are_the_results_rows_run():
    """Profile, length and losses of the shipped run are those the results file records for its row."""
    from simclr_helpers.lab.results import load, metrics_file

    record = C.RunRecord.load(C.REFERENCE)
    row = next(r for r in load()["rows"] if r["id"] == C.REFERENCE_ROW)
    p = record.profile
    assert (p.name, p.stem, p.batch_size, p.lr_per_256, record.epoch) == (
        row["profile"], row["stem"], row["batch_size"], row["lr_per_256"], row["epochs"])
    recorded = json.loads(metrics_file(C.REFERENCE_ROW).read_text())
    assert [m["loss"] for m in record.metrics] == [m["loss"] for m in recorded]
    probe = C.ClassifierRecord.load(C.REFERENCE).source
    assert probe["top1"] == row["linear"]["simclr"]  # the shipped probe is the row's linear probe


def test_the_shipped_backbone_has_learned(capsys):
    """``evaluate --checkpoint reference --data bundled --json``: kNN top-1 on the bundled subset (bank: its 3,000
    training images, queries: its 1,000 test images), against a random-init backbone of the same stem.

    Measured when the weights were shipped: the reference backbone 59.7%, random init (seed 0) 27.1%. The test
    asks for 20 points more than random init: untrained or damaged weights (replaced by a random-init export
    with a matching checksum, the check was made) fail it.
    """
    from simclr_helpers.cli import main

    top1 = {}
    for extra in ([], ["--random-init"]):
        assert main(["evaluate", "--checkpoint", "reference", "--data", "bundled", "--json", *extra]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["n_train"] == 3000 and result["n_test"] == 1000 and result["checkpoint"] == "reference"
        top1[result["backbone"]] = result["top1"]
    assert top1["simclr"] > top1["random-init"] + 0.20, top1


def test_predict_with_the_reference_probe(bundled, tmp_path, capsys):
    """``predict --checkpoint reference`` classifies image files with the shipped probe, mostly rightly."""
    from PIL import Image

    from simclr_helpers.cli import main

    files = []
    for i in range(0, 1000, 50):  # 20 test images, two of each class
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(bundled.test.images[i].permute(1, 2, 0).numpy()).save(files[-1])
    assert main(["predict", "--checkpoint", "reference", *map(str, files), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert [len(p["top"]) for p in predictions] == [5] * 20
    right = sum(p["top"][0]["class"] == bundled.test.classes[int(bundled.test.labels[i])]
                for p, i in zip(predictions, range(0, 1000, 50)))
    assert right >= 8, f"{right} of 20 right"  # chance is 2 of 20; the probe's test top-1 is 67%


def test_nothing_writes_into_the_reference(tmp_path, monkeypatch):
    """The notebooks' probe for the reference goes to checkpoints/reference/, never into the package."""
    from simclr_helpers.config import get_profile
    from simclr_helpers.runs import choose_run

    monkeypatch.setenv("SIMCLR_CHECKPOINTS", str(tmp_path))
    run = choose_run(get_profile("smoke"), "reference")
    assert run.checkpoint == "reference" and run.classifier() == "reference"
    assert run.classifier_out == tmp_path / "reference" / "classifier.pt"
    before = C.REFERENCE_FILE.stat().st_mtime_ns
    assert run.pretrained() == "reference" and C.REFERENCE_FILE.stat().st_mtime_ns == before


def test_the_reference_without_cifar10_falls_back_to_the_bundled_subset(monkeypatch, tmp_path, caplog):
    """Offline and without $SIMCLR_DATA, notebooks 04-06 evaluate the reference on the bundled subset and say so."""
    from simclr_helpers.config import get_profile
    from simclr_helpers.runs import choose_run

    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    monkeypatch.setenv("SIMCLR_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("simclr_helpers.data.download_cifar10", _no_network)
    caplog.set_level(logging.INFO, logger="simclr_helpers")
    splits = choose_run(get_profile("smoke"), "reference").data()
    assert (len(splits.train), len(splits.test)) == (3000, 1000)
    lines = caplog.messages
    assert len(lines) == 1 and "no network here" in lines[0] and "bundled subset stands in" in lines[0]


def _no_network(root, reason="this run needs CIFAR-10"):
    from simclr_helpers.errors import DataError

    raise DataError(f"{reason}: no network here.")


def test_a_copy_of_the_file_elsewhere_is_not_the_reference(tmp_path):
    """Only the name opens the shipped weights; a copied file is an ordinary path (and not a course checkpoint)."""
    shutil.copy(C.REFERENCE_FILE, tmp_path / "copy.pt")
    with pytest.raises(CheckpointError, match="holds the course's reference weights; open them by the name"):
        C.RunRecord.load(tmp_path / "copy.pt")


def test_export_reference_command_measures_what_fp16_costs(tiny_run, classifier_ckpt, tmp_path, capsys):
    """``export-reference --data``: the file, its checksum, and fp16 against fp32 on the same test images."""
    from simclr_helpers.cli import main

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run.checkpoint, run / "last.pt")
    shutil.copy(classifier_ckpt, run / "classifier.pt")
    assert main(["export-reference", "--run", str(run), "--out", str(tmp_path / "w.pt"), "--data", "bundled"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sha256"] == hashlib.sha256((tmp_path / "w.pt").read_bytes()).hexdigest()
    precision = info["precision"]
    assert precision["n_test"] == 1000 and abs(precision["knn_fp16"] - precision["knn_fp32"]) < 0.02
    assert precision["linear"].startswith("fp16 - fp32 = ") and "McNemar's exact test, 1,000 test images" in \
        precision["linear"]
