"""Evaluation a reader can trust: label subsets, the report of a run, the results file and the README."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simclr_helpers.checkpoints import RunRecord
from simclr_helpers.evaluate import label_subset
from simclr_helpers.lab.results import (
    RESULTS_FILE,
    check_readme,
    load_results,
    markdown_tables,
    readme_block,
    record_result,
    write_readme,
)

ROOT = Path(__file__).resolve().parents[1]


def test_label_subsets_are_class_balanced_nested_and_reproducible():
    labels = torch.arange(10).repeat_interleave(100)
    one, ten = label_subset(labels, 0.01), label_subset(labels, 0.1)
    assert torch.bincount(labels[one], minlength=10).tolist() == [1] * 10
    assert torch.bincount(labels[ten], minlength=10).tolist() == [10] * 10
    assert set(one.tolist()) <= set(ten.tolist())  # 1% inside 10%: curves differ only by added labels
    assert torch.equal(label_subset(labels, 0.1), ten)
    assert len(label_subset(labels, 1.0)) == 1000
    with pytest.raises(ValueError):
        label_subset(labels, 0.0)


@pytest.fixture(scope="module")
def report(tiny_run):
    from simclr_helpers.lab.reproduce import run_report

    return run_report(tiny_run.checkpoint, fractions=(0.1, 1.0), probe_epochs=1, progress=False)


def test_report_measures_every_figure_of_a_row(report, tiny_run):
    for name in ("simclr", "random_init"):
        assert 0 <= report["knn"][name] <= 1 and 0 <= report["linear"][name] <= 1
    for fraction in ("0.1", "1.0"):
        assert set(report["label_efficiency"][fraction]) == {"simclr", "random_init", "supervised"}
    assert report["linear"]["simclr"] == report["label_efficiency"]["1.0"]["simclr"]
    assert 0 <= report["linear_z"] <= 1
    # The supervised baseline gets the pretraining's budget: as many steps at the same batch size.
    record = RunRecord.load(tiny_run.checkpoint)
    assert report["supervised_steps"] == report["pretrain_steps"] == record.epoch * (record.num_train // 64)
    speed = report["probe_speed"]
    assert speed["epochs"] == 1 and speed["cached_s"] > 0 and speed["blog_way_s"] > 0
    assert report["pretrain_seconds"] == pytest.approx(sum(m["seconds"] for m in record.metrics), abs=0.2)
    assert "cores" in report["hardware"] or "GPU" in report["hardware"] or "x " in report["hardware"]
    assert "/" not in report["hardware"]  # a description, no paths


def test_record_replaces_the_row_with_the_same_id(tmp_path):
    path = tmp_path / "results.json"
    record_result("row", {"id": "cpu-imagenet-cifar10", "profile": "cpu", "stem": "imagenet", "v": 1}, path)
    record_result("row", {"id": "smoke-imagenet", "profile": "smoke", "stem": "imagenet", "v": 1}, path)
    record_result("row", {"id": "cpu-imagenet-cifar10", "profile": "cpu", "stem": "imagenet", "v": 2}, path)
    rows = load_results(path)
    assert [r["id"] for r in rows] == ["smoke-imagenet", "cpu-imagenet-cifar10"]  # smoke first, replaced in place
    assert rows[1]["v"] == 2
    assert json.loads(path.read_text())["rows"] == rows


def test_benchmark_runs_keep_the_last_three_per_machine_and_rows_survive(tmp_path):
    from simclr_helpers.lab.results import benchmark_table, load

    path = tmp_path / "results.json"
    record_result("row", {"id": "smoke-imagenet", "profile": "smoke", "stem": "imagenet"}, path)
    run = {"hardware": "a CPU, 2 cores, no GPU", "stem": "imagenet", "batch_size": 256, "fast_dtype": "fp32",
           "blog_augment_views_per_s": 3000, "fast_augment_views_per_s": 40000, "augment_speedup": 13.3,
           "blog_train_images_per_s": 250.0, "cpus": 2, "fast_train_images_per_s": 380.0, "train_speedup": 1.52,
           "date": "2026-11-29", "torch": "2.14.1"}
    for i in range(4):
        record_result("benchmark", {**run, "fast_augment_views_per_s": 40000 + i}, path)
    record_result("benchmark", {**run, "stem": "cifar"}, path)
    runs = load(path)["benchmarks"]
    assert [r["fast_augment_views_per_s"] for r in runs if r["stem"] == "imagenet"] == [40001, 40002, 40003]
    assert len(runs) == 4 and load_results(path)[0]["id"] == "smoke-imagenet"
    record_result("row", {"id": "smoke-imagenet", "profile": "smoke", "stem": "imagenet", "v": 2}, path)
    assert len(load(path)["benchmarks"]) == 4  # recording a row keeps the benchmark runs
    table = benchmark_table(runs)
    assert "13.3x" in table and "40,003" in table and "1.52x" in table


def test_readme_tables_are_the_results_files():
    """The published numbers cannot drift from the runs: the README's block is generated from the file."""
    assert load_results(RESULTS_FILE), "the results file holds the rows of the README's table"
    assert check_readme(ROOT / "README.md")


def test_check_fails_when_the_readme_drifts(tmp_path):
    rows = [{"id": "gpu-cifar-cifar10", "profile": "gpu", "data": "CIFAR-10", "stem": "cifar", "epochs": 200,
             "batch_size": 512, "status": "not measured on a GPU"}]
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n" + readme_block(rows) + "\n\nmore\n")
    assert check_readme(readme, rows, benchmarks=[])
    readme.write_text(readme.read_text().replace("| 200 |", "| 100 |", 1))  # one figure edited by hand
    assert not check_readme(readme, rows, benchmarks=[])
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"rows": rows}))
    proc = subprocess.run([sys.executable, "-m", "simclr_helpers", "results", "--file", str(results),
                           "--check", str(readme)], capture_output=True, text=True)
    assert proc.returncode == 1 and "results --write" in proc.stderr
    write_readme(readme, rows, benchmarks=[])
    assert check_readme(readme, rows, benchmarks=[]) and readme.read_text().endswith("\n\nmore\n")


def test_results_never_writes_or_prints_from_a_missing_or_unreadable_file(tmp_path):
    """``results --write README`` from a results file that is not there, or not JSON, exits non-zero with one
    sentence naming the file and leaves the README byte-identical; printing and checking refuse it the same way,
    and so does a README that is not there."""
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n" + readme_block([]) + "\n")
    before = readme.read_bytes()
    (tmp_path / "broken.json").write_text('{"rows": [')
    for results, problem in ((tmp_path / "missing.json", "no such results file"),
                             (tmp_path / "broken.json", "not a readable results file")):
        for action in (["--write", readme], ["--check", readme], []):
            proc = subprocess.run([sys.executable, "-m", "simclr_helpers", "results", "--file", results,
                                   *map(str, action)], capture_output=True, text=True)
            assert proc.returncode == 2 and proc.stdout == "", (action, proc.stdout)
            assert proc.stderr.startswith(f"error: {results}: {problem}") and proc.stderr.count("\n") == 1
            assert readme.read_bytes() == before
    for action in ("--check", "--write"):
        proc = subprocess.run([sys.executable, "-m", "simclr_helpers", "results", action, tmp_path / "nope.md"],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr == f"error: {tmp_path / 'nope.md'}: no such file; give the path " \
            "of the README that holds the results tables.\n"
        assert not (tmp_path / "nope.md").exists()


def test_tables_show_label_efficiency_and_the_unmeasured_gpu_row(report):
    row = {**report, "id": "tiny", "command": "python -m simclr_helpers reproduce --profile smoke --record"}
    gpu = {"id": "gpu-cifar-cifar10", "profile": "gpu", "data": "CIFAR-10 (full, image folder)", "stem": "cifar",
           "epochs": 200, "batch_size": 512, "status": "not measured on a GPU"}
    text = markdown_tables([row, gpu])
    assert "not measured on a GPU" in text and "10% labels" in text and "linear probe on SimCLR features" in text
    # the fixed-step supervised baseline is under-trained at 100% of the labels: the label-efficiency table has
    # the fair comparison, the rows' tables leave it out
    assert "ResNet-18 trained from scratch" not in text and "supervised from scratch" not in text
    assert f"{100 * report['knn']['simclr']:.1f}%" in text
