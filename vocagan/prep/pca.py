"""PCA of motion offsets and coefficient normalisation, the numerical core of `prepare`.

- `Moments`: streaming mean and covariance of (T, D) batches (float32 chunk products, float64 sums).
- `IncrementalPCA`: a streaming SVD for crops too wide for a (D, D) covariance.
- `top_components`: the top-k eigenpairs of a covariance (ARPACK through BLAS symv, or a full
  eigendecomposition when k is a large share of D); `choose_components` picks k from the explained
  variance; `fix_signs` makes the components deterministic; `coef_stats` z-scores coefficients.
- `blas_threads`: cap the BLAS thread count around a block (threadpoolctl).
"""

from __future__ import annotations

import contextlib

import numpy as np


class Moments:
    """Streaming mean and covariance of the rows of (T, D) batches, accumulated in float64.

    Rows are buffered into chunks of at least `chunk` rows (whole batches); each chunk is centred
    on its own mean and its (D, D) scatter taken as one float32 product (the precision of the data;
    numpy runs `x.T @ x` as BLAS syrk, half the work of a general product, ~4x faster than float64)
    and added to a float64 sum. The spread of the chunk means is added once, at the end:
    total scatter = sum of within-chunk scatters + sum_j n_j (mean_j - mean)(mean_j - mean)^T,
    so the rounding error scales with the spread of the data, not with its mean (as the pairwise
    update of Chan et al., without a (D, D) float64 outer product per chunk).
    """

    def __init__(self, dim: int, chunk: int = 4096):
        self.n, self.chunk = 0, chunk
        self.m2 = np.zeros((dim, dim))  # sum of the within-chunk scatters
        self._means: list[np.ndarray] = []  # per flushed chunk: mean (D,) float64 ...
        self._counts: list[int] = []  # ... and row count
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        # Reused work arrays: a fresh 100 MB array per chunk costs page faults, and centring in
        # row blocks avoids a (C, D) float64 temporary (measured: ~20% less time, same bits).
        self._rows = np.empty((0, dim), np.float32)  # (>= C, D) the chunk, centred in place
        self._product: np.ndarray | None = None  # (D, D) float32

    def add(self, x: np.ndarray) -> None:
        if len(x):
            self._buf.append(x)
            self._buffered += len(x)
            if self._buffered >= self.chunk:
                self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        if len(self._rows) < self._buffered:
            self._rows = np.empty((self._buffered, self.m2.shape[1]), np.float32)
        x = np.concatenate(self._buf, out=self._rows[: self._buffered])  # (C, D) copy
        self._buf, self._buffered = [], 0
        c_mean = x.mean(0, dtype=np.float64)
        for i in range(0, len(x), 256):  # centred in float64, rounded to float32, in blocks
            x[i : i + 256] = x[i : i + 256] - c_mean
        if self._product is None:
            self._product = np.empty_like(self.m2, dtype=np.float32)
        self.m2 += np.matmul(x.T, x, out=self._product)  # (D, D) float32 syrk
        self._means.append(c_mean)
        self._counts.append(len(x))
        self.n += len(x)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (D,), covariance (D, D)) over all rows added so far (unbiased, n - 1)."""
        self._flush()
        self._rows, self._product = self._rows[:0].copy(), None  # work arrays: not needed now
        if not self._counts:
            return np.zeros(len(self.m2)), np.zeros_like(self.m2)
        counts = np.asarray(self._counts, np.float64)
        means = np.stack(self._means)  # (chunks, D)
        mean = counts @ means / self.n
        spread = (means - mean) * np.sqrt(counts)[:, None]  # (chunks, D)
        cov = spread.T @ spread  # between-chunk scatter (D, D)
        cov += self.m2
        cov /= max(self.n - 1, 1)
        return mean, cov


class IncrementalPCA:
    """Streaming PCA for large crops (region "face": 15k dims): keeps the top `keep` directions,
    merging each batch by an SVD of [previous singular directions; centred batch; mean shift]
    (Ross et al. 2008, as sklearn's IncrementalPCA). The total variance is tracked exactly."""

    def __init__(self, dim: int, keep: int):
        self.keep, self.n = min(keep, dim), 0
        self.mean = np.zeros(dim)
        self.sq = 0.0  # sum of squared deviations from the running mean
        self.s = np.zeros(0)
        self.vt = np.zeros((0, dim))

    def add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        x = x.astype(np.float64)
        n_new = self.n + len(x)
        bmean = x.mean(0)
        delta = bmean - self.mean
        self.sq += ((x - bmean) ** 2).sum() + self.n * len(x) / n_new * (delta**2).sum()
        rows = [self.s[:, None] * self.vt, x - bmean]
        if self.n:
            rows.append(np.sqrt(self.n * len(x) / n_new) * delta[None])
        _, s, vt = np.linalg.svd(np.concatenate(rows), full_matrices=False)
        self.s, self.vt = s[: self.keep], vt[: self.keep]
        self.mean = self.mean + delta * len(x) / n_new
        self.n = n_new

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(mean (D,), components (k, D), variances (k,), total variance)."""
        denom = max(self.n - 1, 1)
        return self.mean, self.vt, self.s**2 / denom, self.sq / denom


def blas_threads(n: int):
    """Context limiting the BLAS libraries (numpy's and scipy's OpenBLAS) to n threads, through
    threadpoolctl when it is installed (otherwise a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def top_components(cov: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenpairs of a symmetric (D, D) matrix: (variances (k,), components (k, D)).
    Large D, small k: Lanczos (ARPACK, to machine precision; D=4.6k, k=64: ~600 products with the
    float64 matrix, seconds, not a full tridiagonalisation); otherwise LAPACK.
    The products read the matrix from memory each time (169 MB at D=4.6k), so they are made with
    BLAS symv, which reads one triangle (4.4 ms instead of 7.7 ms a product; eigsh 2.9 s instead of
    5.0 s, measured), on one BLAS thread: on 2 busy cores two OpenBLAS threads made eigsh 6x slower."""
    d = len(cov)
    k = min(k, d)
    if d >= 500 and k < d // 4:
        from scipy.linalg.blas import dsymv
        from scipy.sparse.linalg import LinearOperator, eigsh

        sym = np.asfortranarray(np.asarray(cov, np.float64).T)  # the same matrix, Fortran order (no copy)
        op = LinearOperator((d, d), matvec=lambda v: dsymv(1.0, sym, v.ravel()), dtype=np.float64)
        with blas_threads(1):
            values, vectors = eigsh(op, k=k, which="LA", v0=np.ones(d) / np.sqrt(d))  # deterministic start
        order = np.argsort(values)
        values, vectors = values[order], vectors[:, order]
    else:
        from scipy.linalg import eigh

        values, vectors = eigh(cov, subset_by_index=[d - k, d - 1])
    return values[::-1].clip(min=0.0), vectors[:, ::-1].T  # descending


def choose_components(variances: np.ndarray, total: float, variance: float, max_components: int, exact: int = 0) -> int:
    """Fewest components whose explained fraction reaches `variance`, capped at max_components;
    exactly `exact` when > 0."""
    if exact > 0:
        return min(exact, len(variances))
    cum = np.cumsum(variances) / max(total, 1e-30)
    k = int(np.searchsorted(cum, variance - 1e-12) + 1)
    return max(1, min(k, max_components, len(variances)))


def fix_signs(components: np.ndarray) -> np.ndarray:
    """Deterministic signs: the largest-magnitude entry of each component is positive."""
    idx = np.abs(components).argmax(1)
    return components * np.sign(components[np.arange(len(components)), idx])[:, None]


def coef_stats(coefs: list[np.ndarray], normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-component mean and std over all frames of the (train) coefficient arrays (T, K)."""
    k = coefs[0].shape[1]
    if not normalize:
        return np.zeros(k, np.float32), np.ones(k, np.float32)
    m = Moments(k)
    for c in coefs:
        m.add(c)
    mean, cov = m.mean_cov()
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return mean.astype(np.float32), np.maximum(std, 1e-8 * max(std.max(), 1e-12)).astype(np.float32)
