"""Motion as morph targets: the basis a glTF file, a game engine or the live server animates.

Two ways to a `formats.gltf.MorphAnimation` (rest mesh + K targets + (T, K) weights):

- `from_coefficients(prepared, coefs, ...)`: a model's own output. Its motion is already a linear
  basis: mouth offsets = (coefs * coef_std + coef_mean) @ pca_components + pca_mean. So target 0,
  "mean", is the constant part (coef_mean @ pca_components + pca_mean, weight 1 in every frame) and
  target k, "pcKK", is coef_std[k] * pca_components[k] (weight = the model's normalised coefficient,
  i.e. one unit = one training standard deviation). Exact: the weights reproduce the decoded
  meshes (`Prepared.to_vertices`) up to float32 rounding; the rest mesh is the neutral template.
- `fit_vertices(vertices, template, ...)`: any (T, V, 3) sequence. With a checkpoint's basis it
  is projected onto that basis (least squares; refused when the residual exceeds the tolerance,
  e.g. a sequence from another template); without one, a PCA of the sequence's own offsets from
  the template: "mean" = the mean offset, then as many components as needed to reproduce every
  vertex of every frame within `tol_mm` (at most `max_targets`; the result reports the error).

`weights_table` / `write_weights_csv` / `write_weights_json`: the per-frame weights with timestamps
for engines that drive the targets themselves (columns named as the .glb's targets, same order).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.formats.gltf import MorphAnimation
from vocagan.utils import atomic_write_text

TOL_MM = 0.01  # default reconstruction tolerance of `fit_vertices`: 10 micrometres, far below visible
MAX_TARGETS = 64
MIN_DISPLACEMENT = 1e-9  # metres: vertices moving less than this in every frame are static


@dataclass
class FitResult:
    animation: MorphAnimation
    max_error_mm: float  # max over frames and vertices of |reconstruction - input|
    method: str  # "checkpoint basis" or "PCA of the sequence"


# ----------------------------------------------------------------------------- helpers
def _normals(base: np.ndarray, faces: np.ndarray, targets: np.ndarray, around: np.ndarray | None = None):
    """Unit rest normals (V, 3) and per-target normal deltas (K, V, 3): normals(shape + target) -
    normals(shape), linearised around `around` (the rest mesh plus the constant "mean" target) so that
    blending them approximates the normals of the blended mesh. Zero-area vertices get +z."""
    from vocagan.render import _incidence, vertex_normals

    incidence = _incidence(np.asarray(faces), len(base))

    def unit(v: np.ndarray) -> np.ndarray:
        n = vertex_normals(v, faces, incidence).astype(np.float64)
        flat = np.linalg.norm(n, axis=1) < 0.5
        n[flat] = (0.0, 0.0, 1.0)
        return (n / np.linalg.norm(n, axis=1, keepdims=True)).astype(np.float32)

    rest = unit(base)
    ref_shape = base if around is None else around
    ref = unit(ref_shape)
    deltas = (
        np.stack([unit(base + targets[0]) - rest] + [unit(ref_shape + t) - ref for t in targets[1:]])
        if len(targets)
        else np.zeros((0, *base.shape), np.float32)
    )
    deltas[np.abs(deltas) < 1e-7] = 0.0  # keep the sparse set to vertices that really change
    return rest, deltas.astype(np.float32)


def _names(k: int) -> list[str]:
    return ["mean"] + [f"pc{i + 1:02d}" for i in range(k)]


def _animation(base, faces, mean, components, weights, fps, extras) -> MorphAnimation:
    """rest + [mean, components] targets with weights [1, weights]."""
    targets = np.concatenate([mean[None], components]).astype(np.float32)
    w = np.concatenate([np.ones((len(weights), 1), np.float32), weights.astype(np.float32)], axis=1)
    normals = target_normals = None
    if faces is not None and len(faces):  # weight tables alone need no faces
        normals, target_normals = _normals(base, faces, targets, around=base + mean)
    faces = np.zeros((0, 3), np.int64) if faces is None else faces
    return MorphAnimation(
        base=base.astype(np.float32),
        faces=np.asarray(faces),
        targets=targets,
        names=_names(len(components)),
        times=np.arange(len(w)) / float(fps),
        weights=w,
        fps=fps,
        normals=normals,
        target_normals=target_normals,
        extras=dict(extras or {}),
    )


def checkpoint_basis(prepared, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's motion basis as full-mesh displacements: mean (V, 3) and components (K, V, 3)
    such that offsets = mean + coefs @ components for normalised coefficients `coefs`."""
    crop = np.asarray(prepared.crop)
    comps = np.asarray(prepared.pca_components, np.float64)  # (K, 3M), orthonormal rows
    std, cmean = np.asarray(prepared.coef_std, np.float64), np.asarray(prepared.coef_mean, np.float64)
    mean = np.zeros((n_vertices, 3))
    mean[crop] = (cmean @ comps + np.asarray(prepared.pca_mean, np.float64)).reshape(-1, 3)
    components = np.zeros((len(comps), n_vertices, 3))
    components[:, crop] = (std[:, None] * comps).reshape(len(comps), -1, 3)
    return mean.astype(np.float32), components.astype(np.float32)


# ----------------------------------------------------------------------------- from a model's output
def from_coefficients(
    prepared, coefs: np.ndarray, template: np.ndarray, faces: np.ndarray | None, fps: float, extras: dict | None = None
) -> MorphAnimation:
    """Normalised coefficients (T, K) of a model -> MorphAnimation over the template (exact; see module)."""
    template = np.asarray(template, np.float32)
    mean, components = checkpoint_basis(prepared, len(template))
    return _animation(template, faces, mean, components, np.asarray(coefs, np.float32), fps, extras)


# ----------------------------------------------------------------------------- from any vertex sequence
def fit_vertices(
    vertices: np.ndarray,
    template: np.ndarray,
    faces: np.ndarray,
    fps: float,
    prepared=None,
    tol_mm: float = TOL_MM,
    max_targets: int = MAX_TARGETS,
    extras: dict | None = None,
    where=None,
) -> FitResult:
    """(T, V, 3) vertices -> morph targets over `template` (see module docstring). `prepared` (a
    checkpoint's) projects onto the model's basis instead of fitting one."""
    template = np.asarray(template, np.float32)
    if vertices.ndim != 3 or vertices.shape[1:] != template.shape:
        raise VocaganError(f"vertices {vertices.shape} do not match the template's {template.shape[0]} vertices", where)
    if prepared is not None:
        return _project(vertices, template, faces, fps, prepared, tol_mm, extras, where)
    return _pca(vertices, template, faces, fps, tol_mm, max_targets, extras)


def _project(vertices, template, faces, fps, prepared, tol_mm, extras, where) -> FitResult:
    mean, components = checkpoint_basis(prepared, len(template))
    crop = np.asarray(prepared.crop)
    comps = np.asarray(prepared.pca_components, np.float64)
    std = np.asarray(prepared.coef_std, np.float64)
    offsets = (np.asarray(vertices, np.float64) - template).reshape(len(vertices), -1, 3)
    inside = (offsets[:, crop] - mean[crop]).reshape(len(vertices), -1)  # (T, 3M)
    weights = (inside @ comps.T) / std  # orthonormal rows: least squares is a projection
    anim = _animation(template, faces, mean, components, weights, fps, extras)
    err = _max_error_mm(vertices, anim)
    if err > tol_mm:
        raise VocaganError(
            f"the motion does not lie in the checkpoint's basis (max residual {err:.3f} mm > "
            f"{tol_mm:g} mm): pass the template it was animated on (--template), or export "
            "without --checkpoint to fit a basis to the motion itself",
            where,
        )
    return FitResult(anim, err, "checkpoint basis")


def _pca(vertices, template, faces, fps, tol_mm, max_targets, extras) -> FitResult:
    n_frames, n_vertices = vertices.shape[:2]
    offsets = np.asarray(vertices, np.float64) - template  # (T, V, 3)
    moving = np.nonzero(np.abs(offsets).max(axis=(0, 2)) > MIN_DISPLACEMENT)[0]
    mean = np.zeros((n_vertices, 3))
    mean[moving] = offsets[:, moving].mean(0)
    x = (offsets[:, moving] - mean[moving]).reshape(n_frames, -1)  # (T, 3M) centred
    # components: the right singular vectors of the centred offsets
    _, s, vt = np.linalg.svd(x, full_matrices=False) if x.size else (None, np.zeros(0), np.zeros((0, x.shape[1])))
    rank = int((s > s[0] * 1e-7).sum()) if len(s) and s[0] > 0 else 0
    best = None
    for k in range(0, min(rank, max_targets) + 1):
        w = x @ vt[:k].T  # (T, k)
        resid = (x - w @ vt[:k]).reshape(n_frames, -1, 3)
        err = float(np.sqrt((resid**2).sum(-1)).max()) * 1000.0 if resid.size else 0.0
        best = (k, w, err)
        if err <= tol_mm:
            break
    assert best is not None
    k, w, _ = best
    scale = w.std(0) if k else np.ones(0)  # one weight unit = one standard deviation of the motion
    scale[scale == 0] = 1.0
    components = np.zeros((k, n_vertices, 3))
    if k:
        components[:, moving] = (vt[:k] * scale[:, None]).reshape(k, len(moving), 3)
    anim = _animation(template, faces, mean.astype(np.float32), components.astype(np.float32), w / scale, fps, extras)
    return FitResult(anim, _max_error_mm(vertices, anim), "PCA of the sequence")


def _max_error_mm(vertices: np.ndarray, anim: MorphAnimation) -> float:
    err = 0.0
    for a in range(0, anim.n_frames, 512):
        rec = anim.vertices(slice(a, a + 512))
        err = max(err, float(np.sqrt(((rec - vertices[a : a + 512]) ** 2).sum(-1)).max()))
    return err * 1000.0


# ----------------------------------------------------------------------------- per-frame weights
def weights_table(anim: MorphAnimation) -> tuple[list[str], np.ndarray]:
    """Columns ["frame", "time_s", *target names] and rows (T, 2 + K)."""
    rows = np.column_stack([np.arange(anim.n_frames), anim.times, anim.weights])
    return ["frame", "time_s", *anim.names], rows


def write_weights_csv(path: str | Path, anim: MorphAnimation) -> Path:
    """One row per frame: frame, time_s, then one column per morph target (the .glb's order)."""
    header, rows = weights_table(anim)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for t, row in enumerate(rows):
        writer.writerow([t, f"{row[1]:.6f}", *(f"{v:.7g}" for v in anim.weights[t])])
    atomic_write_text(path, out.getvalue())
    return Path(path)


def write_weights_json(path: str | Path, anim: MorphAnimation, extras: dict | None = None) -> Path:
    """{"fps", "duration_s", "targets": [...], "frames": [{"frame", "time", "weights": [...]}, ...], ...}."""
    doc = {
        "fps": anim.fps,
        "duration_s": float(anim.n_frames / anim.fps),
        "targets": list(anim.names),
        **(extras or {}),
        "frames": [
            {
                "frame": t,
                "time": round(float(anim.times[t]), 6),
                "weights": [float(f"{v:.7g}") for v in anim.weights[t]],
            }
            for t in range(anim.n_frames)
        ],
    }
    atomic_write_text(path, json.dumps(doc, separators=(",", ":")) + "\n")
    return Path(path)


def write_files(anim: MorphAnimation, out_dir: Path, name: str, formats, audio: Path | None):
    """The .glb (+ the audio copied beside it, named in the .glb's extras) and/or the weight tables of
    one animation: out_dir/name.glb, name<audio suffix>, name_weights.csv/json. -> (glb or None, audio
    copy or None, [tables])."""
    import shutil

    from vocagan.formats.gltf import write_glb
    from vocagan.utils import atomic_path

    audio_copy = out_dir / f"{name}{audio.suffix.lower()}" if audio is not None else None
    if audio_copy is not None:
        anim.extras["audio"] = audio_copy.name
    glb, tables = None, []
    if "glb" in formats:
        glb = write_glb(out_dir / f"{name}.glb", anim)
        if audio is not None and audio_copy is not None and audio_copy.resolve() != Path(audio).resolve():
            with atomic_path(audio_copy) as tmp:
                shutil.copyfile(audio, tmp)
    if "csv" in formats:
        tables.append(write_weights_csv(out_dir / f"{name}_weights.csv", anim))
    if "json" in formats:
        extra = {"glb": f"{name}.glb"} if glb is not None else {}
        tables.append(write_weights_json(out_dir / f"{name}_weights.json", anim, {**extra, **anim.extras}))
    return glb, (audio_copy if glb is not None else None), tables
