from simclr_helpers.benchmark import format_table, run_benchmark


def test_benchmark_measures_both_pipelines(bundled):
    r = run_benchmark(bundled.train.images[:256], device="cpu", batch_size=32, steps=1, repeats=2, log=None,
                      augment_batches=2, augment_repeats=3)
    for key in ("seed_augment_views_per_s", "fast_augment_views_per_s", "seed_train_images_per_s",
                "fast_train_images_per_s"):
        assert r[key] > 0
    # The ratios are medians of per-repeat ratios (alternating measurements), close to the ratio of medians.
    assert r["augment_speedup"] > 0 and r["train_speedup"] > 0
    assert r["seed_dtype"] == "fp32" and r["fast_dtype"] == "fp32"  # fp32 on a CPU
    table = format_table(r)
    assert "views/s" in table and "batch 32" in table and "imagenet stem" in table
