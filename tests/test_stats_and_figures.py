"""The figures that show the course's measurements (``plots``), with their intervals."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from simclr_helpers import plots  # noqa: E402
from simclr_helpers.augment import CIFAR_AUGMENT, to_model_input  # noqa: E402
from simclr_helpers.config import get_profile  # noqa: E402
from simclr_helpers.runtime import warmup_cosine  # noqa: E402


def test_course_style_is_readable():
    assert 110 <= plots.COURSE_STYLE["figure.dpi"] <= 120
    sizes = [v for k, v in plots.COURSE_STYLE.items() if "size" in k]
    assert min(sizes) >= 9


def test_framework_figure(bundled):
    fig = plots.simclr_framework()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for part in ("encoder f", "projection", "NT-Xent", "t ~ T", "512", "128"):
        assert part in texts
    x = to_model_input(bundled.test.images[:3])
    fig = plots.simclr_framework(x)
    assert len(fig.axes[0].artists) == 3  # the image and its two views
    plt.close("all")


def test_training_curves_draw_chance_level_and_every_step():
    profile = get_profile("smoke")
    metrics = [{"epoch": e, "loss": 5.0 - 0.1 * e, "lr": 0.01, "knn_top1": 0.3 if e % 2 == 0 else None}
               for e in range(1, profile.epochs + 1)]
    fig = plots.training_curves(metrics, profile, steps_per_epoch=21)
    loss_ax, lr_ax, knn_ax = fig.axes
    assert all(ax.get_ylabel() for ax in fig.axes)
    chance = [line for line in loss_ax.lines if line.get_linestyle() == "--"]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(math.log(2 * 128 - 1))
    x, lr = lr_ax.lines[0].get_data()
    assert len(lr) == 21 * profile.epochs  # one point per optimiser step: the warm-up shows
    base = profile.lr_per_256 * profile.batch_size / 256
    assert lr[0] == pytest.approx(base * warmup_cosine(0, 210, 21)) and max(lr) == pytest.approx(base)
    assert plots.training_curves(metrics).axes[1].get_ylabel()  # without a profile: per epoch, still labelled
    plt.close("all")


def test_confusion_colourbar_and_cells_speak_in_rates():
    cm = torch.tensor([[8, 2], [1, 9]])
    fig = plots.confusion(cm, ["a", "b"])
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert cells == ["80", "20", "10", "90"]
    assert "share" in fig.axes[1].get_ylabel()
    plt.close("all")


def test_bars_with_errors_and_a_reference():
    fig = plots.bars({"SimCLR": 0.36, "random init": 0.27}, "t", n=1000, reference=("chance", 0.1))
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and ax.lines and ax.get_legend() is not None
    fig = plots.grouped_bars({"kNN": {"SimCLR": 0.36, "random init": 0.27},
                              "linear": {"SimCLR": 0.39, "random init": 0.35}}, "t", n=1000)
    assert len(fig.axes[0].patches) == 4 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["kNN", "linear"]
    from simclr_helpers.stats import Comparison

    gaps = [Comparison("no crop", "full", -0.1, -0.12, -0.08, "m"),
            Comparison("no grey", "full", 0.0, -0.01, 0.01, "m")]
    fig = plots.ablation_gaps(gaps, "t")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["no crop", "no grey"]
    fig = plots.label_efficiency({"a": {0.01: 0.2, 1.0: 0.4}}, "t", n=1000)
    assert fig.axes[0].get_ylabel()
    plt.close("all")


def test_augmentation_table_one_row_per_recipe(bundled):
    fig = plots.augmentation_table(bundled.test.images[:1], {"all": CIFAR_AUGMENT, "same": CIFAR_AUGMENT}, n_views=3)
    assert len(fig.axes) == 8
    width, height = fig.get_size_inches() * plots.COURSE_STYLE["figure.dpi"]
    assert width < 1000 and height < 1000
    plt.close("all")


def test_lr_per_step_follows_the_schedule():
    profile = get_profile("smoke")
    x, lr = plots.lr_per_step(profile, 21)
    assert np.isclose(x[20], 1.0) and lr[-1] == pytest.approx(0.0, abs=1e-3)
