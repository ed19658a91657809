"""How the evaluation's metrics are measured per sequence and pooled over sequences, with weights.

`sequence_metrics` (geometry, dynamics, amplitude) and `sync_metrics` (the sync expert's distances
and embeddings) reduce one predicted sequence to the numbers pooling needs (sums with their counts,
per-sequence values, curves, closure and peak rows); `stack` puts the sequences of one condition
side by side; `pool_metrics(stacked, w)` pools them with sequence weights w (R, N) -> {key: (R,)}.
The evaluation's figure is row "all ones", a bootstrap replicate the row of a resample's counts
(`vocagan.stats.bootstrap_counts`): the same code gives both, so an interval is always of the
reported figure. Pure numpy on top of `vocagan.metrics`.
"""

from __future__ import annotations

import numpy as np

from vocagan import metrics as M
from vocagan.prep.regions import CLOSED_MM
from vocagan.sync_expert import MAX_OFFSET, distances

NAN = float("nan")


def sequence_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    template: np.ndarray,
    regions,
    open_pred: np.ndarray,
    open_gt: np.ndarray,
    energy: np.ndarray | None,
    open_rest: float = NAN,
) -> dict:
    """Every geometric metric of one predicted sequence (T, V, 3) against its ground truth, as the
    per-sequence numbers `pool_metrics` pools: sums over frames with their count (frame-pooled
    metrics), per-sequence values (fdd, corr, accel, jitter, lip_speed_w1), lag-correlation curves
    (lag, alag), (E, 2) closure minima and (P, 2) peak openings, and [pred, gt] sums of squared
    derivatives (open_vel, open_acc, lip_vel, lip_acc). Mouth-opening series (T,) in mm, open_rest the
    template's opening (closures and peaks are measured above it)."""
    lips = regions.lips
    lve = M.lip_max_sq_error(pred, gt, lips)
    out = {
        "frames": len(lve),
        "lve_sum": float(lve.sum()),
        "lve_mean": float(lve.mean()) if len(lve) else NAN,
        "lve_mm_sum": float(M.lip_max_error_mm(pred, gt, lips).sum()),
        "mve_sum": float(M.vertex_error_mm(pred, gt).sum()),
        "mve_lips_sum": float(M.vertex_error_mm(pred, gt, lips).sum()),
        "fdd": M.fdd_sequence(pred, gt, template, regions.upper_face),
        "corr": M.pearson(open_pred, open_gt),
        "diff_sum": float(np.abs(open_pred - open_gt).sum()),
        "lag": M.lag_correlations(open_pred, open_gt),
        "alag": M.lag_correlations(open_pred, energy) if energy is not None else np.full(2 * M.MAX_LAG + 1, NAN),
        "accel": M.acceleration_mm(pred, lips),
        "jitter": M.jitter_mm(pred, lips),
        "closures": M.closure_minima(open_pred - open_rest, open_gt - open_rest),
        "peaks": M.peak_openings(open_pred - open_rest, open_gt - open_rest),
        "lip_speed_w1": M.wasserstein_1d(M.lip_speeds(pred, lips), M.lip_speeds(gt, lips)),
    }
    for key, order in (("vel", 1), ("acc", 2)):
        out[f"open_{key}"] = [float(M.squared_rate(s, order).sum()) for s in (open_pred, open_gt)]
        out[f"lip_{key}"] = [float(M.lip_squared_rate(v, lips, order).sum()) for v in (pred, gt)]
    return out


def sync_metrics(motion_emb: np.ndarray, audio_emb: np.ndarray) -> dict:
    """The sync expert's numbers for one motion sequence: LSE-D and LSE-C (`metrics.sync_scores` on the
    distances to the audio shifted by -MAX_OFFSET..MAX_OFFSET), the mean distance curve over the
    offsets (2K+1,), and the sums the Fréchet distance pools (embeddings, their outer products, count)."""
    d = distances(motion_emb, audio_emb)
    lse_d, lse_c, _ = M.sync_scores(d)
    e = np.asarray(motion_emb, np.float64)
    return {
        "lse_d": lse_d,
        "lse_c": lse_c,
        "sync_curve": d.mean(0) if len(d) else np.full(2 * MAX_OFFSET + 1, NAN),
        "emb_sum": e.sum(0),
        "emb_outer": e.T @ e,
        "emb_n": len(e),
    }


# ----------------------------------------------------------------------------- pooling with weights
def stack(rows: list[dict]) -> dict[str, np.ndarray]:
    """Per-sequence dicts (`sequence_metrics` [+ `sync_metrics`]) -> arrays with one row per sequence."""
    out: dict[str, np.ndarray] = {}
    for key in rows[0]:
        if key == "closures":
            c = [np.reshape(r[key], (-1, 2)) for r in rows]
            out["closures_n"] = np.array([len(x) for x in c], np.float64)
            out["closures_reached"] = np.array([np.sum(x[:, 0] <= CLOSED_MM) for x in c], np.float64)
            out["closures_gap"] = np.array([np.sum(x[:, 0] - x[:, 1]) for x in c], np.float64)
        elif key == "peaks":
            p = [np.reshape(r[key], (-1, 2)) for r in rows]
            out["peaks_pred"] = np.array([x[:, 0].sum() for x in p], np.float64)
            out["peaks_gt"] = np.array([x[:, 1].sum() for x in p], np.float64)
        else:
            out[key] = np.array([np.asarray(r[key], np.float64) for r in rows])
    return out


def weighted_ratio(w: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """sum_i w_i num_i / sum_i w_i den_i per row of w (R, N); nan where the denominator is 0 or not finite."""
    n, d = w @ num, w @ den
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((d > 0) & np.isfinite(d), n / np.where(d > 0, d, 1.0), NAN)


def weighted_mean(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weighted mean of the finite per-sequence values x (N,) per row of w (R, N) (nan-aware)."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    return weighted_ratio(w, np.where(finite, x, 0.0), finite.astype(np.float64))


def weighted_curve(w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Weighted nan-aware mean of per-sequence curves c (N, L) -> (R, L)."""
    finite = np.isfinite(c)
    num, den = w @ np.where(finite, c, 0.0), w @ finite.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), NAN)


def gaussians(w: np.ndarray, s: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (R, D), covariance (R, D, D) and count (R,) of the embeddings pooled over the sequences of
    `s` (`sync_metrics` sums, `_stack`ed), each sequence weighted by w (R, N)."""
    n = w @ s["emb_n"]
    safe = np.where(n > 0, n, 1.0)
    mu = (w @ s["emb_sum"]) / safe[:, None]
    second = np.einsum("rn,nij->rij", w, s["emb_outer"]) / safe[:, None, None]
    return mu, second - mu[:, :, None] * mu[:, None, :], n


def frechet(w: np.ndarray, pred: dict, gt: tuple) -> np.ndarray:
    """Fréchet distance between the Gaussians of the pooled (weighted) embeddings of the predictions
    and of the ground truth (gt: `gaussians` of the ground truth + the square root of its covariance,
    computed once for all conditions) -> (R,)."""
    mu1, c1, n1 = gaussians(w, pred)
    mu2, c2, n2, root2 = gt
    out = np.asarray(M.frechet_distance(mu1, c1, mu2, c2, root2), np.float64).reshape(-1)
    return np.where((n1 > 1) & (n2 > 1), out, NAN)


def pool_metrics(s: dict[str, np.ndarray], w: np.ndarray, gt_sync: tuple | None = None) -> dict[str, np.ndarray]:
    """The metrics of one condition from its per-sequence numbers `s` (`_stack`), each sequence i
    weighted by w[:, i] (w (R, N): all ones for the point estimate, bootstrap counts for replicates)
    -> {key: (R,)}. This is the one place that says how each metric pools over sequences:
    frame-pooled (sum over all frames / their number), per-sequence values averaged, closures and
    peaks pooled, lags and the sync offset from the mean curve, the Fréchet distance from the pooled
    embeddings (gt_sync: `gaussians` of the ground truth's embeddings + its covariance's square root)."""
    frames = s["frames"]

    def spread(key: str) -> np.ndarray:
        return np.sqrt(weighted_ratio(w, s[key][:, 0], s[key][:, 1]))

    out = {
        "lve": weighted_ratio(w, s["lve_sum"], frames),
        "lve_seq": weighted_mean(w, s["lve_mean"]),
        "lve_mm": weighted_ratio(w, s["lve_mm_sum"], frames),
        "mve_mm": weighted_ratio(w, s["mve_sum"], frames),
        "mve_lips_mm": weighted_ratio(w, s["mve_lips_sum"], frames),
        "fdd": weighted_mean(w, s["fdd"]),
        "fdd_abs": weighted_mean(w, np.abs(s["fdd"])),
        "mouth_corr": weighted_mean(w, s["corr"]),
        "mouth_diff_mm": weighted_ratio(w, s["diff_sum"], frames),
        "lag": M.lag_of(weighted_curve(w, s["lag"])),
        "audio_lag": M.lag_of(weighted_curve(w, s["alag"])),
        "accel_mm": weighted_mean(w, s["accel"]),
        "jitter_mm": weighted_mean(w, s["jitter"]),
        "closure_rate": 100.0 * weighted_ratio(w, s["closures_reached"], s["closures_n"]),
        "closure_gap_mm": weighted_ratio(w, s["closures_gap"], s["closures_n"]),
        "open_vel_ratio": spread("open_vel"),
        "open_acc_ratio": spread("open_acc"),
        "lip_vel_ratio": spread("lip_vel"),
        "lip_acc_ratio": spread("lip_acc"),
        "lip_speed_w1": weighted_mean(w, s["lip_speed_w1"]),
        "peak_open_ratio": weighted_ratio(w, s["peaks_pred"], s["peaks_gt"]),
    }
    if "lse_d" in s:
        out["lse_d"] = weighted_mean(w, s["lse_d"])
        out["lse_c"] = weighted_mean(w, s["lse_c"])
        out["sync_offset"] = curve_offset(weighted_curve(w, s["sync_curve"]))
        out["sync_fd"] = frechet(w, s, gt_sync) if gt_sync is not None else np.full(len(w), NAN)
    return out


def curve_offset(curves: np.ndarray) -> np.ndarray:
    """How many frames the motion lags the audio by the minimum of mean sync-distance curves (R, 2K+1)
    (as `metrics.sync_scores`: > 0 = motion late); nan for an all-nan row."""
    finite = np.isfinite(curves).any(-1)
    best = curves.shape[-1] // 2 - np.argmin(np.where(np.isfinite(curves), curves, np.inf), axis=-1)
    return np.where(finite, best, NAN).astype(np.float64)


def opening_keys() -> tuple[str, ...]:
    """Metrics read from the mouth opening (n/a when it cannot be measured)."""
    return (
        "mouth_corr",
        "mouth_diff_mm",
        "lag",
        "audio_lag",
        "closure_rate",
        "closure_gap_mm",
        "open_vel_ratio",
        "open_acc_ratio",
        "peak_open_ratio",
    )


def sequence_row(subject: str, sentence: str, label: str, m: dict, opening: bool) -> dict:
    """One row of per_sequence.csv: the `sequence_metrics` (+ `sync_metrics`) `m` of one test sequence
    under style `label`; the opening-based values n/a when the mouth opening is not measured."""
    n = m["frames"]
    closures = np.reshape(m["closures"], (-1, 2))
    return {
        "subject": subject,
        "sentence": sentence,
        "style": label,
        "frames": n,
        "lve_e5": m["lve_mean"] * 1e5,
        "lve_mm": m["lve_mm_sum"] / n,
        "mve_mm": m["mve_sum"] / n,
        "fdd_e7": m["fdd"] * 1e7,
        "mouth_corr": m["corr"],
        "mouth_diff_mm": m["diff_sum"] / n,
        "lag": M.lag_of(m["lag"]) if opening else NAN,
        "accel_mm": m["accel"],
        "closures": len(closures),
        "closures_reached": int(np.sum(closures[:, 0] <= CLOSED_MM)),
        "lip_vel_ratio": float(np.sqrt(m["lip_vel"][0] / m["lip_vel"][1])) if m["lip_vel"][1] > 0 else NAN,
        "lip_speed_w1": m["lip_speed_w1"],
        "peak_open_ratio": M.pool_peaks([m["peaks"]]) if opening else NAN,
        "lse_d": m.get("lse_d", NAN),
        "lse_c": m.get("lse_c", NAN),
    }
