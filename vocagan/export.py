"""`vocagan export`: an existing vertex sequence (.npy) -> glTF morph targets (.glb) and weight tables.

How a vertex .npy becomes morph targets (`morph.fit_vertices`):
- with `--checkpoint`: projected onto that model's motion basis (its mouth PCA, decoded to per-vertex
  displacements: the same targets `animate --format glb` writes, so a prediction saved as .npy and
  exported later gives the same file). A sequence that does not lie in the basis (another template,
  ground truth, edited meshes) is refused with its residual, never silently approximated.
- without: a PCA of the sequence's own offsets from the template (its "mean" offset, then as many
  components as it takes to reproduce every vertex of every frame within --tolerance-mm, at most
  --max-targets; the summary reports the error reached).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.options import ExportOptions, VideoOptions, check
from vocagan.utils import atomic_path, output_dir

EXPORT_FORMATS = ("glb", "csv", "json")


@dataclass
class ExportResult:
    source: Path
    method: str
    n_frames: int
    n_targets: int
    max_error_mm: float
    files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"exported {self.source}: {self.n_frames} frames as {self.n_targets} morph targets ({self.method}), "
            f"max vertex error {self.max_error_mm:.4f} mm"
        ]
        lines += [f"  {f}" for f in self.files]
        return "\n".join(lines)


def export_vertices(
    vertices: Path,
    out_dir: Path,
    formats: list[str] | tuple[str, ...] = ("glb",),
    template: str | None = None,
    checkpoint: Path | None = None,
    fps: float = 30,
    audio: Path | None = None,
    tol_mm: float = 0.01,
    max_targets: int = 64,
) -> ExportResult:
    from vocagan.formats.gltf import write_glb
    from vocagan.morph import fit_vertices, write_weights_csv, write_weights_json
    from vocagan.video import check_audio, load_vertices

    formats = list(dict.fromkeys(formats))
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad or not formats:
        raise VocaganError(f"unknown export format(s) {', '.join(bad) or '(none)'}; valid: {', '.join(EXPORT_FORMATS)}")
    fps = check(VideoOptions, fps=fps)
    tol_mm = check(ExportOptions, tolerance_mm=tol_mm)
    if fps is None or max_targets < 1:
        raise VocaganError(f"fps and max targets must be given, got {fps}, {max_targets}")
    if audio is not None:
        check_audio(audio)  # copied beside the .glb: it must be sound
    out_dir = output_dir(out_dir)
    verts = np.asarray(load_vertices(vertices), np.float32)
    prepared, colors = None, None
    if checkpoint is not None:
        from vocagan.checkpoint import load_checkpoint
        from vocagan.infer import resolve_template

        _, ckpt = load_checkpoint(checkpoint)
        prepared = ckpt.prepared
        _, rest, faces = resolve_template(ckpt, prepared, template)
        colors = prepared.template_colors(template)
        if faces is None:
            faces = prepared.faces if len(prepared.faces) else None
    else:
        from vocagan.formats.mesh import read_mesh_with_colors

        if template is None or not Path(template).is_file():
            raise VocaganError(
                "--template must be a PLY/OBJ mesh (faces and rest vertices) without --checkpoint", template
            )
        rest, faces, colors = read_mesh_with_colors(Path(template))
    if faces is None or not len(faces):
        raise VocaganError("no faces: pass --template mesh.ply with the sequence's topology", template)
    if len(rest) != verts.shape[1] or int(np.max(faces)) >= verts.shape[1]:
        raise VocaganError(
            f"the template has {len(rest)} vertices, the sequence {verts.shape[1]} (topology mismatch)", template
        )
    name = Path(vertices).stem
    audio_copy = out_dir / f"{name}{Path(audio).suffix.lower()}" if audio is not None else None
    extras = {"generator": "vocagan export", "source": Path(vertices).name}
    if audio_copy is not None:
        extras["audio"] = audio_copy.name
    fit = fit_vertices(
        verts,
        rest,
        faces,
        fps,
        prepared=prepared,
        tol_mm=tol_mm,
        max_targets=max_targets,
        extras=extras,
        where=vertices,
    )
    anim = fit.animation
    anim.colors = colors if colors is not None and len(colors) == len(anim.base) else None
    result = ExportResult(Path(vertices), fit.method, anim.n_frames, len(anim.names), fit.max_error_mm)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "glb" in formats:
        result.files.append(write_glb(out_dir / f"{name}.glb", anim))
        if audio is not None and audio_copy is not None:
            with atomic_path(audio_copy) as tmp:
                shutil.copyfile(audio, tmp)
            result.files.append(audio_copy)
    if "csv" in formats:
        result.files.append(write_weights_csv(out_dir / f"{name}_weights.csv", anim))
    if "json" in formats:
        result.files.append(write_weights_json(out_dir / f"{name}_weights.json", anim, extras))
    return result
