"""Figures used across the notebooks (each one's docstring names the notebook that uses it)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .config import NORMALIZE

# Figure style of every notebook (``notebook.setup`` applies it).
COURSE_STYLE = {"figure.dpi": 80, "savefig.dpi": 80, "axes.titlesize": 10, "font.size": 9}


def to_display(images: torch.Tensor, stats: dict | None = NORMALIZE) -> np.ndarray:
    """uint8 or normalised float (N, 3, H, W) -> float (N, H, W, 3) in [0, 1] for imshow."""
    x = images.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif stats is not None:
        mean = torch.tensor(stats["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(stats["std"]).view(1, 3, 1, 1)
        x = x * std + mean
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 8, size: float = 1.3,
               stats: dict | None = NORMALIZE, suptitle: str | None = None, row_labels: list[str] | None = None):
    """A grid of images with optional titles (notebooks 02, 05, 06)."""
    arr = to_display(images, stats)
    n = len(arr)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.1), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < n:
            ax.imshow(arr[i], interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=7)
    if row_labels:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def training_curves(metrics: list[dict]):
    """Loss, learning rate and kNN monitor per epoch (notebook 03)."""
    epochs = [m["epoch"] for m in metrics]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    axes[0].plot(epochs, [m["loss"] for m in metrics], marker="o")
    axes[0].set(title="NT-Xent loss", xlabel="epoch")
    axes[1].plot(epochs, [m["lr"] for m in metrics], marker="o", color="tab:orange")
    axes[1].set(title="learning rate (end of epoch)", xlabel="epoch")
    knn = [(m["epoch"], m["knn_top1"]) for m in metrics if m.get("knn_top1") is not None]
    if knn:
        axes[2].plot(*zip(*knn), marker="o", color="tab:green")
    axes[2].set(title="kNN top-1 (held-out training images)", xlabel="epoch")
    axes[2].yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    fig.tight_layout()
    return fig


def confusion(cm: torch.Tensor, classes, title: str = "confusion matrix (test set)"):
    """Row-normalised confusion matrix (notebook 04)."""
    cm = cm.float()
    rates = cm / cm.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=6,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def bars(values: dict[str, float], title: str, ylabel: str = "top-1 accuracy", ax=None):
    """Labelled bar chart of accuracies (notebooks 04, 05)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(values) + 2, 3))
    names = list(values)
    ax.bar(names, [values[n] for n in names], color=plt.cm.tab10(np.arange(len(names))))
    for i, n in enumerate(names):
        ax.text(i, values[n], f"{values[n]:.1%}", ha="center", va="bottom")
    ax.set(title=title, ylabel=ylabel, ylim=(0, max(values.values()) * 1.25 or 1))
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    return ax.figure


def topk_figure(image: np.ndarray | torch.Tensor, top: list[tuple[str, float]], title: str = ""):
    """An image beside a bar chart of its top-k class probabilities (notebook 06)."""
    if isinstance(image, torch.Tensor):
        image = to_display(image[None])[0]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7, 2.6), gridspec_kw={"width_ratios": [1, 1.6]})
    a0.imshow(image, interpolation="nearest")
    a0.set_xticks([])
    a0.set_yticks([])
    a0.set_title(title, fontsize=9)
    names = [c for c, _ in top][::-1]
    probs = [p for _, p in top][::-1]
    a1.barh(names, probs, color="tab:blue")
    for i, p in enumerate(probs):
        a1.text(p + 0.01, i, f"{p:.1%}", va="center", fontsize=8)
    a1.set_xlim(0, 1.15)
    a1.set_xlabel("probability")
    fig.tight_layout()
    return fig


def embedding_map(points: np.ndarray, labels: np.ndarray, classes, title: str, ax=None,
                  thumbnails: torch.Tensor | None = None, n_thumbnails: int = 0, seed: int = 0):
    """A 2-D embedding coloured by class, optionally with image thumbnails (notebook 05)."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    for c, name in enumerate(classes):
        sel = labels == c
        ax.scatter(points[sel, 0], points[sel, 1], s=6, color=plt.cm.tab10(c), label=name, alpha=0.8)
    if thumbnails is not None and n_thumbnails:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(points), size=min(n_thumbnails, len(points)), replace=False)
        arr = to_display(thumbnails[pick])
        for img, i in zip(arr, pick):
            box = AnnotationBbox(OffsetImage(img, zoom=0.6), points[i], frameon=True, pad=0.1,
                                 bboxprops={"edgecolor": plt.cm.tab10(int(labels[i])), "linewidth": 1.5})
            ax.add_artist(box)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def label_efficiency(curves: dict[str, dict[float, float]], title: str, ax=None):
    """Test top-1 against the share of labels used, one line per model (notebooks 01 and 04)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
    else:
        fig = ax.figure
    for (name, points), marker in zip(curves.items(), "osD^v", strict=False):
        xs = sorted(points)
        ax.plot([100 * x for x in xs], [100 * points[x] for x in xs], marker=marker, label=name)
    ax.set_xscale("log")
    ticks = sorted({100 * x for points in curves.values() for x in points})
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.set_xlabel("labelled training images used")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
