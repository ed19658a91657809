"""Metrics on tiny hand-built arrays whose expected values are worked out by hand in each test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vocagan import metrics as M
from vocagan.prep.regions import mouth_opening_vertices


def _seq(T: int, V: int) -> np.ndarray:
    return np.zeros((T, V, 3), dtype=np.float32)


# ----------------------------------------------------------------------------- LVE
def test_lip_max_sq_error_by_hand():
    gt = _seq(2, 3)
    pred = _seq(2, 3)
    # frame 0: lip v0 off by 1 mm (1e-6 m²), lip v1 off by 2 mm (4e-6 m²), non-lip v2 off by 10 mm (ignored)
    pred[0, 0] = [0.001, 0, 0]
    pred[0, 1] = [0, 0.002, 0]
    pred[0, 2] = [0.01, 0, 0]
    # frame 1: lip v0 off by (3, 4, 0) mm -> 25e-6 m²; v1 exact
    pred[1, 0] = [0.003, 0.004, 0]
    lips = np.array([0, 1, 1])  # duplicates, as in FLAME_masks.pkl, do not change a max
    e = M.lip_max_sq_error(pred, gt, lips)
    np.testing.assert_allclose(e, [4e-6, 25e-6], rtol=1e-5)
    np.testing.assert_allclose(M.lip_max_error_mm(pred, gt, lips), [2.0, 5.0], rtol=1e-5)
    # one sequence: frame-pooled = (4 + 25) / 2 * 1e-6
    assert M.lve([pred], [gt], lips) == pytest.approx(14.5e-6, rel=1e-5)


def test_pooled_vs_sequence_averaged():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0])
    assert M.pool_frames([a, b]) == pytest.approx(16 / 4)  # every frame weighs the same
    assert M.pool_sequences([a, b]) == pytest.approx((2 + 10) / 2)  # every sequence weighs the same
    assert math.isnan(M.pool_frames([]))


def test_lve_pools_frames_across_sequences():
    gt1, gt2 = _seq(1, 1), _seq(3, 1)
    p1, p2 = gt1.copy(), gt2.copy()
    p1[0, 0] = [0.004, 0, 0]  # 16e-6
    # p2 exact on 3 frames -> 0, 0, 0 ; pooled = 16e-6 / 4 = 4e-6 (sequence-averaged would be 8e-6)
    assert M.lve([p1, p2], [gt1, gt2], np.array([0])) == pytest.approx(4e-6, rel=1e-5)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError):
        M.lip_max_sq_error(_seq(2, 3), _seq(3, 3), np.array([0]))


# ----------------------------------------------------------------------------- MVE
def test_mve_by_hand():
    gt = _seq(2, 2)
    pred = _seq(2, 2)
    pred[0, 0] = [0.003, 0.004, 0]  # 5 mm
    pred[1, 1] = [0, 0, 0.001]  # 1 mm
    # per-frame means: (5 + 0) / 2 = 2.5, (0 + 1) / 2 = 0.5 ; overall 1.5 mm
    np.testing.assert_allclose(M.vertex_error_mm(pred, gt), [2.5, 0.5], rtol=1e-5)
    assert M.mve(pred, gt) == pytest.approx(1.5, rel=1e-5)
    assert M.mve(pred, gt, region=np.array([0])) == pytest.approx(2.5, rel=1e-5)  # (5 + 0) / 2
    np.testing.assert_allclose(M.per_vertex_error_mm(pred, gt), [2.5, 0.5], rtol=1e-5)


# ----------------------------------------------------------------------------- FDD
def test_fdd_by_hand():
    template = np.array([[1.0, 0, 0], [0, 1.0, 0], [5.0, 5.0, 5.0]])
    upper = np.array([0, 1])
    gt = np.repeat(template[None], 2, axis=0)
    pred = gt.copy()
    # gt: v0 squared displacement over time [0, 4] -> std 2 ; v1 [1, 1] -> std 0 ; mean 1.0
    gt[1, 0] += [2, 0, 0]
    gt[:, 1] += [1, 0, 0]
    # pred: v0 [0, 0] -> 0 ; v1 [0, 1] -> std 0.5 ; mean 0.25
    pred[1, 1] += [0, 0, 1]
    # v2 is not upper face: moving it must not matter
    pred[1, 2] += [9, 9, 9]
    assert M.upper_face_motion_std(gt, template, upper) == pytest.approx(1.0)
    assert M.upper_face_motion_std(pred, template, upper) == pytest.approx(0.25)
    assert M.fdd_sequence(pred, gt, template, upper) == pytest.approx(0.75)
    assert M.fdd_sequence(gt, pred, template, upper) == pytest.approx(-0.75)  # signed
    fdd, fdd_abs = M.pool_fdd([0.75, -0.25])
    assert fdd == pytest.approx(0.25) and fdd_abs == pytest.approx(0.5)


# ----------------------------------------------------------------------------- lip sync
def _lip_template():
    # x lateral, y up. Lips: a row at y=+1 and one at y=-1 (x = -1, 0, 1), plus outer points (0, ±2).
    pts = [(-1, 1), (0, 1), (1, 1), (-1, -1), (0, -1), (1, -1), (0, 2), (0, -2), (9, 9)]
    return np.array([(x, y, 0.0) for x, y in pts]), np.arange(8)  # vertex 8 is not a lip vertex


def test_mouth_opening_vertices_and_series_by_hand():
    template, lips = _lip_template()
    up, low = mouth_opening_vertices(template, lips)
    # central band (|x| <= 0.2): upper {1, 6}, lower {4, 7}; mean height 0; nearer half -> {1}, {4}
    assert up.tolist() == [1] and low.tolist() == [4]
    verts = np.repeat(template[None], 3, axis=0) * 0.001  # metres
    verts[1, 4, 1] -= 0.003  # lower lip drops 3 mm in frame 1
    np.testing.assert_allclose(M.mouth_opening(verts, up, low), [2.0, 5.0, 2.0], rtol=1e-6)


def test_pearson_by_hand():
    assert M.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # a = [1,2,3,4] centred [-1.5,-.5,.5,1.5]; b = [1,3,2,4] centred [-1.5,.5,-.5,1.5]
    # sum ab = 2.25 - .25 - .25 + 2.25 = 4 ; sum a² = sum b² = 5 -> r = 0.8
    assert M.pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(M.pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(M.pearson(np.full(50, 0.1), np.arange(50.0)))  # constant 0.1: no rounding-noise r


def test_best_lag_by_hand():
    ref = np.array([0, 0, 1, 0, 0, 3, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0], dtype=float)
    late = np.concatenate([np.zeros(2), ref[:-2]])  # pred[t] = ref[t - 2]: prediction 2 frames late
    early = np.concatenate([ref[3:], np.zeros(3)])  # pred[t] = ref[t + 3]: 3 frames early
    assert M.best_lag(ref, ref) == 0
    assert M.best_lag(late, ref) == 2
    assert M.best_lag(early, ref) == -3
    assert math.isnan(M.best_lag(np.ones(20), ref))  # constant: no correlation anywhere -> undefined


def test_audio_energy_by_hand():
    sr, fps = 100, 10  # 10 samples per frame, window +-5 samples around i * 10
    x = np.concatenate([np.full(10, 0.5), np.zeros(10), np.full(10, -2.0)])
    e = M.audio_energy(x, sr, fps, 3)
    # frame 0: x[0:5] = 0.5 -> 0.5 ; frame 1: x[5:15] = five 0.5, five 0 -> sqrt(0.125) ; frame 2: x[15:25]
    np.testing.assert_allclose(e, [0.5, math.sqrt(0.125), math.sqrt(5 * 4 / 10)])


# ----------------------------------------------------------------------------- smoothness, diversity
def test_acceleration_and_jitter_by_hand():
    t = np.arange(5, dtype=float)
    quad = np.zeros((5, 1, 3))
    quad[:, 0, 0] = 0.001 * t**2  # second difference 2 mm/frame² everywhere
    cube = np.zeros((5, 1, 3))
    cube[:, 0, 0] = 0.001 * t**3  # third difference 6 mm/frame³ everywhere
    assert M.acceleration_mm(quad) == pytest.approx(2.0)
    assert M.jitter_mm(quad) == pytest.approx(0.0, abs=1e-9)
    assert M.jitter_mm(cube) == pytest.approx(6.0)
    # cube second differences: x = 0,1,8,27,64 -> 6, 12, 18 -> mean 12 mm/frame²
    assert M.acceleration_mm(cube) == pytest.approx(12.0)
    assert math.isnan(M.acceleration_mm(quad[:2]))
    assert M.acceleration_mm(np.concatenate([quad, cube], axis=1), region=np.array([0])) == pytest.approx(2.0)


def test_diversity_by_hand():
    s = np.zeros((3, 1, 1, 3))
    s[1, 0, 0] = [0.003, 0.004, 0]  # 5 mm from sample 0
    s[2, 0, 0] = [0, 0, 0.001]  # 1 mm from sample 0, sqrt(26) mm from sample 1
    assert M.diversity_mm(s) == pytest.approx((5 + 1 + math.sqrt(26)) / 3)
    assert math.isnan(M.diversity_mm(s[:1]))


def test_lag_pooled_over_sequences():
    ref = np.array([0, 0, 1, 0, 0, 3, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0], dtype=float)
    late = np.concatenate([np.zeros(1), ref[:-1]])
    curve = M.lag_correlations(late, ref, max_lag=3)
    assert curve.shape == (7,) and curve[3 + 1] == pytest.approx(1.0)  # k = +1 is a perfect match
    # two sequences whose curves peak at +1 (strongly) and 0 (weakly): the mean peaks at +1
    mean = np.nanmean([curve, M.lag_correlations(ref, ref, max_lag=3) * 0.5], axis=0)
    assert M.lag_of(mean) == 1
    assert math.isnan(M.lag_of(np.full(7, np.nan)))


def test_mouth_opening_vertices_widen_band_and_degenerate():
    # no lip vertex on the midline column: the band widens until it finds both lips
    template = np.array([[-1.0, 1, 0], [1.0, 1, 0], [-1.0, -1, 0], [0.9, -1, 0], [0.0, 0.0, 5.0]])
    up, low = mouth_opening_vertices(template, np.arange(4))
    assert set(up) <= {0, 1} and set(low) <= {2, 3} and len(up) and len(low)
    flat = template.copy()
    flat[:, 1] = 0.0
    with pytest.raises(ValueError):
        mouth_opening_vertices(flat, np.arange(4))


def test_mouth_opening_vertices_on_flame(shared_data):
    """On the real FLAME template with FLAME_masks.pkl lips: upper-lip vertices lie above the lower ones,
    both near the midline, and the opening at rest is a few mm."""
    from vocagan.formats.mesh import read_mesh
    from vocagan.formats.pickles import safe_load_pickle

    template, _ = read_mesh(shared_data / "flame" / "FLAME_sample.ply")
    lips = safe_load_pickle(shared_data / "regions" / "FLAME_masks.pkl")["lips"]
    up, low = mouth_opening_vertices(template, lips)
    assert template[up, 1].min() > template[low, 1].max()
    assert np.abs(template[np.r_[up, low], 0]).max() < 0.01  # within 1 cm of the midline
    rest = M.mouth_opening(template[None], up, low)[0]
    assert 0.5 < rest < 15.0, rest


def test_closure_events_and_minima_by_hand():
    # opening above neutral (mm): rest, open, closed (frames 3-4), open, closed at frame 7, open, rest at the end
    gt = np.array([0.0, 2.0, 3.0, 0.2, -1.0, 2.5, 3.0, 0.5, 2.0, 0.0])
    assert M.closure_events(gt) == [(3, 5), (7, 8)]  # the rest runs at both ends are left out
    assert M.closure_events(gt, closed_mm=-0.5) == [(4, 5)]
    pred = np.array([0.0, 2.0, 2.5, 1.0, 0.3, 1.2, 3.0, 2.0, 0.9, 0.4])
    rows = M.closure_minima(pred, gt)
    # closure (3, 5): pred min over frames 2..5 = 0.3, gt min -1.0; closure (7, 8): frames 6..8 -> 0.9, gt 0.5
    np.testing.assert_allclose(rows, [[0.3, -1.0], [0.9, 0.5]])
    np.testing.assert_allclose(M.closure_minima(pred, gt, tolerance=0), [[0.3, -1.0], [2.0, 0.5]])
    rate, gap = M.pool_closures([rows, np.array([[0.5, 0.0]])])
    assert rate == pytest.approx(100 * 2 / 3)  # 0.3 and 0.5 reach <= 0.5 mm, 0.9 does not
    assert gap == pytest.approx(((0.3 + 1.0) + (0.9 - 0.5) + 0.5) / 3)
    assert M.closure_minima(pred, np.full(10, 2.0)).shape == (0, 2)  # no closure
    assert all(np.isnan(M.pool_closures([np.zeros((0, 2))])))


# ----------------------------------------------------------------------------- lip dynamics
def test_derivatives_and_spread_ratio_by_hand():
    opening = np.array([0.0, 1.0, 3.0, 2.0])  # velocity 1, 2, -1 ; acceleration 1, -3
    np.testing.assert_allclose(M.time_derivative(opening, 1), [1.0, 2.0, -1.0])
    np.testing.assert_allclose(M.squared_rate(opening, 1), [1.0, 4.0, 1.0])
    np.testing.assert_allclose(M.squared_rate(opening, 2), [1.0, 9.0])
    assert M.squared_rate(opening[:2], 2).size == 0
    # half the amplitude -> half the spread of every derivative, pooled over sequences
    assert M.spread_ratio([M.squared_rate(opening / 2, 1)], [M.squared_rate(opening, 1)]) == pytest.approx(0.5)
    # pooled over frames: pred rates (1, 1) + (0) vs gt (2, 2) + (1) -> sqrt(2 / 9)
    ratio = M.spread_ratio([np.array([1.0, 1.0]), np.array([0.0])], [np.array([4.0, 4.0]), np.array([1.0])])
    assert ratio == pytest.approx(math.sqrt(2 / 9))
    assert math.isnan(M.spread_ratio([np.ones(2)], [np.zeros(2)]))  # the truth does not move


def test_lip_rates_and_speeds_by_hand():
    v = _seq(3, 3)
    v[1, 0] = [0.003, 0.004, 0]  # lip v0 moves 5 mm out and back; v1 still; v2 (not a lip) ignored
    v[:, 2] = [[0, 0, 0], [0.1, 0, 0], [0.2, 0, 0]]
    lips = np.array([0, 1, 1])  # duplicates count once
    # velocity: frame 0->1: v0 25 mm², v1 0 -> mean 12.5; frame 1->2 the same
    np.testing.assert_allclose(M.lip_squared_rate(v, lips, 1), [12.5, 12.5], rtol=1e-5)
    # acceleration of v0: (0 - 2*(3,4,0) + 0) mm -> 100 mm²; mean with v1 -> 50
    np.testing.assert_allclose(M.lip_squared_rate(v, lips, 2), [50.0], rtol=1e-5)
    np.testing.assert_allclose(M.lip_speeds(v, lips), [[5.0, 0.0], [5.0, 0.0]], rtol=1e-5)


def test_wasserstein_1d_by_hand():
    assert M.wasserstein_1d([0.0, 1.0], [0.5]) == pytest.approx(0.5)  # each half moves 0.5
    assert M.wasserstein_1d([0.0], [3.0]) == pytest.approx(3.0)
    assert M.wasserstein_1d([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)  # a shift by 1
    assert M.wasserstein_1d([2.0, 0.0], [1.0]) == pytest.approx(1.0)  # unequal sizes, unsorted input
    assert M.wasserstein_1d([1.0, 2.0, 2.0], [2.0, 1.0, 2.0]) == 0.0
    assert math.isnan(M.wasserstein_1d([], [1.0]))


# ----------------------------------------------------------------------------- amplitude at peaks
def test_opening_peaks_and_peak_openings_by_hand():
    # peaks at frame 2 (3 mm, prominence 3), a plateau 5-7 (2 mm; middle frame 6, prominence 2) and a
    # 0.5 mm bump at frame 9 (prominence 0.5 < 1: not a peak); the ends never count
    gt = np.array([0.0, 1.0, 3.0, 1.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(M.opening_peaks(gt), [2, 6])
    np.testing.assert_array_equal(M.opening_peaks(gt, prominence=0.4), [2, 6, 9])
    # a shoulder: 1 -> 3 -> 2.5 -> 4: the 3 mm peak stands only 0.5 above the dip before the higher peak
    np.testing.assert_array_equal(M.opening_peaks(np.array([1.0, 3.0, 2.5, 4.0, 0.0])), [3])
    pred = gt * 0.5
    pred[3] = 2.0  # the prediction peaks one frame late at the first peak: within the +-1 frame tolerance
    rows = M.peak_openings(pred, gt)
    np.testing.assert_allclose(rows, [[2.0, 3.0], [1.0, 2.0]])
    assert M.pool_peaks([rows]) == pytest.approx(3.0 / 5.0)  # pooled over peaks: sum pred / sum gt
    assert M.pool_peaks([rows, np.array([[1.0, 1.0]])]) == pytest.approx(4.0 / 6.0)
    assert math.isnan(M.pool_peaks([np.zeros((0, 2))]))


# ----------------------------------------------------------------------------- sync scores, Fréchet distance
def test_sync_scores_by_hand():
    # 2 windows x 5 shifts (-2..2): mean curve 1.0, 0.8, 0.3, 0.9, 1.0 -> LSE-D 0.3 at shift 0,
    # median 0.9 -> LSE-C 0.6, offset 0
    d = np.array([[1.0, 0.7, 0.2, 0.9, 1.2], [1.0, 0.9, 0.4, 0.9, 0.8]])
    lse_d, lse_c, offset = M.sync_scores(d)
    assert (lse_d, lse_c, offset) == (pytest.approx(0.3), pytest.approx(0.6), 0)
    # motion that matches the audio one frame EARLIER (minimum at shift -1) is late: offset +1
    assert M.sync_scores(np.array([[1.0, 0.2, 0.7, 0.9, 1.2]]))[2] == 1
    assert math.isnan(M.sync_scores(np.zeros((0, 5)))[0])  # no window


def test_gaussian_stats_and_frechet_distance_by_hand():
    x = np.array([[0.0], [2.0]])
    mu, cov = M.gaussian_stats(x)
    np.testing.assert_allclose(mu, [1.0])
    np.testing.assert_allclose(cov, [[1.0]])  # divided by N
    # 1-D: N(0, 1) vs N(1, 4): 1 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    assert M.frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)) == pytest.approx(2.0)
    # diagonal 2-D: means (0,0) vs (3,4) -> 25; variances (1, 9) vs (4, 1): (1-2)² + (3-1)² = 5 -> 30
    fd = M.frechet_distance(np.zeros(2), np.diag([1.0, 9.0]), np.array([3.0, 4.0]), np.diag([4.0, 1.0]))
    assert fd == pytest.approx(30.0)
    # the same Gaussian: 0; a stack gives one distance per entry; a given square root gives the same
    cov = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert M.frechet_distance(np.ones(2), cov, np.ones(2), cov) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(M.sqrtm_psd(cov) @ M.sqrtm_psd(cov), cov, atol=1e-12)
    stack = M.frechet_distance(np.zeros((2, 1)), np.ones((2, 1, 1)), np.array([[1.0], [0.0]]), np.ones((2, 1, 1)))
    np.testing.assert_allclose(stack, [1.0, 0.0], atol=1e-12)
    same = M.frechet_distance(np.zeros(2), np.diag([1.0, 9.0]), np.zeros(2), np.diag([4.0, 1.0]), np.diag([2.0, 1.0]))
    assert same == pytest.approx(5.0)


def test_lag_of_a_stack_of_curves():
    curves = np.array([[0.1, 0.9, 0.2], [0.5, 0.5, 0.5], [np.nan, np.nan, np.nan], [0.7, 0.2, 0.7]])
    # argmax; ties to the smallest |k|, then the negative one; all-nan -> nan
    np.testing.assert_array_equal(M.lag_of(curves)[[0, 1, 3]], [0.0, 0.0, -1.0])
    assert math.isnan(M.lag_of(curves)[2])
