"""Evaluation metrics: pure numpy functions on vertex arrays (T, V, 3) in metres.

Definitions follow the published VOCASET protocol (DESIGN.md §2) and the semantics of the public
FaceFormer/CodeTalker metric script (`cal_metric.py`): LVE is the per-frame maximum over lip
vertices of the *squared* L2 error, averaged over all frames pooled across sequences (m², printed
×1e-5); FDD is, per sequence, mean over upper-face vertices of the temporal (population, ddof=0)
std of the squared displacement norm from the template, ground truth minus prediction, averaged
over sequences.

Beyond the papers' metrics: lip dynamics (the spread of velocity and acceleration of the mouth
opening and of the lip vertices, predicted over true, and the 1-D Wasserstein distance between
predicted and true lip speeds), the opening reached at the true opening peaks, SyncNet-style scores
from the distances a sync expert measures (`sync_scores`: LSE-D, LSE-C), and the Fréchet distance
between Gaussians fitted to embeddings.

Per-sequence functions return per-frame values (or one number per sequence); the `pool_*`
aggregators combine sequences, so frame-pooled and sequence-averaged variants cannot be confused.
Nothing here knows about files, models or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

# When lips count as closed is a region fact, defined once in prep/regions.py (with the vertices
# that define the mouth opening): the training loss and these metrics read the same threshold.
from vocagan.prep.regions import CLOSED_MM

MM = 1000.0  # metres -> millimetres
LVE_SCALE = 1e-5  # tables print LVE in units of 1e-5 m²
MAX_LAG = 10  # lip-sync lag search window, frames
PEAK_PROMINENCE_MM = 1.0  # a true mouth-opening peak stands at least this far above its surroundings


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (T, V, 3)")


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- LVE
def lip_max_sq_error(pred: np.ndarray, gt: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Per-frame LVE term: e_t = max_{v in lips} ||pred_t,v - gt_t,v||²  ->  (T,) in m².

    Duplicate indices in `lips` (FLAME_masks.pkl lists 254 entries, 250 unique) do not change a max.
    """
    _check_pair(pred, gt)
    diff = _f64(pred[:, lips]) - _f64(gt[:, lips])  # (T, L, 3)
    return (diff**2).sum(-1).max(-1)  # (T,)


def lip_max_error_mm(pred: np.ndarray, gt: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Per-frame mm variant: sqrt(e_t) * 1000 = max_{v in lips} ||pred_t,v - gt_t,v|| in mm  ->  (T,)."""
    return np.sqrt(lip_max_sq_error(pred, gt, lips)) * MM


def pool_frames(per_frame: Sequence[np.ndarray]) -> float:
    """Frame-pooled mean: sum of all per-frame values / total number of frames over all sequences.

    This is how LVE is published (long sequences weigh more). Empty input -> nan.
    """
    values = [np.asarray(x, dtype=np.float64).ravel() for x in per_frame]
    total = sum(v.size for v in values)
    return float(sum(v.sum() for v in values) / total) if total else float("nan")


def pool_sequences(per_frame: Sequence[np.ndarray]) -> float:
    """Sequence-averaged mean: mean over sequences of each sequence's frame mean (every sequence
    weighs the same). Reported as the 'sequence-averaged' variant, never as the headline LVE."""
    means = [float(np.mean(x)) for x in per_frame if np.size(x)]
    return float(np.mean(means)) if means else float("nan")


def lve(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], lips: np.ndarray) -> float:
    """LVE over several sequences, frame-pooled, in m² (multiply by 1e5 for the usual table unit)."""
    return pool_frames([lip_max_sq_error(p, g, lips) for p, g in zip(preds, gts, strict=True)])


# ----------------------------------------------------------------------------- MVE
def vertex_error_mm(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Per-frame mean Euclidean vertex error: (1/|R|) sum_{v in R} ||pred_t,v - gt_t,v|| * 1000 -> (T,) mm.

    `region` None = all vertices.
    """
    _check_pair(pred, gt)
    if region is not None:
        pred, gt = pred[:, region], gt[:, region]
    return np.linalg.norm(_f64(pred) - _f64(gt), axis=-1).mean(-1) * MM


def mve(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """MVE of one sequence: mean over frames and vertices of the Euclidean error, in mm."""
    return float(vertex_error_mm(pred, gt, region).mean())


def per_vertex_error_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean over frames of each vertex's Euclidean error -> (V,) mm (for error heat maps)."""
    _check_pair(pred, gt)
    return np.linalg.norm(_f64(pred) - _f64(gt), axis=-1).mean(0) * MM


# ----------------------------------------------------------------------------- FDD
def upper_face_motion_std(verts: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """Upper-face dynamics of one sequence, in m²:

        s = (1/|U|) sum_{v in U} std_t( ||verts_t,v - template_v||² )

    with the population std over frames (ddof=0, numpy's default, as in the published script).
    """
    disp = _f64(verts[:, upper]) - _f64(template[upper])[None]  # (T, U, 3)
    sq = (disp**2).sum(-1)  # (T, U) squared displacement norm
    return float(sq.std(axis=0).mean())


def fdd_sequence(pred: np.ndarray, gt: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """Signed FDD of one sequence (m²): s(gt) - s(pred). Positive = prediction too static."""
    _check_pair(pred, gt)
    return upper_face_motion_std(gt, template, upper) - upper_face_motion_std(pred, template, upper)


def pool_fdd(per_sequence: Sequence[float]) -> tuple[float, float]:
    """(FDD, |FDD|) over sequences, m²: FDD = mean of the signed per-sequence values (the published
    number); |FDD| = mean of their absolute values (cannot cancel between sequences)."""
    x = np.asarray(per_sequence, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(np.abs(x).mean())


# ----------------------------------------------------------------------------- lip sync
def mouth_opening(verts: np.ndarray, upper_idx: np.ndarray, lower_idx: np.ndarray) -> np.ndarray:
    """Mouth opening per frame: ||mean_{v in upper} verts_t,v - mean_{v in lower} verts_t,v|| * 1000
    -> (T,) mm. It includes the lip thickness at rest, so compare series, not absolute values."""
    up = _f64(verts[:, upper_idx]).mean(1)
    low = _f64(verts[:, lower_idx]).mean(1)
    return np.linalg.norm(up - low, axis=-1) * MM


def closure_events(opening_gt: np.ndarray, closed_mm: float = CLOSED_MM) -> list[tuple[int, int]]:
    """Lip closures of the ground truth: maximal runs [start, stop) of frames whose opening above the
    neutral template (mm) is <= closed_mm, leaving out runs that touch the first or the last frame
    (the rest pose before and after speaking, which any still mouth matches)."""
    closed = np.concatenate([[False], np.asarray(opening_gt) <= closed_mm, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(np.int8)))  # alternating starts, stops
    runs = zip(edges[::2], edges[1::2], strict=True)  # padded with False: even count
    return [(int(a), int(b)) for a, b in runs if a > 0 and b < len(opening_gt)]


def closure_minima(
    opening_pred: np.ndarray, opening_gt: np.ndarray, closed_mm: float = CLOSED_MM, tolerance: int = 1
) -> np.ndarray:
    """(E, 2) per ground-truth closure (`closure_events`): the predicted and the true minimum
    opening above neutral (mm). The prediction's minimum is taken over the closure widened by
    `tolerance` frames each side (timing slack: +-1 frame is +-33 ms at 30 fps). Pool the rows of all
    sequences, then: closures reached = share of rows with predicted minimum <= closed_mm."""
    n = len(opening_gt)
    rows = [
        (float(np.min(opening_pred[max(a - tolerance, 0) : min(b + tolerance, n)])), float(np.min(opening_gt[a:b])))
        for a, b in closure_events(opening_gt, closed_mm)
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def pool_closures(per_sequence: Sequence[np.ndarray], closed_mm: float = CLOSED_MM) -> tuple[float, float]:
    """(closures reached in %, mean predicted minus true minimum opening in mm) over the pooled closures
    of all sequences; (nan, nan) when the ground truth has none."""
    rows = np.concatenate([np.reshape(r, (-1, 2)) for r in per_sequence]) if len(per_sequence) else np.zeros((0, 2))
    if len(rows) == 0:
        return float("nan"), float("nan")
    return float(100.0 * np.mean(rows[:, 0] <= closed_mm)), float(np.mean(rows[:, 0] - rows[:, 1]))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length series; nan when either is constant."""
    a, b = _f64(a).ravel(), _f64(b).ravel()
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:  # exactly constant: centring would leave rounding noise
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denom) if denom > 1e-20 else float("nan")


def lag_correlations(pred: np.ndarray, ref: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """corr(pred[t], ref[t - k]) over the overlapping frames for k = -max_lag..max_lag -> (2*max_lag+1,);
    nan where the overlap is under 3 frames or a series is constant there."""
    pred, ref = _f64(pred).ravel(), _f64(ref).ravel()
    n = min(pred.size, ref.size)
    pred, ref = pred[:n], ref[:n]
    out = np.full(2 * max_lag + 1, np.nan)
    for i, k in enumerate(range(-max_lag, max_lag + 1)):
        if n - abs(k) >= 3:
            out[i] = pearson(pred[k:], ref[: n - k]) if k >= 0 else pearson(pred[: n + k], ref[-k:])
    return out


def lag_of(correlations: np.ndarray):
    """The lag k maximising a `lag_correlations` curve (or a mean of several); ties go to the
    smallest |k| (then the negative one); nan when no lag has a finite correlation (e.g. a motionless
    prediction). A stack (..., 2K+1) of curves gives an array of lags."""
    c = np.asarray(correlations, dtype=np.float64)
    max_lag = (c.shape[-1] - 1) // 2
    order = np.array(sorted(range(-max_lag, max_lag + 1), key=abs))  # 0, -1, 1, -2, 2, ...
    vals = np.where(np.isfinite(c), c, -np.inf)[..., order + max_lag]
    best = vals.max(-1, keepdims=True)
    first = np.argmax(vals >= best - 1e-12, axis=-1)  # the first lag (in |k| order) within rounding of the max
    out = np.where(np.isfinite(best[..., 0]), order[first], np.nan).astype(np.float64)
    return float(out) if out.ndim == 0 else out


def best_lag(pred: np.ndarray, ref: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """The shift k in [-max_lag, max_lag] maximising corr(pred[t], ref[t - k]) over the overlap.

    k > 0: `pred` lags behind `ref` by k frames; 0 = in sync. Ties go to the smallest |k|;
    if no shift gives a finite correlation (constant series), nan. Over several sequences, average
    their `lag_correlations` curves (nan-aware) and take `lag_of` the mean.
    """
    return lag_of(lag_correlations(pred, ref, max_lag))


def audio_energy(samples: np.ndarray, sample_rate: int, fps: int, n_frames: int) -> np.ndarray:
    """RMS energy of the audio in a window of 1/fps s centred on each mesh frame (frame i at i/fps s)
    -> (n_frames,). Used for the audio-to-mouth lag."""
    x = _f64(samples).ravel()
    half = max(1, int(round(sample_rate / fps / 2)))
    out = np.zeros(n_frames)
    for i in range(n_frames):
        c = int(round(i * sample_rate / fps))
        seg = x[max(0, c - half) : c + half]
        out[i] = np.sqrt((seg**2).mean()) if seg.size else 0.0
    return out


# ----------------------------------------------------------------------------- smoothness, diversity
def acceleration_mm(verts: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean acceleration magnitude, mm/frame²: mean_{t,v} ||x_{t+1} - 2 x_t + x_{t-1}|| * 1000.

    Multiply by 1e-3 * fps² for m/s². Sequences shorter than 3 frames -> nan.
    """
    x = _f64(verts if region is None else verts[:, region])
    if x.shape[0] < 3:
        return float("nan")
    acc = x[2:] - 2 * x[1:-1] + x[:-2]
    return float(np.linalg.norm(acc, axis=-1).mean() * MM)


def jitter_mm(verts: np.ndarray, region: np.ndarray | None = None) -> float:
    """Jitter = mean jerk magnitude, mm/frame³: mean_{t,v} ||x_{t+2} - 3x_{t+1} + 3x_t - x_{t-1}|| * 1000.

    Multiply by 1e-3 * fps³ for m/s³. Sequences shorter than 4 frames -> nan.
    """
    x = _f64(verts if region is None else verts[:, region])
    if x.shape[0] < 4:
        return float("nan")
    jerk = x[3:] - 3 * x[2:-1] + 3 * x[1:-2] - x[:-3]
    return float(np.linalg.norm(jerk, axis=-1).mean() * MM)


def diversity_mm(samples: np.ndarray, region: np.ndarray | None = None) -> float:
    """Diversity of S samples (S, T, V, 3) for the same input: mean over the S(S-1)/2 pairs of the
    mean per-vertex Euclidean distance (over frames and vertices), mm. Fewer than 2 samples -> nan."""
    s = _f64(samples if region is None else samples[:, :, region])
    pairs = list(combinations(range(s.shape[0]), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([np.linalg.norm(s[i] - s[j], axis=-1).mean() for i, j in pairs]) * MM)


# ----------------------------------------------------------------------------- lip dynamics (naturalness)
def time_derivative(x: np.ndarray, order: int) -> np.ndarray:
    """Finite differences along time (axis 0): order 1 = velocity x_{t+1} - x_t, order 2 = acceleration
    x_{t+1} - 2 x_t + x_{t-1}; (T, ...) -> (T - order, ...), per frame (multiply by fps**order for per
    second). Fewer than order + 1 frames -> an empty array."""
    x = _f64(x)
    if x.shape[0] <= order:
        return np.zeros((0, *x.shape[1:]))
    return np.diff(x, n=order, axis=0)


def squared_rate(series: np.ndarray, order: int) -> np.ndarray:
    """Per-frame squared derivative of a 1-D series (e.g. the mouth opening, mm) -> (T - order,)."""
    return time_derivative(np.ravel(series), order) ** 2


def lip_squared_rate(verts: np.ndarray, lips: np.ndarray, order: int) -> np.ndarray:
    """Per frame, the mean over lip vertices of the squared norm of the derivative, in mm²/frame^(2 order):
    (1/|L|) sum_{v in L} ||D^order x_t,v||² * 1e6  ->  (T - order,). Duplicate indices count once."""
    d = time_derivative(_f64(verts[:, np.unique(lips)]), order)  # (T - order, L, 3)
    return (d**2).sum(-1).mean(-1) * MM**2 if d.size else np.zeros(0)


def spread_ratio(pred_sq: Sequence[np.ndarray], gt_sq: Sequence[np.ndarray]) -> float:
    """Predicted / true spread of a derivative: sqrt(sum pred_sq / sum gt_sq) over the frames of all
    sequences (both lists from `squared_rate` / `lip_squared_rate`, pairwise the same frames), i.e. the
    ratio of root-mean-square rates. 1 = the true dynamics, < 1 = over-smoothed, > 1 = jittery;
    nan when the ground truth does not move."""
    num = sum(float(np.sum(p)) for p in pred_sq)
    den = sum(float(np.sum(g)) for g in gt_sq)
    return float(np.sqrt(num / den)) if den > 0 else float("nan")


def lip_speeds(verts: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Speed of every lip vertex in every frame, ||x_{t+1,v} - x_{t,v}|| * 1000 -> (T - 1, |L|) mm/frame
    (duplicate indices count once)."""
    d = time_derivative(_f64(verts[:, np.unique(lips)]), 1)
    return np.linalg.norm(d, axis=-1) * MM


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein (earth mover's) distance between the empirical distributions of the values in
    `a` and `b` (any sizes): the integral over x of |F_a(x) - F_b(x)|, F the empirical CDFs. Same unit
    as the values; nan when either is empty."""
    a, b = np.sort(_f64(a).ravel()), np.sort(_f64(b).ravel())
    if a.size == 0 or b.size == 0:
        return float("nan")
    x = np.concatenate([a, b])
    x.sort(kind="mergesort")
    widths = np.diff(x)
    cdf_a = np.searchsorted(a, x[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, x[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


# ----------------------------------------------------------------------------- amplitude at peaks
def opening_peaks(opening: np.ndarray, prominence: float = PEAK_PROMINENCE_MM) -> np.ndarray:
    """Frames of the true mouth-opening peaks: local maxima of `opening` (mm; a plateau counts once, at
    its middle frame; not at the first or last frame) whose prominence is at least `prominence` mm.
    Prominence (as scipy.signal.peak_prominences): on each side, the lowest value between the peak and
    the nearest higher frame (or the series' end); the peak's height above the higher of those two."""
    x = _f64(opening).ravel()
    if x.size < 3 or not np.isfinite(x).all():
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(np.diff(x) != 0) + 1  # starts of runs of equal values
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [x.size]])  # exclusive
    peaks = []
    for a, b in zip(starts, stops, strict=True):
        if a == 0 or b == x.size or x[a - 1] >= x[a] or x[b] >= x[a]:
            continue  # at an end, or not higher than both neighbours
        higher_left = np.flatnonzero(x[:a] > x[a])
        higher_right = np.flatnonzero(x[b:] > x[a])
        left = x[(higher_left[-1] + 1 if higher_left.size else 0) : a].min()
        right = x[b : (b + higher_right[0] if higher_right.size else x.size)].min()
        if x[a] - max(left, right) >= prominence:
            peaks.append((a + b - 1) // 2)
    return np.array(peaks, dtype=np.int64)


def peak_openings(
    opening_pred: np.ndarray, opening_gt: np.ndarray, prominence: float = PEAK_PROMINENCE_MM, tolerance: int = 1
) -> np.ndarray:
    """(P, 2) per true opening peak (`opening_peaks` of opening_gt): the predicted maximum opening over the
    peak frame +- `tolerance` frames and the true opening at the peak. Pass openings above the neutral
    face (mm), so that the ratio of the columns' sums (`pool_peaks`) is the share of the true amplitude
    the prediction reaches."""
    n = len(opening_gt)
    rows = [
        (float(np.max(opening_pred[max(p - tolerance, 0) : min(p + tolerance + 1, n)])), float(opening_gt[p]))
        for p in opening_peaks(opening_gt, prominence)
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def pool_peaks(per_sequence: Sequence[np.ndarray]) -> float:
    """Opening reached at the true peaks, pooled over the peaks of all sequences: sum of predicted / sum
    of true peak openings (above neutral). 1 = full amplitude, < 1 = under-articulated; nan without peaks."""
    rows = np.concatenate([np.reshape(r, (-1, 2)) for r in per_sequence]) if len(per_sequence) else np.zeros((0, 2))
    den = rows[:, 1].sum()
    return float(rows[:, 0].sum() / den) if len(rows) and den > 0 else float("nan")


# ----------------------------------------------------------------------------- learned lip sync (SyncNet style)
def sync_scores(distances: np.ndarray) -> tuple[float, float, int]:
    """SyncNet's scores from the distances between motion windows and shifted audio windows:
    `distances` (N windows, 2K+1 shifts), column K + k = motion window at t vs audio window at t + k.
    Per shift, the mean distance over the windows; LSE-D = the smallest mean distance, LSE-C
    (confidence) = the median over shifts minus that minimum, offset = how many frames the motion lags
    the audio (-k of the minimum: motion that matches earlier audio is late, > 0).
    (nan, nan, 0) when there are no windows."""
    d = _f64(distances)
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] % 2 == 0:
        return float("nan"), float("nan"), 0
    curve = d.mean(0)
    best = int(np.argmin(curve))
    return float(curve[best]), float(np.median(curve) - curve[best]), d.shape[1] // 2 - best


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (maximum likelihood, divided by N) of the rows of x (N, D)."""
    x = _f64(x)
    mu = x.mean(0)
    c = x - mu
    return mu, c.T @ c / len(x)


def sqrtm_psd(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root of positive semi-definite matrices (..., D, D) (negative eigenvalues
    from rounding clipped to 0)."""
    w, v = np.linalg.eigh(_f64(cov))
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def frechet_distance(mu1, cov1, mu2, cov2, root2: np.ndarray | None = None):
    """Fréchet distance between the Gaussians N(mu1, cov1) and N(mu2, cov2) (as FID):
    ||mu1 - mu2||² + tr(cov1) + tr(cov2) - 2 tr((cov2^1/2 cov1 cov2^1/2)^1/2). `root2`: cov2^1/2 when
    already known (`sqrtm_psd`). Accepts stacks (..., D) / (..., D, D) and returns an array then."""
    mu1, mu2, cov1, cov2 = _f64(mu1), _f64(mu2), _f64(cov1), _f64(cov2)
    root = sqrtm_psd(cov2) if root2 is None else _f64(root2)
    inner = np.linalg.eigvalsh(root @ cov1 @ root)
    tr = np.trace(cov1, axis1=-2, axis2=-1) + np.trace(cov2, axis1=-2, axis2=-1)
    out = ((mu1 - mu2) ** 2).sum(-1) + tr - 2 * np.sqrt(np.clip(inner, 0, None)).sum(-1)
    return float(out) if np.ndim(out) == 0 else out
