"""clip2point.stats: paired bootstrap, exact McNemar and power, each against a direct transcription."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clip2point.stats import (
    mcnemar_exact,
    min_detectable_effect,
    normal_cdf,
    normal_quantile,
    paired_bootstrap,
    power,
)


def _pair(n: int, p_a: float, p_b: float, rho_flip: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors of two classifiers on ``n`` shapes: B copies A except on a ``rho_flip`` share."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < p_a
    b = a.copy()
    flip = rng.random(n) < rho_flip
    b[flip] = rng.random(int(flip.sum())) < p_b
    return a, b


def test_effect_is_the_difference_of_mean_accuracies() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((5, 300)) < 0.6, rng.random((3, 300)) < 0.5
    d = paired_bootstrap(a, b, n_boot=200)
    assert d.effect == pytest.approx(a.mean() - b.mean())
    assert (d.n_shapes, d.runs_a, d.runs_b) == (300, 5, 3)
    assert d.lo <= d.effect <= d.hi


def test_one_run_per_arm_se_matches_the_paired_formula() -> None:
    """With one run per arm the bootstrap resamples shapes only: its SE is sqrt(var(a − b) / n) (population
    variance of the per-shape differences), transcribed here directly."""
    a, b = _pair(2000, 0.6, 0.5, 0.5, seed=2)
    d = paired_bootstrap(a, b, n_boot=3000, seed=3)
    diff = a.astype(float) - b.astype(float)
    se_direct = math.sqrt(diff.var() / len(diff))
    assert d.se == pytest.approx(se_direct, rel=0.08)


def test_pairing_narrows_the_interval_below_the_independent_margin() -> None:
    """Ten shapes flip from wrong to right, the rest agree: paired, the gain of 2 points is resolved; two
    independent binomial SEs (what the old margin used) are ~3 points each and would not resolve it."""
    rng = np.random.default_rng(4)
    b = rng.random(500) < 0.5
    a = b.copy()
    wrong = np.flatnonzero(~b)[:10]
    a[wrong] = True
    d = paired_bootstrap(a, b, n_boot=2000, seed=5)
    assert d.effect == pytest.approx(10 / 500)
    assert d.lo > 0
    independent = 2 * math.sqrt(a.mean() * (1 - a.mean()) / 500 + b.mean() * (1 - b.mean()) / 500)
    assert independent > d.effect


def test_run_spread_widens_the_interval() -> None:
    """Arms whose runs disagree (seed spread) get a wider interval than the same mean accuracy in one run."""
    rng = np.random.default_rng(6)
    n = 400
    base = rng.random(n) < 0.55
    runs = np.stack([np.where(rng.random(n) < 0.3, rng.random(n) < q, base) for q in (0.2, 0.5, 0.9)])
    ref = rng.random(n) < 0.5
    spread = paired_bootstrap(runs, ref, n_boot=2000, seed=7)
    one = paired_bootstrap(runs[1:2], ref, n_boot=2000, seed=7)
    assert spread.hi - spread.lo > one.hi - one.lo


def test_interval_coverage_is_near_nominal() -> None:
    """Monte Carlo: the 90 % interval of a known true difference covers it in 80–97 % of 150 draws."""
    covered = 0
    trials = 150
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        n = 300
        u = rng.random(n)
        a, b = u < 0.6, u < 0.5  # true difference: 0.10, perfectly paired through u
        noise = rng.random(n) < 0.3
        b = np.where(noise, rng.random(n) < 0.5, b)
        a = np.where(noise, rng.random(n) < 0.6, a)
        true = 0.6 - 0.5
        d = paired_bootstrap(a, b, n_boot=400, seed=t, level=0.9)
        covered += d.lo <= true <= d.hi
    assert 0.80 <= covered / trials <= 0.97


def test_p_value_small_for_a_clear_gain_and_large_for_none() -> None:
    a, b = _pair(800, 0.7, 0.4, 0.6, seed=8)
    assert paired_bootstrap(a, b, n_boot=1000).p < 0.01
    assert paired_bootstrap(a, a, n_boot=200).p == 1.0


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="different numbers of shapes: 10 and 9"):
        paired_bootstrap(np.ones(10, bool), np.ones(9, bool))
    with pytest.raises(ValueError, match=r"correctness matrix, got shape \(0,\)"):
        paired_bootstrap(np.ones(0, bool), np.ones(0, bool))
    with pytest.raises(ValueError, match="level must be in"):
        paired_bootstrap(np.ones(3, bool), np.ones(3, bool), level=1.5)
    with pytest.raises(ValueError, match="two .shapes,. vectors of one length"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))


def _mcnemar_brute_force(a: np.ndarray, b: np.ndarray) -> float:
    """Enumerate every assignment of the discordant shapes to 'A right' / 'B right' (each 1/2 under H0) and
    count those at least as far from d/2 as observed."""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    d = only_a + only_b
    observed = abs(only_a - d / 2)
    hits = sum(abs(sum(bits) - d / 2) >= observed - 1e-12 for bits in itertools.product((0, 1), repeat=d))
    return hits / 2 ** d


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_matches_brute_force_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random(40) < 0.5
    b = a.copy()
    idx = rng.choice(40, size=int(rng.integers(1, 13)), replace=False)
    b[idx] = ~b[idx]
    b[idx[: len(idx) // 3]] = a[idx[: len(idx) // 3]]  # some flips undone: unequal discordant counts
    assert mcnemar_exact(a, b) == pytest.approx(_mcnemar_brute_force(a, b))


def test_mcnemar_without_discordant_shapes_is_one() -> None:
    a = np.array([True, False, True])
    assert mcnemar_exact(a, a) == 1.0


def test_normal_quantile_inverts_the_cdf() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    for q in (0.01, 0.2, 0.5, 0.8, 0.999):
        assert normal_cdf(normal_quantile(q)) == pytest.approx(q, abs=1e-9)


def test_power_matches_simulated_rejection_rate() -> None:
    """Draw estimates ~ N(effect, se); a two-sided 5 % z test rejects when |estimate / se| > 1.96."""
    rng = np.random.default_rng(9)
    for effect, se in ((0.02, 0.01), (0.05, 0.02), (0.0, 0.02), (-0.03, 0.015)):
        est = rng.normal(effect, se, size=200_000)
        simulated = float((np.abs(est / se) > 1.959964).mean())
        assert power(effect, se) == pytest.approx(simulated, abs=0.005)


def test_minimum_detectable_effect_has_the_target_power() -> None:
    se = 0.017
    mde = min_detectable_effect(se)
    assert mde == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)
    assert power(mde, se) == pytest.approx(0.8, abs=0.002)
