import pytest

from simclr_helpers.lab.benchmark import format_table, run_benchmark


def test_benchmark_measures_both_pipelines(bundled):
    r = run_benchmark(bundled.train.images[:256], device="cpu", batch_size=32, steps=1, repeats=2,
                      augment_batches=2, augment_repeats=3)
    # Every figure is a real measurement: images counted over a clocked interval, both pipelines.
    for key in ("blog_augment_views_per_s", "fast_augment_views_per_s", "blog_train_images_per_s",
                "fast_train_images_per_s"):
        assert 1 < r[key] < 1e7, key
    assert r["blog_seconds_per_cifar10_epoch"] == pytest.approx(50_000 / r["blog_train_images_per_s"], rel=0.05)
    # The ratios are medians of per-repeat ratios (alternating measurements): they lie between the extremes
    # a ratio of medians could take, i.e. within a factor of the per-pipeline spread.
    assert r["augment_speedup"] == pytest.approx(r["fast_augment_views_per_s"] / r["blog_augment_views_per_s"],
                                                 rel=0.6)
    assert r["blog_dtype"] == "fp32" and r["fast_dtype"] == "fp32"  # fp32 on a CPU
    assert r["workers"] == r["cpus"]  # one DataLoader worker per CPU unless told (the blog: 8)
    table = format_table(r)
    assert "views/s" in table and "batch 32" in table and "imagenet stem" in table


def test_sweep_measures_each_batch_and_counts_flops(bundled):
    from simclr_helpers.lab.benchmark import format_sweep, step_flops_per_image, training_sweep

    r = training_sweep(bundled.train.images[:128], device="cpu", batch_sizes=(16, 32), steps=1, repeats=2)
    assert [row["batch_size"] for row in r["rows"]] == [16, 32]
    assert all(len(row["images_per_s_all"]) == 2 and row["images_per_s"] > 1 for row in r["rows"])
    assert all(row["gflops"] == pytest.approx(row["images_per_s"] * r["gflop_per_image"], rel=0.02)
               for row in r["rows"])
    # FLOPs follow the network: the CIFAR stem keeps 16x the positions, so it costs an order of magnitude more.
    assert 10 < step_flops_per_image("cifar") / step_flops_per_image("imagenet") < 20
    assert "images/s" in format_sweep(r)
