"""Figures used across the notebooks (each one's docstring names the notebook that uses it)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from .config import NORMALIZE, Profile

# Figure style of every notebook (``notebook.setup`` applies it): 110 dpi and no text below 9 pt, so a
# figure reads at the size a notebook shows it; each figure's size in inches keeps its PNG small.
COURSE_STYLE = {"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9, "axes.titlesize": 10,
                "axes.labelsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
                "figure.titlesize": 10}
MIN_FONT = 9  # points: the smallest text of any figure


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
                ax.set_title(titles[i], fontsize=MIN_FONT)
    if row_labels:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=MIN_FONT, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def planned_lr(profile: Profile, steps_per_epoch: int, steps) -> np.ndarray:
    """The learning rate of ``train.make_scheduler`` (``runtime.warmup_cosine``) at these 0-based optimiser
    steps: ``base * warmup_cosine(s, total, warmup)`` is the lr step ``s`` uses, so after ``e`` epochs the
    scheduler holds the value of step ``e * steps_per_epoch``, the ``lr`` a run's metrics record."""
    from .runtime import warmup_cosine

    total = steps_per_epoch * profile.epochs
    warmup = min(total, steps_per_epoch * profile.warmup_epochs)
    return np.array([profile.peak_lr * warmup_cosine(int(s), total, warmup) for s in steps])


def lr_per_step(profile: Profile, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(epoch as a fraction, learning rate) after every optimiser step of a run: warm-up, then cosine."""
    steps = np.arange(steps_per_epoch * profile.epochs)
    return (steps + 1) / steps_per_epoch, planned_lr(profile, steps_per_epoch, steps)


def training_curves(metrics: list[dict], profile: Profile | None = None, steps_per_epoch: int | None = None):
    """Loss (with its chance level), learning rate and kNN monitor of a pretraining run (notebook 03).

    With ``profile`` the loss panel gets the chance level log(2N - 1) of a batch of N, and with
    ``steps_per_epoch`` as well the learning rate is drawn for every step, so the warm-up shows.
    """
    epochs = [m["epoch"] for m in metrics]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.1))
    losses = [m["loss"] for m in metrics]
    axes[0].plot(epochs, losses, marker="o")
    if profile is not None:
        chance = math.log(2 * profile.batch_size - 1)
        axes[0].axhline(chance, color="grey", linestyle="--")
        axes[0].text(0.98, chance, f"chance level log(2N - 1) = {chance:.2f}", transform=axes[0].get_yaxis_transform(),
                     ha="right", va="bottom", color="0.3")
        low = min(losses + [chance])
        axes[0].set_ylim(low - 0.05 * (chance - low + 0.1), max(losses + [chance]) + 0.15 * (chance - low + 0.1))
    axes[0].set(title="NT-Xent loss (mean of each epoch)", xlabel="epoch", ylabel="loss")
    if profile is not None and steps_per_epoch:
        x, lr = lr_per_step(profile, steps_per_epoch)
        axes[1].plot(x, lr, color="tab:orange")
        axes[1].set_title("learning rate (every step)")
    else:
        axes[1].plot(epochs, [m["lr"] for m in metrics], marker="o", color="tab:orange")
        axes[1].set_title("learning rate (end of epoch)")
    axes[1].set(xlabel="epoch", ylabel="learning rate")
    knn = [(m["epoch"], m["knn_top1"]) for m in metrics if m.get("knn_top1") is not None]
    if knn:
        axes[2].plot(*zip(*knn), marker="o", color="tab:green")
    axes[2].set(title="kNN monitor (held-out training images)", xlabel="epoch", ylabel="top-1")
    axes[2].yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    for ax in axes:
        ax.set_xlim(0, max(epochs) + 0.5 if epochs else 1)
    fig.tight_layout()
    return fig


def confusion(cm: torch.Tensor, classes, title: str = "confusion matrix (test set)"):
    """Row-normalised confusion matrix (notebook 04): every cell is the share of its true class (row)
    predicted as the column's class, in colour and in figures (percent); rows sum to 100."""
    cm = cm.float()
    rates = cm / cm.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(6.6, 5.6))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{100 * rates[i, j]:.0f}", ha="center", va="center", fontsize=MIN_FONT,
                    color="white" if rates[i, j] > 0.5 else "black")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, format=plt.matplotlib.ticker.PercentFormatter(1.0))
    bar.set_label("share of the true class (row)")
    fig.tight_layout()
    return fig


def _intervals(heights: list[float], n: int | None):
    """Error bars for accuracies measured on ``n`` test images: their 95% Wilson intervals, as matplotlib's
    (below, above) distances; None without ``n``."""
    from .stats import accuracy_interval

    if not n or not heights:
        return None
    bounds = [accuracy_interval(h, n) for h in heights]
    return np.array([[h - lo for h, (lo, _) in zip(heights, bounds)], [hi - h for h, (_, hi) in zip(heights, bounds)]])


def bars(values: dict[str, float], title: str, ylabel: str = "top-1 accuracy", ax=None, n: int | None = None,
         errors: dict[str, float] | None = None, reference: tuple[str, float] | None = None):
    """Labelled bar chart of accuracies (notebooks 01, 04, 05).

    ``n`` (test images) draws every bar's 95% interval (``stats.accuracy_interval``) as an error bar;
    ``errors`` gives symmetric errors instead; ``reference`` = (label, value) draws a dashed line
    (random init, chance level) the bars are read against.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(values) + 2.2, 3))
    names = list(values)
    heights = [values[k] for k in names]
    err = [errors.get(k, 0.0) for k in names] if errors is not None else _intervals(heights, n)
    above = err if err is None or not isinstance(err, np.ndarray) else err[1]
    ax.bar(names, heights, yerr=err, capsize=4, color=plt.cm.tab10(np.arange(len(names))))
    for i, h in enumerate(heights):
        ax.text(i, h + (above[i] if above is not None else 0), f"{h:.1%}", ha="center", va="bottom")
    top = max(heights + ([reference[1]] if reference else [])) if heights else 1
    if reference:
        ax.axhline(reference[1], color="grey", linestyle="--", linewidth=1, label=reference[0])
        ax.legend(loc="lower right")
    ax.set(title=title, ylabel=ylabel, ylim=(0, top * 1.3 or 1))
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    return ax.figure


def grouped_bars(values: dict[str, dict[str, float]], title: str, n: int | None = None,
                 ylabel: str = "top-1 accuracy", ax=None):
    """Side-by-side bars: one group per outer key (e.g. "kNN", "linear"), one bar per inner key
    (e.g. "SimCLR", "random init"), with 95% intervals when ``n`` (test images) is given
    (notebooks 01, 04, 05)."""
    groups = list(values)
    series = list(dict.fromkeys(k for inner in values.values() for k in inner))
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(groups) + 2.6, 3.2))
    width = 0.8 / max(1, len(series))
    top = 0.0
    for j, name in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i, g in enumerate(groups) if name in values[g]]
        hs = [values[g][name] for g in groups if name in values[g]]
        err = _intervals(hs, n)
        ax.bar(xs, hs, width * 0.95, yerr=err, capsize=3, label=name, color=plt.cm.tab10(j))
        for k, (x, h) in enumerate(zip(xs, hs)):
            ax.text(x, h + (err[1][k] if err is not None else 0), f"{h:.1%}", ha="center", va="bottom")
            top = max(top, h)
    ax.set_xticks(range(len(groups)), groups)
    ax.set(title=title, ylabel=ylabel, ylim=(0, top * 1.35 or 1))
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper right", ncols=len(series))
    return ax.figure


def ablation_gaps(comparisons: list, title: str, ax=None):
    """Gaps against one reference with their 95% intervals: a dot and a bar per comparison, a line at zero
    (notebooks 02 and 03). ``comparisons``: ``stats.Comparison`` objects, A - B each with the same B (named in
    the title), labelled by A; a resolved gap (its interval clear of zero) is drawn in colour, the others in
    grey."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.55 * len(comparisons) + 1.4))
    ys = np.arange(len(comparisons))[::-1]
    for y, c in zip(ys, comparisons):
        colour = ("tab:blue" if c.gap > 0 else "tab:red") if c.resolved else "grey"
        ax.plot([100 * c.low, 100 * c.high], [y, y], color=colour, linewidth=2)
        ax.plot(100 * c.gap, y, "o", color=colour)
        ax.annotate(f"{100 * c.gap:+.1f}", (100 * c.gap, y), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8, color=colour)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(ys, [c.a for c in comparisons])
    ax.set(title=title, xlabel="gap in kNN top-1 (points)", ylim=(-0.7, len(comparisons) - 0.3))
    ax.figure.tight_layout()
    return ax.figure


def augmentation_table(image: torch.Tensor, configs: dict, n_views: int = 7, seed: int = 0, size: float = 0.95):
    """One image, one row per augmentation recipe: the original and ``n_views`` views (notebook 02).

    ``configs``: row label -> ``augment.AugmentConfig``. One compact figure instead of a strip
    per recipe, so the rows can be compared at a glance.
    """
    from .augment import BatchedSimCLRAugment

    rows = []
    for cfg in configs.values():
        aug = BatchedSimCLRAugment(cfg, generator=torch.Generator().manual_seed(seed))
        rows += [image[0].float() / 255] + [aug(image, normalized=False)[0] for _ in range(n_views)]
    titles = ["original"] + [f"view {i + 1}" for i in range(n_views)]
    fig = image_grid(torch.stack(rows), titles + [""] * (len(rows) - len(titles)), ncols=n_views + 1, size=size,
                     stats=None, row_labels=list(configs))
    return fig


def simclr_framework(views: torch.Tensor | None = None):
    """SimCLR in one picture (notebook 01): an image, two views, the shared encoder f, the representation h,
    the projection head g, the embedding z, and the contrastive loss on z.

    ``views``: optionally three uint8 images (the original and two of its views) to draw in
    the figure; without them the figure is boxes and arrows only.
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig, ax = plt.subplots(figsize=(10, 3.9))
    ax.set(xlim=(0, 100), ylim=(0, 40))
    ax.axis("off")
    top, bottom, middle = 30.0, 10.0, 20.0

    def box(x, y, text, colour):
        return ax.text(x, y, text, ha="center", va="center", fontsize=MIN_FONT + 0.5, linespacing=1.4,
                       bbox={"boxstyle": "round,pad=0.5", "facecolor": colour, "edgecolor": "0.3"})

    def arrow(a, b, **kw):
        ax.annotate("", xy=(0, 0.5), xycoords=b, xytext=(1, 0.5), textcoords=a,
                    arrowprops={"arrowstyle": "-|>", "color": "0.2", "shrinkA": 7, "shrinkB": 7, **kw})

    pics = None if views is None else to_display(views)
    x_label = "image x" if pics is None else "image x\n\n\n\n"
    image = box(5, middle, x_label, "white")
    aug = [box(18, y, f"{t} ~ T\nrandom\naugmentation", "#fde2c7") for y, t in ((top, "t"), (bottom, "t′"))]
    view_names = ("view x̃ᵢ", "view x̃ⱼ")
    views_txt = [box(30, y, name if pics is None else f"{name}\n\n\n\n", "white")
                 for y, name in zip((top, bottom), view_names)]
    enc = [box(43, y, "encoder f\nResNet-18", "#c9e4f6") for y in (top, bottom)]
    hs = [box(55, y, f"h{s}\n512 numbers", "white") for y, s in zip((top, bottom), ("ᵢ", "ⱼ"))]
    head = [box(67, y, "projection\nhead g\n(MLP)", "#e0d4f5") for y in (top, bottom)]
    zs = [box(78, y, f"z{s}\n128 numbers", "white") for y, s in zip((top, bottom), ("ᵢ", "ⱼ"))]
    loss = box(92, middle, "NT-Xent loss:\nzᵢ and zⱼ agree,\nthe other 2N − 2\nviews of the batch\ndo not",
               "#d8f0d2")
    for a in aug:
        arrow(image, a)
    for chain in zip(aug, views_txt, enc, hs, head, zs):
        for a, b in zip(chain, chain[1:]):
            arrow(a, b)
    for z in zs:
        arrow(z, loss)
    ax.annotate("", xy=(43, top - 4.2), xytext=(43, bottom + 4.2),
                arrowprops={"arrowstyle": "<->", "color": "0.45", "linestyle": "--"})
    ax.text(44.5, middle, "shared\nweights", fontsize=MIN_FONT, color="0.3", va="center")
    ax.text(49, 1.2, "f is kept: its h feeds kNN, the linear probe and prediction (notebooks 04-06)",
            fontsize=MIN_FONT, color="0.25", ha="center")
    ax.text(72.5, 39, "g is thrown away after pretraining", fontsize=MIN_FONT, color="0.25", ha="center")
    ax.text(18, 39, "notebook 02", fontsize=MIN_FONT, color="0.4", ha="center", style="italic")
    ax.text(43, 39, "notebook 01", fontsize=MIN_FONT, color="0.4", ha="center", style="italic")
    ax.text(92, 39, "notebook 03", fontsize=MIN_FONT, color="0.4", ha="center", style="italic")
    if pics is not None:
        for img, (x, y) in zip(pics, ((5, middle - 1.9), (30, top - 1.9), (30, bottom - 1.9))):
            ax.add_artist(AnnotationBbox(OffsetImage(img, zoom=1.15), (x, y), frameon=False))
    ax.set_title("SimCLR: learn an encoder by making two views of the same image agree", fontsize=10.5)
    fig.tight_layout()
    return fig


def topk_figure(image: np.ndarray | torch.Tensor, top: list[tuple[str, float]], title: str = ""):
    """An image beside a bar chart of its top-k class probabilities (notebook 06)."""
    if isinstance(image, torch.Tensor):
        image = to_display(image[None])[0]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7, 2.6), gridspec_kw={"width_ratios": [1, 1.6]})
    a0.imshow(image, interpolation="nearest")
    a0.set_xticks([])
    a0.set_yticks([])
    a0.set_title(title, fontsize=MIN_FONT)
    names = [c for c, _ in top][::-1]
    probs = [p for _, p in top][::-1]
    a1.barh(names, probs, color="tab:blue")
    for i, p in enumerate(probs):
        a1.text(p + 0.01, i, f"{p:.1%}", va="center", fontsize=MIN_FONT)
    a1.set_xlim(0, 1.15)
    a1.set_xlabel("probability")
    fig.tight_layout()
    return fig


def reliability_diagram(cal, title: str = "reliability (test set)", ax=None):
    """Accuracy against mean confidence per confidence bin, from ``evaluate.calibration`` (notebook 06): a
    calibrated classifier's bars reach the diagonal; bars below it mean overconfidence."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.4))
    edges = cal.edges.numpy()
    width = edges[1:] - edges[:-1]
    filled = cal.counts.numpy() > 0
    ax.bar(edges[:-1][filled], cal.accuracy.numpy()[filled], width=width[filled], align="edge",
           color="tab:blue", edgecolor="white", label="accuracy")
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8, label="calibrated")
    ax.scatter(cal.confidence.numpy()[filled], cal.accuracy.numpy()[filled], s=8, color="tab:orange", zorder=3,
               label="mean confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top softmax probability)", ylabel="accuracy",
           title=f"{title}, ECE {cal.ece:.3f}")
    ax.legend(loc="upper left", frameon=False)
    return ax


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


def label_efficiency(curves: dict[str, dict[float, float]], title: str, ax=None, n: int | None = None):
    """Test top-1 against the share of labels used, one line per model (notebooks 01 and 04).

    With ``n`` (test images) every point gets its 95% interval as an error bar.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
    else:
        fig = ax.figure
    for (name, points), marker in zip(curves.items(), "osD^v", strict=False):
        xs = sorted(points)
        ys = [100 * points[x] for x in xs]
        err = _intervals([points[x] for x in xs], n)
        err = None if err is None else 100 * err
        ax.errorbar([100 * x for x in xs], ys, yerr=err, marker=marker, capsize=3, label=name)
    ax.set_xscale("log")
    ticks = sorted({100 * x for points in curves.values() for x in points})
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.set_xlabel("labelled training images used")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def validation_curves(summary: dict, methods=("scratch", "finetune"), labels: dict | None = None):
    """The trained curves' validation top-1 over training, one panel per label fraction (notebook 04).

    A line is the chosen budget's run, evaluated ten times along its schedule; the crosses are the final
    validation top-1 of every budget of the grid, so a reader sees whether a longer budget still helped.
    """
    fractions = sorted(summary["fractions"], key=float)
    fig, axes = plt.subplots(1, len(fractions), figsize=(4.2 * len(fractions), 3.3), squeeze=False)
    for ax, fraction in zip(axes[0], fractions, strict=True):
        cell = summary["fractions"][fraction]
        for i, method in enumerate(m for m in methods if m in cell):
            run, colour = cell[method], plt.cm.tab10(i)
            name = (labels or {}).get(method, method)
            ax.plot([p["epoch"] for p in run["curve"]], [100 * p["val_top1"] for p in run["curve"]], marker=".",
                    color=colour, label=f"{name} ({run['epochs']} epochs chosen)")
            budgets = sorted(run["grid"].items(), key=lambda item: int(item[0]))
            ax.scatter([int(e) for e, _ in budgets], [100 * v for _, v in budgets], marker="x", s=50,
                       color=colour)
        ax.set_title(f"{float(fraction):.0%} of the labels")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("validation top-1 (%)")
    fig.suptitle("trained curves on the validation split: the chosen run (line) and every budget's end (x)",
                 fontsize=10)
    fig.tight_layout()
    return fig
