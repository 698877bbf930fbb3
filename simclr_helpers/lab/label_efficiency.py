"""Label efficiency, compared fairly: what 1%, 10% and 100% of the labels buy with and without SimCLR.

Four curves on the same class-balanced label subsets, measured on the same test images:

* ``probe-simclr``: a linear probe on the frozen SimCLR backbone's features (``evaluate.train_linear_probe``);
* ``probe-random``: the same probe on a random-init backbone of the same stem;
* ``scratch``: a ResNet-18 of the same stem trained from scratch with the standard supervised
  augmentation (padded random crop and flip, ``supervised.train_supervised``);
* ``finetune``: the SimCLR backbone with a new linear layer, trained end to end with the same recipe.

All four curves get their number of epochs from a validation split, never from the test set: the
training images the run held out of pretraining (its kNN-monitor queries, 10%), which neither the backbone
nor any labelled subset has seen. Each budget of a grid (``EPOCH_GRID`` for the trained curves,
``PROBE_GRID`` for the probes) is a run of its own, with its own schedule; the budget with the best
validation top-1 is the one reported, and every budget run is kept (and tested), so that a reader sees whether a
longer budget still helped (then the grid was too short). A grid is walked upwards and ends at the first budget
whose validation top-1 does not beat every shorter budget's (``_walk``): once validation has passed its peak,
longer budgets of the same recipe are not run (early stopping over budgets, with a patience of one).

Every finished (method, fraction, epochs) is appended to a JSON-lines store as it ends, so an interrupted
run continues where it stopped, as the ablation does; ``stored_summary`` reads a finished store without
training anything. Each keeps its per-image test correctness (packed
bits), so that any two curves at one fraction compare on the same test images (``stats.paired``).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..checkpoints import is_reference, load_simclr
from ..data import CIFARSplits, ImageTensors
from ..store import append_store, read_store, stored_budget

logger = logging.getLogger(__name__)
FRACTIONS = (0.01, 0.1, 1.0)
# The trained curves' budgets per label fraction: doubling until the validation top-1 stops rising. 1% was
# extended by one doubling (800 epochs) and 10% by two (200, then 400) because the network from scratch was
# still improving at the top of the earlier grids (400; 100, then 200), and 100% by one (48) because both
# trained models were (at 24; they still are at 48, which took an hour each on two CPU cores). An epoch is the
# whole batches of the labelled images (supervised.steps_per_epoch: at 1%, 450 images, one step of 256 of them
# drawn at random), so the steps per epoch, and those at the top of a grid, differ between fractions.
EPOCH_GRID = {0.01: (100, 200, 400, 800), 0.1: (25, 50, 100, 200, 400), 1.0: (6, 12, 24, 48)}
# The probes' budgets, the same at every fraction, chosen on the same validation split. It holds 100, the
# profiles' ``linear_epochs``: the budget's ``probe_epochs`` names that default probe budget, and is kept in
# the budget so that every probe run stored before the grid existed is still reused.
PROBE_GRID = (25, 50, 100, 200, 400)
PROBES = ("probe-simclr", "probe-random")
TRAINED = ("scratch", "finetune")
METHODS = (*PROBES, *TRAINED)
LABELS = {"probe-simclr": "linear probe, SimCLR features", "probe-random": "linear probe, random-init features",
          "scratch": "ResNet-18 from scratch (supervised)", "finetune": "SimCLR network fine-tuned"}
VALIDATION_FRACTION = 0.1  # the share of the training images the run held out of pretraining


def pack(correct) -> str:
    """Per-image correctness (booleans) as a short base64 string of bits."""
    bits = np.packbits(np.asarray(correct, dtype=bool))
    return base64.b64encode(bits.tobytes()).decode()


def unpack(text: str, n: int) -> np.ndarray:
    """The booleans ``pack`` stored, for ``n`` images."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)


def split_validation(train: ImageTensors, seed: int = 0) -> tuple[ImageTensors, ImageTensors]:
    """(labelled pool, validation): the same split ``runs.load_pretrain_data`` made for the kNN monitor, so the
    validation images are the ones the pretrained backbone never saw."""
    return train.split(VALIDATION_FRACTION, seed=seed)


# The reference weights' finished runs ship with the course: the measurement its results file records.
REFERENCE_STORE = Path(__file__).resolve().parents[1] / "assets" / "label-efficiency" / "reference.jsonl"


def default_store(checkpoint) -> Path:
    """Where ``label-efficiency`` keeps a run's finished runs unless ``--store`` says otherwise:
    ``checkpoints/label-efficiency/<run>.jsonl``, and for the reference weights the store that ships with the
    course (``simclr_helpers/assets/label-efficiency/reference.jsonl``), so that its recorded runs are reused."""
    from ..config import default_checkpoint_dir

    if is_reference(checkpoint):
        return REFERENCE_STORE
    return default_checkpoint_dir() / "label-efficiency" / f"{Path(checkpoint).parent.name}.jsonl"


def _plan(checkpoint, record, splits: CIFARSplits, fractions: Sequence[float], grid: dict | None,
          methods: Sequence[str], probe_grid: Sequence[int], store) -> tuple:
    """(pool, validation, budget, grids, done): each curve's budgets at each fraction, and the runs a store holds."""
    p = record.profile
    grid = {f: tuple((grid or {}).get(f, EPOCH_GRID.get(f, ()))) for f in fractions}
    probe_grid = tuple(sorted({*probe_grid, p.linear_epochs}))  # the default budget's stored runs are reused
    pool, validation = split_validation(splits.train, p.seed)
    budget = {"checkpoint": str(checkpoint), "stem": p.stem, "n_pool": len(pool), "n_validation": len(validation),
              "n_test": len(splits.test), "probe_epochs": p.linear_epochs, "batch_size": p.batch_size}
    budget, done = _read(store, budget) if store else (budget, {})
    grids = [((m, f), probe_grid) for f in fractions for m in PROBES if m in methods]
    grids += [((m, f), grid[f]) for f in fractions for m in TRAINED if m in methods]
    return pool, validation, budget, grids, done


def _jobs(grids: list, done: dict) -> tuple[list, int]:
    """(the runs the measurement needs as far as the finished ones tell, the most that may follow them)."""
    walks = [_walk(m, f, budgets, done) for (m, f), budgets in grids]
    return [job for needed, _ in walks for job in needed], sum(len(later) for _, later in walks)


def _walk(method: str, fraction: float, budgets: Sequence[int], done: dict) -> tuple[list, list]:
    """(needed, later) for one curve at one fraction. ``needed``: its budgets, in ascending order, up to the first
    one not run yet, or to the first whose validation top-1 does not beat every shorter budget's (validation has
    passed its peak: the grid ends there). ``later``: the budgets after the first one not run yet, which its
    result may or may not call for (the most that is left to run)."""
    needed, best = [], None
    budgets = sorted(budgets)
    for i, epochs in enumerate(budgets):
        job = (method, fraction, epochs)
        needed.append(job)
        run = done.get(job)
        if run is None:
            return needed, budgets[i + 1:]
        if best is not None and run["val_top1"] <= best:
            break
        best = run["val_top1"]
    return needed, []


def _read(store, budget: dict) -> tuple[dict, dict]:
    """(budget, the store's finished runs of it). A run's checkpoint may be spelled as another path to the same
    ``<run>/last.pt`` (relative here, absolute there): the store's spelling is then the budget's."""
    path = Path(store)
    if not is_reference(budget["checkpoint"]):
        stored = (stored_budget(path) or {}).get("checkpoint")
        if stored and not is_reference(stored) and Path(stored).parts[-2:] == Path(budget["checkpoint"]).parts[-2:]:
            budget = {**budget, "checkpoint": stored}
    return budget, read_store(path, budget, key=_key)


def run_label_efficiency(checkpoint, splits: CIFARSplits, fractions: Sequence[float] = FRACTIONS,
                         grid: dict | None = None, store: str | Path | None = None, device=None,
                         methods: Sequence[str] = METHODS,
                         progress: bool = True, probe_grid: Sequence[int] = PROBE_GRID) -> dict:
    """Measure the four curves for ``checkpoint`` (a pretraining checkpoint or ``reference``) on ``splits``.

    ``grid``: the trained curves' budgets per fraction (``EPOCH_GRID`` where a fraction is missing);
    ``probe_grid``: the probes' budgets (the profile's ``linear_epochs`` always among them)."""
    from ..evaluate import extract_features, freeze, label_subset, linear_accuracy, train_linear_probe
    from ..models import random_init_backbone
    from ..runtime import pick_device
    from ..supervised import SupervisedRecipe, predict, train_supervised

    dev = pick_device(device)
    model, record = load_simclr(checkpoint, device=dev)
    p, stats = record.profile, record.normalize
    pool, validation, budget, grids, done = _plan(checkpoint, record, splits, fractions, grid, methods,
                                                  probe_grid, store)
    jobs, later = _jobs(grids, done)
    test = splits.test
    n_classes = len(splits.train.classes)
    todo = [job for job in jobs if job not in done]
    logger.info(f"label efficiency: {len(done)} runs already done, {len(todo)} to go, and up to {later} more where "
        "validation is still rising (a grid ends at the first budget that does not improve it)")

    def _features(name: str) -> tuple:  # a probe's cached features of the pool, validation and test images
        net = freeze(model.backbone if name == "probe-simclr" else random_init_backbone(p.stem, p.seed).to(dev))
        return tuple(extract_features(net, part, stats, device=dev, progress=progress, desc=name)
                     for part in (pool, validation, test))

    features = {}
    t_start, n_run = time.perf_counter(), 0
    while todo:  # one run at a time: its validation result decides whether its curve's next budget is needed
        method, fraction, epochs = todo[0]
        if method in PROBES and method not in features:
            features[method] = _features(method)
        t0 = time.perf_counter()
        idx = label_subset(pool.labels, fraction, p.seed)
        entry = {"method": method, "fraction": fraction, "epochs": epochs, "n_labels": len(idx)}
        if method in PROBES:
            f_pool, f_val, f_test = features[method]
            fc = train_linear_probe(f_pool[idx], pool.labels[idx].cpu(), n_classes, epochs=epochs, seed=p.seed)
            val_pred, test_pred = (linear_accuracy(fc, f, y.cpu()).predictions
                                   for f, y in ((f_val, validation.labels), (f_test, test.labels)))
            curve = []
        else:
            recipe = SupervisedRecipe(epochs=epochs, batch_size=p.batch_size, seed=p.seed, augment="pad-crop")
            init = model.backbone.state_dict() if method == "finetune" else None
            net, curve = train_supervised(pool.subset(idx), p.stem, recipe, dev, stats, progress=progress,
                                          init=init, validation=validation)
            val_pred, test_pred = predict(net, validation, stats, device=dev), predict(net, test, stats, device=dev)
        val_ok = (val_pred == validation.labels.cpu()).numpy()
        test_ok = (test_pred == test.labels.cpu()).numpy()
        entry.update({"val_top1": round(float(val_ok.mean()), 4), "test_top1": round(float(test_ok.mean()), 4),
                      "val_correct": pack(val_ok), "test_correct": pack(test_ok), "curve": curve,
                      "seconds": round(time.perf_counter() - t0, 1), "budget": budget})
        done[_key(entry)] = entry
        if store:
            append_store(store, entry)
        jobs, later = _jobs(grids, done)
        todo, n_run = [job for job in jobs if job not in done], n_run + 1
        logger.info(f"{method}, {fraction:.0%} of the labels ({len(idx)} images), {epochs} epochs: validation "
            f"{entry['val_top1']:.1%}, test {entry['test_top1']:.1%} ({entry['seconds']:.0f} s); {n_run} done, "
            f"{len(todo)} to go and up to {later} more, {(time.perf_counter() - t_start) / 60:.0f} min so far")
    return summarise([done[job] for job in jobs], budget, fractions, methods)


def stored_summary(checkpoint, splits: CIFARSplits, store: str | Path, fractions: Sequence[float] = FRACTIONS,
                   grid: dict | None = None, methods: Sequence[str] = METHODS,
                   probe_grid: Sequence[int] = PROBE_GRID) -> tuple[dict | None, list[tuple]]:
    """``(summary, [])`` when ``store`` holds every run of the grids, summarised as ``run_label_efficiency``
    would return it, without training anything; else ``(None, missing)``, the ``(method, fraction, epochs)``
    still to run. Only runs of this measurement's budget count (a store of another budget is refused)."""
    from ..checkpoints import RunRecord

    *_, budget, grids, done = _plan(checkpoint, RunRecord.load(checkpoint), splits, fractions, grid, methods,
                                    probe_grid, store)
    jobs, _ = _jobs(grids, done)
    missing = [job for job in jobs if job not in done]
    return (None, missing) if missing else (summarise([done[job] for job in jobs], budget, fractions, methods), [])


def _key(entry: dict) -> tuple:
    return entry["method"], entry["fraction"], entry["epochs"]


def summarise(entries: list[dict], budget: dict, fractions: Sequence[float] = FRACTIONS,
              methods: Sequence[str] = METHODS) -> dict:
    """Per fraction and method: the chosen run (the best validation top-1; the fewer epochs on a tie), its test
    top-1 and correctness, the validation top-1 of every budget of the grid, and the time its runs took."""
    table = {}
    for fraction in fractions:
        cell = table.setdefault(str(fraction), {})
        for method in methods:
            runs = sorted((e for e in entries if e["method"] == method and e["fraction"] == fraction),
                          key=lambda e: e["epochs"])
            if not runs:
                continue
            best = max(runs, key=lambda e: (e["val_top1"], -e["epochs"]))
            cell[method] = {"epochs": best["epochs"], "n_labels": best["n_labels"], "val_top1": best["val_top1"],
                            "test_top1": best["test_top1"], "test_correct": best["test_correct"],
                            "grid": {str(e["epochs"]): e["val_top1"] for e in runs},
                            "seconds": round(sum(e["seconds"] for e in runs), 1),  # the whole grid's runs
                            "curve": best["curve"]}
    return {**budget, "fractions": table,
            "seconds": round(sum(e["seconds"] for e in entries), 1)}


def format_result(result: dict) -> str:
    """What ``label-efficiency`` prints: one line per fraction and curve, with the budget chosen on validation."""
    return "".join(f"{float(share):>5.0%} of the labels, {LABELS[method]}: test top-1 {row['test_top1']:.1%} "
                   f"({row['epochs']} epochs; validation by budget: {row['grid']})\n"
                   for share, cell in result["fractions"].items() for method, row in cell.items())


# Budgets for the bundled subset (about a minute on a CPU): the protocol, not the figures.
SMOKE_GRID = {0.01: (20, 40), 0.1: (4, 8), 1.0: (1, 2)}
SMOKE_PROBE_GRID = (25, 50, 100)
# The questions a reader asks of the four curves, each answered at every fraction with a paired test.
COMPARISONS = (("finetune", "scratch"), ("probe-simclr", "scratch"), ("finetune", "probe-simclr"),
               ("probe-simclr", "probe-random"))


def _paired(a: str, run_a: dict, b: str, run_b: dict, n_test: int):
    """McNemar's exact test of two runs (stored or chosen) of methods ``a`` and ``b`` on the same test images."""
    from ..stats import paired

    return paired(LABELS[a], unpack(run_a["test_correct"], n_test), LABELS[b], unpack(run_b["test_correct"], n_test))


def correctness(summary: dict, fraction: float | str, method: str) -> np.ndarray:
    """Per test image, whether the chosen run of ``method`` at ``fraction`` got it right."""
    return unpack(summary["fractions"][str(float(fraction))][method]["test_correct"], summary["n_test"])


def comparisons(summary: dict) -> list[tuple[float, object]]:
    """``(fraction, stats.Comparison)`` for every question of ``COMPARISONS`` both of whose curves were measured:
    McNemar's exact test on the same test images."""
    return [(float(fraction), _paired(a, cell[a], b, cell[b], summary["n_test"]))
            for fraction, cell in summary["fractions"].items() for a, b in COMPARISONS if a in cell and b in cell]


def gaps_by_budget(summary: dict, store: str | Path, fraction: float, a: str = "finetune",
                   b: str = "scratch") -> list[tuple[int, object]]:
    """``(epochs, stats.Comparison)``: ``a`` against ``b`` at ``fraction`` at every budget both ran, each budget's
    own two runs compared on the same test images (McNemar's exact test), read from ``store``; how a lead grows
    or shrinks with training. Nothing when the store does not hold ``summary``'s runs (another budget)."""
    budget = stored_budget(store)  # None for a missing, empty or damaged store
    if budget is None or any(summary.get(k) != v for k, v in budget.items()):
        return []
    runs = read_store(store, budget, key=_key)
    ran = {m: {e for m_, f, e in runs if (m_, f) == (m, fraction)} for m in (a, b)}
    both = sorted(ran[a] & ran[b])
    return [(e, _paired(a, runs[a, fraction, e], b, runs[b, fraction, e], budget["n_test"])) for e in both]


def curves(summary: dict) -> dict[str, dict[float, float]]:
    """``{label: {fraction: test top-1}}``, the four curves of the figure."""
    out: dict[str, dict[float, float]] = {}
    for fraction, cell in summary["fractions"].items():
        for method in METHODS:
            if method in cell:
                out.setdefault(LABELS[method], {})[float(fraction)] = cell[method]["test_top1"]
    return out
