"""The baseline SimCLR has to beat: the same ResNet-18 trained from scratch with labels.

Label efficiency (notebook 04, ``python -m simclr_helpers reproduce``) compares, for 1%,
10% and 100% of the training labels, a linear probe on frozen SimCLR features, the same
probe on a random-init backbone, and this: a network of the same stem trained end to end
with supervision on the same labelled images.

The budget of the recorded rows' baselines is a number of optimiser steps, at the
pretraining run's batch size, each on a freshly augmented batch; the label-efficiency
comparison instead trains for a number of epochs chosen on a validation split, and also
fine-tunes the pretrained backbone (``init``) the same way.

The recipe is a standard supervised one, not SimCLR's: random resized crop (scale
0.25-1) or the standard padded crop, and flip, without colour distortion; SGD with
Nesterov momentum 0.9, learning rate 0.1 per 256 images with a short warm-up and cosine
decay, weight decay 5e-4, label smoothing 0.1. Data stay on the device and are augmented
in batches, as in pretraining.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .augment import AugmentConfig, BatchedSimCLRAugment
from .config import NORMALIZE, scaled_lr
from .data import ImageTensors
from .models import build_backbone, feature_dim

SUPERVISED_AUGMENT = AugmentConfig(min_scale=0.25, cj_prob=0.0, gray_prob=0.0)


@dataclass(frozen=True)
class SupervisedRecipe:
    """A budget (``steps``, or ``epochs`` over the labelled images) and the optimiser and augmentation.

    ``augment``: ``"resized-crop"`` (random resized crop, scale 0.25-1, and flip: the recipe of the
    recorded rows' baselines) or ``"pad-crop"`` (zero-pad 4 pixels, random 32x32 crop, flip: the standard
    CIFAR-10 recipe of the label-efficiency comparison).
    """

    steps: int | None = None
    batch_size: int = 256
    lr_per_256: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.05
    seed: int = 0
    epochs: int | None = None
    augment: str = "resized-crop"

    def total_steps(self, n_images: int) -> int:
        """The number of optimiser steps: ``steps``, or ``epochs`` passes of whole batches over ``n_images``."""
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give a supervised recipe either steps or epochs")
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch(n_images, self.batch_size)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Batches in one pass over ``n_images``: the last short batch dropped, at least one."""
    return max(1, n_images // min(batch_size, n_images))


class SupervisedNet(nn.Module):
    """Backbone + linear classifier, trained together."""

    def __init__(self, stem: str, num_classes: int):
        super().__init__()
        self.backbone = build_backbone(stem)
        self.fc = nn.Linear(feature_dim(self.backbone), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).flatten(1))


def train_supervised(train: ImageTensors, stem: str, recipe: SupervisedRecipe, device=None,
                     stats: dict = NORMALIZE, progress: bool = False, init: dict | None = None,
                     validation: ImageTensors | None = None, evaluations: int = 10):
    """A network of ``stem`` trained end to end on ``train``'s images and labels.

    ``init``: a backbone state dict to start from (fine-tuning a pretrained backbone, notebook 04),
    else random initialisation (training from scratch). ``validation``: labelled images held out of
    training; their top-1 is measured ``evaluations`` times, evenly over the run, and the call then
    returns ``(model, curve)`` with ``curve`` a list of ``{"step", "epoch", "val_top1"}``. Without it,
    only the model. Nothing here reads the test set.
    """
    from tqdm.auto import tqdm

    from .augment import pad_crop_flip, to_model_input
    from .evaluate import accuracy_from
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
    model = SupervisedNet(stem, len(train.classes))
    if init is not None:
        model.backbone.load_state_dict(init)
    model = model.to(dev).to(memory_format=torch.channels_last)
    precision = pick_precision(dev)
    batch = min(recipe.batch_size, len(train))
    total = recipe.total_steps(len(train))
    per_epoch = steps_per_epoch(len(train), batch)
    lr = scaled_lr(recipe.lr_per_256, batch)
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim == 1 else decay).append(p)  # no weight decay on BatchNorm and biases
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=recipe.momentum,
                          nesterov=True)
    sched = warmup_cosine_schedule(opt, total, max(1, int(recipe.warmup_fraction * total)))
    scaler = precision.grad_scaler(dev.type)
    g = torch.Generator(device=dev).manual_seed(recipe.seed)
    if recipe.augment == "pad-crop":
        def augment(x):
            return to_model_input(pad_crop_flip(x, g), stats)
    elif recipe.augment == "resized-crop":
        augment = BatchedSimCLRAugment(SUPERVISED_AUGMENT, stats, generator=g)
    else:
        raise ValueError(f"unknown supervised augmentation {recipe.augment!r}")
    images, labels = train.images.to(dev), train.labels.to(dev)
    checks = {round(total * (i + 1) / evaluations) for i in range(evaluations)} if validation is not None else set()
    curve = []
    model.train()
    passes = itertools.chain.from_iterable(  # pass after pass over the labelled images, each freshly shuffled
        shuffled_batches(len(images), batch, g, dev) for _ in itertools.count())
    bar = tqdm(range(total), desc="supervised", disable=not progress, leave=False, unit="step")
    for step, idx in zip(bar, passes):
        x = augment(images[idx]).contiguous(memory_format=torch.channels_last)
        with precision.autocast(dev.type):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[idx], label_smoothing=recipe.label_smoothing)
        backward_and_step(loss, opt, scaler)
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if step + 1 in checks:
            top1 = accuracy_from(predict(model, validation, stats, device=dev), validation.labels.cpu()).top1
            curve.append({"step": step + 1, "epoch": round((step + 1) / per_epoch, 2), "val_top1": round(top1, 4)})
            model.train()
    model.eval()
    return (model, curve) if validation is not None else model


def predict(model: SupervisedNet, images: ImageTensors, stats: dict = NORMALIZE, batch_size: int = 512,
            device=None) -> torch.Tensor:
    """Predicted classes of ``images`` (eval mode), on the CPU: the argmax of the logits
    ``extract_features`` computes in batches, as it does a backbone's features."""
    from .evaluate import extract_features

    return extract_features(model, images, stats, batch_size=batch_size, device=device).argmax(1)
