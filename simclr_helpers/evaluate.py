"""Evaluation protocols: frozen features, kNN, a linear probe on cached features.

Notebook 04 teaches the protocol and the blog post's mistakes it avoids:
the backbone is frozen *and* in eval mode (mistake 2: ``requires_grad=False`` alone
leaves BatchNorm updating its running statistics in train mode), features are
computed once and cached (the backbone does not run every epoch), and the test
accuracy is computed from the test set's own predictions (mistake 1: the blog
reused the last training batch's predictions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from torch import nn

from .augment import to_model_input
from .config import NORMALIZE
from .data import ImageTensors


def freeze(backbone: nn.Module) -> nn.Module:
    """Frozen for real: no gradients *and* eval mode (BatchNorm uses its stored statistics)."""
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


@torch.no_grad()
def extract_features(backbone: nn.Module, images: ImageTensors | torch.Tensor, stats: dict = NORMALIZE,
                     batch_size: int = 512, device=None, progress: bool = False,
                     desc: str = "features") -> torch.Tensor:
    """Backbone features of uint8 images, computed in eval mode under no_grad, returned on the CPU.

    The backbone's train/eval mode is restored afterwards.
    """
    from tqdm.auto import tqdm

    data = images.images if isinstance(images, ImageTensors) else images
    param = next(backbone.parameters())
    device = device or param.device
    was_training = backbone.training
    backbone.eval()
    out = []
    for i in tqdm(range(0, len(data), batch_size), desc=desc, disable=not progress, leave=False):
        x = to_model_input(data[i:i + batch_size].to(device), stats)
        if param.is_contiguous(memory_format=torch.channels_last) and param.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(backbone(x).float().flatten(1).cpu())
    backbone.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class Accuracy:
    top1: float
    predictions: torch.Tensor  # (N,) predicted class of every evaluated image
    labels: torch.Tensor


def accuracy_from(predictions: torch.Tensor, labels: torch.Tensor) -> Accuracy:
    return Accuracy(float((predictions == labels).float().mean()), predictions, labels)


@torch.no_grad()
def knn_classify(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                 k: int = 200, t: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted kNN on L2-normalised features (lightly's ``knn_predict``); returns top-1 predictions."""
    bank_t = F.normalize(bank, dim=1).t().contiguous()
    k = min(k, bank.shape[0])
    preds = [knn_predict(F.normalize(queries[i:i + chunk], dim=1), bank_t, bank_labels, num_classes, k, t)[:, 0]
             for i in range(0, len(queries), chunk)]
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor,
                 query_labels: torch.Tensor, num_classes: int, k: int = 200, t: float = 0.1) -> Accuracy:
    return accuracy_from(knn_classify(bank, bank_labels, queries, num_classes, k, t), query_labels)


def knn_monitor(backbone: nn.Module, bank: ImageTensors, queries: ImageTensors, device=None, k: int = 200) -> float:
    """kNN top-1 of held-out *training* images against the rest of the training set (never the test set)."""
    fb = extract_features(backbone, bank, device=device)
    fq = extract_features(backbone, queries, device=device)
    return knn_accuracy(fb, bank.labels.cpu(), fq, queries.labels.cpu(), len(bank.classes), k=k).top1


def train_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 100,
                       lr: float = 1e-3, batch_size: int = 256, weight_decay: float = 1e-6, seed: int = 0,
                       progress: bool = False) -> nn.Linear:
    """A linear classifier trained on cached features (the backbone ran once, before this).

    Features are standardised with the training set's mean and std for a well-conditioned
    problem; the standardisation is folded into the returned layer, so it takes raw
    backbone features.
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    mean, std = features.mean(0), features.std(0) + 1e-6
    x = (features - mean) / std
    torch.manual_seed(seed)
    fc = nn.Linear(features.shape[1], num_classes)
    opt = torch.optim.Adam(fc.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in tqdm(range(epochs), desc="linear probe", disable=not progress, leave=False, unit="epoch"):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(fc(x[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    folded = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        folded.weight.copy_(fc.weight / std)
        folded.bias.copy_(fc.bias - (fc.weight * (mean / std)).sum(1))
    return folded


@torch.no_grad()
def linear_accuracy(fc: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> Accuracy:
    """Accuracy from *these* features' own predictions (not a leftover from training)."""
    return accuracy_from(fc(features).argmax(1), labels)


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows: true class, columns: predicted class."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes ** 2).view(num_classes, num_classes)


LABEL_FRACTIONS = (0.01, 0.1, 1.0)  # label-efficiency points: 1%, 10% and all of the training labels


def label_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced ``fraction`` of the labelled images (at least one per class).

    Subsets are nested: with the same seed, the 1% subset lies inside the 10% subset, so
    the label-efficiency curves differ only by how many labels they add.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"a label fraction must lie in (0, 1], not {fraction}")
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    picked = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        picked.append(idx[:max(1, round(fraction * len(idx)))])
    return torch.sort(torch.cat(picked)).values


def probe_with_labels(f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor,
                      fraction: float, num_classes: int, epochs: int = 100, seed: int = 0) -> float:
    """Test top-1 of a linear probe trained on the cached features of ``fraction`` of the labels."""
    idx = label_subset(y_train, fraction, seed)
    fc = train_linear_probe(f_train[idx], y_train[idx], num_classes, epochs=epochs, seed=seed)
    return linear_accuracy(fc, f_test, y_test).top1


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate_backbone`` measured: test top-1, the per-image ``accuracy`` and, for the linear probe,
    the trained layer ``fc`` and its top-1 on its own training images."""

    top1: float
    accuracy: Accuracy
    fc: nn.Linear | None = None
    train_top1: float | None = None


def evaluate_backbone(backbone: nn.Module, train: ImageTensors, test: ImageTensors, method: str = "knn",
                      stats: dict = NORMALIZE, device=None, k: int = 200, linear_epochs: int = 100,
                      progress: bool = False) -> Evaluation:
    """kNN or linear-probe accuracy of a backbone: train images as bank / training set, test as queries."""
    if method not in ("knn", "linear"):
        raise ValueError(f"unknown method {method!r}; choose 'knn' or 'linear'")
    freeze(backbone)
    f_train = extract_features(backbone, train, stats, device=device, progress=progress, desc="train features")
    f_test = extract_features(backbone, test, stats, device=device, progress=progress, desc="test features")
    y_train, y_test = train.labels.cpu(), test.labels.cpu()
    n_classes = len(train.classes)
    if method == "knn":
        acc = knn_accuracy(f_train, y_train, f_test, y_test, n_classes, k=k)
        return Evaluation(acc.top1, acc)
    fc = train_linear_probe(f_train, y_train, n_classes, epochs=linear_epochs, progress=progress)
    acc = linear_accuracy(fc, f_test, y_test)
    return Evaluation(acc.top1, acc, fc, linear_accuracy(fc, f_train, y_train).top1)


def save_classifier(path: str | Path, backbone: nn.Module, fc: nn.Linear, stem: str, classes, stats: dict,
                    source: dict) -> Path:
    """A self-contained classifier checkpoint: everything ``predict`` needs, nothing it must guess. The weights
    are saved as CPU copies; the modules stay on their device."""
    from .checkpoints import ClassifierRecord

    def on_cpu(module: nn.Module) -> dict:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}

    return ClassifierRecord(backbone=on_cpu(backbone), fc=on_cpu(fc), stem=stem, classes=list(classes),
                            normalize=stats, source=source).save(path)


@dataclass(frozen=True)
class Calibration:
    """How well a classifier's confidence matches its accuracy (``calibration``): the expected calibration
    error and, per confidence bin, the number of images, their mean confidence and their accuracy."""

    ece: float
    edges: torch.Tensor  # bins + 1 edges from 0 to 1; bin m holds confidences in (edges[m], edges[m + 1]]
    counts: torch.Tensor
    confidence: torch.Tensor  # mean confidence per bin (nan where empty)
    accuracy: torch.Tensor  # accuracy per bin (nan where empty)


def calibration(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> Calibration:
    """Expected calibration error (Guo et al., 2017) of top-1 predictions, and a reliability table.

    ``confidence``: each image's largest softmax probability; ``correct``: whether that top class is right.
    The confidences are split into ``bins`` equal-width bins of (0, 1]; ECE is the mean over bins of
    |accuracy - mean confidence|, each bin weighted by its share of the images (0 for a calibrated model).
    Notebook 06 measures it for the linear probe.
    """
    conf = torch.as_tensor(confidence, dtype=torch.float64).flatten()
    right = torch.as_tensor(correct).flatten().to(torch.float64)
    if conf.shape != right.shape or conf.numel() == 0:
        raise ValueError(f"calibration() needs one confidence per prediction ({conf.numel()} and {right.numel()})")
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    index = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, bins - 1)  # (lo, hi]; 0 goes to the first
    counts = torch.bincount(index, minlength=bins)
    conf_sum = torch.bincount(index, weights=conf, minlength=bins)
    right_sum = torch.bincount(index, weights=right, minlength=bins)
    filled = counts > 0
    nan = torch.full((bins,), float("nan"), dtype=torch.float64)
    mean_conf = torch.where(filled, conf_sum / counts.clamp_min(1), nan)
    acc = torch.where(filled, right_sum / counts.clamp_min(1), nan)
    ece = ((right_sum - conf_sum).abs().sum() / conf.numel()).item()  # sum_b n_b/N |acc_b - conf_b|
    return Calibration(ece, edges, counts, mean_conf, acc)
