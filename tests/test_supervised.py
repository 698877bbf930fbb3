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


def test_a_batch_larger_than_the_labels_is_clipped(small):
    train, _ = small
    few = train.subset(torch.arange(10))
    net = train_supervised(few, "imagenet", SupervisedRecipe(steps=2, batch_size=256), "cpu")
    assert net.fc.out_features == 10
