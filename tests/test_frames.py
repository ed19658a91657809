"""vocagan.frames: the one frame-rate resampler (every k-th frame for integer ratios, linear in time
otherwise, edge values past the end), how many frames fit (`frames_in`, `audio_frames`), the
frame-rate rule (`fps_step`) and the (T, V*3) <-> (T, V, 3) reshape, all checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan.errors import VocaganError
from vocagan.frames import as_vertex_frames, audio_frames, fps_step, frames_in, resample_frames


# ----------------------------------------------------------------------------- resample_frames
def test_integer_step_takes_every_kth_frame_as_a_view():
    x = np.arange(120).reshape(60, 2)  # 60 frames at 60 fps, int data
    for fps, k in ((30, 2), (20, 3), (15, 4), (60, 1)):
        out = resample_frames(x, 60, fps)
        np.testing.assert_array_equal(out, x[::k])
        assert out.dtype == x.dtype and np.shares_memory(out, x)  # exact: no copy, no float conversion
    np.testing.assert_array_equal(resample_frames(x, 60, 30, n_frames=5), x[::2][:5])
    frames = np.arange(60)
    assert np.array_equal(resample_frames(frames, 60, 30), np.arange(0, 60, 2))
    assert np.array_equal(resample_frames(frames, 60, 20), np.arange(0, 60, 3))
    assert np.array_equal(resample_frames(frames, 60, 60), frames)


def test_resample_frames_by_hand():
    x = np.arange(6, dtype=np.float32)[:, None]  # frames at 60 fps: times 0, 1/60, ...
    np.testing.assert_array_equal(resample_frames(x, 60, 30)[:, 0], [0, 2, 4])
    np.testing.assert_array_equal(resample_frames(x, 30, 30)[:, 0], x[:, 0])
    # 30 -> 20 fps: times 0, 1/20, 2/20, 3/20 = source positions 0, 1.5, 3, 4.5
    np.testing.assert_allclose(resample_frames(x, 30, 20)[:, 0], [0, 1.5, 3, 4.5])


def test_30_to_60_is_linear_in_time():
    """4 frames at 30 fps (t = 0, 1/30, 2/30, 3/30) -> 7 frames at 60 fps: the input values at even
    frames and midpoints at odd ones, for every vertex and coordinate."""
    verts = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    verts[:, 1] *= -2.0
    out = resample_frames(verts, 30, 60)
    assert out.shape == (7, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(out[:, 1, 2], [0, -1, -2, -3, -4, -5, -6])
    assert len(resample_frames(verts, 60, 60)) == 4


def test_100_to_30_with_explicit_n_frames_pads_with_the_last_frame():
    """10 frames at 100 fps (t = 0 .. 0.09 s) -> 30 fps: frame i at input position i * 10/3. Within
    the input: 3 frames (0, 3.33, 6.67); asking for 5 gives positions 10 and 13.3, past the last
    input frame, which take its value (9)."""
    x = np.arange(10, dtype=np.float64)[:, None] * [1.0, 10.0]  # (10, 2)
    default = resample_frames(x, 100, 30)
    np.testing.assert_allclose(default[:, 0], [0, 10 / 3, 20 / 3], rtol=1e-6)
    np.testing.assert_allclose(default[:, 1], [0, 100 / 3, 200 / 3], rtol=1e-6)
    padded = resample_frames(x, 100, 30, n_frames=5)
    assert padded.shape == (5, 2) and padded.dtype == np.float32
    np.testing.assert_allclose(padded[:, 0], [0, 10 / 3, 20 / 3, 9, 9], rtol=1e-6)
    np.testing.assert_array_equal(padded[3:], [[9, 90], [9, 90]])
    np.testing.assert_allclose(resample_frames(x, 100, 30, n_frames=2)[:, 0], [0, 10 / 3], rtol=1e-6)


def test_integer_step_with_n_frames_past_the_end_pads_too():
    """60 -> 30 fps of 6 frames asking for 5: positions 0, 2, 4, 6, 8 -> the last two are frame 5."""
    x = np.arange(6)
    out = resample_frames(x, 60, 30, n_frames=5)
    np.testing.assert_array_equal(out, [0, 2, 4, 5, 5])
    assert out.dtype == np.float32


def test_empty_inputs_and_bad_rates():
    assert resample_frames(np.zeros((0, 4, 3)), 60, 30).shape == (0, 4, 3)
    empty = resample_frames(np.zeros((0, 4, 3)), 30, 60, n_frames=3)
    assert empty.shape == (3, 4, 3) and empty.dtype == np.float32 and not empty.any()
    assert resample_frames(np.ones((5, 2)), 30, 60, n_frames=0).shape == (0, 2)
    for src, fps in ((0, 30), (60, 0), (-60, 30)):
        with pytest.raises(ValueError, match="frame rates must be positive"):
            resample_frames(np.ones((4, 2)), src, fps)


# ----------------------------------------------------------------------------- frame counts
def test_frames_in_by_hand():
    assert frames_in(0, 60, 30) == 0 and frames_in(-3, 60, 30) == 0
    assert frames_in(1, 60, 30) == 1  # frame 0 alone
    assert frames_in(60, 60, 30) == 30  # t = 0 .. 59/60: 30 frames at 0, 1/30, .., 29/30
    assert frames_in(61, 60, 30) == 31  # ... and t = 1 s
    assert frames_in(4, 30, 60) == 7
    assert frames_in(10, 100, 30) == 3  # 0.09 s: t = 0, 1/30, 2/30
    # (12 - 1) * 29.97 / 29.97 is 10.999999999999998 in floats: the tolerance keeps frame 11
    assert (12 - 1) * 29.97 / 29.97 < 11 and frames_in(12, 29.97, 29.97) == 12


def test_audio_frames_by_hand():
    assert audio_frames(16000, 16000, 60) == 60 and audio_frames(22000 * 3, 22000, 30) == 90
    assert audio_frames(16010, 16000, 60) == 60  # 60.04 rounds down
    assert audio_frames(16140, 16000, 60) == 61  # 60.53 rounds up
    assert audio_frames(0, 16000, 60) == 0


def test_fps_step_and_its_errors():
    assert [fps_step(60, f) for f in (60, 30, 20, 15, 1)] == [1, 2, 3, 4, 60]
    assert fps_step(100, 25) == 4
    for bad in (25, 0, -30, 120):
        with pytest.raises(VocaganError, match="divisor") as err:
            fps_step(60, bad, "data_verts.npy")
        assert "data_verts.npy" in str(err.value) and f"data.fps={bad}" in str(err.value)
    with pytest.raises(VocaganError, match="data.source_fps=0"):
        fps_step(0, 30)


# ----------------------------------------------------------------------------- (T, V*3) <-> (T, V, 3)
def test_as_vertex_frames():
    rows = np.arange(24, dtype=np.float32).reshape(4, 6)  # 4 frames of 2 vertices
    verts = as_vertex_frames(rows)
    assert verts.shape == (4, 2, 3) and np.shares_memory(verts, rows)
    np.testing.assert_array_equal(verts[1, 1], [9, 10, 11])  # row 1, columns 3..5
    assert as_vertex_frames(verts) is verts  # (T, V, 3) unchanged
    assert as_vertex_frames(rows, n_vertices=2).shape == (4, 2, 3)
    assert as_vertex_frames(rows, n_vertices=3) is rows  # width 6 != 3 * 3: left for the caller
    for other in (np.zeros((4, 7)), np.zeros((4, 3)), np.zeros(12)):
        assert as_vertex_frames(other) is other  # not vertex rows: passed through
    listed = as_vertex_frames([[0, 1, 2, 3, 4, 5]])
    assert isinstance(listed, np.ndarray) and listed.shape == (1, 2, 3)
