"""Uncertainty: bootstrap resampling and 95 % intervals (pure numpy; no vocagan imports).

- `bootstrap_counts(n)`: how often each of n items (test sequences) appears in each of R resamples
  drawn with replacement, (R, n), seeded: every evaluation with the same n draws the same resamples, so
  two models' replicate b saw the same sequences and their difference is paired by sequence.
- `interval(replicates)`: the percentile interval (2.5 %, 97.5 %) of bootstrap replicates.
- `seed_mean_replicates(values)`: the two-level bootstrap of `compare`: per replicate of the test
  sequences, the mean over training seeds plus a Student-t draw scaled by the seeds' spread (the
  seed level as a parametric bootstrap: t-intervals, honest with 3 seeds), giving replicates of the
  mean over seeds.
"""

from __future__ import annotations

import numpy as np

N_RESAMPLES = 1000  # bootstrap replicates
SEED = 0  # of the resampling: fixed, so intervals repeat exactly and replicates pair across models
LEVEL = 0.95
SEED_DRAWS = 10  # seed-level draws per test-sequence replicate (t tails need more than 1000 draws)
MIN_FINITE = 0.5  # an interval needs at least this share of finite replicates (else nan)


def bootstrap_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n) int: row b counts how often each item appears in resample b (n draws with
    replacement; each row sums to n). Depends only on (n, n_resamples, seed)."""
    if n < 1:
        return np.zeros((n_resamples, 0), dtype=np.int64)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    counts = np.zeros((n_resamples, n), dtype=np.int64)
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1)
    return counts


def interval(replicates, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates: the (1-level)/2 and (1+level)/2 quantiles of the
    finite ones; (nan, nan) when fewer than half are finite."""
    r = np.asarray(replicates, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if r.size == 0 or r.size < MIN_FINITE * np.size(replicates):
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def seed_mean_replicates(values, seed: int = SEED, draws: int = SEED_DRAWS) -> np.ndarray:
    """Two-level bootstrap of a mean over training seeds. `values` (S seeds, R): row s = the bootstrap
    replicates of one seed's metric, all seeds resampled with the same test-sequence draws (column b).
    For each column b, `draws` replicates: the mean over the seeds plus a Student-t draw (S - 1 degrees
    of freedom) scaled by their standard deviation / sqrt(S), i.e. a parametric bootstrap of the seed
    level -> (R * draws,), replicate j from column j // draws (so entries with the same R stay paired by
    column). Without sequence variation the percentile interval is the t-interval mean +- t(S-1) s /
    sqrt(S), honest with as few as 3 seeds (a plain resampling of 3 seeds covers far less than 95 %);
    with it, both sources add. A column with one finite seed: its value (no seed variation known)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    n = finite.sum(0)  # finite seeds per column
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(finite, v, 0.0).sum(0) / np.maximum(n, 1), np.nan)
        sd = np.sqrt(np.where(finite, (v - mean) ** 2, 0.0).sum(0) / np.maximum(n - 1, 1))
    mean, sd, n = np.repeat(mean, draws), np.repeat(sd, draws), np.repeat(n, draws)
    t = np.random.default_rng(seed).standard_t(np.maximum(n - 1, 1))
    return np.where(n >= 2, mean + sd / np.sqrt(np.maximum(n, 1)) * t, mean)
