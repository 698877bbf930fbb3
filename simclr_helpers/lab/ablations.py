"""Ablations: what each piece of the recipe is worth, measured at one budget with several seeds.

``python -m simclr_helpers ablate`` pretrains one SimCLR model per variant and seed, all
at the same budget (the ``smoke`` profile on the bundled subset by default), and measures
each backbone by kNN top-1 (the labelled training images as the bank, the whole test split
as queries; ``evaluate.knn_accuracy``). The variants:

* the augmentations (notebook 02): the full recipe, each augmentation removed in turn
  (no crop, no colour jitter, no greyscale), crop only, colour only;
* the NT-Xent temperature (notebook 03): 0.1, 0.2 (the course's choice) and 0.5 (lightly's default);
* the optimiser (notebook 03): the blog post's plain SGD at 0.06 without momentum, weight
  decay or schedule (README, "What the course fixes", mistake 5) against the course's.

``--record`` stores the result under the key ``ablations`` of the results file, where the
notebooks and the README's table read it.

The training loop is the course's (``train.pretrain``'s batches and step, without its plumbing:
no checkpoints, logs or monitor, which an ablation of many short runs does not need, and with
the optimiser exchangeable). A test checks that for the full recipe it produces the same
weights as ``train.pretrain``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..augment import CIFAR_AUGMENT, AugmentConfig
from ..blog import BLOG_LR
from ..config import NORMALIZE, Profile, scaled_lr
from ..data import ImageTensors
from ..models import SimCLRModel, random_init_backbone
from ..runtime import pick_device
from ..stats import Comparison, over_seeds, seed_interval
from ..store import append_store, read_store, stored_budget

if TYPE_CHECKING:
    from ..runs import PretrainData

logger = logging.getLogger(__name__)
DEFAULT_EPOCHS = 4  # per run: 9 variants x 3 seeds, estimated at about 14 minutes on an idle 2-core CPU
DEFAULT_SEEDS = 3


@dataclass(frozen=True)
class Variant:
    """One way of pretraining: a view recipe, a temperature and an optimiser."""

    key: str
    description: str
    augment: AugmentConfig = CIFAR_AUGMENT
    temperature: float | None = None  # None: the profile's (0.2)
    optimizer: str = "course"  # "course" (SGD momentum, weight decay, warm-up + cosine) or "blog"
    batch_size: int | None = None  # None: the profile's; the learning rate follows it (Profile.peak_lr)


_NO_CROP = {"min_scale": 1.0, "ratio": (1.0, 1.0)}
VARIANTS: dict[str, Variant] = {v.key: v for v in (
    Variant("full", "the course's recipe: crop + flip, colour jitter (p 0.8), greyscale (p 0.2), temperature 0.2"),
    Variant("no-crop", "no random crop (the whole image, resized to itself)",
            dataclasses.replace(CIFAR_AUGMENT, **_NO_CROP)),
    Variant("no-colour", "no colour jitter", dataclasses.replace(CIFAR_AUGMENT, cj_prob=0.0)),
    Variant("no-grey", "no random greyscale", dataclasses.replace(CIFAR_AUGMENT, gray_prob=0.0)),
    Variant("crop-only", "crop + flip only: no colour jitter, no greyscale",
            dataclasses.replace(CIFAR_AUGMENT, cj_prob=0.0, gray_prob=0.0)),
    Variant("colour-only", "colour jitter + greyscale only: no crop, no flip",
            dataclasses.replace(CIFAR_AUGMENT, **_NO_CROP, hflip_prob=0.0)),
    Variant("tau-0.1", "temperature 0.1", temperature=0.1),
    Variant("tau-0.5", "temperature 0.5 (lightly's default)", temperature=0.5),
    Variant("blog-optimizer", f"the blog's optimiser: plain SGD at lr {BLOG_LR}, no momentum, no weight decay, "
            "no schedule", optimizer="blog"),
    Variant("batch-64", "batch 64 instead of the profile's (fewer negatives per view), the same epochs, the "
            "learning rate scaled with the batch", batch_size=64),
)}

# What each chart of the notebooks compares: (variant, label) in order. The full recipe is the
# reference of every group: the course's augmentations, its temperature and its optimiser.
GROUPS: dict[str, list[tuple[str, str]]] = {
    "augmentation": [("full", "full recipe"), ("no-crop", "no crop"), ("no-colour", "no colour jitter"),
                     ("no-grey", "no greyscale"), ("crop-only", "crop only"), ("colour-only", "colour only")],
    "temperature": [("tau-0.1", "τ = 0.1"), ("full", "τ = 0.2 (course)"), ("tau-0.5", "τ = 0.5 (lightly)")],
    "optimiser": [("full", "the course's optimiser\n(momentum, weight decay,\nwarm-up + cosine)"),
                  ("blog-optimizer", "the blog's optimiser\n(plain SGD at 0.06,\nno schedule)")],
    "batch": [("batch-64", "batch 64"), ("full", "the profile's batch")],
}


def parse_variants(text: str | None) -> list[str]:
    """``"full,no-crop"`` -> ``["full", "no-crop"]`` (all variants when empty), checked against ``VARIANTS``."""
    if not text:
        return list(VARIANTS)
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        from ..errors import SimclrError

        raise SimclrError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return list(dict.fromkeys(keys))


def pretrain_variant(variant: Variant, profile: Profile, images: torch.Tensor, seed: int, device=None,
                     channels_last: bool = True) -> SimCLRModel:
    """Pretrain one SimCLR model on uint8 ``images`` for ``profile.epochs`` epochs, the way ``variant`` says.

    The course's set-up and epoch (``train.training_setup``, ``train.train_one_epoch``), without
    ``pretrain``'s plumbing (checkpoints, logs, monitor), with the variant's augmentation, temperature,
    batch or optimiser (the blog's has no schedule).
    """
    from ..train import train_one_epoch, training_setup

    profile = profile.with_overrides(batch_size=variant.batch_size)
    setup = training_setup(profile, images, pick_device(device), seed=seed, augment=variant.augment,
                           channels_last=channels_last, temperature=variant.temperature,
                           optimizer="blog" if variant.optimizer == "blog" else "course")
    for _ in range(profile.epochs):
        train_one_epoch(setup, progress=False)
    return setup.model.eval()


def knn_top1(backbone: torch.nn.Module, bank: ImageTensors, queries: ImageTensors, k: int = 200,
             device=None) -> float:
    """kNN top-1 of ``queries`` against ``bank`` (features in eval mode, lightly's weighted vote)."""
    from ..evaluate import extract_features, knn_accuracy

    f_bank = extract_features(backbone, bank, NORMALIZE, device=device)
    f_queries = extract_features(backbone, queries, NORMALIZE, device=device)
    return knn_accuracy(f_bank, bank.labels.cpu(), f_queries, queries.labels.cpu(), len(bank.classes), k=k).top1


def run_ablation(profile: Profile, data: PretrainData, variants: Sequence[str] | None = None,
                 seeds: int = DEFAULT_SEEDS, device=None, store: str | Path | None = None) -> dict:
    """Pretrain every variant with ``seeds`` seeds at the budget of ``profile`` and measure kNN top-1.

    ``data`` is what ``runs.load_pretrain_data`` returns (labelled data only): its ``train``
    images are pretrained on, its ``splits`` give the kNN bank (the labelled training
    images) and the queries (the whole test split). A random-init backbone of every seed is
    measured the same way, as the floor every variant should clear.

    ``store`` (a JSON-lines file) makes the ablation survive interruptions: every finished
    (variant, seed) is appended to it as it ends, and a later call with the same budget skips
    what the file already holds and goes on. A progress line after every run gives the time left.
    """
    from .results import stamp

    if data.splits is None:
        from ..errors import DataError

        raise DataError("ablations need labelled data (CIFAR-10 or the bundled subset) for the kNN measurement")
    keys = list(variants) if variants else list(VARIANTS)
    dev = pick_device(device)
    splits = data.splits
    bank = splits.train.balanced_subset(profile.train_limit, profile.seed)
    test = splits.test
    seed_list = [profile.seed + i for i in range(seeds)]
    budget = {"profile": profile.name, "data": data.spec.describe(), "stem": profile.stem,
              "batch_size": profile.batch_size, "epochs": profile.epochs, "n_pretrain": len(data.train),
              "n_bank": len(bank), "n_test": len(test), "knn_k": profile.knn_k}
    done = read_store(store, budget, key=_key) if store else {}
    jobs = [(RANDOM_INIT, seed) for seed in seed_list] + [(key, seed) for key in keys for seed in seed_list]
    todo = [job for job in jobs if job not in done]
    if store:
        logger.info(f"ablation: {len(jobs)} runs; {len(jobs) - len(todo)} already in {Path(store).name}, "
                    f"{len(todo)} to go")
    t_start = time.perf_counter()
    for i, (key, seed) in enumerate(todo):
        t0 = time.perf_counter()
        if key == RANDOM_INIT:
            net = random_init_backbone(profile.stem, seed).to(dev)
        else:
            net = pretrain_variant(VARIANTS[key], profile, data.train.images, seed, dev).backbone
        entry = {"key": key, "seed": seed, "knn": round(knn_top1(net, bank, test, profile.knn_k, dev), 4),
                 "seconds": round(time.perf_counter() - t0, 1), "budget": budget}
        done[(key, seed)] = entry
        if store:
            append_store(store, entry)
        trained = [e["seconds"] for (k, _), e in done.items() if k != RANDOM_INIT]
        left = sum(1 for k, _ in todo[i + 1:] if k != RANDOM_INIT) * (sum(trained) / len(trained) if trained else 0)
        logger.info(f"{key}, seed {seed}: kNN top-1 {entry['knn']:.1%} ({entry['seconds']:.0f} s); {i + 1}/{len(todo)} "
                    f"runs done, {(time.perf_counter() - t_start) / 60:.0f} min so far, about {left / 60:.0f} min left")
    rows = []
    for key in keys:
        variant = VARIANTS[key]
        entries = [done[(key, seed)] for seed in seed_list]
        batch = variant.batch_size or profile.batch_size
        rows.append({"key": key, "description": variant.description,
                     "temperature": variant.temperature or profile.temperature, "optimizer": variant.optimizer,
                     "batch_size": batch,
                     "peak_lr": BLOG_LR if variant.optimizer == "blog" else scaled_lr(profile.lr_per_256, batch),
                     "knn": [e["knn"] for e in entries], "seconds": round(sum(e["seconds"] for e in entries), 1)})
    random_entries = [done[(RANDOM_INIT, seed)] for seed in seed_list]
    # The course's optimiser as this run used it (the blog-optimizer variant replaces it): the learning rate
    # per 256 images is the profile's unless changed, so the entry keeps it rather than leave readers to assume.
    optimiser = {"lr_per_256": profile.lr_per_256, "momentum": profile.momentum,
                 "weight_decay": profile.weight_decay, "warmup_epochs": profile.warmup_epochs}
    return {**budget, **optimiser, "seeds": seed_list, "device": str(dev), **stamp(dev),
            "seconds": round(sum(e["seconds"] for e in done.values() if e["key"] in (*keys, RANDOM_INIT)), 1),
            "random_init": {"knn": [e["knn"] for e in random_entries]}, "variants": rows,
            "groups": {g: [list(pair) for pair in pairs] for g, pairs in GROUPS.items()}}


RANDOM_INIT = "random-init"


def format_result(result: dict) -> str:
    """What ``ablate`` prints: every variant's mean kNN top-1 with its 95% interval over seeds, random init's,
    and, with more than one seed, every comparison of each group in sentence form."""
    lines = []
    for row in result["variants"]:
        s = seed_interval(row["knn"])
        interval = f" [{100 * s['low']:.1f}, {100 * s['high']:.1f}]" if s["low"] is not None else ""
        lines.append(f"{row['key']:<15} kNN top-1 {100 * s['mean']:.1f}%{interval}  ({row['description']})")
    s = seed_interval(result["random_init"]["knn"])
    lines.append(f"{'random init':<15} kNN top-1 {100 * s['mean']:.1f}%")
    if len(result["seeds"]) > 1:
        for group in GROUPS:
            lines += [f"{group}: {comparison}"
                      for comparison in comparisons(result, group, random_init=group == "augmentation")]
    return "\n".join(lines)


def default_store(profile: Profile, n_pretrain: int) -> Path:
    """Where ``ablate`` keeps its finished runs unless told: one file per budget under the checkpoints folder."""
    from ..config import default_checkpoint_dir

    return (default_checkpoint_dir() / "ablations"
            / f"{profile.name}-{profile.stem}-{profile.epochs}ep-b{profile.batch_size}-n{n_pretrain}.jsonl")


def _key(entry: dict) -> tuple[str, int]:
    return entry["key"], entry["seed"]


COURSE_STORES = Path(__file__).parents[1] / "assets" / "ablations"  # the recorded ablation's runs, one file per budget


def course_stores() -> list[Path]:
    """The store files of the course's recorded ablation (the 4-epoch table and the 12-epoch pilot), by name."""
    return sorted(COURSE_STORES.glob("*.jsonl"))


def read_runs(path: str | Path) -> tuple[dict, dict[str, dict[int, dict]]]:
    """What one store file of ``ablate`` holds: its budget, and for every variant key (``random-init``
    included) its finished runs by seed, each the stored entry (``knn``, ``seconds``, ...). Notebook 02 reads
    the pilot's gaps from them, notebook 03 the time of a run."""
    budget = stored_budget(path)
    if budget is None:
        from ..errors import SimclrError

        raise SimclrError(f"{Path(path).name}: an empty store file; it holds no finished run.")
    runs: dict[str, dict[int, dict]] = {}
    for (key, seed), entry in read_store(path, budget, key=_key).items():
        runs.setdefault(key, {})[seed] = entry
    return budget, runs


def bonferroni_lines(gaps: Sequence[Comparison], thresholds: Sequence[float]) -> list[str]:
    """One line per gap: its p-value, and whether it is below each Bonferroni threshold (0.05 / m for m gaps;
    notebooks 02 and 03 give two, the gaps of their own section and all the ablation's gaps they print)."""
    return [f"{c.a} - {c.b}: p = {c.p_value:.4f}; "
            + ", ".join(f"below {t:.4f}: {'yes' if c.p_value < t else 'no'}" for t in thresholds) for c in gaps]


def seeds_of(result: dict, key: str) -> list[float] | None:
    """The per-seed kNN top-1 of a recorded variant (or of ``random-init``), in seed order; None if not measured."""
    if key == RANDOM_INIT:
        return result["random_init"]["knn"]
    row = next((r for r in result["variants"] if r["key"] == key), None)
    return None if row is None else row["knn"]


def summary(result: dict, key: str) -> dict | None:
    """Mean kNN top-1 of a recorded variant over its seeds, with the mean's 95% t interval (``stats.seed_interval``)."""
    values = seeds_of(result, key)
    return None if values is None else seed_interval(values)


def group_rows(result: dict, group: str) -> list[dict]:
    """The recorded variants of one chart, in order: ``{"key", "label", "mean", "low", "high", "seeds"}`` each."""
    pairs = result.get("groups", {}).get(group) or GROUPS[group]
    out = []
    for key, label in pairs:
        s = summary(result, key)
        if s is not None:
            out.append({"key": key, "label": label.split("\n")[0], **s})  # a chart label's first line
    return out


def budget(result: dict) -> str:
    """One line on how the recorded ablation was measured."""
    return (f"{result['epochs']} epochs of pretraining on {result['n_pretrain']:,} images ({result['data']}, "
            f"{result['stem']} stem, batch {result['batch_size']}) per run, "
            f"seeds {', '.join(map(str, result['seeds']))}; "
            f"kNN top-1 (k = {result['knn_k']}) of the {result['n_test']:,} test images against "
            f"{result['n_bank']:,} labelled training images; {result['hardware']}, {result['date']}")


def comparisons(result: dict, group: str, reference: str = "full", random_init: bool = False) -> list[Comparison]:
    """Every variant of ``group`` against the reference (the full recipe) and, with ``random_init``, every
    variant (the reference too) against a random-init backbone: the gap of the means over seeds with its 95%
    t interval, paired by seed (every variant ran the same seeds: the same initial weights and data order)."""
    rows = {r["key"]: r for r in group_rows(result, group)}
    out = []
    for key, row in rows.items():
        if key != reference and reference in rows:
            out.append(over_seeds(row["label"], seeds_of(result, key), rows[reference]["label"],
                                  seeds_of(result, reference)))
        if random_init:
            out.append(over_seeds(row["label"], seeds_of(result, key), "random init",
                                  seeds_of(result, RANDOM_INIT)))
    return out


def show(result: dict | None, group: str, random_init: bool = False, ax=None):
    """What notebooks 02 and 03 show of a recorded ablation group: how it was measured, every variant's mean
    with its 95% interval, every comparison in one sentence form, and the gaps drawn against the full
    recipe (``plots.ablation_gaps``). Returns the figure, or None (and says so) without a recorded ablation."""
    from ..plots import ablation_gaps

    if not result:
        print("no ablation in simclr_helpers/assets/results.json yet: run `python -m simclr_helpers ablate --record`")
        return None
    print(f"simclr_helpers/assets/results.json, `{result.get('command', 'python -m simclr_helpers ablate')}`:")
    print(budget(result))
    for row in group_rows(result, group):
        interval = f" [{100 * row['low']:.1f}, {100 * row['high']:.1f}]" if row["low"] is not None else ""
        print(f"{row['label']:>24}: kNN top-1 {100 * row['mean']:.1f}%{interval} (mean of {row['seeds']} seeds)")
    found = comparisons(result, group, random_init=random_init)
    for comparison in found:
        print(comparison)
    against_full = [c for c in found if c.b != "random init"]
    if not against_full:
        return None
    return ablation_gaps(against_full, f"{group}: gap in kNN top-1 to {against_full[0].b}\n(95% intervals over "
                         "seeds, paired by seed)", ax=ax)
