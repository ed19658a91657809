"""Bootstrap resampling and intervals (vocagan.stats) on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vocagan.stats import bootstrap_counts, interval, seed_mean_replicates


def test_bootstrap_counts_are_seeded_resamples_with_replacement():
    c = bootstrap_counts(5, n_resamples=200, seed=3)
    assert c.shape == (200, 5) and (c.sum(1) == 5).all() and (c >= 0).all()
    np.testing.assert_array_equal(c, bootstrap_counts(5, n_resamples=200, seed=3))  # same draws every time
    assert not np.array_equal(c, bootstrap_counts(5, n_resamples=200, seed=4))
    # each item appears once per resample on average
    assert c.mean() == pytest.approx(1.0) and 0.9 < c[:, 0].mean() < 1.1
    assert bootstrap_counts(0, n_resamples=3).shape == (3, 0)


def test_percentile_interval_by_hand():
    r = np.arange(1001, dtype=float)  # quantiles 2.5 % and 97.5 % of 0..1000 are 25 and 975
    assert interval(r) == (pytest.approx(25.0), pytest.approx(975.0))
    assert interval(r, level=0.5) == (pytest.approx(250.0), pytest.approx(750.0))
    with_nan = np.concatenate([r, np.full(10, np.nan)])  # a few undefined replicates are left out
    assert interval(with_nan) == (pytest.approx(25.0), pytest.approx(975.0))
    assert all(math.isnan(x) for x in interval(np.array([1.0, np.nan, np.nan])))  # mostly undefined: nan


def test_seed_mean_replicates():
    # one seed: its own replicates, each repeated for the seed draws (no seed variation is known)
    row = np.arange(4.0)
    np.testing.assert_array_equal(seed_mean_replicates(row[None], draws=2), [0, 0, 1, 1, 2, 2, 3, 3])
    # seeds 1, 2, 3 and no sequence variation: the t-interval 2 +- t(0.975, 2) * 1 / sqrt(3)
    values = np.repeat(np.array([[1.0], [2.0], [3.0]]), 10000, axis=1)
    reps = seed_mean_replicates(values, seed=0, draws=10)
    assert reps.shape == (100000,)
    lo, hi = interval(reps)
    half = 4.302653 / math.sqrt(3)
    assert lo == pytest.approx(2 - half, rel=0.03) and hi == pytest.approx(2 + half, rel=0.03)
    # replicate j comes from column j // draws: a shift of column b shifts its draws only
    shifted = values[:, :100] + np.arange(100.0)
    np.testing.assert_allclose(
        seed_mean_replicates(shifted, seed=0, draws=10) - np.repeat(np.arange(100.0), 10),
        seed_mean_replicates(values[:, :100], seed=0, draws=10),
    )
    # a seed whose value is undefined is left out of its column
    out = seed_mean_replicates(np.array([[1.0, 1.0], [np.nan, 3.0]]), seed=0, draws=1)
    assert out[0] == 1.0 and np.isfinite(out[1])
