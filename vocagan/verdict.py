"""Estimates with 95 % intervals for the entries of a comparison, paired differences between them,
and the verdict generated from those intervals (never written by hand).

Uncertainty (`estimate`): a two-level bootstrap. Every evaluation of the test set saved its
replicates over the same resamples of test sequences (`vocagan.evaluate`); for each resample b, an
entry's value is the mean over its training seeds plus a Student-t draw (S - 1 degrees of freedom)
scaled by the seeds' standard deviation / sqrt(S) (`stats.seed_mean_replicates`: the seed level as a
parametric bootstrap, which gives the t-interval when the test set is held fixed; resampling only 3
seeds would cover far less than 95 %). The interval of an entry is the percentile interval of those
replicates: it covers which sentences were tested AND which seeds were trained. A difference between
two entries is computed replicate by replicate, so it is paired by test sequence and condition (the
same resample b) while the seed draws of the two entries are independent (seed k of one model has
nothing to do with seed k of another: no pairing by seed). Baselines are deterministic: their
intervals cover the test sequences only. With 3 seeds the t quantile is 4.3: intervals are wide, and
"no difference" often means "not resolvable with this many seeds and sentences".

The verdict names a winner on a metric only where the interval of its difference from every other
entry excludes 0, and says "no difference" otherwise; it tests the claim of the model it is given
(`focus`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from vocagan.config import DEFAULT_MODEL
from vocagan.eval_report import TABLE, format_ci
from vocagan.models import label
from vocagan.stats import LEVEL, N_RESAMPLES, SEED, SEED_DRAWS, interval, seed_mean_replicates

# (key, criterion) of the metrics the verdict judges: "lower" / "higher" is better, "one" = closer
# to 1 is better (pred / gt ratios), "zero" = closer to 0 (lags), "gt" = closer to the ground
# truth's own value (key + "_gt_mm")
KEY_METRICS = [
    ("lve", "lower"),
    ("lve_mm", "lower"),
    ("mve_mm", "lower"),
    ("fdd_abs", "lower"),
    ("mouth_corr", "higher"),
    ("mouth_diff_mm", "lower"),
    ("closure_rate", "higher"),
    ("peak_open_ratio", "one"),
    ("lag", "zero"),
    ("lse_d", "lower"),
    ("lse_c", "higher"),
    ("sync_fd", "lower"),
    ("lip_vel_ratio", "one"),
    ("lip_acc_ratio", "one"),
    ("open_vel_ratio", "one"),
    ("open_acc_ratio", "one"),
    ("lip_speed_w1", "lower"),
    ("accel_mm", "gt"),
]
CRITERIA = {
    "lower": "lower is better",
    "higher": "higher is better",
    "one": "closer to 1 is better",
    "zero": "closer to 0 is better",
    "gt": "closer to the ground truth's is better",
}
# what the verdict says about the model whose claim is tested: (key, name) - accuracy, sync, naturalness
FOCUS_METRICS = [
    ("lve", "LVE"),
    ("mouth_corr", "lip sync (mouth-opening correlation)"),
    ("closure_rate", "lip closures reached"),
    ("lse_d", "learned lip sync (LSE-D)"),
    ("lse_c", "learned lip sync (LSE-C)"),
    ("sync_fd", "motion realism (Fréchet distance of sync embeddings)"),
    ("lip_vel_ratio", "lip dynamics (velocity spread)"),
    ("lip_speed_w1", "lip dynamics (speed distribution, W1)"),
    ("peak_open_ratio", "amplitude (opening at true peaks)"),
]
# judged among the models only: a still mouth (zero / mean motion) "reaches" every closure
MODELS_ONLY = {"closure_rate"}
LABELS = {k: (label, scale) for k, label, scale in TABLE}

UNCERTAINTY = (
    f"every cell is the mean over seeds [{100 * LEVEL:.0f} % interval] from a two-level bootstrap "
    f"({N_RESAMPLES} resamples x {SEED_DRAWS} seed draws, seed {SEED}): the test sequences are resampled "
    "(the same resamples for every entry, so differences are paired by test sequence and condition) and, "
    "within each resample, the seed level is drawn from a Student-t distribution with the seeds' spread "
    "(S-1 degrees of freedom; independently per model: no pairing by seed). Baselines are deterministic: "
    "their intervals cover the test sequences only. A difference counts only where its interval excludes "
    "0; with few seeds (t quantile 4.3 for 3 seeds) 'no difference' often means 'not resolvable with this "
    "many seeds and sentences'; each interval is 95 % on its own, so among many metrics about one in "
    "twenty true non-differences may still show as a difference"
)


@dataclass
class Estimates:
    """Per entry (model or baseline) and metric: the mean over seeds, its bootstrap replicates (R,) and
    95 % interval; `difference` gives paired differences between entries (see the module doc)."""

    point: dict[str, dict[str, float]]  # entry -> key -> mean over seeds
    reps: dict[str, dict[str, np.ndarray]]  # entry -> key -> (R,) replicates of that mean
    seeds: dict[str, int]  # entry -> number of runs

    def value(self, entry: str, key: str) -> float:
        return self.point.get(entry, {}).get(key, float("nan"))

    def ci(self, entry: str, key: str) -> tuple[float, float]:
        r = self.reps.get(entry, {}).get(key)
        return interval(r) if r is not None else (float("nan"), float("nan"))

    def score(self, entry: str, key: str, criterion: str) -> tuple[float, np.ndarray]:
        """(point, replicates) of the quantity where lower is better for this criterion."""
        point = self.value(entry, key)
        reps = self.reps.get(entry, {}).get(key, np.full(N_RESAMPLES * SEED_DRAWS, point))
        if criterion == "higher":
            return -point, -reps
        if criterion == "one":
            return abs(point - 1.0), np.abs(reps - 1.0)
        if criterion == "zero":
            return abs(point), np.abs(reps)
        if criterion == "gt":
            gt_key = key.replace("_mm", "_gt_mm")
            gt_point = self.value(entry, gt_key)
            gt_reps = self.reps.get(entry, {}).get(gt_key, np.full(N_RESAMPLES * SEED_DRAWS, gt_point))
            return abs(point - gt_point), np.abs(reps - gt_reps)
        return point, reps

    def difference(self, a: str, b: str, key: str, criterion: str) -> tuple[float, float, float]:
        """(d, low, high): score(a) - score(b) (`score`: lower is better), so d < 0 means `a` is better;
        the replicates of both are the same test-sequence resamples (paired)."""
        pa, ra = self.score(a, key, criterion)
        pb, rb = self.score(b, key, criterion)
        lo, hi = interval(ra - rb)
        return pa - pb, lo, hi

    def shown_difference(self, a: str, b: str, key: str, criterion: str) -> tuple[float, float, float]:
        """The difference as a reader sees it: a - b of the metric itself for "lower" / "higher", of the
        distance to the target (|x - 1|, |x|, |x - gt|) otherwise."""
        d, lo, hi = self.difference(a, b, key, criterion)
        return (-d, -hi, -lo) if criterion == "higher" else (d, lo, hi)

    def judge(self, a: str, b: str, key: str, criterion: str) -> str:
        """ "better" (a better than b: the interval of the difference excludes 0 on a's side), "worse",
        "no difference" (it includes 0), or "n/a"."""
        d, lo, hi = self.difference(a, b, key, criterion)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return "n/a"
        return "better" if hi < 0 else "worse" if lo > 0 else "no difference"


def estimate(results: dict[str, list[dict]], replicates: dict[str, list[dict]] | None = None) -> Estimates:
    """Estimates from per-run metrics (entry -> [metrics per seed]) and their bootstrap replicates over
    test sequences (entry -> [key -> (R,) per seed], from each evaluation's bootstrap.npz). A run
    without replicates for a key contributes its value to every replicate (seed variation only)."""
    replicates = replicates or {}
    point: dict[str, dict[str, float]] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    for entry, runs in results.items():
        point[entry], reps[entry] = {}, {}
        keys = dict.fromkeys(k for m in runs for k in m)
        entry_seed = SEED + 1 + zlib.crc32(entry.encode()) % 100_000  # independent seed draws per entry
        for key in keys:
            values = np.array([_num(m.get(key)) for m in runs], np.float64)
            if not np.isfinite(values).any():
                point[entry][key] = float("nan")
                continue
            point[entry][key] = float(np.nanmean(values))
            rows = []
            for s, v in enumerate(values):
                given = replicates.get(entry, [])[s].get(key) if s < len(replicates.get(entry, [])) else None
                rows.append(np.asarray(given, np.float64) if given is not None else np.full(N_RESAMPLES, v))
            n = min(len(r) for r in rows)
            reps[entry][key] = seed_mean_replicates(np.stack([r[:n] for r in rows]), seed=entry_seed)
    return Estimates(point, reps, {e: len(r) for e, r in results.items()})


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def fmt3(x, scale: float = 1.0) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x * scale:.3f}"


def diff_text(est: Estimates, a: str, b: str, key: str, criterion: str) -> str:
    d, lo, hi = est.shown_difference(a, b, key, criterion)
    scale = LABELS.get(key, ("", 1.0))[1]
    return format_ci(d, (lo, hi), scale, fmt3)


# ----------------------------------------------------------------------------- the verdict
def _what(key: str) -> str:
    return LABELS[key][0] + (" (among the models)" if key in MODELS_ONLY else "")


def verdict(est: Estimates, models: list[str], focus: str = DEFAULT_MODEL) -> list[str]:
    """Sentences generated from the intervals: per key metric the best entry, named a winner only where
    the interval of its difference from every other entry excludes 0 ("no difference" otherwise); how
    each model compares with the mean-motion baseline on LVE; and whether `focus` (the model whose
    claim is tested; Transformer+GAN by default) wins on accuracy, sync and naturalness, and against
    each other model."""
    lines = []
    for key, crit in KEY_METRICS:
        entries = [n for n in est.point if np.isfinite(est.value(n, key)) and (key not in MODELS_ONLY or n in models)]
        entries = [n for n in entries if np.isfinite(est.score(n, key, crit)[0])]
        if not entries:
            continue
        ranked = sorted(entries, key=lambda n: est.score(n, key, crit)[0])
        best = ranked[0]
        what = f"{_what(key)} [{CRITERIA[crit]}]"
        scores = [est.score(n, key, crit)[0] for n in ranked]
        if len(ranked) > 1 and "zero motion" in ranked and max(scores) - min(scores) <= 1e-9 * max(1.0, abs(scores[0])):
            # the template-only baseline scores the same as every model: nobody moves what this metric reads
            lines.append(
                f"{what}: the same for every entry, zero motion included: no model moves the region this "
                f"metric reads (with prep.region 'mouth' the models animate the mouth crop only and the "
                f"upper face stays the template), so it does not separate them."
            )
            continue
        if len(ranked) == 1:
            lines.append(f"{what}: only {label(best)} was measured.")
            continue
        tied = [n for n in ranked[1:] if est.judge(best, n, key, crit) != "better"]
        if not tied:
            second = ranked[1]
            lines.append(
                f"{what}: best is {label(best)}, better than every other entry (vs {label(second)}: "
                f"{diff_text(est, best, second, key, crit)})."
            )
        else:
            rest = [n for n in ranked[1:] if n not in tied]
            lines.append(
                f"{what}: no difference between {label(best)} and {', '.join(label(n) for n in tied)} (the "
                f"interval of each difference from {label(best)} includes 0"
                + f"; vs {label(tied[0])}: {diff_text(est, best, tied[0], key, crit)}"
                + ")"
                + (f"; {label(best)} is better than {', '.join(label(n) for n in rest)}" if rest else "")
                + "."
            )
    if "mean motion" in est.point:
        ref = est.value("mean motion", "lve")
        for name in models:
            lve = est.value(name, "lve")
            if not (np.isfinite(lve) and np.isfinite(ref)):
                continue
            j = est.judge(name, "mean motion", "lve", "lower")
            word = {"better": "beats", "worse": "is WORSE than", "no difference": "shows no difference from"}.get(
                j, "cannot be compared with"
            )
            lines.append(
                f"{label(name)} {word} the mean-motion baseline on LVE ({lve * 1e5:.3f} vs {ref * 1e5:.3f} x1e-5 m², "
                f"{100 * (ref - lve) / ref:+.1f}%; difference {diff_text(est, name, 'mean motion', 'lve', 'lower')})."
            )
    name = label(focus)
    if focus not in models:
        lines.append(f"{name} was not part of this comparison.")
        return lines
    crit_of = dict(KEY_METRICS)
    others = [m for m in models if m != focus]
    for key, what in FOCUS_METRICS:
        crit = crit_of[key]
        if not np.isfinite(est.score(focus, key, crit)[0]):
            lines.append(f"{name} on {what}: not measured (no finite values).")
            continue
        rivals = [n for n in est.point if n != focus and np.isfinite(est.score(n, key, crit)[0])]
        rivals = [n for n in rivals if key not in MODELS_ONLY or n in models]
        judged = {n: est.judge(focus, n, key, crit) for n in rivals}
        worse_than = [n for n, j in judged.items() if j == "worse"]
        same_as = [n for n, j in judged.items() if j == "no difference"]
        if not rivals:
            lines.append(f"{name} on {what}: nothing to compare with.")
        elif not worse_than and not same_as:
            lines.append(f"{name} wins on {what}: better than every other entry (95 % intervals exclude 0).")
        elif not worse_than:
            lines.append(
                f"{name} does NOT win on {what}: no difference from {', '.join(label(n) for n in same_as)}"
                + (f" (vs {label(same_as[0])}: {diff_text(est, focus, same_as[0], key, crit)})")
                + "."
            )
        else:
            best = min(worse_than, key=lambda n: est.score(n, key, crit)[0])
            lines.append(
                f"{name} does NOT win on {what}: {', '.join(label(n) for n in worse_than)} "
                f"{'is' if len(worse_than) == 1 else 'are'} better (vs {label(best)}: "
                f"{diff_text(est, focus, best, key, crit)})."
            )
    for other in others:
        judged = {key: est.judge(focus, other, key, crit_of[key]) for key, _ in FOCUS_METRICS}
        parts = [
            f"{word} on {', '.join(what for key, what in FOCUS_METRICS if judged[key] == j)}"
            for j, word in (("better", "better"), ("worse", "worse"), ("no difference", "no difference"))
            if any(v == j for v in judged.values())
        ]
        lines.append(f"{name} vs {label(other)}: " + ("; ".join(parts) if parts else "nothing measured") + ".")
    return lines


def all_differences(est: Estimates, names: list[str], models: list[str]) -> dict:
    """Every pair of entries on every judged metric: the shown difference, its interval, the judgement."""
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pair = {}
            for key, crit in KEY_METRICS:
                if key in MODELS_ONLY and (a not in models or b not in models):
                    continue
                d, lo, hi = est.shown_difference(a, b, key, crit)
                if np.isfinite(d):
                    pair[key] = {
                        "difference": d,
                        "ci95": [lo, hi],
                        "criterion": CRITERIA[crit],
                        "judgement": {"better": f"{a} better", "worse": f"{b} better"}.get(
                            est.judge(a, b, key, crit), est.judge(a, b, key, crit)
                        ),
                    }
            out[f"{a} - {b}"] = pair
    return out
