"""The baseline SimCLR has to beat: the same ResNet-18 trained from scratch with labels.

Label efficiency (notebook 04, ``python -m simclr_helpers reproduce``) compares, for 1%,
10% and 100% of the training labels, a linear probe on frozen SimCLR features, the same
probe on a random-init backbone, and this: a network of the same stem trained end to end
with supervision on the same labelled images.

The budget is the pretraining run's: as many optimiser steps, at the same batch size, as
the SimCLR run took, each on a freshly augmented batch. With 1% of the labels that is
hundreds of passes over a few hundred images, which is exactly the regime where labels,
not compute, are what is missing.

The recipe is a standard supervised one, not SimCLR's: random resized crop (scale
0.25-1) and flip without colour distortion, SGD with Nesterov momentum 0.9, learning
rate 0.1 per 256 images with a short warm-up and cosine decay, weight decay 5e-4, label
smoothing 0.1. Data stay on the device and are augmented in batches, as in pretraining.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .augment import AugmentConfig, BatchedSimCLRAugment
from .config import NORMALIZE
from .data import ImageTensors
from .models import build_backbone, feature_dim

SUPERVISED_AUGMENT = AugmentConfig(min_scale=0.25, cj_prob=0.0, gray_prob=0.0)


@dataclass(frozen=True)
class SupervisedRecipe:
    steps: int
    batch_size: int = 256
    lr_per_256: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.05
    seed: int = 0


class SupervisedNet(nn.Module):
    """Backbone + linear classifier, trained together."""

    def __init__(self, stem: str, num_classes: int):
        super().__init__()
        self.backbone = build_backbone(stem)
        self.fc = nn.Linear(feature_dim(self.backbone), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).flatten(1))


def train_supervised(train: ImageTensors, stem: str, recipe: SupervisedRecipe, device=None,
                     stats: dict = NORMALIZE, progress: bool = False) -> SupervisedNet:
    """A network of ``stem`` trained from scratch on ``train``'s images and labels."""
    from tqdm.auto import tqdm

    from .runtime import (
        backward_and_step,
        pick_device,
        pick_precision,
        seed_everything,
        shuffled_batches,
        warmup_cosine_schedule,
    )

    dev = pick_device(device)
    seed_everything(recipe.seed)
    model = SupervisedNet(stem, len(train.classes)).to(dev).to(memory_format=torch.channels_last)
    precision = pick_precision(dev)
    batch = min(recipe.batch_size, len(train))
    lr = recipe.lr_per_256 * batch / 256
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim == 1 else decay).append(p)  # no weight decay on BatchNorm and biases
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=recipe.momentum,
                          nesterov=True)
    sched = warmup_cosine_schedule(opt, recipe.steps, max(1, int(recipe.warmup_fraction * recipe.steps)))
    scaler = precision.grad_scaler()
    g = torch.Generator(device=dev).manual_seed(recipe.seed)
    augment = BatchedSimCLRAugment(SUPERVISED_AUGMENT, stats, generator=g)
    images, labels = train.images.to(dev), train.labels.to(dev)
    model.train()
    passes = itertools.chain.from_iterable(  # pass after pass over the labelled images, each freshly shuffled
        shuffled_batches(len(images), batch, g, dev) for _ in itertools.count())
    bar = tqdm(range(recipe.steps), desc="supervised", disable=not progress, leave=False, unit="step")
    for step, idx in zip(bar, passes):
        x = augment(images[idx]).contiguous(memory_format=torch.channels_last)
        with precision.autocast(dev.type):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[idx], label_smoothing=recipe.label_smoothing)
        backward_and_step(loss, opt, scaler)
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    return model.eval()


def predict(model: SupervisedNet, images: ImageTensors, stats: dict = NORMALIZE, batch_size: int = 512,
            device=None) -> torch.Tensor:
    """Predicted classes of ``images`` (eval mode), on the CPU: the argmax of the logits
    ``extract_features`` computes in batches, as it does a backbone's features."""
    from .evaluate import extract_features

    return extract_features(model, images, stats, batch_size=batch_size, device=device).argmax(1)
