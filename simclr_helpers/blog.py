"""The blog post's pipeline, kept in one place to measure the course against.

The course grew out of a blog post ("SimCLR with lightly"). Its way of doing things is
kept here, with its real bugs fixed, so that the course can measure what its own fast
path gains against it (``lab.benchmark``, notebooks 02-04) and what the blog's choices cost:

* views: lightly's ``SimCLRTransform`` on PIL images, one image at a time, in DataLoader
  workers (``blog_loader``); the blog used ``num_workers=8`` on whatever machine it ran;
* a training step with one forward pass per view, in fp32 (``blog_training_step``);
* its optimiser: plain SGD at lr 0.06, no momentum, no weight decay, no schedule
  (``blog_optimizer``; README, "What the course fixes", mistake 5);
* its linear probe: every epoch runs every batch through the frozen backbone again
  (``probe_epoch_blog_way``), where the course computes the features once and caches them.

"blog" names the post's way everywhere in the package; "seed" only ever means a random seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .augment import lightly_transform, to_model_input
from .runtime import backward_and_step, cpu_count

BLOG_LR = 0.06  # the post's torch.optim.SGD(model.parameters(), lr=0.06)


class PILViews(torch.utils.data.Dataset):
    """uint8 tensors -> PIL images -> lightly's SimCLRTransform: two views per image, one image at a time."""

    def __init__(self, images: torch.Tensor):
        self.images = images.cpu()
        self.transform = lightly_transform()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i].permute(1, 2, 0).numpy()))


def blog_loader(images: torch.Tensor, batch_size: int, workers: int | None = None, seed: int = 0):
    """The post's DataLoader of PIL views; ``workers`` defaults to this machine's CPUs (the post: 8)."""
    if workers is None:
        workers = cpu_count()
    return torch.utils.data.DataLoader(
        PILViews(images), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
    )


def blog_training_step(model: nn.Module, criterion: nn.Module, optimizer, x0: torch.Tensor,
                       x1: torch.Tensor) -> torch.Tensor:
    """The post's step: one forward pass per view, fp32, NT-Xent, backward, update. Returns the loss."""
    z0, z1 = model(x0), model(x1)
    loss = criterion(z0, z1)
    backward_and_step(loss, optimizer)
    return loss.detach()


def blog_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The post's optimiser: plain SGD at 0.06, no momentum, no weight decay (and no schedule)."""
    return torch.optim.SGD(model.parameters(), lr=BLOG_LR)


def probe_epoch_blog_way(backbone: nn.Module, fc: nn.Linear, optimizer, images: torch.Tensor, labels: torch.Tensor,
                         stats: dict, batch_size: int, generator: torch.Generator) -> None:
    """One epoch of the post's linear probe: every batch through the (frozen, eval-mode) backbone again."""
    dev = next(fc.parameters()).device
    channels_last = next(backbone.parameters()).is_contiguous(memory_format=torch.channels_last)
    perm = torch.randperm(len(images), generator=generator)
    for i in range(0, len(images), batch_size):
        idx = perm[i:i + batch_size]
        x = to_model_input(images[idx].to(dev), stats)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            h = backbone(x).float().flatten(1)
        backward_and_step(F.cross_entropy(fc(h), labels[idx].to(dev)), optimizer)
