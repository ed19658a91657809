"""vocagan.prep.pca: the streaming mean/covariance against numpy (by hand and on random data, in
one or many chunks), top eigenpairs (LAPACK and Lanczos paths), the incremental SVD against an exact
SVD, the component-count rules, deterministic signs, coefficient statistics and the BLAS thread cap."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan.prep import pca


# ----------------------------------------------------------------------------- Moments
def test_moments_by_hand():
    """Rows (1, 2), (3, 6), (5, 10): mean (3, 6); unbiased covariance [[4, 8], [8, 16]]."""
    m = pca.Moments(2, chunk=2)
    m.add(np.array([[1.0, 2.0]], np.float32))
    m.add(np.zeros((0, 2), np.float32))  # an empty batch changes nothing
    m.add(np.array([[3.0, 6.0], [5.0, 10.0]], np.float32))
    mean, cov = m.mean_cov()
    assert m.n == 3
    np.testing.assert_allclose(mean, [3.0, 6.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, [[4.0, 8.0], [8.0, 16.0]], rtol=1e-6)
    one = pca.Moments(2)
    one.add(np.array([[7.0, -1.0]], np.float32))
    mean, cov = one.mean_cov()  # one row: its value, zero spread (no division by 0)
    np.testing.assert_array_equal(mean, [7.0, -1.0])
    assert not cov.any()


@pytest.mark.parametrize("chunk", [1, 16, 4096])
def test_streaming_moments_equal_numpy_covariance(chunk):
    """Float32 products on chunk-centred data, float64 sums: as np.cov in float64 even when the
    mean is large against the spread (offsets of ~mm around a shifted template)."""
    rng = np.random.default_rng(1)
    batches = [
        (rng.normal(0.0, 1e-3, (n, 6)) * [1, 2, 3, 0.1, 1, 1] + 0.05).astype(np.float32) for n in (7, 30, 1, 12, 300)
    ]
    m = pca.Moments(6, chunk=chunk)
    for b in batches:
        m.add(b)
    mean, cov = m.mean_cov()
    allx = np.concatenate(batches).astype(np.float64)
    ref = np.cov(allx.T)
    assert m.n == len(allx) and np.allclose(mean, allx.mean(0), rtol=1e-12, atol=1e-12)
    assert np.abs(cov - ref).max() <= 1e-5 * np.abs(ref).max()


def test_moments_with_distinct_batch_means_equal_float64_covariance():
    """Batches (subjects) with their own mean far from the others: the between-chunk term added at
    the end gives the float64 covariance, whatever the chunking."""
    rng = np.random.default_rng(2)
    batches = [
        (rng.normal(0.0, 1e-3, (n, 5)) + rng.normal(0.0, 0.05, 5)).astype(np.float32) for n in (40, 3, 90, 17, 250, 1)
    ]
    allx = np.concatenate(batches).astype(np.float64)
    ref = np.cov(allx.T)
    for chunk in (1, 50, 100, 10_000):
        m = pca.Moments(5, chunk=chunk)
        for b in batches:
            m.add(b)
        mean, cov = m.mean_cov()
        assert m.n == len(allx) and np.allclose(mean, allx.mean(0), rtol=0, atol=1e-12)
        assert np.abs(cov - ref).max() <= 1e-6 * np.abs(ref).max(), chunk
        assert np.array_equal(m.mean_cov()[1], cov)  # asking twice changes nothing
    empty = pca.Moments(3)
    assert empty.n == 0 and not empty.mean_cov()[1].any()


# ----------------------------------------------------------------------------- eigenpairs
def test_top_components_by_hand():
    """diag(1, 5, 3): variances 5, 3 along the 2nd and 3rd axes (descending); negative eigenvalues
    of a not-quite-PSD matrix are clipped to 0."""
    var, comp = pca.top_components(np.diag([1.0, 5.0, 3.0]), 2)
    np.testing.assert_allclose(var, [5.0, 3.0])
    np.testing.assert_allclose(np.abs(comp), [[0, 1, 0], [0, 0, 1]], atol=1e-12)
    var, comp = pca.top_components(np.diag([2.0, -1e-9]), 5)  # k > D: all D of them
    assert comp.shape == (2, 2)
    np.testing.assert_array_equal(var, [2.0, 0.0])


def test_top_components_lapack_and_lanczos_paths():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((8, 8))
    cov = a @ a.T
    var, comp = pca.top_components(cov, 3)
    ref = np.linalg.eigvalsh(cov)[::-1]
    assert np.allclose(var, ref[:3]) and np.allclose(comp @ comp.T, np.eye(3), atol=1e-10)
    big = rng.standard_normal((600, 40)) @ rng.standard_normal((40, 600))  # Lanczos path (D >= 500)
    big = big @ big.T
    var, comp = pca.top_components(big, 5)
    w, v = np.linalg.eigh(big)
    assert np.allclose(var, w[::-1][:5], rtol=1e-10)
    assert np.allclose(np.abs(comp @ v[:, ::-1][:, :5]), np.eye(5), atol=1e-8)


# ----------------------------------------------------------------------------- incremental SVD
def test_incremental_pca_matches_exact_subspace():
    """Rank-3 data in 40 dims, fed in 4 batches: the same mean, total variance, top variances and
    subspace as the exact covariance (Moments + top_components) and as one SVD of all the rows."""
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.standard_normal((40, 3)))[0].T  # (3, 40)
    batches = [rng.standard_normal((n, 3)) * [3, 2, 1] @ basis + 0.2 for n in (20, 35, 15, 50)]
    inc = pca.IncrementalPCA(40, keep=6)
    exact = pca.Moments(40)
    for b in batches:
        inc.add(b)
        exact.add(b)
    inc.add(np.zeros((0, 40)))  # empty batch: no-op
    mean, comp, var, total = inc.result()
    assert inc.n == 120 and comp.shape == (6, 40) and var.shape == (6,)
    emean, cov = exact.mean_cov()
    evar, ecomp = pca.top_components(cov, 3)
    assert np.allclose(mean, emean) and np.isclose(total, np.trace(cov), rtol=1e-6)
    assert np.allclose(var[:3], evar, rtol=1e-6)  # Moments: float32 products
    assert np.allclose(np.abs(comp[:3] @ ecomp.T), np.eye(3), atol=1e-6)
    # against a one-shot SVD of the centred rows: the same projector onto the top-3 subspace
    allx = np.concatenate(batches)
    _, s, vt = np.linalg.svd(allx - allx.mean(0), full_matrices=False)
    np.testing.assert_allclose(comp[:3].T @ comp[:3], vt[:3].T @ vt[:3], atol=1e-8)
    np.testing.assert_allclose(var[:3], s[:3] ** 2 / (len(allx) - 1), rtol=1e-8)
    assert var[3:].max() < 1e-12 * var[0]  # nothing beyond rank 3
    np.testing.assert_allclose(comp[:3] @ basis.T @ basis, comp[:3], atol=1e-8)  # inside the true span


def test_incremental_pca_keeps_at_most_dim_components():
    inc = pca.IncrementalPCA(3, keep=10)
    inc.add(np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
    mean, comp, var, total = inc.result()
    np.testing.assert_array_equal(mean, [0.0, 0.0, 0.0])
    assert inc.keep == 3 and len(comp) <= 3
    assert total == pytest.approx(2.0) and var[0] == pytest.approx(2.0)  # (1 + 1) / (2 - 1)
    np.testing.assert_allclose(np.abs(comp[0]), [1.0, 0.0, 0.0], atol=1e-12)


# ----------------------------------------------------------------------------- choices
def test_choose_components_variance_cap_and_forced_count():
    v = np.array([50.0, 30.0, 15.0, 4.0, 1.0])  # cumulative share .50 .80 .95 .99 1.0
    assert pca.choose_components(v, 100.0, 0.5, 64) == 1
    assert pca.choose_components(v, 100.0, 0.8, 64) == 2  # reached exactly: no extra component
    assert pca.choose_components(v, 100.0, 0.95, 64) == 3
    assert pca.choose_components(v, 100.0, 0.96, 64) == 4
    assert pca.choose_components(v, 100.0, 1.0, 64) == 5
    assert pca.choose_components(v, 100.0, 0.0, 64) == 1  # at least one
    assert pca.choose_components(v, 100.0, 0.999, 2) == 2  # capped by max_components
    assert pca.choose_components(v, 100.0, 0.5, 64, exact=4) == 4  # forced count wins over the variance
    assert pca.choose_components(v, 100.0, 0.5, 1, exact=4) == 4  # ... and over the cap
    assert pca.choose_components(v, 100.0, 0.5, 64, exact=9) == 5  # but not beyond what exists
    # the total may cover more than these variances (the top-k of a bigger spectrum): 0.9 is never
    # reached (at most 100 / 200), so every available component is taken
    assert pca.choose_components(v, 200.0, 0.45, 64) == 3  # 95 / 200 = .475
    assert pca.choose_components(v, 200.0, 0.9, 64) == 5


def test_fix_signs_makes_the_largest_entry_positive():
    comps = np.array([[0.6, -0.8, 0.0], [-0.3, 0.1, 0.2]])
    fixed = pca.fix_signs(comps)
    np.testing.assert_array_equal(fixed, [[-0.6, 0.8, 0.0], [0.3, -0.1, -0.2]])
    np.testing.assert_array_equal(pca.fix_signs(-comps), fixed)  # either sign in, the same out
    np.testing.assert_array_equal(pca.fix_signs(fixed), fixed)  # idempotent
    rng = np.random.default_rng(5)
    random = rng.standard_normal((4, 7))
    flips = np.array([1, -1, -1, 1])[:, None]
    np.testing.assert_array_equal(pca.fix_signs(random * flips), pca.fix_signs(random))
    assert (pca.fix_signs(random)[np.arange(4), np.abs(random).argmax(1)] > 0).all()


# ----------------------------------------------------------------------------- coefficient statistics
def test_coef_stats_by_hand_and_identity_when_off():
    """Two sequences [[1, 10], [3, 10]] and [[5, 10]]: mean (3, 10); std (ddof 1) 2 and 0, the zero
    floored to 1e-8 of the largest std so that z-scoring never divides by zero."""
    coefs = [np.array([[1.0, 10.0], [3.0, 10.0]], np.float32), np.array([[5.0, 10.0]], np.float32)]
    mean, std = pca.coef_stats(coefs, True)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, [3.0, 10.0], rtol=1e-7)
    np.testing.assert_allclose(std, [2.0, 2e-8], rtol=1e-5)
    mean, std = pca.coef_stats(coefs, False)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_array_equal(mean, [0.0, 0.0])
    np.testing.assert_array_equal(std, [1.0, 1.0])


def test_coef_stats_on_random_coefficients():
    coefs = [np.random.default_rng(4).normal(2.0, 3.0, (500, 4)).astype(np.float32)]
    mean, std = pca.coef_stats(coefs, True)
    assert np.allclose(mean, coefs[0].mean(0), atol=1e-5) and np.allclose(std, coefs[0].std(0, ddof=1), rtol=1e-4)


# ----------------------------------------------------------------------------- BLAS threads
def test_blas_threads_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    with pca.blas_threads(1):
        assert blas() and set(blas()) == {1}
    assert blas() == before
    with pytest.raises(RuntimeError):  # restored on the way out of an error too
        with pca.blas_threads(1):
            raise RuntimeError("boom")
    assert blas() == before
