"""Rendering throughput: frames per second at 512x512 for a 5023-vertex face, EGL vs numpy.

    .venv/bin/python benchmarks/bench_render.py [--size 512] [--frames 120] [--mesh FLAME_sample.ply]

Uses ../shared/data/flame/FLAME_sample.ply when present (else a synthetic 5024-vertex sphere). Each
frame moves the lower face (as speech does), so normals are recomputed and the vertex buffer is
re-uploaded every frame; read-back of the image is included. Goal: >= 60 fps with EGL on CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, not whatever vocagan is installed
FLAME = Path(os.environ.get("VOCAGAN_SHARED_DATA", REPO.parent / "shared" / "data")) / "flame" / "FLAME_sample.ply"


def uv_sphere(rows: int = 62, cols: int = 81) -> tuple[np.ndarray, np.ndarray]:
    """rows * cols + 2 vertices (5024 by default), radius 0.1 m."""
    theta = np.linspace(0, np.pi, rows + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * 0.1
    faces = []
    idx = lambda r, c: 1 + r * cols + c % cols  # noqa: E731
    for c in range(cols):
        faces.append((0, idx(0, c + 1), idx(0, c)))
        faces.append((len(verts) - 1, idx(rows - 1, c), idx(rows - 1, c + 1)))
    for r in range(rows - 1):
        for c in range(cols):
            faces += [(idx(r, c), idx(r, c + 1), idx(r + 1, c)), (idx(r, c + 1), idx(r + 1, c + 1), idx(r + 1, c))]
    return verts.astype(np.float32), np.array(faces, np.int32)


def moving(verts: np.ndarray, n_frames: int) -> np.ndarray:
    """(T, V, 3): the lower third opens and closes (up to 1 cm) like a jaw."""
    lo, hi = verts[:, 1].min(), verts[:, 1].max()
    lower = verts[:, 1] < lo + (hi - lo) / 3
    seq = np.repeat(verts[None], n_frames, axis=0)
    seq[:, lower, 1] -= (0.01 * np.sin(np.linspace(0, 6 * np.pi, n_frames)) ** 2)[:, None]
    return seq


def measure(seq, faces, size, backend) -> float:
    from vocagan import render

    for _ in render.render_frames(seq[:2], faces, size, backend):  # warm-up: context, shaders
        pass
    start = time.perf_counter()
    n = sum(1 for _ in render.render_frames(seq, faces, size, backend))
    return n / (time.perf_counter() - start)


def main() -> None:
    from vocagan import render
    from vocagan.formats.mesh import read_mesh

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--mesh", type=Path, default=FLAME if FLAME.is_file() else None)
    args = ap.parse_args()
    if args.mesh:
        verts, faces = read_mesh(args.mesh)
        what = f"{args.mesh.name}"
    else:
        verts, faces = uv_sphere()
        what = "synthetic sphere"
    seq = moving(verts, args.frames)
    print(f"mesh: {what}, {len(verts)} vertices, {len(faces)} triangles; {args.size}x{args.size}, {args.frames} frames")
    rows = []
    if render._egl_context(required=False) is not None:
        ctx = render._egl_context(required=True)
        gl = f"{ctx.info['GL_RENDERER']}"
        for samples in (render.EGL_SAMPLES, 0):
            old, render.EGL_SAMPLES = render.EGL_SAMPLES, samples
            try:
                rows.append((f"egl ({gl}, {samples}x MSAA)", measure(seq, faces, args.size, "egl")))
            finally:
                render.EGL_SAMPLES = old
    else:
        print("EGL unavailable: numpy only")
    rows.append(("numpy z-buffer", measure(seq[: max(10, args.frames // 4)], faces, args.size, "numpy")))
    for name, fps in rows:
        print(f"{name:50s} {fps:8.1f} fps")


if __name__ == "__main__":
    os.environ.setdefault("VOCAGAN_PROGRESS", "0")
    main()
