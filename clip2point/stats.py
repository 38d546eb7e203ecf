"""Paired comparisons of two classifiers scored on the same test shapes (issue 21: findings with power).

Two arms ("A above B?") are given as boolean *correctness matrices*, one row per run (a pre-training or adapter
seed) and one column per test shape, the columns of both arms being the same shapes in the same order.

* :func:`paired_bootstrap`: the difference of mean accuracies with a percentile confidence interval from a
  two-level bootstrap (shapes resampled once per replicate and shared by both arms, which is the pairing; runs
  resampled within each arm, which carries the seed spread), its standard error and a two-sided p-value.
* :func:`mcnemar_exact`: the exact McNemar test for one run per arm (a two-sided binomial test on the
  discordant shapes).
* :func:`power` and :func:`min_detectable_effect`: the normal-approximation power of a two-sided test at
  level ``alpha`` to see a true difference ``effect`` given the standard error of the estimate, and the
  smallest effect seen with probability ``target``.

Pure numpy and the standard library: arrays in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedDifference", "mcnemar_exact", "min_detectable_effect", "normal_cdf", "normal_quantile",
           "paired_bootstrap", "power"]


@dataclass(frozen=True)
class PairedDifference:
    """mean accuracy of A − mean accuracy of B on the same shapes, with its bootstrap interval."""

    effect: float
    lo: float
    hi: float
    se: float
    p: float
    n_shapes: int
    runs_a: int
    runs_b: int
    level: float


def _matrix(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a (runs, shapes) correctness matrix, got shape {np.shape(x)}")
    return a.astype(np.float64)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> PairedDifference:
    """Difference of the mean accuracies of arms ``a`` and ``b`` (``(runs, shapes)`` booleans, same shapes).

    Each of ``n_boot`` replicates draws the shapes with replacement (one draw for both arms) and, within each
    arm, its runs with replacement; the interval is the replicates' ``(1 − level) / 2`` and ``(1 + level) / 2``
    quantiles, ``se`` their standard deviation, ``p`` twice the smaller tail mass at 0 (at most 1)."""
    xa, xb = _matrix(a, "a"), _matrix(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"the arms score different numbers of shapes: {xa.shape[1]} and {xb.shape[1]}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = xa.shape[1]
    rng = np.random.default_rng(seed)
    shapes = rng.integers(0, n, size=(n_boot, n))
    # per-replicate mean over drawn runs of the drawn shapes = mean over shapes of the run-averaged column
    ra = rng.integers(0, xa.shape[0], size=(n_boot, xa.shape[0]))
    rb = rng.integers(0, xb.shape[0], size=(n_boot, xb.shape[0]))
    reps = np.empty(n_boot)
    for i in range(n_boot):
        col_a = xa[ra[i]].mean(0)
        col_b = xb[rb[i]].mean(0)
        reps[i] = (col_a - col_b)[shapes[i]].mean()
    effect = float(xa.mean() - xb.mean())
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    tail = min(float((reps <= 0).mean()), float((reps >= 0).mean()))
    return PairedDifference(effect, float(lo), float(hi), float(reps.std(ddof=1)), min(1.0, 2 * tail), n,
                            xa.shape[0], xb.shape[0], level)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for one run per arm (``(shapes,)`` booleans on the same shapes):
    under H0 the shapes only A gets right are Binomial(discordant, 1/2)."""
    xa, xb = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if xa.ndim != 1 or xa.shape != xb.shape:
        raise ValueError(f"mcnemar_exact needs two (shapes,) vectors of one length, got {xa.shape} and {xb.shape}")
    only_a = int((xa & ~xb).sum())
    only_b = int((~xa & xb).sum())
    d = only_a + only_b
    if d == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(d, i) for i in range(k + 1)) / 2 ** d
    return min(1.0, 2 * tail)


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def normal_quantile(q: float) -> float:
    """Inverse of :func:`normal_cdf` by bisection (to 1e-12; the standard library has no inverse erf)."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    lo, hi = -40.0, 40.0
    while hi - lo > 1e-12:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if normal_cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def power(effect: float, se: float, alpha: float = 0.05) -> float:
    """Probability that a two-sided z test at level ``alpha`` rejects "no difference" when the true difference
    is ``effect`` and the estimate's standard error is ``se``."""
    if se <= 0:
        return 1.0 if effect != 0 else alpha
    z = normal_quantile(1 - alpha / 2)
    t = abs(effect) / se
    return normal_cdf(t - z) + normal_cdf(-t - z)


def min_detectable_effect(se: float, alpha: float = 0.05, target: float = 0.8) -> float:
    """The smallest true difference seen with probability ``target`` (neglecting the far tail):
    ``(z_{1−α/2} + z_target) · se``."""
    return (normal_quantile(1 - alpha / 2) + normal_quantile(target)) * se
