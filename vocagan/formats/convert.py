"""`vocagan convert`: turn a user's own per-sequence meshes + wavs into the VOCASET files.

Two input layouts are detected from the folder (VOCA registrations `<subject>/<sentence>/*.ply`,
or the converted `vertices_npy/<subject>_<sentence>.npy` of later repos); meshes at another frame
rate are resampled to 60 fps; the files are written by `vocaset.VocasetWriter` (atomic, streamed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.formats.mesh import read_mesh
from vocagan.formats.pickles import nested_dict, safe_load_pickle
from vocagan.formats.vocaset import open_npy, split_stem
from vocagan.formats.vocaset_files import SOURCE_FPS, TEMPLATES, VERTICES_NPY, WAV_DIR
from vocagan.formats.vocaset_writer import VocasetWriter
from vocagan.frames import as_vertex_frames, resample_frames
from vocagan.options import ConvertOptions, check
from vocagan.utils import existing_dir, output_dir, progress

LAYOUTS = """\
Input layouts (detected from the folder; subject and sentence names come from the folder/file names):

  (a) VOCA registrations: INPUT/<subject>/<sentence>/*.ply (or .obj), one mesh per frame, in the
      order of the last number in the file name (sentence01.000001.ply, ...); audio at
      INPUT/<subject>/<sentence>.wav or INPUT/wav/<subject>_<sentence>.wav
  (b) the converted layout of later repos: INPUT/vertices_npy/<subject>_<sentence>.npy of shape
      (T, V*3) or (T, V, 3) in metres; audio at INPUT/wav/<subject>_<sentence>.wav

Templates (neutral faces): INPUT/templates/<subject>.ply or INPUT/templates.pkl (subject -> (V, 3))
when present, else each subject's first frame (said in the summary). Meshes at --input-fps other than
60 are resampled to 60 fps. A sequence without a wav is skipped and listed. The faces of
FLAME_sample.ply come from --template-ply, else from the first input mesh (layout a)."""


@dataclass
class ConvertResult:
    out_dir: Path
    layout: str  # "registration" | "vertices_npy"
    input_fps: int
    n_sequences: int = 0
    n_frames: int = 0  # at 60 fps, written
    template_sources: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"converted {self.n_sequences} sequence(s) of {len(self.template_sources)} subject(s), "
            f"{self.n_frames} frames at 60 fps ({self.layout} layout, input {self.input_fps} fps) -> {self.out_dir}"
        ]
        for subject, source in self.template_sources.items():
            lines.append(f"  template {subject}: {source}")
        lines += [f"  skipped {s}/{q}: {why}" for s, q, why in self.skipped]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _frame_number(path: Path) -> int:
    digits = re.findall(r"\d+", path.stem)
    if not digits:
        raise VocaganError("cannot find a frame number in the file name", path)
    return int(digits[-1])


# (subject, sentence, frames source: a (T, V*3) .npy or the frame meshes in order, wav or None)
FoundSequence = tuple[str, str, Path | list[Path], Path | None]


def _find_sequences(root: Path) -> tuple[str, list[FoundSequence]]:
    """-> (layout, [(subject, sentence, frames source, wav or None)]) for both accepted layouts."""
    seqs: list[FoundSequence] = []
    if (root / VERTICES_NPY).is_dir():
        for f in sorted((root / VERTICES_NPY).glob("*.npy")):
            if (pair := split_stem(f.stem)) is None:
                raise VocaganError("expected <subject>_<sentence>.npy", f)
            wav_path = root / WAV_DIR / f"{f.stem}.wav"
            seqs.append((*pair, f, wav_path if wav_path.is_file() else None))
        return "vertices_npy", seqs
    for subject_dir in sorted(d for d in root.iterdir() if d.is_dir() and d.name not in (WAV_DIR, "templates")):
        for seq_dir in sorted(d for d in subject_dir.iterdir() if d.is_dir()):
            meshes = [f for f in seq_dir.iterdir() if f.suffix.lower() in (".ply", ".obj")]
            if not meshes:
                continue
            meshes.sort(key=_frame_number)
            subject, sentence = subject_dir.name, seq_dir.name
            wav = next(
                (
                    w
                    for w in (subject_dir / f"{sentence}.wav", root / WAV_DIR / f"{subject}_{sentence}.wav")
                    if w.is_file()
                ),
                None,
            )
            seqs.append((subject, sentence, meshes, wav))
    return "registration", seqs


def _load_frames(source: Path | list[Path], n_vertices: int | None) -> np.ndarray:
    """A sequence's frames (T, V, 3) float32 from a list of mesh files or a (T, V*3) .npy."""
    if isinstance(source, Path):
        frames, where = as_vertex_frames(np.asarray(open_npy(source), np.float32)), source
    else:
        first = read_mesh(source[0])[0]
        frames = np.stack([first] + [_mesh_vertices(f, len(first)) for f in source[1:]])
        where = source[0].parent
    if frames.ndim != 3 or frames.shape[2] != 3 or len(frames) == 0:
        raise VocaganError(f"expected (T, V*3) or (T, V, 3) vertices, got {frames.shape}", where)
    if n_vertices is not None and frames.shape[1] != n_vertices:
        raise VocaganError(f"{frames.shape[1]} vertices, other sequences have {n_vertices}", where)
    if not np.isfinite(frames).all():
        raise VocaganError("vertices contain NaN/inf", where)
    return frames


def _mesh_vertices(path: Path, n_vertices: int) -> np.ndarray:
    vertices = read_mesh(path)[0]
    if len(vertices) != n_vertices:
        raise VocaganError(f"{len(vertices)} vertices, other frames have {n_vertices}", path)
    return vertices


def convert(
    input_dir: str | Path, out_dir: str | Path, input_fps: int = 60, template_ply: str | Path | None = None
) -> ConvertResult:
    """Turn your own per-sequence meshes + wavs into the VOCASET files (`vocagan convert`); the
    accepted input layouts are described in LAYOUTS (also what `vocagan convert --help` prints).
    processed_audio_deepspeech.pkl is written with the audio module's DeepSpeech stand-in
    (`deepspeech_like_windows`, no real DeepSpeech here).
    """
    from vocagan.formats.audio import deepspeech_like_windows, load_audio

    root, out_dir = Path(input_dir), Path(out_dir)
    existing_dir(root, "input folder")
    output_dir(out_dir)
    input_fps = check(ConvertOptions, "", input_fps=input_fps)
    layout, seqs = _find_sequences(root)
    result = ConvertResult(out_dir=out_dir, layout=layout, input_fps=int(input_fps))
    result.skipped = [(s, q, "no wav") for s, q, _, wav in seqs if wav is None]
    seqs = [x for x in seqs if x[3] is not None]
    if not seqs:
        raise VocaganError(
            "no sequences with audio found (expected <subject>/<sentence>/*.ply + wav, or "
            f"{VERTICES_NPY}/<subject>_<sentence>.npy + {WAV_DIR}/<subject>_<sentence>.wav)",
            root,
        )
    result.notes.append(
        "processed_audio_deepspeech.pkl holds a DeepSpeech stand-in computed from the "
        "audio (log-mel, not real DeepSpeech logits)"
    )
    if input_fps != SOURCE_FPS:
        result.notes.append(f"meshes resampled from {input_fps} to 60 fps (linear interpolation)")

    first = _load_frames(seqs[0][2], None)
    n_vertices = first.shape[1]
    faces = ply_vertices = None
    if template_ply is not None:
        ply_vertices, faces = read_mesh(template_ply)
        if len(ply_vertices) != n_vertices:
            raise VocaganError(f"mesh has {len(ply_vertices)} vertices, the sequences have {n_vertices}", template_ply)
    elif isinstance(seqs[0][2], list):  # the registration layout: one mesh per frame
        faces = read_mesh(seqs[0][2][0])[1]
    else:
        result.notes.append("FLAME_sample.ply written without faces (pass --template-ply to copy faces)")
    templates_pkl = (
        nested_dict(safe_load_pickle(root / TEMPLATES), root / TEMPLATES, "a dict subject -> (V, 3)", 1)
        if (root / TEMPLATES).is_file()
        else {}
    )

    with VocasetWriter(out_dir, n_vertices, faces=faces, template_ply_vertices=ply_vertices) as writer:
        for i, (subject, sentence, source, wav) in enumerate(progress(seqs, desc="convert", unit="seq")):
            frames = first if i == 0 else _load_frames(source, n_vertices)
            if subject not in writer.templates:
                template, src = _template_for(root, subject, templates_pkl, frames[0], n_vertices)
                writer.add_subject(subject, template)
                result.template_sources[subject] = src
            verts = resample_frames(frames, input_fps, SOURCE_FPS)
            samples, sr = load_audio(wav)
            ds = deepspeech_like_windows(samples, sr, len(verts))
            writer.add_sequence(subject, sentence, verts, samples, sr, ds)
            result.n_sequences += 1
            result.n_frames += len(verts)
    return result


def _template_for(
    root: Path, subject: str, templates_pkl: dict, first_frame: np.ndarray, n_vertices: int
) -> tuple[np.ndarray, str]:
    """The subject's neutral face and where it came from (never invented: a file or the first frame)."""
    ply = root / "templates" / f"{subject}.ply"
    if ply.is_file():
        template, source = read_mesh(ply)[0], str(ply)
    elif subject in templates_pkl:
        template, source = np.asarray(templates_pkl[subject], np.float32), f"{root / TEMPLATES}[{subject}]"
    else:
        return first_frame, "first frame of its first sequence (no templates/<subject>.ply or templates.pkl)"
    if template.shape != (n_vertices, 3):
        raise VocaganError(
            f"template of {subject} has shape {template.shape}, expected ({n_vertices}, 3)",
            ply if ply.is_file() else root / TEMPLATES,
        )
    return template, source
