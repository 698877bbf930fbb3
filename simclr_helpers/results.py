"""The course's measured results: one JSON file, written by commands, read by the README and notebooks.

``python -m simclr_helpers reproduce ... --record`` pretrains (or resumes), evaluates and
stores one row here; ``benchmark --record`` stores a speed measurement. ``python -m
simclr_helpers results`` prints the README's tables from the file, ``--write README.md``
puts them between the README's markers, and ``--check README.md`` fails when the README
says anything else, so the published numbers cannot drift from the runs that produced
them (a test runs the check).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

RESULTS_FILE = Path(__file__).parent / "assets" / "results.json"
NOT_MEASURED = "not measured on a GPU"


def hardware(device) -> str:
    """A short description of the machine a figure was measured on (no host names or paths)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"1x {torch.cuda.get_device_name(dev)}"
    from .runtime import cpu_count

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {cpu_count()} cores, no GPU"


def load(path: str | Path = RESULTS_FILE) -> dict:
    """The whole results file: ``{"rows": [...], "benchmarks": [...]}`` (both empty if there is no file)."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    return {**data, "rows": data.get("rows", []), "benchmarks": data.get("benchmarks", []),
            "sweeps": data.get("sweeps", [])}


def _save(data: dict, path: str | Path) -> Path:
    """Write the results file atomically: a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: str | Path = RESULTS_FILE) -> list[dict]:
    return load(path)["rows"]


def record(row: dict, path: str | Path = RESULTS_FILE) -> Path:
    """Add ``row`` to the results file, replacing the row with the same ``id`` (atomic write)."""
    data = load(path)
    rows = [r for r in data["rows"] if r["id"] != row["id"]] + [row]
    order = {"smoke": 0, "cpu": 1, "gpu": 2}
    rows.sort(key=lambda r: (order.get(r.get("profile"), 9), r.get("stem") != "imagenet", r["id"]))
    data["rows"] = rows
    return _save(data, path)


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


def markdown_tables(rows: list[dict]) -> str:
    """The README's results section body: the main table, label efficiency, and where each row came from."""
    head = ("| run | data | stem | epochs | batch | hardware | pretraining | kNN top-1 (random init) "
            "| linear top-1 (random init) | supervised from scratch |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    notes = []
    for r in rows:
        if r.get("status"):
            lines.append(f"| `{r['id']}` | {r['data']} | {r['stem']} | {r['epochs']} | {r['batch_size']} "
                         f"| — | {r['status']} | — | — | — |")
            how = f"; the command that would produce it: `{r['command']}`" if r.get("command") else ""
            notes.append(f"- `{r['id']}`: {r['status']}{how}")
            continue
        le = r.get("label_efficiency", {})
        sup = le.get("1.0", {}).get("supervised")
        lines.append(
            f"| `{r['id']}` | {r['data']} | {r['stem']} | {r['epochs']} | {r['batch_size']} | {r['hardware']} "
            f"| {_duration(r['pretrain_seconds'])} | {_pct(r['knn']['simclr'])} ({_pct(r['knn']['random_init'])}) "
            f"| {_pct(r['linear']['simclr'])} ({_pct(r['linear']['random_init'])}) | {_pct(sup)} |")
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
                               ("random_init", "linear probe on random-init features"),
                               ("supervised", "ResNet-18 trained from scratch")):
                vals = [r["label_efficiency"].get(f, {}).get(key) for f in fractions]
                if any(v is not None for v in vals):
                    le_lines.append(f"| `{r['id']}` | {label} | " + " | ".join(_pct(v) for v in vals) + " |")
        out += ["Label efficiency (test top-1; the same class-balanced label subsets for every model):", "",
                "\n".join(le_lines), ""]
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


def load_benchmarks(path: str | Path = RESULTS_FILE) -> list[dict]:
    return load(path)["benchmarks"]


def record_benchmark(result: dict, path: str | Path = RESULTS_FILE, keep: int = 3) -> Path:
    """Add a benchmark run; the last ``keep`` runs of the same device, stem and batch size are kept."""
    data = load(path)
    key = (result["hardware"], result["stem"], result["batch_size"])
    same = [b for b in data["benchmarks"] if (b["hardware"], b["stem"], b["batch_size"]) == key]
    others = [b for b in data["benchmarks"] if (b["hardware"], b["stem"], b["batch_size"]) != key]
    data["benchmarks"] = others + (same + [result])[-keep:]
    return _save(data, path)


def record_sweep(result: dict, path: str | Path = RESULTS_FILE) -> Path:
    """Keep a ``benchmark --sweep`` run; a later sweep of the same device, stem and compile setting replaces it."""
    data = load(path)
    key = (result["hardware"], result["stem"], any(r["compile"] for r in result["rows"]))
    data["sweeps"] = [s for s in data["sweeps"]
                      if (s["hardware"], s["stem"], any(r["compile"] for r in s["rows"])) != key] + [result]
    return _save(data, path)


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


BLOCKS = {  # README marker name -> what generates the text between the markers
    "results": lambda data: markdown_tables(data["rows"]),
    "benchmark": lambda data: benchmark_table(data["benchmarks"]),
    "sweep": lambda data: sweep_table(data["sweeps"]),
}


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- {name}:start (generated by `python -m simclr_helpers results --write README.md`) -->",
            f"<!-- {name}:end -->")


def _data(rows: list[dict] | None, benchmarks: list[dict] | None, sweeps: list[dict] | None = None) -> dict:
    given = {"rows": rows, "benchmarks": benchmarks, "sweeps": sweeps}
    stored = load() if None in given.values() else {}
    return {key: stored[key] if value is None else value for key, value in given.items()}


def readme_block(rows: list[dict], name: str = "results", benchmarks: list[dict] | None = None) -> str:
    start, end = _markers(name)
    return f"{start}\n{BLOCKS[name]({'rows': rows, 'benchmarks': benchmarks or []})}{end}"


def _blocks_of(text: str, data: dict) -> list[tuple[str, str]]:
    """(current text, generated text) of every block the README has or the data needs."""
    from .errors import SimclrError

    out = []
    for name, make in BLOCKS.items():
        start, end = _markers(name)
        needed = name == "results" or data.get({"benchmark": "benchmarks", "sweep": "sweeps"}[name])
        if start not in text or end not in text:
            if needed:
                raise SimclrError(f"the README has no {name} markers; add the two lines {start!r} and {end!r} "
                                  "where the table belongs.")
            continue
        current = start + text.split(start, 1)[1].split(end, 1)[0] + end
        out.append((current, f"{start}\n{make(data)}{end}"))
    return out


def check_readme(readme: str | Path, rows: list[dict] | None = None, benchmarks: list[dict] | None = None,
                 sweeps: list[dict] | None = None) -> bool:
    """Whether every generated block of the README is exactly what the results file generates."""
    data = _data(rows, benchmarks, sweeps)
    return all(current == generated for current, generated in _blocks_of(Path(readme).read_text(), data))


def write_readme(readme: str | Path, rows: list[dict] | None = None, benchmarks: list[dict] | None = None,
                 sweeps: list[dict] | None = None) -> Path:
    data = _data(rows, benchmarks, sweeps)
    path = Path(readme)
    text = path.read_text()
    for current, generated in _blocks_of(text, data):
        text = text.replace(current, generated, 1)
    path.write_text(text)
    return path
