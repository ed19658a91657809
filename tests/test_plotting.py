"""vocagan.plotting: every plot writes a real PNG of the size its figure asks for (width x height
in inches x 100 dpi), only the plots the rows have data for, NaN values do not break a plot, and
metrics.jsonl rows round-trip through read_metrics."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from vocagan import plotting


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_png(path: Path, size: tuple[int, int]) -> None:
    """A PNG of exactly `size` pixels that is not one flat colour (something was drawn)."""
    from PIL import Image

    assert Path(path).is_file() and png_size(path) == size
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), np.float64)
    assert pixels.shape == (size[1], size[0]) and pixels.std() > 1.0
    assert not [p for p in Path(path).parent.iterdir() if p.name.startswith(".tmp-")]  # written atomically


def rows(n: int = 4, gan: bool = False, vae: bool = False, nan_at: int | None = None) -> list[dict]:
    out = []
    for e in range(1, n + 1):
        r = {
            "epoch": e,
            "train_loss": 2.0 / e,
            "val_loss": 2.5 / e,
            "train_mouth": 1.0 / e,
            "val_mouth": 1.2 / e,
            "train_lip_max": 3.0 / e,
            "val_lip_max": 3.5 / e,
            "val_lve": 4.0 - 0.5 * e,
        }
        if gan:
            r.update(d_loss=1.3, d_real=0.7, d_sync=0.6, train_adv=0.9 + 0.01 * e, train_fm=0.2)
        if vae:
            r.update(train_kl=5.0 / e, val_kl=5.5 / e)
        out.append(r)
    if nan_at is not None:
        for key in ("train_loss", "val_lve", "d_loss", "train_kl"):
            if key in out[nan_at]:
                out[nan_at][key] = float("nan")
    return out


# ----------------------------------------------------------------------------- read_metrics
def test_read_metrics_round_trips_a_jsonl_file(tmp_path):
    written = [
        {"epoch": 1, "train_loss": 0.5, "note": "warm-up"},
        {"epoch": 2, "train_loss": 0.25, "val_lve": None},
        {"epoch": 3, "train_loss": float("nan")},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in written[:2]) + "\n   \n" + json.dumps(written[2]) + "\n")
    back = plotting.read_metrics(path)
    assert back[:2] == written[:2]  # blank lines are skipped
    assert back[2]["epoch"] == 3 and math.isnan(back[2]["train_loss"])
    again = plotting.read_metrics(str(path))  # a str path works too
    assert again[:2] == written[:2] and len(again) == 3
    (tmp_path / "empty.jsonl").write_text("")
    assert plotting.read_metrics(tmp_path / "empty.jsonl") == []


# ----------------------------------------------------------------------------- training curves
def test_training_curves_write_the_plots_the_rows_have_data_for(tmp_path):
    plain = plotting.plot_training_curves(rows(), tmp_path / "plain", baselines={"zero": 5.0, "mean": None})
    assert [p.name for p in plain] == ["loss.png", "val_lve.png"]  # no GAN, no VAE columns
    for p in plain:
        assert_png(p, (640, 400))
    both = plotting.plot_training_curves(rows(gan=True, vae=True), tmp_path / "both")
    assert [p.name for p in both] == ["loss.png", "val_lve.png", "gan.png", "kl.png"]
    for p in both:
        assert_png(p, (640, 400))
    assert plotting.plot_training_curves([], tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


def test_training_curves_cope_with_nan(tmp_path):
    written = plotting.plot_training_curves(rows(gan=True, vae=True, nan_at=1), tmp_path)
    assert [p.name for p in written] == ["loss.png", "val_lve.png", "gan.png", "kl.png"]
    for p in written:
        assert_png(p, (640, 400))
    # a loss series with a NaN is left out of the log-scale plot; the other series are still drawn
    only_nan = [{"epoch": 1, "train_loss": float("nan"), "val_lve": float("nan")}]
    names = [p.name for p in plotting.plot_training_curves(only_nan, tmp_path / "nan")]
    assert "loss.png" not in names and names == ["val_lve.png"]
    assert png_size(tmp_path / "nan" / "val_lve.png") == (640, 400)


# ----------------------------------------------------------------------------- evaluation plots
@pytest.mark.parametrize("n,width", [(3, 640), (20, 900)])  # max(6.4, 0.35 n + 2) inches x 100 dpi
def test_plot_bars(tmp_path, n, width):
    labels = [f"seq{i}" for i in range(n)]
    values = list(np.linspace(1.0, 3.0, n))
    path = plotting.plot_bars(labels, values, tmp_path / "bars.png", "LVE per sequence", "LVE", errors=[0.1] * n)
    assert path == tmp_path / "bars.png"
    assert_png(path, (width, 420))


def test_plot_mouth_opening(tmp_path):
    t = np.arange(90) / 30
    path = plotting.plot_mouth_opening(
        2 + np.sin(2 * np.pi * t), 2 + np.sin(2 * np.pi * t + 0.3), 30, tmp_path / "opening.png", "mouth opening"
    )
    assert_png(path, (800, 360))


def test_plot_vertex_heatmap_scatter_and_rendered(tmp_path, icosphere):
    verts, faces = icosphere(2)
    values = np.abs(verts[:, 1]) * 10  # mm-like per-vertex values
    scatter = plotting.plot_vertex_heatmap(verts, None, values, tmp_path / "scatter.png", "error")
    assert_png(scatter, (500, 500))
    rendered = plotting.plot_vertex_heatmap(verts, faces, values, tmp_path / "rendered.png", "error")
    assert_png(rendered, (500, 500))


def test_plot_curves_side_by_side(tmp_path):
    curves = {
        "rnn": [([1, 2, 3], [3.0, 2.0, 1.5]), ([1, 2, 3], [3.1, 2.2, 1.4])],
        "transformer": [([1, 2], [2.5, 1.0])],
        "empty": [([], [])],
    }
    path = plotting.plot_curves_side_by_side(curves, tmp_path / "curves.png", "val LVE", "LVE")
    assert_png(path, (720, 340))  # 2 panels with data x 3.6 in
    assert plotting.plot_curves_side_by_side({"x": [([], [])]}, tmp_path / "no.png", "t", "y") is None
    assert not (tmp_path / "no.png").exists()


def test_evaluation_plots_cope_with_nan(tmp_path, icosphere):
    nan = float("nan")
    assert_png(
        plotting.plot_bars(["a", "b", "c"], [1.0, nan, 2.0], tmp_path / "bars.png", "t", "y", errors=[0.1, nan, 0.2]),
        (640, 420),
    )
    opening = np.array([1.0, 2.0, nan, 1.5, 1.0])
    assert_png(plotting.plot_mouth_opening(opening, opening[::-1], 30, tmp_path / "o.png", "t"), (800, 360))
    verts, _ = icosphere(2)
    values = np.abs(verts[:, 0]) * 10
    values[:5] = nan  # percentile -> nan: a unit colour scale
    assert_png(plotting.plot_vertex_heatmap(verts, None, values, tmp_path / "h.png", "t"), (500, 500))
    curves = {"rnn": [([1, 2, 3], [1.0, nan, 0.5])], "gan": [([1, 2, 3], [nan, nan, nan])]}
    assert_png(plotting.plot_curves_side_by_side(curves, tmp_path / "c.png", "t", "y"), (720, 340))
