"""The course's measured results: one JSON file, written by commands, read by the README and notebooks.

``python -m simclr_helpers reproduce ... --record`` pretrains (or resumes), evaluates and
stores one row here; ``benchmark --record`` stores a speed measurement. ``python -m
simclr_helpers results`` prints the README's tables from the file, ``--write README.md``
puts them between the README's markers, and ``--check README.md`` fails when the README
says anything else, so the published numbers cannot drift from the runs that produced
them (a test runs the check).

Every result is written by one function, ``record_result``, and carries one ``stamp``
(hardware, date, versions) and the command that made it (``cli.command_line``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import torch

RESULTS_FILE = Path(__file__).parents[1] / "assets" / "results.json"


def hardware(device) -> str:
    """A short description of the machine a figure was measured on (no host names or paths)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"1x {torch.cuda.get_device_name(dev)}"
    from ..runtime import cpu_count

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {cpu_count()} cores, no GPU"


def stamp(device) -> dict:
    """Where and when a result was measured, as every record of the results file carries it: the hardware
    (``hardware``), the date, and the versions of torch (without a local build suffix such as ``+cu121``)
    and lightly."""
    return {"hardware": hardware(device), "date": time.strftime("%Y-%m-%d"),
            "torch": str(torch.__version__).split("+")[0], "lightly": version("lightly")}


def load(path: str | Path = RESULTS_FILE, missing_ok: bool = True) -> dict:
    """The whole results file: ``{"rows": [...], "benchmarks": [...], "sweeps": [...], "ablations": ...}``
    (lists empty and ``ablations`` None if there is no file and ``missing_ok``, as when a first result is
    recorded). A file that is missing (unless ``missing_ok``) or cannot be read is one sentence, so that nothing
    is ever written from it: not the README's tables, not the results file itself."""
    from ..errors import SimclrError

    path = Path(path)
    if missing_ok and not path.exists():
        data = {}
    elif not path.is_file():
        raise SimclrError(f"{path}: no such results file; check the path given to --file, or leave --file out "
                          "to use the course's own results file.")
    else:
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SimclrError(f"{path}: not a readable results file ({exc}); restore it from version control, or "
                              "pass --file with a good one.") from None
    return {**data, "rows": data.get("rows", []), "benchmarks": data.get("benchmarks", []),
            "sweeps": data.get("sweeps", []), "ablations": data.get("ablations")}


def _save(data: dict, path: str | Path) -> Path:
    """Write the results file atomically: a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: str | Path = RESULTS_FILE) -> list[dict]:
    return load(path)["rows"]


def metrics_file(row_id: str, path: str | Path = RESULTS_FILE) -> Path:
    """Where a recorded row's per-epoch metrics live: ``runs/<id>.metrics.json`` beside the results file."""
    return Path(path).parent / "runs" / f"{row_id}.metrics.json"


def run_metrics(row_id: str, path: str | Path = RESULTS_FILE) -> list[dict]:
    """The per-epoch metrics (loss, lr, seconds, kNN monitor) of a recorded row, for drawing its curves
    without its checkpoint (notebook 03 draws the long CIFAR-10 run's)."""
    file = metrics_file(row_id, path)
    if not file.exists():
        from ..errors import SimclrError

        raise SimclrError(f"{file.name}: no metrics recorded for the row {row_id!r}; record it with "
                          "`python -m simclr_helpers reproduce ... --record`.")
    return json.loads(file.read_text())


def _add_row(data: dict, row: dict, path: Path) -> None:
    """A ``reproduce`` row replaces the row with the same ``id``; rows stay in profile, stem, id order.
    A row's per-epoch ``metrics`` go to their own small file (``metrics_file``), not into the table's file."""
    row = dict(row)
    metrics = row.pop("metrics", None)
    if metrics is not None:
        file = metrics_file(row["id"], path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(metrics, indent=1) + "\n")
    rows = [r for r in data["rows"] if r["id"] != row["id"]] + [row]
    order = {"smoke": 0, "cpu": 1, "gpu": 2}
    rows.sort(key=lambda r: (order.get(r.get("profile"), 9), r.get("stem") != "imagenet", r["id"]))
    data["rows"] = rows


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def format_duration(seconds: float | None) -> str:
    """``"16 min 44 s"``: a recorded time as the README's tables print it (notebook 03 cites its rows' times)."""
    if seconds is None:
        return "—"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def markdown_tables(rows: list[dict]) -> str:
    """The README's results section body: the main table, label efficiency, and where each row came from."""
    head = ("| run | data | stem | epochs | batch | hardware | pretraining | kNN top-1 (random init) "
            "| linear top-1 (random init) |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    notes = []
    for r in rows:
        if r.get("status"):
            lines.append(f"| `{r['id']}` | {r['data']} | {r['stem']} | {r['epochs']} | {r['batch_size']} "
                         f"| — | {r['status']} | — | — |")
            how = f"; the command that would produce it: `{r['command']}`" if r.get("command") else ""
            notes.append(f"- `{r['id']}`: {r['status']}{how}")
            continue
        lines.append(
            f"| `{r['id']}` | {r['data']} | {r['stem']} | {r['epochs']} | {r['batch_size']} | {r['hardware']} "
            f"| {format_duration(r['pretrain_seconds'])} "
            f"| {_pct(r['knn']['simclr'])} ({_pct(r['knn']['random_init'])}) "
            f"| {_pct(r['linear']['simclr'])} ({_pct(r['linear']['random_init'])}) |")
        notes.append(f"- `{r['id']}`: `{r['command']}` ({r['date']}, torch {r['torch']}, "
                     f"{r['n_train']:,} train / {r['n_test']:,} test images)")
    out = ["\n".join(lines), ""]
    measured = [r for r in rows if not r.get("status") and r.get("label_efficiency")]
    if measured:
        fractions = sorted({f for r in measured for f in r["label_efficiency"]}, key=float)
        cols = " | ".join(f"{float(f):.0%} labels" for f in fractions)
        le_lines = [f"| run | features / model | {cols} |",
                    "|" + "|".join("---" for _ in range(2 + len(fractions))) + "|"]
        for r in measured:
            for key, label in (("simclr", "linear probe on SimCLR features"),
                               ("random_init", "linear probe on random-init features")):
                vals = [r["label_efficiency"].get(f, {}).get(key) for f in fractions]
                if any(v is not None for v in vals):
                    le_lines.append(f"| `{r['id']}` | {label} | " + " | ".join(_pct(v) for v in vals) + " |")
        out += ["Linear probes with fewer labels (test top-1; the same class-balanced label subsets for every "
                "row). The comparison with supervised training and fine-tuning, each given the number of epochs "
                "a validation split chose, is the label-efficiency table below.", "", "\n".join(le_lines), ""]
        hz = [r for r in measured if r.get("linear_z") is not None]
        if hz:
            out += ["Where to take the features (linear probe, all labels): backbone output h vs projection-head "
                    "output z:", "",
                    "| run | h (backbone) | z (projection head) |", "|---|---|---|"]
            out += [f"| `{r['id']}` | {_pct(r['linear']['simclr'])} | {_pct(r['linear_z'])} |" for r in hz]
            out.append("")
        speed = [r for r in measured if r.get("probe_speed")]
        if speed:
            out += ["Linear probe on cached features vs the blog's way (backbone forward every epoch), same epochs:",
                    "", "| run | epochs | images | cached | blog's way | speed-up |", "|---|---|---|---|---|---|"]
            out += [f"| `{r['id']}` | {p['epochs']} | {p['images']:,} | {p['cached_s']:.1f} s "
                    f"| {p['blog_way_s']:.1f} s | {p['speedup']:.1f}x |" for r in speed for p in [r["probe_speed"]]]
            out.append("")
    out += ["How each row was produced (one command each; `--record` writes the row into "
            "`simclr_helpers/assets/results.json`):", ""] + notes
    return "\n".join(out).rstrip() + "\n"


def benchmark_table(runs: list[dict]) -> str:
    """The README's speed table: one line per recorded ``benchmark --record`` run."""
    lines = ["| run | device | stem, batch | blog's loader workers | blog augmentation (views/s) "
             "| batched augmentation (views/s) | ratio | blog training (images/s) | fast training (images/s) | ratio |",
             "|" + "|".join("---" for _ in range(10)) + "|"]
    for i, r in enumerate(runs, 1):
        lines.append(f"| {i} | {r['hardware']}, {r['fast_dtype']} | {r['stem']}, {r['batch_size']} "
                     f"| {r.get('workers', r['cpus'])} "
                     f"| {r['blog_augment_views_per_s']:,} | {r['fast_augment_views_per_s']:,} "
                     f"| {r['augment_speedup']:.1f}x "
                     f"| {r['blog_train_images_per_s']:,.0f} | {r['fast_train_images_per_s']:,.0f} "
                     f"| {r['train_speedup']:.2f}x |")
    dates = sorted({r["date"] for r in runs})
    lines += ["", f"Measured with `python -m simclr_helpers benchmark --record` ({', '.join(dates)}, torch "
              f"{runs[-1]['torch'].split('+')[0]}); each ratio is the median of per-repeat ratios."] if runs else []
    return "\n".join(lines) + "\n"


KEEP_BENCHMARKS = 3  # benchmark runs kept per device, stem and batch size


def _add_benchmark(data: dict, result: dict, path: Path) -> None:
    """A ``benchmark`` run joins the others; the last ``KEEP_BENCHMARKS`` of the same device, stem and batch
    size are kept."""
    key = (result["hardware"], result["stem"], result["batch_size"])
    same = [b for b in data["benchmarks"] if (b["hardware"], b["stem"], b["batch_size"]) == key]
    others = [b for b in data["benchmarks"] if (b["hardware"], b["stem"], b["batch_size"]) != key]
    data["benchmarks"] = others + (same + [result])[-KEEP_BENCHMARKS:]


def _add_sweep(data: dict, result: dict, path: Path) -> None:
    """A ``benchmark --sweep`` run replaces the sweep of the same device, stem and compile setting."""
    key = (result["hardware"], result["stem"], any(r["compile"] for r in result["rows"]))
    data["sweeps"] = [s for s in data["sweeps"]
                      if (s["hardware"], s["stem"], any(r["compile"] for r in s["rows"])) != key] + [result]


def sweep_table(sweeps: list[dict]) -> str:
    """The README's batch-size and compile table: one line per setting of each ``benchmark --sweep --record``."""
    lines = ["| device | stem | batch | torch.compile | images/s (median) | GFLOP/s | share of the matrix-product rate "
             "| compiled / not |", "|" + "|".join("---" for _ in range(8)) + "|"]
    for sw in sweeps:
        for row in sw["rows"]:
            gain = f"{row['compile_speedup']:.2f}x" if "compile_speedup" in row else "—"
            lines.append(f"| {sw['hardware']}, {sw['precision']} | {sw['stem']} | {row['batch_size']} "
                         f"| {'yes' if row['compile'] else 'no'} | {row['images_per_s']:,.0f} | {row['gflops']:,.0f} "
                         f"| {row['gflops'] / sw['matmul_gflops']:.0%} | {gain} |")
    if sweeps:
        sw = sweeps[-1]
        peaks = ", ".join(f"{s['matmul_gflops']:.0f}" for s in sweeps)
        lines += ["", f"One training step costs {sw['gflop_per_image']:.2f} GFLOP per image (two views, forward and "
                  f"backward, counted by `torch.utils.flop_counter`); the matrix-product rate is one "
                  f"4096x4096 fp32 product on the same device ({peaks}"
                  " GFLOP/s). Each figure is the median of "
                  f"{sw['repeats']} alternating repeats of {sw['steps']} steps "
                  f"(`python -m simclr_helpers benchmark --sweep ... --record`, "
                  f"{', '.join(sorted({s['date'] for s in sweeps}))})."]
    return "\n".join(lines) + "\n"


ABLATE_COMMAND = "python -m simclr_helpers ablate --record"


def _add_ablations(data: dict, result: dict, path: Path) -> None:
    """An ``ablate`` run goes under ``ablations``. A run at the same budget (profile, data, stem, batch,
    epochs, seeds) adds its variants to the stored ones, replacing those it measured again; a run at another
    budget replaces the whole entry, so one chart never mixes budgets."""
    old = data.get("ablations")
    same = ("profile", "data", "stem", "batch_size", "epochs", "seeds", "n_pretrain", "n_test", "knn_k")
    if old and all(old.get(k) == result.get(k) for k in same):
        new_keys = {v["key"] for v in result["variants"]}
        result = {**result, "variants": [v for v in old["variants"] if v["key"] not in new_keys] + result["variants"]}
    data["ablations"] = result


def _add_label_efficiency(data: dict, result: dict, path: Path) -> None:
    """The ``label-efficiency`` comparison replaces the one under ``label_efficiency``."""
    data["label_efficiency"] = result


# What each command records, and how a new result joins what the results file holds.
RECORDS: dict[str, Callable[[dict, dict, Path], None]] = {
    "row": _add_row, "benchmark": _add_benchmark, "sweep": _add_sweep, "ablations": _add_ablations,
    "label_efficiency": _add_label_efficiency}


def record_result(kind: str, result: dict, path: str | Path | None = None) -> Path:
    """Record ``result`` (a ``kind`` of ``RECORDS``) into the results file (``RESULTS_FILE`` unless ``path``)
    and return its path. The file is read first (a missing one starts empty; an unreadable one is one
    sentence and nothing is written) and replaced atomically: a reader never sees half of it."""
    path = Path(path) if path else RESULTS_FILE
    data = load(path)
    RECORDS[kind](data, result, path)
    return _save(data, path)


def ablation_table(ablations: dict | None) -> str:
    """The README's ablation table: every variant's mean kNN top-1 over seeds with its 95% t interval, and its
    gap to the full recipe, paired by seed, with that gap's interval and whether it is resolved."""
    from ..stats import over_seeds, seed_interval

    if not ablations:
        return f"Not measured yet: `{ABLATE_COMMAND}` (about a quarter of an hour on two CPU cores).\n"
    n = ablations["n_test"]
    seeds = ablations["seeds"]
    full = next((v["knn"] for v in ablations["variants"] if v["key"] == "full"), None)
    lines = ["| variant | what changes | kNN top-1, mean [95% interval] | minus the full recipe [95% interval] "
             "| per seed |", "|---|---|---|---|---|"]
    rows = [(f"`{v['key']}`", v["description"], v["key"], v["knn"]) for v in ablations["variants"]]
    rows.append(("random init", "no pretraining (the floor)", "random-init", ablations["random_init"]["knn"]))
    for name, description, key, values in rows:
        s = seed_interval(values)
        mean = f"{100 * s['mean']:.1f}%" + (f" [{100 * s['low']:.1f}, {100 * s['high']:.1f}]" if s["low"] else "")
        gap = "—"
        if key != "full" and full is not None and len(values) == len(full) > 1:
            c = over_seeds(key, values, "full", full)
            gap = (f"{100 * c.gap:+.1f} [{100 * c.low:+.1f}, {100 * c.high:+.1f}]: "
                   f"{'resolved' if c.resolved else 'not resolved'}")
        lines.append(f"| {name} | {description} | {mean} | {gap} | {', '.join(_pct(x) for x in values)} |")
    lines += ["", f"Each run: {ablations['epochs']} epochs of the `{ablations['profile']}` profile "
              f"({ablations['data']}, {ablations['n_pretrain']:,} pretraining images, {ablations['stem']} stem, "
              f"batch {ablations['batch_size']}), seeds {', '.join(map(str, seeds))}; kNN top-1 (k = "
              f"{ablations['knn_k']}) of the {n:,} test images against {ablations['n_bank']:,} labelled training "
              "images. Intervals are 95% t intervals over the seeds; a gap to the full recipe is paired by seed "
              "(every variant ran the same seeds). "
              f"Measured with `{ablations.get('command', ABLATE_COMMAND)}` on {ablations['hardware']} "
              f"({ablations['date']}, torch "
              f"{ablations['torch']}, {format_duration(ablations['seconds'])})."]
    return "\n".join(lines) + "\n"


LABEL_EFFICIENCY_COMMAND = ("python -m simclr_helpers label-efficiency --checkpoint reference --data CIFAR10_DIR "
                            "--record")


def recorded_label_efficiency(checkpoint, n_test: int, path: str | Path = RESULTS_FILE) -> dict | None:
    """The label-efficiency summary in the results file measured for ``checkpoint`` (``reference``, or a
    ``last.pt``) on ``n_test`` test images, or None."""
    summary = load(path).get("label_efficiency")
    if summary and summary["checkpoint"] == str(checkpoint) and summary["n_test"] == n_test:
        return summary
    return None


def label_efficiency_table(summary: dict | None) -> str:
    """The README's label-efficiency table: the four curves' test top-1 with 95% intervals at each fraction,
    the budgets chosen on validation, and the paired tests the course draws its conclusions from."""
    from ..stats import format_interval
    from .label_efficiency import LABELS, METHODS, PROBES, comparisons

    if not summary:
        return f"Not measured yet: `{LABEL_EFFICIENCY_COMMAND}` (several hours on two CPU cores; resumable).\n"
    n = summary["n_test"]
    fractions = sorted(summary["fractions"], key=float)
    cells = [summary["fractions"][f] for f in fractions]
    # the methods whose epochs were chosen on validation: the trained ones, and the probes when they had a grid
    tuned = [m for m in METHODS if m not in PROBES or any(len(c[m]["grid"]) > 1 for c in cells if m in c)]
    lines = ["| labels | " + " | ".join(LABELS[m] for m in METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for f, cell in zip(fractions, cells, strict=True):
        first = next(iter(cell.values()))
        entries = []
        for m in METHODS:
            if m not in cell:
                entries.append("—")
                continue
            text = format_interval(cell[m]["test_top1"], n)
            if m in tuned:
                text += f", {cell[m]['epochs']} epochs"
            entries.append(text)
        lines.append(f"| {float(f):.0%} ({first['n_labels']:,} images) | " + " | ".join(entries) + " |")
    lines += ["", "Paired on the same test images (McNemar's exact test):", ""]
    lines += [f"- {float(f):.0%} of the labels: {c}" for f, c in comparisons(summary)]
    budgets = "; ".join(f"{float(f):.0%}: " + ", ".join(
        f"{LABELS[m].split(' (')[0]} {' / '.join(f'{e} ep {100 * v:.1f}%' for e, v in cell[m]['grid'].items())}"
        for m in tuned if m in cell) for f, cell in zip(fractions, cells, strict=True))
    probe_grids = sorted({int(e) for cell in cells for m in PROBES if m in cell for e in cell[m]["grid"]})
    if any(m in tuned for m in PROBES):
        probes = (f"Linear probes on the frozen features: their epochs chosen the same way, their grids walked "
                  f"as far as validation kept improving, which ran {', '.join(map(str, probe_grids))} epochs "
                  "(the chosen ones in the table).")
    else:
        probes = (f"Linear probes: a fixed {', '.join(map(str, probe_grids)) or summary['probe_epochs']} "
                  "epochs on the frozen features.")
    who = "The curves'" if all(m in tuned for m in METHODS) else "The trained curves'"
    lines += ["", f"{who} epochs are chosen on a validation split, never on the test set: the "
              f"{summary['n_validation']:,} training images the run held out of pretraining. Validation top-1 by "
              f"budget: {budgets}. {probes} "
              f"Labelled images are class-balanced subsets of the {summary['n_pool']:,} others, the same for "
              f"every curve; the test set is all {n:,} test images. "
              f"Measured with `{summary.get('command', LABEL_EFFICIENCY_COMMAND)}` "
              f"on {summary.get('hardware', 'unknown hardware')} ({summary.get('date', '')}, "
              f"{format_duration(summary['seconds'])} of training in all)."]
    return "\n".join(lines) + "\n"


BLOCKS = {  # README marker name -> what generates the text between the markers
    "results": lambda data: markdown_tables(data["rows"]),
    "benchmark": lambda data: benchmark_table(data["benchmarks"]),
    "sweep": lambda data: sweep_table(data["sweeps"]),
    "ablations": lambda data: ablation_table(data.get("ablations")),
    "label-efficiency": lambda data: label_efficiency_table(data.get("label_efficiency")),
}
# The key of the results file each optional block shows (a block the README lacks is needed once its data exists).
BLOCK_DATA = {"benchmark": "benchmarks", "sweep": "sweeps", "ablations": "ablations",
              "label-efficiency": "label_efficiency"}


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- {name}:start (generated by `python -m simclr_helpers results --write README.md`) -->",
            f"<!-- {name}:end -->")


def _data(rows: list[dict] | None, benchmarks: list[dict] | None, sweeps: list[dict] | None = None,
          ablations: dict | None = None, stored: dict | None = None) -> dict:
    """What the README's blocks are generated from: the results file, or what the caller passes.

    ``stored``: a whole results file as ``load`` returns it (``results --file``), every part of it shown.
    A caller that passes its own rows (a test) passes everything else it wants shown as well; only a
    caller that passes no rows gets the results file's other parts filled in.
    """
    if stored is not None:
        return {**stored, "label_efficiency": stored.get("label_efficiency")}
    if rows is not None:
        return {"rows": rows, "benchmarks": benchmarks or [], "sweeps": sweeps or [], "ablations": ablations}
    stored = load()
    return {"rows": stored["rows"], "benchmarks": stored["benchmarks"] if benchmarks is None else benchmarks,
            "sweeps": stored["sweeps"] if sweeps is None else sweeps,
            "ablations": stored.get("ablations") if ablations is None else ablations,
            "label_efficiency": stored.get("label_efficiency")}


def readme_block(rows: list[dict], name: str = "results", benchmarks: list[dict] | None = None) -> str:
    start, end = _markers(name)
    return f"{start}\n{BLOCKS[name]({'rows': rows, 'benchmarks': benchmarks or []})}{end}"


def _blocks_of(text: str, data: dict) -> list[tuple[str, str]]:
    """(current text, generated text) of every block the README has or the data needs."""
    from ..errors import SimclrError

    out = []
    for name, make in BLOCKS.items():
        start, end = _markers(name)
        needed = name == "results" or data.get(BLOCK_DATA[name])
        if start not in text or end not in text:
            if needed:
                raise SimclrError(f"the README has no {name} markers; add the two lines {start!r} and {end!r} "
                                  "where the table belongs.")
            continue
        current = start + text.split(start, 1)[1].split(end, 1)[0] + end
        out.append((current, f"{start}\n{make(data)}{end}"))
    return out


def _readme_text(readme: str | Path) -> str:
    from ..errors import SimclrError

    path = Path(readme)
    if not path.is_file():
        raise SimclrError(f"{path}: no such file; give the path of the README that holds the results tables.")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SimclrError(f"{path}: the README cannot be read ({exc}); check the file.") from None


def check_readme(readme: str | Path, rows: list[dict] | None = None, benchmarks: list[dict] | None = None,
                 sweeps: list[dict] | None = None, ablations: dict | None = None, stored: dict | None = None) -> bool:
    """Whether every generated block of the README is exactly what the results file generates."""
    data = _data(rows, benchmarks, sweeps, ablations, stored)
    return all(current == generated for current, generated in _blocks_of(_readme_text(readme), data))


def write_readme(readme: str | Path, rows: list[dict] | None = None, benchmarks: list[dict] | None = None,
                 sweeps: list[dict] | None = None, ablations: dict | None = None, stored: dict | None = None) -> Path:
    """Replace the README's generated blocks with what the results file (or ``stored``) generates."""
    data = _data(rows, benchmarks, sweeps, ablations, stored)
    path = Path(readme)
    text = _readme_text(path)
    for current, generated in _blocks_of(text, data):
        text = text.replace(current, generated, 1)
    path.write_text(text)
    return path
