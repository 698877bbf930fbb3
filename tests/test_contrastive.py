import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn

from simclr_helpers.contrastive import (
    alignment,
    contrastive_hits,
    contrastive_top1,
    hard_negative_share,
    hardest_count,
    mean_pair_distance,
    negative_similarities,
    positive_index,
    two_view_outputs,
    uniformity,
    view_similarities,
)


def test_positive_index_pairs_the_two_views():
    assert positive_index(3).tolist() == [3, 4, 5, 0, 1, 2]


def test_identical_views_solve_the_task():
    z = torch.randn(16, 8)
    assert contrastive_top1(z, z.clone()) == 1.0


def test_swapped_positives_fail_the_task():
    z0 = F.normalize(torch.eye(4), dim=1)  # four orthogonal images
    z1 = z0[[1, 0, 3, 2]]  # each second view looks exactly like another image's first view
    assert contrastive_top1(z0, z1) == 0.0


def test_half_solved():
    z0 = torch.eye(4)
    z1 = torch.stack([z0[0], z0[1], z0[3], z0[2]])  # images 0 and 1 right, 2 and 3 swapped
    assert contrastive_top1(z0, z1) == 0.5


def test_contrastive_hits_are_per_view_and_average_to_the_top1():
    z0 = torch.eye(4)
    z1 = torch.stack([z0[0], z0[1], z0[3], z0[2]])  # images 0 and 1 right, 2 and 3 swapped
    hits = contrastive_hits(z0, z1)
    assert hits.dtype == torch.bool and hits.tolist() == [True, True, False, False, True, True, False, False]
    z0, z1 = torch.randn(16, 8), torch.randn(16, 8)
    assert contrastive_hits(z0, z1).float().mean().item() == contrastive_top1(z0, z1)


def test_random_embeddings_score_near_chance():
    g = torch.Generator().manual_seed(0)
    n = 128
    scores = [contrastive_top1(torch.randn(n, 128, generator=g), torch.randn(n, 128, generator=g)) for _ in range(20)]
    assert sum(scores) / len(scores) < 5 / (2 * n - 1)


def test_the_diagonal_is_never_chosen():
    sim = view_similarities(torch.randn(5, 3), torch.randn(5, 3))
    assert torch.isneginf(sim.diagonal()).all()


def test_negative_similarities_leave_out_self_and_positive():
    z0 = F.normalize(torch.randn(4, 6), dim=1)
    z1 = F.normalize(torch.randn(4, 6), dim=1)
    neg = negative_similarities(z0, z1)
    assert neg.shape == (8, 6)
    z = torch.cat([z0, z1])
    expected = [z[0] @ z[k] for k in (1, 2, 3, 5, 6, 7)]  # view 0: not itself (0), not its positive (4)
    assert torch.allclose(neg[0], torch.stack(expected), atol=1e-6)


def test_hard_negative_share_of_equal_similarities_is_k_over_n():
    neg = torch.zeros(10, 100)
    assert hard_negative_share(neg, 0.1, 5) == pytest.approx(0.05)


def test_a_lower_temperature_gives_the_hardest_negatives_more_weight():
    neg = torch.rand(32, 200, generator=torch.Generator().manual_seed(0)) * 2 - 1
    shares = [hard_negative_share(neg, t, 2) for t in (1.0, 0.5, 0.2, 0.1)]
    assert shares == sorted(shares) and shares[0] < 0.05 and shares[-1] > 5 * shares[0]


def test_hard_negative_share_matches_the_loss_gradient():
    """The weight of negative j in NT-Xent's gradient, relative to the other negatives, is softmax(s_j / tau)."""
    torch.manual_seed(0)
    z0, z1 = torch.randn(6, 5), torch.randn(6, 5)
    tau = 0.3
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    sim = (z @ z.T).detach().requires_grad_(True)
    logits = sim / tau
    logits = logits.masked_fill(torch.eye(12, dtype=torch.bool), float("-inf"))
    F.cross_entropy(logits[:1], positive_index(6)[:1]).backward()
    grad = sim.grad[0, [k for k in range(12) if k not in (0, 6)]]  # anchor 0's negatives
    neg = negative_similarities(z0, z1)[:1]
    top = grad.topk(3).values.sum() / grad.sum()
    assert hard_negative_share(neg, tau, 3) == pytest.approx(top.item(), rel=1e-5)
    assert NTXentLoss(temperature=tau)(z0, z1).item() > 0  # the same objects lightly's loss takes


def test_hardest_count():
    assert hardest_count(254) == 3 and hardest_count(10) == 1 and hardest_count(1000) == 10


def test_alignment_of_identical_and_opposite_views():
    x = torch.randn(10, 4)
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-6)
    assert alignment(x, -x) == pytest.approx(4.0, rel=1e-5)  # antipodal unit vectors: distance 2, squared 4


def test_uniformity_of_known_configurations():
    same = torch.ones(20, 3)
    assert uniformity(same) == pytest.approx(0.0, abs=1e-6)
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # one pair at squared distance 4
    assert uniformity(opposite) == pytest.approx(-8.0, rel=1e-5)
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    expected = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)  # 4 neighbours at 2, 2 opposites at 4
    assert uniformity(square) == pytest.approx(expected, rel=1e-5)


def test_mean_pair_distance():
    square = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -3.0]])  # normalised first
    assert mean_pair_distance(square) == pytest.approx((4 * 2 + 2 * 4) / 6, rel=1e-5)
    assert mean_pair_distance(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-6)


def test_spread_features_are_more_uniform_than_clustered_ones():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(500, 16, generator=g)
    clustered = torch.ones(500, 16) + 0.1 * torch.randn(500, 16, generator=g)
    assert uniformity(spread) < uniformity(clustered) < 0


def test_two_view_outputs_same_seed_same_views_and_mode_restored():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)).train()
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    a0, a1 = two_view_outputs(net, images, seed=1, batch_size=4)
    b0, b1 = two_view_outputs(net, images, seed=1, batch_size=4)
    assert a0.shape == (10, 4) and torch.equal(a0, b0) and torch.equal(a1, b1)
    assert not torch.equal(a0, a1)  # two different views of each image
    assert net.training


def test_cross_view_distance_leaves_out_the_positive_pairs():
    from simclr_helpers.contrastive import cross_view_distance

    e = torch.eye(4)
    # identical views of four orthogonal images: every pair of different images is sqrt(2) apart
    assert cross_view_distance(e, e) == pytest.approx(2.0)
    # 2 images, views x = [a, b], y = [a, -a]: the pairs i != j are (a, -a) at 4 and (b, a) at 2
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])  # lengths do not matter: normalised first
    assert cross_view_distance(torch.stack([a, b]), torch.stack([a, -a])) == pytest.approx(3.0)
    x, y = torch.randn(30, 8), torch.randn(30, 8)
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    brute = [(xn[i] - yn[j]).pow(2).sum() for i in range(30) for j in range(30) if i != j]
    assert cross_view_distance(x, y) == pytest.approx(torch.stack(brute).mean().item(), rel=1e-5)
