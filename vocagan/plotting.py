"""Training-curve plots (PNG) from the per-epoch metric rows that `train` writes to metrics.jsonl.

Uses matplotlib's object API with the Agg canvas (no pyplot global state, no display needed).
Files are written atomically. The evaluation engineer may append evaluation plots below.
"""

from __future__ import annotations

import json
from pathlib import Path

from vocagan.utils import atomic_path


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl file (one JSON object per line)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _figure(title: str, ylabel: str, log: bool = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if log:
        ax.set_yscale("log")
    return fig, ax


def save_figure(fig, path: Path) -> Path:
    """Lay out `fig` (a matplotlib Figure without pyplot) and write it as PNG to `path` atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        if r.get(key) is not None:
            xs.append(int(r["epoch"]))
            ys.append(float(r[key]))
    return xs, ys


def _plot_keys(rows, keys, path, title, ylabel, log=False, hline: dict | None = None) -> Path | None:
    fig, ax = _figure(title, ylabel, log)
    drawn = 0
    for key, label in keys:
        xs, ys = _series(rows, key)
        if xs and (not log or all(y > 0 for y in ys)):
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=label)
            drawn += 1
    for label, y in (hline or {}).items():
        if y is not None:
            ax.axhline(y, ls="--", lw=1, color="gray" if "zero" in label else "black", label=label)
    if not drawn:
        return None
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_training_curves(rows: list[dict], out_dir: str | Path, baselines: dict | None = None) -> list[Path]:
    """Write the curves for the epochs in `rows` into out_dir; returns the files written.

    - loss.png: train and validation total loss, mouth-crop MSE and per-frame max lip error
    - val_lve.png: validation lip vertex error (x1e-5 m^2), with the zero/mean-motion baselines
    - gan.png: discriminator and generator adversarial losses (models with a discriminator)
    - kl.png: VAE KL divergence and its annealed weight (models with a latent)
    """
    out_dir = Path(out_dir)
    if not rows:
        return []
    written = []
    keys = [
        ("train_loss", "train loss"),
        ("val_loss", "val loss"),
        ("train_mouth", "train mouth MSE (mm^2)"),
        ("val_mouth", "val mouth MSE (mm^2)"),
        ("train_lip_max", "train lip max (mm^2)"),
        ("val_lip_max", "val lip max (mm^2)"),
    ]
    if not any("train_mouth" in r for r in rows):  # no vertex-space terms: coefficient-space parts
        keys += [("train_recon", "train recon"), ("val_recon", "val recon")]
    written.append(_plot_keys(rows, keys, out_dir / "loss.png", "losses", "loss", log=True))
    lines = {f"{k} baseline": v for k, v in (baselines or {}).items()}
    written.append(
        _plot_keys(
            rows,
            [("val_lve", "val LVE")],
            out_dir / "val_lve.png",
            "validation lip vertex error",
            "LVE (x1e-5 m^2)",
            hline=lines,
        )
    )
    if any("d_loss" in r for r in rows):
        keys = [
            ("d_loss", "D total"),
            ("d_real", "D realism"),
            ("d_sync", "D sync"),
            ("train_adv", "G adversarial"),
            ("train_fm", "G feature matching"),
        ]
        written.append(_plot_keys(rows, keys, out_dir / "gan.png", "GAN losses", "loss"))
    if any("train_kl" in r for r in rows):
        keys = [("train_kl", "train KL (nats)"), ("val_kl", "val KL (nats)")]
        written.append(_plot_keys(rows, keys, out_dir / "kl.png", "VAE KL divergence", "KL"))
    return [p for p in written if p is not None]


# ----------------------------------------------------------------------------- evaluation plots
def _plain_figure(title: str, xlabel: str, ylabel: str, size=(6.4, 4.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    return fig, ax


def plot_bars(
    labels: list[str],
    values: list[float],
    path: str | Path,
    title: str,
    ylabel: str,
    errors: list[float] | None = None,
    intervals: list | None = None,
    reference: tuple[str, float] | None = None,
) -> Path:
    """One bar per label, e.g. LVE per test sequence or a metric per model; optional error bars: ± errors,
    or intervals [(low, high), ...] (asymmetric, e.g. 95 % intervals; a missing one draws no bar);
    `reference` = (label, value): a dashed line, e.g. the ground truth's own value."""
    import numpy as np

    fig, ax = _plain_figure(title, "", ylabel, size=(max(6.4, 0.35 * len(labels) + 2), 4.2))
    x = list(range(len(labels)))
    yerr: list[float] | np.ndarray | None = errors
    if intervals is not None:
        v = np.asarray(values, np.float64)
        iv = np.array([(np.nan, np.nan) if i is None else i for i in intervals], np.float64).reshape(-1, 2)
        yerr = np.nan_to_num(np.clip(np.stack([v - iv[:, 0], iv[:, 1] - v]), 0, None))
    ax.bar(x, values, yerr=yerr, capsize=3 if yerr is not None else 0, color="tab:blue", alpha=0.85)
    if reference is not None and np.isfinite(reference[1]):
        ax.axhline(reference[1], ls="--", lw=1, color="black", label=reference[0])
        ax.legend(fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(
        labels,
        rotation=60 if len(labels) > 6 else 0,
        ha="right" if len(labels) > 6 else "center",
        fontsize=7 if len(labels) > 6 else 9,
    )
    return save_figure(fig, Path(path))


def plot_interval_panels(panels: list, path: str | Path, title: str, ncols: int = 1) -> Path:
    """Points with 95 % interval whiskers, one panel per entry of `panels` = (panel title, rows, reference):
    rows = [(label, value, (low, high) or None), ...], drawn top to bottom; `reference` (e.g. 0 for
    differences, 1 for ratios, or None) is a dashed vertical line. Missing values are skipped. Panels
    fill a grid of `ncols` columns."""
    import numpy as np
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    most = max(len(rows) for _, rows, _ in panels)
    fig = Figure(figsize=(4.6 * ncols if ncols > 1 else 7.0, nrows * (0.3 * most + 1.0) + 0.8), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, rows, ref) in zip(axes[: len(panels)], panels, strict=True):
        ys = np.arange(len(rows))[::-1]
        for y, (_label, value, ci) in zip(ys, rows, strict=True):
            if value is None or not np.isfinite(value):
                continue
            if ci is not None and all(c is not None and np.isfinite(c) for c in ci):
                ax.plot([ci[0], ci[1]], [y, y], color="tab:blue", lw=2)
                ax.plot([ci[0], ci[1]], [y, y], "|", color="tab:blue", ms=8)
            ax.plot([value], [y], "o", color="black", ms=4)
        if ref is not None:
            ax.axvline(ref, ls="--", lw=1, color="gray")
        ax.set_yticks(ys)
        ax.set_yticklabels([r[0] for r in rows], fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(name, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def plot_lines(x, curves: dict, path: str | Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Several curves over one x axis, e.g. a sync expert's mean distance over audio shifts."""
    fig, ax = _plain_figure(title, xlabel, ylabel)
    for label, y in curves.items():
        ax.plot(x, y, marker="o", ms=3, label=label)
    ax.axvline(0, ls="--", lw=1, color="gray")
    ax.legend(fontsize=8)
    return save_figure(fig, Path(path))


def plot_mouth_opening(pred, gt, fps: float, path: str | Path, title: str) -> Path:
    """Mouth opening (mm) over time, prediction vs ground truth, for one sequence."""
    import numpy as np

    fig, ax = _plain_figure(title, "time (s)", "mouth opening (mm)", size=(8.0, 3.6))
    ax.plot(np.arange(len(gt)) / fps, gt, label="ground truth", color="black", lw=1.5)
    ax.plot(np.arange(len(pred)) / fps, pred, label="prediction", color="tab:red", lw=1.2)
    ax.legend(fontsize=8)
    return save_figure(fig, Path(path))


def plot_vertex_heatmap(template, faces, values, path: str | Path, title: str, cmap: str = "turbo") -> Path:
    """The template mesh seen from the front, coloured by a per-vertex value (e.g. mean error, mm),
    with a colour bar. Rendered with vocagan.render when faces are known; without faces, a front-view
    scatter of the vertices (drawn back to front)."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=np.float64)
    vmax = float(np.percentile(values, 99)) if values.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    norm = matplotlib.colors.Normalize(0.0, vmax)
    fig = Figure(figsize=(5.0, 5.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    if faces is not None and len(faces):
        from vocagan.render import render_frames

        colors = matplotlib.colormaps[cmap](norm(values))[:, :3]
        image = next(
            iter(render_frames(np.asarray(template, np.float32)[None], np.asarray(faces), size=512, colors=colors))
        )
        ax.imshow(image)
    else:
        order = np.argsort(template[:, 2])  # back to front (+z towards the viewer)
        ax.scatter(template[order, 0], template[order, 1], c=values[order], s=2, cmap=cmap, norm=norm)
        ax.set_aspect("equal")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, Path(path))


def plot_curves_side_by_side(
    curves: dict[str, list[tuple[list, list]]], path: str | Path, title: str, ylabel: str
) -> Path | None:
    """One panel per model; in each, one line per run (e.g. seed): curves[model] = [(epochs, values), ...]."""
    from matplotlib.figure import Figure

    names = [n for n, runs in curves.items() if any(len(x) for x, _ in runs)]
    if not names:
        return None
    fig = Figure(figsize=(3.6 * len(names), 3.4), dpi=100)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        for i, (xs, ys) in enumerate(curves[name]):
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=f"seed {i}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, Path(path))
