"""The evaluation protocol, and regression tests for the seed's evaluation mistakes."""

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
