"""The supervised baseline: trained from scratch for a budget of steps, on the labels it is given."""

import pytest
import torch

from simclr_helpers.evaluate import accuracy_from
from simclr_helpers.supervised import SupervisedRecipe, predict, train_supervised


@pytest.fixture(scope="module")
def small(bundled):
    return bundled.train.balanced_subset(200), bundled.test.balanced_subset(200)


def test_trains_for_its_budget_and_learns(small, monkeypatch):
    import simclr_helpers.runtime as runtime

    train, test = small
    steps = []
    real = runtime.backward_and_step
    monkeypatch.setattr(runtime, "backward_and_step", lambda *a, **k: steps.append(1) or real(*a, **k))
    net = train_supervised(train, "imagenet", SupervisedRecipe(steps=30, batch_size=64, seed=0), "cpu")
    assert len(steps) == 30  # exactly the budget, however many passes over the labelled images that is
    assert not net.training  # handed back in eval mode
    # 30 steps on 200 images: not a good classifier, but clearly better than chance on the images it saw.
    assert accuracy_from(predict(net, train), train.labels).top1 > 0.2
    assert predict(net, test).shape == (len(test),)


def test_same_seed_same_network_and_one_schedule(small):
    train, _ = small
    recipe = SupervisedRecipe(steps=5, batch_size=32, seed=3)
    a = train_supervised(train, "imagenet", recipe, "cpu")
    b = train_supervised(train, "imagenet", recipe, "cpu")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_a_batch_larger_than_the_labels_is_clipped(small, monkeypatch):
    """10 labelled images and a recipe batch of 256: every step trains on all 10 (a batch of 256 would leave
    no whole batch to draw, and the run no step to take), with the learning rate scaled to the batch of 10."""
    import simclr_helpers.runtime as runtime
    from simclr_helpers.config import scaled_lr

    train, _ = small
    few = train.subset(torch.arange(10))
    drawn, lrs = [], []
    real_batches, real_step = runtime.shuffled_batches, runtime.backward_and_step

    def batches(n, batch_size, generator, device=None):
        for idx in real_batches(n, batch_size, generator, device):
            drawn.append(sorted(idx.tolist()))
            yield idx

    def step(loss, optimizer, scaler=None):
        lrs.append(optimizer.param_groups[0]["initial_lr"])  # the peak the schedule scales
        real_step(loss, optimizer, scaler)

    monkeypatch.setattr(runtime, "shuffled_batches", batches)
    monkeypatch.setattr(runtime, "backward_and_step", step)
    recipe = SupervisedRecipe(steps=3, batch_size=256)
    net = train_supervised(few, "imagenet", recipe, "cpu")
    assert drawn == [list(range(10))] * 3  # three steps, each on every labelled image once
    assert lrs == [pytest.approx(scaled_lr(recipe.lr_per_256, 10))] * 3 and lrs[0] < recipe.lr_per_256 / 20
    assert net.fc.out_features == 10
