"""What the contrastive loss asks of an embedding, measured: the contrastive top-1, the weight of hard
negatives at a temperature, and the alignment and uniformity of Wang & Isola (2020).

Notebook 03 measures the contrastive top-1 of its run against a random-init model, and what the temperature
does to the hardest negatives of a real batch; notebook 05 measures alignment and uniformity of the SimCLR and
the random-init model, on the backbone features h and on the projection z = g(h) the loss acts on. All of them
work on cosine similarities (L2-normalised vectors), as NT-Xent does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .augment import CIFAR_AUGMENT, AugmentConfig, BatchedSimCLRAugment
from .config import NORMALIZE


def positive_index(n: int, device=None) -> torch.Tensor:
    """The index of each view's positive among 2N views ordered as [first views, second views]: i <-> i + N."""
    return torch.cat([torch.arange(n, 2 * n, device=device), torch.arange(0, n, device=device)])


def view_similarities(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of the 2N views (rows and columns: z0's N, then z1's N), as NT-Xent
    sees them; the diagonal (a view with itself) is -inf, so it is nobody's most similar view."""
    z = F.normalize(torch.cat([z0, z1]).float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    return sim


def contrastive_hits(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """For each of the 2N views (z0's N, then z1's N), whether its most similar other view in the batch is its
    positive: a boolean tensor of 2N, the per-view answers that ``stats.paired`` compares between two networks.

    ``z0[i]`` and ``z1[i]`` are the embeddings of two views of image i. Chance is 1 / (2N - 1) per view.
    """
    sim = view_similarities(z0, z1)
    return sim.argmax(dim=1) == positive_index(len(z0), sim.device)


def contrastive_top1(z0: torch.Tensor, z1: torch.Tensor) -> float:
    """How often a view's positive is its most similar other view in the batch (the NT-Xent task, solved):
    the mean of ``contrastive_hits``. Chance is 1 / (2N - 1).
    """
    return contrastive_hits(z0, z1).float().mean().item()


def negative_similarities(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Each view's cosine similarities to its 2N - 2 negatives: a (2N, 2N - 2) matrix (itself and its positive
    left out)."""
    sim = view_similarities(z0, z1)
    n2 = len(sim)
    keep = ~torch.eye(n2, dtype=torch.bool, device=sim.device)
    keep[torch.arange(n2, device=sim.device), positive_index(n2 // 2, sim.device)] = False
    return sim[keep].view(n2, n2 - 2)


def hard_negative_share(negatives: torch.Tensor, temperature: float, k: int) -> float:
    """The share of the negatives' total gradient weight that the ``k`` most similar negatives carry, averaged
    over anchors.

    In NT-Xent the gradient pushes each negative j of an anchor away with a weight proportional to
    exp(s_j / tau) (Wang & Liu, 2021): a softmax over the anchor's negatives. ``negatives``: one row of
    similarities per anchor (``negative_similarities``). With equal weights the share would be k / columns.
    """
    weights = torch.softmax(negatives.float() / temperature, dim=1)
    return weights.topk(k, dim=1).values.sum(dim=1).mean().item()


def hardest_count(negatives: int, fraction: float = 0.01) -> int:
    """How many negatives are the hardest ``fraction`` of ``negatives`` (at least one)."""
    return max(1, math.ceil(fraction * negatives))


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> float:
    """Wang & Isola's alignment: the mean of ||f(x) - f(y)||^alpha over positive pairs (row i of ``x`` with row
    i of ``y``), on L2-normalised features. 0 when the two views of every image coincide; at most 2^alpha."""
    x, y = F.normalize(x.float(), dim=1), F.normalize(y.float(), dim=1)
    return (x - y).norm(dim=1).pow(alpha).mean().item()


def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola's uniformity: log of the mean of exp(-t ||f(x) - f(y)||^2) over all pairs of distinct rows,
    on L2-normalised features. 0 when every feature is the same point; the more evenly the features cover the
    sphere, the lower (more negative) it is."""
    x = F.normalize(x.float(), dim=1)
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log().item()


def mean_pair_distance(x: torch.Tensor) -> float:
    """The mean of ||f(x) - f(y)||^2 over all pairs of distinct rows, on L2-normalised features: the scale that
    ``alignment`` (alpha = 2) is small or large against. 0 when every feature is the same point; 2 for
    orthogonal features."""
    x = F.normalize(x.float(), dim=1)
    return torch.pdist(x, p=2).pow(2).mean().item()


def cross_view_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean of ||f(x_i) - f(y_j)||^2 over all pairs i != j, on L2-normalised features: how far a view of one
    image is from a view of *another* image, measured on the same views that ``alignment`` pairs up (row i of
    ``x`` and row i of ``y`` are two views of image i). The scale that ``alignment`` is small or large against."""
    x, y = F.normalize(x.float(), dim=1), F.normalize(y.float(), dim=1)
    n = len(x)
    if n < 2:
        raise ValueError("cross_view_distance needs at least two images")
    sq = (2 - 2 * (x @ y.T)).clamp_min(0)  # ||a - b||^2 = 2 - 2 a.b for unit vectors
    return ((sq.sum() - sq.diagonal().sum()) / (n * (n - 1))).item()


@torch.no_grad()
def two_view_outputs(net: nn.Module, images: torch.Tensor, seed: int = 0, stats: dict = NORMALIZE,
                     augment: AugmentConfig = CIFAR_AUGMENT,
                     batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs of ``net`` (a backbone or a SimCLR model) for two SimCLR views of every uint8 image, in eval
    mode, on the CPU: row i of each is image i. The views depend only on ``seed``, so two networks given the
    same seed see the same views. The network's train/eval mode is restored afterwards."""
    param = next(net.parameters())
    aug = BatchedSimCLRAugment(augment, stats=stats, generator=torch.Generator().manual_seed(seed))
    was_training = net.training
    net.eval()
    outs: tuple[list, list] = ([], [])
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size].cpu()
        for out, views in zip(outs, (aug(batch), aug(batch))):
            x = views.to(param.device)
            if param.dim() == 4 and param.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(net(x).float().flatten(1).cpu())
    net.train(was_training)
    return torch.cat(outs[0]), torch.cat(outs[1])
