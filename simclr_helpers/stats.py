"""How far a measured accuracy or gap can be trusted: 95% intervals, and one sentence for every comparison.

An accuracy p measured on n test images is a proportion; its 95% interval here is Wilson's score
interval, close to the normal approximation p ± 1.96 sqrt(p (1 - p) / n) at the course's sizes (± 3 points
for 1,000 test images near 50%, ± 1 for 10,000) but, unlike it, never outside [0, 1] and better behaved near
0 and 1. A comparison is one of two kinds, and each has its own statistic:

* **Two models on the same test images** (SimCLR against random init, h against z, fp16 against
  fp32 weights): the two accuracies are not independent samples, since both models get the easy
  images right. What carries the information is the *discordant* images: b that only A gets right,
  c that only B gets right. Under "no difference" b is Binomial(b + c, 1/2): McNemar's exact test.
  The gap (b - c) / n gets its 95% interval from the exact (Clopper-Pearson) interval of b / (b + c),
  conditional on b + c, so the interval excludes zero exactly when the equal-tailed exact test
  rejects at the 5% level. (:func:`paired`; it needs each model's per-image correctness.)
* **A training choice** (an augmentation, a temperature, a batch size): training again with another
  seed gives another accuracy, so the question is about the mean over seeds. With k seeds per arm,
  the gap of the means gets a t interval: paired by seed when both arms ran the same seeds (same
  initial weights and data order), Welch's otherwise. With 2 seeds the t distribution's 95% critical
  value is 12.7, not 2: at least 3 seeds (4.30) make an interval worth printing. (:func:`over_seeds`)

Both give a :class:`Comparison`, printed in one form whatever the verdict:
``A - B = +4.1 points, 95% interval [+2.6, +5.6]: resolved (McNemar, 10,000 test images)``, or
``... [-0.8, +1.9]: not resolved (...)``. A notebook draws a conclusion from a gap only when it is
resolved, and says "not resolved" otherwise.

The rule many tutorials use, "a gap counts when it exceeds twice its standard error", treats two accuracies
on the same images as independent samples and ignores the spread over seeds; the course does not use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy

LEVEL = 0.95


@dataclass(frozen=True)
class Comparison:
    """A - B with its 95% interval, and how it was computed."""

    a: str
    b: str
    gap: float  # a - b, as a fraction
    low: float
    high: float
    method: str  # e.g. "McNemar's exact test, 10,000 test images" or "t interval, 3 seeds paired"
    p_value: float | None = None

    @property
    def resolved(self) -> bool:
        """Whether the 95% interval excludes zero."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        verdict = "resolved" if self.resolved else "not resolved"
        return (f"{self.a} - {self.b} = {100 * self.gap:+.1f} points, 95% interval "
                f"[{100 * self.low:+.1f}, {100 * self.high:+.1f}]: {verdict} ({self.method})")


def accuracy_interval(p: float, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval of an accuracy ``p`` measured on ``n`` test images."""
    if n <= 0:
        raise ValueError(f"an accuracy needs at least one test image, not n={n}")
    z = _scipy.norm.ppf(0.5 + LEVEL / 2)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def format_interval(p: float, n: int) -> str:
    """``"67.0% [66.1, 67.9]"``: an accuracy on ``n`` test images and its 95% interval, in percent."""
    low, high = accuracy_interval(p, n)
    return f"{100 * p:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _as_bool(values) -> np.ndarray:
    array = values.cpu().numpy() if hasattr(values, "cpu") else np.asarray(values)
    return array.astype(bool).ravel()


def paired(name_a: str, correct_a, name_b: str, correct_b, unit: str = "test images") -> Comparison:
    """Two models on the same test images: McNemar's exact test and the gap's exact 95% interval.

    ``correct_a``, ``correct_b``: per test image, whether each model got it right (the same images in the
    same order; tensors, arrays or lists of booleans). ``unit`` names the items in the printed method when
    they are not test images (notebook 03 compares two networks on the same views).
    """
    a, b = _as_bool(correct_a), _as_bool(correct_b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired() needs the same test images for both models ({a.size} and {b.size} given)")
    n = a.size
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    gap = (only_a - only_b) / n
    method = f"McNemar's exact test, {n:,} {unit}, {discordant:,} discordant"
    if discordant == 0:
        return Comparison(name_a, name_b, 0.0, 0.0, 0.0, method, 1.0)
    test = _scipy.binomtest(only_a, discordant, 0.5)
    ci = test.proportion_ci(confidence_level=LEVEL, method="exact")
    scale = discordant / n  # gap = (2 * share_of_a - 1) * discordant / n
    low, high = (2 * ci.low - 1) * scale, (2 * ci.high - 1) * scale
    # the equal-tailed p-value, the test the Clopper-Pearson interval inverts
    tail = min(_scipy.binom.cdf(only_a, discordant, 0.5), _scipy.binom.sf(only_a - 1, discordant, 0.5))
    return Comparison(name_a, name_b, gap, low, high, method, min(1.0, 2 * tail))


def over_seeds(name_a: str, values_a: Sequence[float], name_b: str, values_b: Sequence[float],
               paired_by_seed: bool = True) -> Comparison:
    """A training choice: the gap of the means over seeds with its 95% t interval.

    ``paired_by_seed``: both arms ran the same seeds, in the same order, so the interval is built from the
    per-seed differences (k - 1 degrees of freedom); otherwise Welch's interval for two independent means.
    """
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if paired_by_seed:
        if a.shape != b.shape:
            raise ValueError(f"pairing by seed needs the same seeds in both arms ({a.size} and {b.size} values)")
        if a.size < 2:
            raise ValueError("an interval over seeds needs at least 2 seeds per arm (3 or more to be useful)")
        return paired_t(name_a, a, name_b, b, unit="seeds", each="seed")
    if a.size < 2 or b.size < 2:
        raise ValueError("an interval over seeds needs at least 2 seeds per arm (3 or more to be useful)")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    gap, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)) if va + vb > 0 else a.size + b.size - 2
    method = f"Welch's t interval, {a.size} and {b.size} seeds"
    half = float(_scipy.t.ppf(0.5 + LEVEL / 2, df)) * se
    p_value = float(2 * _scipy.t.sf(abs(gap) / se, df)) if se > 0 else (1.0 if gap == 0 else 0.0)
    return Comparison(name_a, name_b, gap, gap - half, gap + half, method, p_value)


def paired_t(name_a: str, values_a: Sequence[float], name_b: str, values_b: Sequence[float],
             unit: str = "images", each: str = "image") -> Comparison:
    """Two measurements taken on the same items (the same images, the same seeds): the mean of the per-item
    differences A - B with its 95% t interval (``len - 1`` degrees of freedom).

    Notebook 02 uses it over images (how much more alike two views of one image are than views of two
    images); :func:`over_seeds` over seeds. ``unit`` and ``each`` name the items in the printed method.
    """
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pairing needs one value per {each} in both arms ({a.size} and {b.size} values)")
    if a.size < 2:
        raise ValueError(f"an interval needs at least 2 {unit}")
    d = a - b
    gap, se, df = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size)), d.size - 1
    half = float(_scipy.t.ppf(0.5 + LEVEL / 2, df)) * se
    p_value = float(2 * _scipy.t.sf(abs(gap) / se, df)) if se > 0 else (1.0 if gap == 0 else 0.0)
    method = f"t interval over {d.size:,} {unit}, paired by {each}"
    return Comparison(name_a, name_b, gap, gap - half, gap + half, method, p_value)


def seed_interval(values: Sequence[float]) -> dict:
    """Mean of one measurement repeated with several seeds, its sample standard deviation and the mean's
    95% t interval (no interval for a single seed)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to summarise")
    mean = float(values.mean())
    if values.size == 1:
        return {"mean": mean, "std": 0.0, "low": None, "high": None, "seeds": 1}
    std = float(values.std(ddof=1))
    half = float(_scipy.t.ppf(0.5 + LEVEL / 2, values.size - 1)) * std / math.sqrt(values.size)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "seeds": int(values.size)}


def bootstrap_mean_gap(values_a, values_b, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) of a per-image score measured for two models on the same images (a silhouette value,
    a loss), with its 95% percentile bootstrap interval: the images are resampled with replacement
    ``resamples`` times, the same resample for both models (paired). Returns (gap, low, high).

    Notebook 05 uses it for the silhouette: each image's value is computed once, on all images, and only the
    mean over the images is resampled, which is cheap but treats the per-image values as fixed.
    """
    a, b = np.asarray(values_a, dtype=float).ravel(), np.asarray(values_b, dtype=float).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"bootstrap_mean_gap() needs the same images for both models ({a.size} and {b.size} given)")
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(d.mean()), float(low), float(high)
