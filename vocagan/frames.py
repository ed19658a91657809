"""Frames in time: the one frame-rate resampler, the frame-rate rules, and the one reshape between
the converted layout's flat rows (T, V*3) and vertex sequences (T, V, 3).

Frame i of a sequence at `fps` lies at time i / fps. Meshes, audio features and predicted motion
all move between rates through `resample_frames`, so they cannot drift apart.
"""

from __future__ import annotations

import math

import numpy as np

from vocagan.errors import VocaganError


def fps_step(source_fps: int, fps: int, path=None) -> int:
    """k such that fps = source_fps / k; VocaganError when fps does not divide source_fps."""
    if fps <= 0 or source_fps <= 0 or source_fps % fps:
        raise VocaganError(
            f"data.fps={fps} must be a positive divisor of the capture rate "
            f"data.source_fps={source_fps} (e.g. 60, 30, 20, 15)",
            path,
        )
    return source_fps // fps


def frames_in(duration_frames: int, src_fps: float, fps: float) -> int:
    """How many frames at `fps` fall within `duration_frames` frames at `src_fps` (frame 0 included):
    floor((T - 1) * fps / src_fps) + 1, with a tolerance for float rounding; 0 for an empty input."""
    if duration_frames <= 0:
        return 0
    return int(math.floor((duration_frames - 1) * float(fps) / float(src_fps) + 1e-6)) + 1


def audio_frames(n_samples: int, sample_rate: int, fps: float) -> int:
    """How many frames at `fps` the audio covers (frame i at time i / fps)."""
    return int(round(n_samples * fps / sample_rate))


def resample_frames(x: np.ndarray, src_fps: float, fps: float, n_frames: int | None = None) -> np.ndarray:
    """(T, ...) frames at times j / src_fps -> (n_frames, ...) frames at times i / fps.

    n_frames defaults to the frames within the input's duration (`frames_in`). When src_fps is an
    integer multiple k of fps this is every k-th frame (`x[::k]`, a view, exact); otherwise linear
    interpolation in time (float32 weights; times past the last input frame take its value, so an
    explicit n_frames may extend the input). Float32 out for the interpolated path.
    """
    if src_fps <= 0 or fps <= 0:
        raise ValueError(f"frame rates must be positive, got {src_fps} -> {fps}")
    x = np.asarray(x)
    n = frames_in(len(x), src_fps, fps) if n_frames is None else max(0, int(n_frames))
    ratio = float(src_fps) / float(fps)
    if ratio.is_integer() and (n_frames is None or (n - 1) * int(ratio) < len(x)):
        return x[:: int(ratio)][:n]
    if n == 0 or len(x) == 0:
        return np.zeros((n, *x.shape[1:]), np.float32)
    pos = np.clip(np.arange(n, dtype=np.float64) * ratio, 0.0, len(x) - 1)  # input frame index
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (pos - i0).astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    return (x[i0] * (1.0 - w) + x[i1] * w).astype(np.float32)


def as_vertex_frames(data: np.ndarray, n_vertices: int | None = None) -> np.ndarray:
    """(T, V*3) rows (the converted layout) -> (T, V, 3); (T, V, 3) is returned as it is. With
    n_vertices given, only a row width of exactly 3 * n_vertices is reshaped. Other shapes pass
    through unchanged: the caller checks the result's shape and names its file."""
    data = np.asarray(data) if not isinstance(data, np.ndarray) else data
    if (
        data.ndim == 2
        and data.shape[1] % 3 == 0
        and data.shape[1] > 3
        and (n_vertices is None or data.shape[1] == 3 * n_vertices)
    ):
        return data.reshape(len(data), -1, 3)
    return data


# ----------------------------------------------------------------------------- chunked processing
def chunk_spans(n_frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Split [0, n_frames) into equal-ish spans of <= `chunk` frames, consecutive ones sharing `overlap`."""
    if n_frames <= chunk:
        return [(0, n_frames)]
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap {overlap} must be in [0, chunk={chunk})")
    n = math.ceil((n_frames - overlap) / (chunk - overlap))
    step = math.ceil((n_frames - overlap) / n)
    return [(k * step, min(k * step + step + overlap, n_frames)) for k in range(n)]


def crossfade_in(overlap: int) -> np.ndarray:
    """Weights (overlap,) rising 0 -> 1 (raised cosine) over the middle half of the overlap: the outer
    quarter next to each chunk edge, where context is missing, gets no weight."""
    j = (np.arange(overlap) + 0.5 - overlap / 4) / max(overlap / 2, 1e-9)
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(j, 0, 1))
