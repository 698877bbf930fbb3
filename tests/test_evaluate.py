"""The evaluation protocol, and regression tests for the seed's evaluation mistakes."""

import pytest
import torch
from torch import nn

from simclr_helpers.evaluate import (
    confusion_matrix,
    evaluate_backbone,
    extract_features,
    freeze,
    knn_accuracy,
    linear_accuracy,
    train_linear_probe,
)
from simclr_helpers.models import LinearClassifier, build_backbone


def _bn_stats(module):
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def test_frozen_backbone_keeps_batchnorm_statistics(bundled):
    torch.manual_seed(0)
    backbone = freeze(build_backbone("imagenet"))
    before = _bn_stats(backbone)
    clf = LinearClassifier(backbone, 10)
    opt = torch.optim.SGD(clf.fc.parameters(), lr=0.1)
    clf.fc.train()  # only the linear layer is in train mode
    for i in range(3):
        x = bundled.train.images[i * 32:(i + 1) * 32].float() / 255
        loss = nn.functional.cross_entropy(clf(x), bundled.train.labels[i * 32:(i + 1) * 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _bn_stats(backbone)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_seeds_freeze_does_not_freeze_batchnorm(bundled):
    """requires_grad=False + model.train() (the seed) still moves BN running statistics."""
    torch.manual_seed(0)
    backbone = build_backbone("imagenet")
    for p in backbone.parameters():
        p.requires_grad = False
    before = _bn_stats(backbone)
    LinearClassifier(backbone, 10).train()(bundled.train.images[:32].float() / 255)
    after = _bn_stats(backbone)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_extract_features_is_eval_mode_and_restores_mode(bundled):
    backbone = build_backbone("imagenet").train()
    before = _bn_stats(backbone)
    f1 = extract_features(backbone, bundled.test.images[:50], batch_size=7)
    f2 = extract_features(backbone, bundled.test.images[:50], batch_size=50)
    assert torch.allclose(f1, f2, atol=1e-5)  # independent of batch composition: eval-mode BN
    assert backbone.training and all(torch.equal(before[k], v) for k, v in _bn_stats(backbone).items())


def test_test_accuracy_comes_from_the_test_predictions(bundled):
    torch.manual_seed(0)
    res = evaluate_backbone(build_backbone("imagenet"), bundled.train.balanced_subset(500), bundled.test,
                            method="linear", linear_epochs=3)
    acc = res.accuracy
    assert len(acc.predictions) == len(bundled.test)
    assert res.top1 == (acc.predictions == bundled.test.labels).float().mean().item()
    res_knn = evaluate_backbone(build_backbone("imagenet"), bundled.train.balanced_subset(500), bundled.test,
                                method="knn", k=20)
    recomputed = (res_knn.accuracy.predictions == bundled.test.labels).float().mean().item()
    assert res_knn.top1 == recomputed


def test_knn_and_linear_on_separable_features():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 5
    labels = torch.arange(4).repeat_interleave(50)
    feats = centers[labels] + torch.randn(200, 16, generator=g)
    assert knn_accuracy(feats[::2], labels[::2], feats[1::2], labels[1::2], 4, k=10).top1 == 1.0
    fc = train_linear_probe(feats[::2], labels[::2], 4, epochs=100, lr=0.05)
    assert linear_accuracy(fc, feats[1::2], labels[1::2]).top1 == 1.0


def test_linear_probe_folds_standardisation_into_the_layer():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(300, 8, generator=g) * torch.tensor([1, 10, 100, 0.1, 1, 1, 1, 1]) + 5
    labels = (feats[:, 1] > 10).long()
    fc = train_linear_probe(feats, labels, 2, epochs=50, lr=0.05)
    assert linear_accuracy(fc, feats, labels).top1 > 0.95  # takes raw features


def test_confusion_matrix_counts():
    cm = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_calibration_by_hand():
    """Six predictions in 15 bins of width 1/15: confidences 0.05 (bin 0), 0.5 and 0.52 (bin 7), 0.9, 0.92
    and 0.95 (bin 13 holds (0.8667, 0.9333], bin 14 holds 0.95). Bin 0: 1 image, right, |1 - 0.05| = 0.95.
    Bin 7: 2 images, 1 right: |0.5 - 0.51| = 0.01. Bin 13: 2 images, both right: |1 - 0.91| = 0.09.
    Bin 14: 1 image, wrong: |0 - 0.95| = 0.95. ECE = (1 * 0.95 + 2 * 0.01 + 2 * 0.09 + 1 * 0.95) / 6 = 0.35."""
    from simclr_helpers.evaluate import calibration

    conf = torch.tensor([0.05, 0.5, 0.52, 0.9, 0.92, 0.95])
    right = torch.tensor([True, True, False, True, True, False])
    cal = calibration(conf, right, bins=15)
    assert cal.ece == pytest.approx(0.35)
    assert cal.counts.tolist() == [1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 1]
    assert cal.accuracy[7].item() == pytest.approx(0.5) and cal.confidence[13].item() == pytest.approx(0.91)
    assert torch.isnan(cal.accuracy[1]) and len(cal.edges) == 16
    # a calibrated classifier: in each bin the accuracy equals the confidence
    perfect = calibration(torch.tensor([0.75] * 4), torch.tensor([True, True, True, False]), bins=15)
    assert perfect.ece == pytest.approx(0.0)
    # an edge value belongs to the bin it closes: 1/15 is in bin 0, 1.0 in the last bin
    edges = calibration(torch.tensor([1 / 15, 1.0], dtype=torch.float64), torch.tensor([True, True]))
    assert edges.counts.tolist()[::14] == [1, 1]
