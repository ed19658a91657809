"""Evaluation metrics: pure numpy functions on vertex arrays (T, V, 3) in metres.

Definitions follow the published VOCASET protocol (DESIGN.md §2) and the semantics of the public
FaceFormer/CodeTalker metric script (`cal_metric.py`): LVE is the per-frame maximum over lip
vertices of the *squared* L2 error, averaged over all frames pooled across sequences (m², printed
×1e-5); FDD is, per sequence, mean over upper-face vertices of the temporal (population, ddof=0)
std of the squared displacement norm from the template, ground truth minus prediction, averaged
over sequences.

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


def lag_of(correlations: np.ndarray) -> float:
    """The lag k maximising a `lag_correlations` curve (or a mean of several); ties go to the
    smallest |k|; nan when no lag has a finite correlation (e.g. a motionless prediction)."""
    c = np.asarray(correlations, dtype=np.float64)
    max_lag = (c.size - 1) // 2
    best, best_k = -np.inf, float("nan")
    for k in sorted(range(-max_lag, max_lag + 1), key=abs):
        r = c[k + max_lag]
        if np.isfinite(r) and r > best + 1e-12:
            best, best_k = r, k
    return best_k


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
