"""What an evaluation reports: `EvalResult` (headline metrics averaged over styles, the fixed-style
metrics, each with its 95 % interval and bootstrap replicates, the protocol as applied, one row per
test sequence and style) with its Markdown table and summary, and the files written for it:
metrics.json (strict JSON, nan -> null; `<name>_ci95: [low, high]` beside every `<name>`),
bootstrap.npz (the replicates, which `compare` pairs across models), per_sequence.csv, metrics.md,
sync_expert.pt (a copy of the lip-sync expert that scored it) and five plots (LVE per test
sequence, the mouth opening of one sequence, the mean per-vertex error on the template, the
naturalness and sync figures with their intervals, the sync expert's distance over audio offsets).
The metric keys come from `vocagan.evaluate.run_protocol`.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocagan import plotting
from vocagan.utils import atomic_path, atomic_write_json, atomic_write_text

CI_SUFFIX = "_ci95"  # metrics.json: "<name>_ci95": [low, high] beside "<name>"

# (key, label, scale) of the headline metrics, in table order
TABLE = [
    ("lve", "LVE (x1e-5 m², frame-pooled)", 1e5),
    ("lve_seq", "LVE (x1e-5 m², sequence-averaged)", 1e5),
    ("lve_mm", "LVE (mm, frame-pooled)", 1),
    ("mve_mm", "MVE (mm, all vertices)", 1),
    ("mve_lips_mm", "MVE lips (mm)", 1),
    ("fdd", "FDD (x1e-7 m², signed)", 1e7),
    ("fdd_abs", "|FDD| (x1e-7 m²)", 1e7),
    ("mouth_corr", "mouth-opening corr. (pred vs gt)", 1),
    ("mouth_diff_mm", "mouth-opening |diff| (mm)", 1),
    ("closure_rate", "lip closures reached (%)", 1),
    ("closure_gap_mm", "opening at gt closures, pred - gt (mm)", 1),
    ("peak_open_ratio", "opening at gt opening peaks, pred / gt", 1),
    ("lag", "lag pred vs gt (frames)", 1),
    ("audio_lag", "lag pred vs audio energy (frames)", 1),
    ("audio_lag_gt", "lag gt vs audio energy (frames)", 1),
    ("lip_vel_ratio", "lip velocity spread, pred / gt", 1),
    ("lip_acc_ratio", "lip acceleration spread, pred / gt", 1),
    ("open_vel_ratio", "mouth-opening velocity spread, pred / gt", 1),
    ("open_acc_ratio", "mouth-opening acceleration spread, pred / gt", 1),
    ("lip_speed_w1", "lip speed W1 to gt (mm/frame)", 1),
    ("accel_mm", "acceleration lips (mm/frame²)", 1),
    ("accel_gt_mm", "acceleration lips, gt (mm/frame²)", 1),
    ("jitter_mm", "jitter lips (mm/frame³)", 1),
    ("lse_d", "LSE-D, sync distance (pred)", 1),
    ("lse_d_gt", "LSE-D, sync distance (gt)", 1),
    ("lse_c", "LSE-C, sync confidence (pred)", 1),
    ("lse_c_gt", "LSE-C, sync confidence (gt)", 1),
    ("sync_offset", "sync expert offset pred (frames, > 0: late)", 1),
    ("sync_offset_gt", "sync expert offset gt (frames, > 0: late)", 1),
    ("sync_fd", "Fréchet distance of sync embeddings, pred vs gt", 1),
    ("diversity_mm", "diversity (mm, mouth crop)", 1),
]
# what the naturalness / sync figure shows: (key, short label); ratios are read against 1
RATIO_KEYS = [
    ("lip_vel_ratio", "lip vel."),
    ("lip_acc_ratio", "lip acc."),
    ("open_vel_ratio", "opening vel."),
    ("open_acc_ratio", "opening acc."),
    ("peak_open_ratio", "opening at peaks"),
]


@dataclass
class EvalResult:
    name: str
    out_dir: Path
    metrics: dict  # headline (averaged over conditions), keys of TABLE
    fixed: dict  # the same for the fixed (first) style
    protocol: dict  # fps, regions, condition policy, pooling, counts, uncertainty
    per_sequence: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    ci: dict = field(default_factory=dict)  # key -> (low, high), 95 % bootstrap interval
    fixed_ci: dict = field(default_factory=dict)
    replicates: dict = field(default_factory=dict)  # key -> (R,) bootstrap replicates of the headline
    fixed_replicates: dict = field(default_factory=dict)

    def table(self) -> str:
        rows = ["| metric | all styles (mean) [95 % CI] | fixed style [95 % CI] |", "|---|---|---|"]
        for key, label, scale in TABLE:
            if key in self.metrics:
                rows.append(
                    f"| {md_escape(label)} | {format_ci(self.metrics[key], self.ci.get(key), scale, metric_fmt(key))} "
                    f"| {format_ci(self.fixed.get(key), self.fixed_ci.get(key), scale, metric_fmt(key))} |"
                )
        return "\n".join(rows)

    def summary(self) -> str:
        p = self.protocol
        return "\n".join(
            [
                f"## Evaluation: {self.name}",
                "",
                self.table(),
                "",
                f"- evaluation fps: {p['fps']} (model fps {p['model_fps']}); {p['n_sequences']} test "
                f"sequences, {p['n_frames']} frames; subjects {', '.join(p['subjects'])}",
                f"- conditions: {p['conditions']}",
                f"- fixed style: {p['fixed_style']}",
                f"- lip region: {p['region_source']}",
                "- LVE: per frame the max over lip vertices of the squared error; 'frame-pooled' = mean "
                "over all frames of all sequences (published), 'sequence-averaged' = mean of "
                "per-sequence means",
                f"- {p['mouth_opening']}",
                *[f"- {p[k]}" for k in ("closures", "peaks", "dynamics", "sync", "sync_expert") if p.get(k)],
                *([f"- intervals: {p['uncertainty']}"] if p.get("uncertainty") else []),
                f"- outputs: {self.out_dir}",
            ]
        )

    @classmethod
    def from_saved(cls, out_dir: Path) -> EvalResult:
        """An evaluation read back from its metrics.json and bootstrap.npz (as `write_outputs` left them)."""
        out_dir = Path(out_dir)
        d = json.loads((out_dir / "metrics.json").read_text())
        metrics, ci = split_ci(d["metrics"])
        fixed, fixed_ci = split_ci(d["fixed_style"])
        reps: dict[str, dict] = {"metrics": {}, "fixed": {}}
        if (out_dir / "bootstrap.npz").is_file():
            with np.load(out_dir / "bootstrap.npz") as z:
                for name in z.files:
                    part, key = name.split("/", 1)
                    reps[part][key] = z[name]
        return cls(
            d["name"],
            out_dir,
            metrics,
            fixed,
            d["protocol"],
            ci=ci,
            fixed_ci=fixed_ci,
            replicates=reps["metrics"],
            fixed_replicates=reps["fixed"],
        )


# decimals each metric prints with, after its TABLE scale (default DEFAULT_DECIMALS); "frames": whole frames
# (a mean over styles or an interval bound that is not whole keeps one decimal)
DECIMALS: dict[str, int | str] = {
    "lve": 4, "lve_seq": 4, "val_lve": 4,
    "closure_rate": 1,
    "lag": "frames", "audio_lag": "frames", "audio_lag_gt": "frames", "sync_offset": "frames",
    "sync_offset_gt": "frames",
}  # fmt: skip
DEFAULT_DECIMALS = 3  # mm values: micrometre resolution; correlations, ratios, FDD x1e-7


def metric_fmt(key: str):
    """The formatter of one metric's figures, (x, scale) -> text (`format_ci`'s fmt): scaled, with the
    metric's precision (DECIMALS); "n/a" when missing or not finite."""
    decimals = DECIMALS.get(key, DEFAULT_DECIMALS)

    def fmt(x, scale: float = 1.0) -> str:
        if x is None or not np.isfinite(x):
            return "n/a"
        v = float(x) * scale
        if decimals == "frames":
            return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"
        return f"{v:.{decimals}f}" if abs(v) < 1e6 else f"{v:.4g}"

    return fmt


def _fmt(x, scale: float = 1.0) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    v = x * scale
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"


def format_value(key: str, x, scale: float = 1.0) -> str:
    """One metric value with its precision (`metric_fmt`)."""
    return metric_fmt(key)(x, scale)


def md_escape(text: str) -> str:
    """Text for a Markdown table cell: a literal | (as in |FDD|) would end the cell."""
    return text.replace("|", "\\|")


def format_ci(value, ci=None, scale: float = 1.0, fmt=_fmt) -> str:
    """The one table cell for a figure with its interval: "value [low, high]" (scaled); the value alone
    when the interval is missing or not finite; "n/a" for a missing value."""
    text = fmt(value, scale)
    if text == "n/a" or ci is None or len(ci) != 2 or not all(c is not None and np.isfinite(c) for c in ci):
        return text
    return f"{text} [{fmt(ci[0], scale)}, {fmt(ci[1], scale)}]"


def with_ci(values: dict, ci: dict) -> dict:
    """{key: v} + {key: (lo, hi)} -> {key: v, key_ci95: [lo, hi]} (the metrics.json layout)."""
    out = dict(values)
    for key, (lo, hi) in ci.items():
        out[key + CI_SUFFIX] = [lo, hi]
    return out


def split_ci(d: dict) -> tuple[dict, dict]:
    """Inverse of `with_ci` (nulls read back as nan)."""
    values = {k: (np.nan if v is None else v) for k, v in d.items() if not k.endswith(CI_SUFFIX)}
    ci = {
        k[: -len(CI_SUFFIX)]: tuple(np.nan if x is None else float(x) for x in v)
        for k, v in d.items()
        if k.endswith(CI_SUFFIX)
    }
    return values, ci


def finite_or_none(obj):
    """nan/inf -> None, recursively, so metrics.json is strict JSON (NaN is not JSON)."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _short(subject: str) -> str:
    """FaceTalk_170809_00138_TA -> 00138 (plot labels)."""
    parts = subject.split("_")
    return parts[2] if len(parts) == 4 and parts[0] == "FaceTalk" else subject


def write_outputs(
    result: EvalResult, heat: np.ndarray, template, faces, curve, fps, sync_curves=None, expert=None
) -> list[Path]:
    """Write the report files into result.out_dir; returns those written.

    heat: (V,) mean per-vertex error (mm) drawn on `template` (V, 3) with `faces` (F, 3) or None;
    curve: (title, opening_pred (T,), opening_gt (T,)) in mm at `fps`, the sequence plotted;
    sync_curves: (offsets (2K+1,), mean distance pred, mean distance gt or None) from the sync
    expert, or None; expert: the `sync_expert.LoadedExpert` that scored it (a copy is kept)."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "metrics.json",
        finite_or_none(
            {
                "name": result.name,
                "metrics": with_ci(result.metrics, result.ci),
                "fixed_style": with_ci(result.fixed, result.fixed_ci),
                "protocol": result.protocol,
            }
        ),
    )
    files = [out / "metrics.json"]
    if result.replicates:
        arrays = {f"metrics/{k}": np.asarray(v, np.float64) for k, v in result.replicates.items()}
        arrays.update({f"fixed/{k}": np.asarray(v, np.float64) for k, v in result.fixed_replicates.items()})
        with atomic_path(out / "bootstrap.npz") as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append a second ".npz"
                np.savez_compressed(f, allow_pickle=False, **arrays)
        files.append(out / "bootstrap.npz")
    if expert is not None and expert.path.is_file():
        target = out / "sync_expert.pt"
        if not (target.exists() and target.resolve() == expert.path.resolve()):
            with atomic_path(target) as tmp:
                shutil.copyfile(expert.path, tmp)
        files.append(target)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(result.per_sequence[0]))
    writer.writeheader()
    writer.writerows(result.per_sequence)
    atomic_write_text(out / "per_sequence.csv", buf.getvalue())
    atomic_write_text(out / "metrics.md", result.summary() + "\n")
    files += [out / "per_sequence.csv", out / "metrics.md"]
    fixed_rows = [r for r in result.per_sequence if r["style"] == result.protocol["fixed_style"]]
    files.append(
        plotting.plot_bars(
            [f"{_short(r['subject'])} {r['sentence'].replace('sentence', 's')}" for r in fixed_rows],
            [r["lve_e5"] for r in fixed_rows],
            out / "lve_per_sequence.png",
            f"{result.name}: LVE per test sequence (style {result.protocol['fixed_style']})",
            "LVE (x1e-5 m^2)",
        )
    )
    title, pred, gt = curve
    files.append(plotting.plot_mouth_opening(pred, gt, fps, out / "mouth_opening.png", f"mouth opening: {title}"))
    files.append(
        plotting.plot_vertex_heatmap(
            template, faces, heat, out / "error_heatmap.png", f"{result.name}: mean per-vertex error (mm)"
        )
    )
    figure = _naturalness_figure(result, out / "naturalness_sync.png")
    if figure is not None:
        files.append(figure)
    if sync_curves is not None:
        offsets, pred_curve, gt_curve = sync_curves
        curves = {"prediction (mean over conditions)": pred_curve}
        if gt_curve is not None:
            curves["ground truth"] = gt_curve
        files.append(
            plotting.plot_lines(
                offsets,
                curves,
                out / "sync_offsets.png",
                f"{result.name}: sync expert distance vs audio shift",
                "audio shift k (frames): motion window at t vs audio window at t + k",
                "mean distance (lower = in sync)",
            )
        )
    return [f for f in files if f is not None]


def _naturalness_figure(result: EvalResult, path: Path) -> Path | None:
    """Spread ratios and the opening at peaks (read against 1), and LSE-D / LSE-C of the prediction
    beside the ground truth's, each with its 95 % interval."""
    m, ci = result.metrics, result.ci
    panels: list[tuple[str, list, float | None]] = []
    ratios = [(label, m.get(k), ci.get(k)) for k, label in RATIO_KEYS if np.isfinite(m.get(k, np.nan))]
    if ratios:
        panels.append(("pred / gt (1 = true dynamics)", ratios, 1.0))
    for key, what in (("lse_d", "LSE-D (lower = better)"), ("lse_c", "LSE-C (higher = better)")):
        if np.isfinite(m.get(key, np.nan)):
            rows = [("prediction", m[key], ci.get(key)), ("ground truth", m.get(f"{key}_gt"), ci.get(f"{key}_gt"))]
            panels.append((what, rows, None))
    if not panels:
        return None
    return plotting.plot_interval_panels(
        panels, path, f"{result.name}: naturalness and sync, 95 % intervals over test sequences"
    )
