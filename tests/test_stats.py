"""The statistics every comparison in the course prints, checked against textbook values and scipy."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from simclr_helpers import stats


def test_wilson_interval_matches_textbook_values():
    # Wilson score intervals at 95% (Newcombe 1998, table I; Agresti & Coull 1998)
    assert stats.accuracy_interval(0.5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert stats.accuracy_interval(0.0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.accuracy_interval(1.0, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert stats.format_interval(0.67, 10_000) == "67.0% [66.1, 67.9]"


def test_mcnemar_exact_on_the_discordant_images():
    # A right and B wrong on 5 images, the reverse on 5, 90 images alike: no gap; the exact 95% interval of
    # 5/10 is Clopper-Pearson's [0.1871, 0.8129], so the gap's is (2 [0.1871, 0.8129] - 1) * 10 / 100.
    a = [True] * 5 + [False] * 5 + [True] * 60 + [False] * 30
    b = [False] * 5 + [True] * 5 + [True] * 60 + [False] * 30
    c = stats.paired("A", a, "B", b)
    assert c.gap == 0 and c.p_value == pytest.approx(1.0)
    assert (c.low, c.high) == pytest.approx((-0.06258, 0.06258), abs=1e-5) and not c.resolved
    # 150 against 86 discordant images of 1,600 (Agresti, Categorical Data Analysis, 2nd ed., table 10.1):
    # the exact p-value is scipy's binomial test on 150 of 236.
    a = np.r_[np.ones(150), np.zeros(86), np.ones(794), np.zeros(570)].astype(bool)
    b = np.r_[np.zeros(150), np.ones(86), np.ones(794), np.zeros(570)].astype(bool)
    c = stats.paired("first", a, "second", b)
    assert c.gap == pytest.approx(64 / 1600) and c.resolved and 0 < c.low < c.gap < c.high
    assert c.p_value == pytest.approx(scipy_stats.binomtest(150, 236, 0.5).pvalue, rel=1e-6)
    # Agresti's large-sample (Wald) interval is [0.021, 0.059]; the exact conditional one is a little narrower.
    assert str(c) == ("first - second = +4.0 points, 95% interval [+2.1, +5.8]: resolved "
                      "(McNemar's exact test, 1,600 test images, 236 discordant)")


def test_paired_needs_the_same_images():
    with pytest.raises(ValueError, match="the same test images"):
        stats.paired("A", [True, False], "B", [True])


def test_paired_names_its_items():
    c = stats.paired("A", [True, True, False], "B", [False, True, False], unit="views")
    assert c.method == "McNemar's exact test, 3 views, 1 discordant"


def test_t_interval_paired_by_seed_matches_students_sleep_data():
    # Student (1908) / Cushny & Peebles: extra hours of sleep under two drugs, the same ten patients.
    one = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    two = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    c = stats.over_seeds("two", two, "one", one)
    assert c.gap == pytest.approx(1.58)
    assert (c.low, c.high) == pytest.approx((0.700, 2.460), abs=1e-3)
    assert c.p_value == pytest.approx(0.002833, abs=1e-5) and c.resolved
    reference = scipy_stats.ttest_rel(two, one).confidence_interval()
    assert (c.low, c.high) == pytest.approx((reference.low, reference.high))


def test_welch_interval_matches_scipy():
    a, b = [0.61, 0.63, 0.62, 0.60], [0.58, 0.57, 0.60]
    c = stats.over_seeds("a", a, "b", b, paired_by_seed=False)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    ci = reference.confidence_interval()
    assert (c.low, c.high) == pytest.approx((ci.low, ci.high)) and c.p_value == pytest.approx(reference.pvalue)


def test_two_seeds_use_the_t_distribution_not_two_standard_errors():
    c = stats.over_seeds("a", [0.50, 0.52], "b", [0.48, 0.49])
    se = np.std([0.02, 0.03], ddof=1) / np.sqrt(2)
    assert c.high - c.gap == pytest.approx(12.706 * se, rel=1e-4)  # t(0.975, 1 df) = 12.706
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.over_seeds("a", [0.5], "b", [0.4])


def test_one_sentence_form_either_way():
    resolved = stats.Comparison("A", "B", 0.041, 0.026, 0.056, "m")
    unresolved = stats.Comparison("A", "B", 0.005, -0.008, 0.019, "m")
    assert str(resolved) == "A - B = +4.1 points, 95% interval [+2.6, +5.6]: resolved (m)"
    assert str(unresolved) == "A - B = +0.5 points, 95% interval [-0.8, +1.9]: not resolved (m)"


def test_seed_interval():
    s = stats.seed_interval([0.30, 0.32, 0.34])
    assert s["mean"] == pytest.approx(0.32) and s["std"] == pytest.approx(0.02)
    assert s["high"] - s["mean"] == pytest.approx(4.3027 * 0.02 / np.sqrt(3), rel=1e-4)
    assert stats.seed_interval([0.3])["low"] is None


def test_paired_t_is_the_t_interval_of_the_differences():
    a, b = [0.5, 0.7, 0.6, 0.9], [0.4, 0.5, 0.6, 0.6]
    c = stats.paired_t("A", a, "B", b)
    d = np.subtract(a, b)
    half = scipy_stats.t.ppf(0.975, 3) * d.std(ddof=1) / np.sqrt(4)
    assert (c.gap, c.low, c.high) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert c.method == "t interval over 4 images, paired by image"
    assert stats.over_seeds("A", a, "B", b).method == "t interval over 4 seeds, paired by seed"


def test_bootstrap_mean_gap_of_a_constant_difference_has_no_width():
    a = np.linspace(-0.5, 0.5, 200)
    gap, low, high = stats.bootstrap_mean_gap(a + 0.1, a)
    assert gap == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_bootstrap_mean_gap_is_paired_and_near_the_normal_interval():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 1, 2000)  # large per-image spread that both models share: pairing removes it
    d = rng.normal(0.02, 0.1, 2000)
    gap, low, high = stats.bootstrap_mean_gap(shared + d, shared, resamples=2000, seed=0)
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert gap == pytest.approx(d.mean())
    assert low == pytest.approx(gap - half, abs=0.3 * half) and high == pytest.approx(gap + half, abs=0.3 * half)
    assert stats.bootstrap_mean_gap(shared + d, shared, seed=5) == stats.bootstrap_mean_gap(shared + d, shared, seed=5)
    with pytest.raises(ValueError):
        stats.bootstrap_mean_gap([1.0, 2.0], [1.0])
