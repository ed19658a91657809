"""What an evaluation reports: `EvalResult` (headline metrics averaged over styles, the fixed-style
metrics, the protocol as applied, one row per test sequence and style) with its Markdown table and
summary, and the files written for it: metrics.json (strict JSON, nan -> null), per_sequence.csv,
metrics.md and three plots (LVE per test sequence, the mouth opening of one sequence, the mean
per-vertex error on the template). The metric keys come from `vocagan.evaluate.run_protocol`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocagan import plotting
from vocagan.utils import atomic_write_json, atomic_write_text

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
    ("lag", "lag pred vs gt (frames)", 1),
    ("audio_lag", "lag pred vs audio energy (frames)", 1),
    ("audio_lag_gt", "lag gt vs audio energy (frames)", 1),
    ("accel_mm", "acceleration lips (mm/frame²)", 1),
    ("accel_gt_mm", "acceleration lips, gt (mm/frame²)", 1),
    ("jitter_mm", "jitter lips (mm/frame³)", 1),
    ("diversity_mm", "diversity (mm, mouth crop)", 1),
]


@dataclass
class EvalResult:
    name: str
    out_dir: Path
    metrics: dict  # headline (averaged over conditions), keys of TABLE
    fixed: dict  # the same for the fixed (first) style
    protocol: dict  # fps, regions, condition policy, pooling, counts
    per_sequence: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @classmethod
    def read(cls, out_dir: Path) -> EvalResult:
        """The result an earlier evaluation wrote to out_dir/metrics.json (headline, fixed style, protocol)."""
        d = json.loads((Path(out_dir) / "metrics.json").read_text(encoding="utf-8"))
        return cls(d["name"], Path(out_dir), d["metrics"], d["fixed_style"], d["protocol"])

    def table(self) -> str:
        rows = ["| metric | all styles (mean) | fixed style |", "|---|---|---|"]
        for key, label, scale in TABLE:
            if key in self.metrics:
                rows.append(
                    f"| {md_escape(label)} | {format_value(key, self.metrics[key], scale)} | "
                    f"{format_value(key, self.fixed.get(key), scale)} |"
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
                *([f"- {p['closures']}"] if p.get("closures") else []),
                f"- outputs: {self.out_dir}",
            ]
        )


# decimals each metric prints with, after its TABLE scale (default DEFAULT_DECIMALS); "frames": whole frames
# (a mean over styles that is not whole keeps one decimal)
DECIMALS: dict[str, int | str] = {
    "lve": 4, "lve_seq": 4, "val_lve": 4,
    "fdd": 3, "fdd_abs": 3, "mouth_corr": 3,
    "closure_rate": 1,
    "lag": "frames", "audio_lag": "frames", "audio_lag_gt": "frames",
}  # fmt: skip
DEFAULT_DECIMALS = 3  # mm values: micrometre resolution


def format_value(key: str, x, scale: float = 1.0) -> str:
    """One metric value for a report: scaled, with the metric's precision; "n/a" when missing/not finite."""
    if x is None or not np.isfinite(x):
        return "n/a"
    v = float(x) * scale
    decimals = DECIMALS.get(key, DEFAULT_DECIMALS)
    if decimals == "frames":
        return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"
    assert isinstance(decimals, int)
    return f"{v:.{decimals}f}" if abs(v) < 1e6 else f"{v:.4g}"


def format_mean_std(key: str, values: list, scale: float = 1.0) -> str:
    """mean ± sample std of `values` (finite ones) with the metric's precision; the mean alone for one value."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return "n/a"
    mean = format_value(key, x.mean(), scale)
    if len(values) < 2:
        return mean
    decimals = DECIMALS.get(key, DEFAULT_DECIMALS)
    spread = float(x.std(ddof=1)) * scale if x.size > 1 else 0.0
    return f"{mean} ± {spread:.{1 if decimals == 'frames' else decimals}f}"


def md_escape(text: str) -> str:
    """Text for a Markdown table cell: a literal | (as in |FDD|) would end the cell."""
    return text.replace("|", "\\|")


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


def write_outputs(result: EvalResult, heat: np.ndarray, template, faces, curve, fps) -> list[Path]:
    """Write the report files into result.out_dir; returns those written.

    heat: (V,) mean per-vertex error (mm) drawn on `template` (V, 3) with `faces` (F, 3) or None;
    curve: (title, opening_pred (T,), opening_gt (T,)) in mm at `fps`, the sequence plotted."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "metrics.json",
        finite_or_none(
            {"name": result.name, "metrics": result.metrics, "fixed_style": result.fixed, "protocol": result.protocol}
        ),
    )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(result.per_sequence[0]))
    writer.writeheader()
    writer.writerows(result.per_sequence)
    atomic_write_text(out / "per_sequence.csv", buf.getvalue())
    atomic_write_text(out / "metrics.md", result.summary() + "\n")
    files = [out / "metrics.json", out / "per_sequence.csv", out / "metrics.md"]
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
    return [f for f in files if f is not None]
