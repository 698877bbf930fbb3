"""How much an accuracy can be trusted: standard errors, and comparisons stated no larger than the noise allows.

A test accuracy measured on n images is a proportion, and its standard error is
sqrt(p (1 - p) / n): about 1.5 points for 1,000 test images near 40%, about 0.5 points
for 10,000. The gap between two accuracies measured on separate samples has the standard
error sqrt(se_a**2 + se_b**2); the notebooks draw a conclusion from a gap only when it is
more than twice that, and otherwise say that it lies within the noise. (Two accuracies on
the *same* test images are correlated, so this is conservative: it may call a real gap
noise, never noise a real gap.)

Every notebook prints these sentences instead of writing numbers into its prose, so the
text stays true whichever run produced the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SIGNIFICANT = 2.0  # a gap counts when it exceeds this many standard errors of the gap


def standard_error(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` (a fraction) measured on ``n`` independent test images."""
    if n <= 0:
        raise ValueError(f"an accuracy needs at least one test image, not n={n}")
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def format_accuracy(p: float, n: int | None = None, se: float | None = None) -> str:
    """``"38.9% ± 1.5"``: the accuracy and its standard error in percentage points."""
    if se is None:
        if n is None:
            raise ValueError("give the number of test images n or the standard error se")
        se = standard_error(p, n)
    return f"{100 * p:.1f}% ± {100 * se:.1f}"


def seed_summary(values: Sequence[float], n: int) -> dict:
    """Mean of one measurement repeated with several random seeds, and its standard error.

    The error combines the spread over seeds (standard error of the mean, from the sample
    standard deviation) with the test set's own sampling error, which repeating the training
    with other seeds does not reduce: every seed is tested on the same ``n`` images.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarise")
    k = len(values)
    mean = sum(values) / k
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1)) if k > 1 else 0.0
    se = math.sqrt(std ** 2 / k + standard_error(mean, n) ** 2)
    return {"mean": mean, "std": std, "se": se, "seeds": k, "n": n}


def compare(name_a: str, a: float, name_b: str, b: float, n_a: int | None = None, n_b: int | None = None,
            se_a: float | None = None, se_b: float | None = None) -> str:
    """One honest sentence about two accuracies: a real gap, or one within the noise.

    Give either the test-set sizes (``n_a``, ``n_b``; ``n_b`` defaults to ``n_a``) or the
    standard errors (``se_a``, ``se_b``, e.g. from :func:`seed_summary`).
    """
    if se_a is None:
        if n_a is None:
            raise ValueError("give the test-set sizes or the standard errors")
        se_a = standard_error(a, n_a)
    if se_b is None:
        n_b = n_a if n_b is None else n_b
        if n_b is None:
            raise ValueError("give the test-set sizes or the standard errors")
        se_b = standard_error(b, n_b)
    gap, se_gap = a - b, math.sqrt(se_a ** 2 + se_b ** 2)
    points = 100 * abs(gap)
    if abs(gap) > SIGNIFICANT * se_gap:
        first, second = (name_a, name_b) if gap > 0 else (name_b, name_a)
        return (f"{first} beats {second} by {points:.1f} points, more than twice the standard error of the "
                f"gap ({100 * se_gap:.1f} points)")
    return (f"{name_a} and {name_b} differ by {points:.1f} points: within the noise (twice the standard error "
            f"of the gap is {100 * SIGNIFICANT * se_gap:.1f} points)")


def significant(a: float, b: float, se_a: float, se_b: float) -> bool:
    """Whether ``a`` and ``b`` differ by more than twice the standard error of their gap."""
    return abs(a - b) > SIGNIFICANT * math.sqrt(se_a ** 2 + se_b ** 2)
