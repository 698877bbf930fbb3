import io

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_helpers import predict as P
from simclr_helpers.checkpoints import ClassifierRecord, RunRecord
from simclr_helpers.errors import CheckpointError


def test_classifier_checkpoint_is_self_contained(classifier_ckpt, tiny_run):
    ckpt = ClassifierRecord.load(classifier_ckpt)
    simclr = RunRecord.load(tiny_run.checkpoint)
    assert ckpt.normalize == simclr.normalize  # prediction uses the pretraining normalisation
    assert ckpt.stem == simclr.profile.stem and len(ckpt.classes) == 10


def test_prediction_uses_the_checkpoints_normalisation(classifier_ckpt, tmp_path, bundled, monkeypatch):
    clf = P.load_classifier(classifier_ckpt)
    seen = []
    real = P.to_model_input
    monkeypatch.setattr(P, "to_model_input", lambda x, stats: seen.append(stats) or real(x, stats))
    P.predict_image(clf, Image.fromarray(bundled.test.images[0].permute(1, 2, 0).numpy()))
    assert seen == [clf.normalize]
    # A checkpoint with other statistics gives other probabilities: the stored values are really used.
    ckpt = ClassifierRecord.load(classifier_ckpt)
    ckpt.normalize = {"mean": [0.5] * 3, "std": [0.5] * 3}
    other = ckpt.save(tmp_path / "other.pt")
    img = bundled.test.images[:1]
    assert not torch.allclose(clf.probabilities(img), P.load_classifier(other).probabilities(img))


def test_predict_matches_the_model_on_a_test_image(classifier_ckpt, bundled):
    clf = P.load_classifier(classifier_ckpt)
    pil = Image.fromarray(bundled.test.images[3].permute(1, 2, 0).numpy())
    top = P.predict_image(clf, pil, top_k=10)
    probs = clf.probabilities(bundled.test.images[3:4])[0]
    assert [c for c, _ in top] == [clf.classes[i] for i in probs.argsort(descending=True)]
    assert sum(p for _, p in top) == pytest.approx(1.0, abs=1e-5)


def test_bad_files_are_reported_and_the_rest_predicted(classifier_ckpt, tmp_path):
    clf = P.load_classifier(classifier_ckpt)
    Image.new("LA", (300, 200), (128, 200)).save(tmp_path / "grey_alpha.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:100])
    files = [tmp_path / "grey_alpha.png", tmp_path / "empty.jpg", tmp_path / "missing.png", tmp_path / "cut.jpg"]
    res = P.predict_files(clf, files, top_k=3)
    assert [r.error is None for r in res] == [True, False, False, False]
    assert len(res[0].top) == 3
    assert "empty" in res[1].error and "no such file" in res[2].error


def test_simclr_checkpoint_is_not_a_classifier(tiny_run):
    with pytest.raises(CheckpointError, match="classifier checkpoint is needed"):
        P.load_classifier(tiny_run.checkpoint)
