"""The one VOCASET reader: files, subjects, splits, holes.

VOCASET's training data is five files (see DESIGN.md §1): `data_verts.npy` (N, 5023, 3) float32
at 60 fps, `subj_seq_to_idx.pkl` (subject -> "sentenceNN" -> frame -> row of data_verts),
`templates.pkl` (subject -> (V,3)), `processed_audio_deepspeech.pkl` and `raw_audio_fixed.pkl`
(subject -> sentence -> {"audio", "sample_rate"}), plus `FLAME_sample.ply` for the faces.

- `open_vocaset(DataConfig)` memory-maps data_verts read-only, loads the pickles through a
  restricted unpickler (`safe_load_pickle`) and works out each split, skipping (and reporting
  once) the sequences missing from any file it read (the DeepSpeech pickle only when asked). It
  also reads the converted layout of later repos (`vertices_npy/<subject>_<sentenceNN>.npy`
  (T, V*3) + `wav/` + `templates.pkl`).
- `formats/vocaset_files.py` names the files and finds them (`resolve_paths`); `formats/vocaset_writer.py`
  (`VocasetWriter`) writes them; `formats/pickles.py` loads pickles safely.

`vocagan.formats.convert` turns a user's own meshes + wavs into these files.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from pathlib import Path

import numpy as np

from vocagan.config import DataConfig
from vocagan.errors import VocaganError
from vocagan.formats.mesh import read_mesh_with_colors
from vocagan.formats.pickles import nested_dict, safe_load_pickle
from vocagan.formats.vocaset_files import VERTICES_NPY, WAV_DIR, resolve_paths, sentence_name
from vocagan.frames import as_vertex_frames
from vocagan.utils import log

# subject -> sentence -> rows of data_verts.npy (VOCASET layout) or the sequence's .npy (converted layout)
Index = dict[str, dict[str, np.ndarray | Path]]
_REPORTED: set[str] = set()  # holes already reported in this process


def open_npy(path: Path) -> np.ndarray:
    """np.load(mmap_mode="r") with one-line errors for truncated/corrupt files."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a corrupt header raises ValueError/SyntaxError/TokenError/...
        raise VocaganError(f"not a readable .npy file ({' '.join(str(e).split())[:160]})", path) from None


def _release_map(memmap: np.ndarray) -> None:
    """Unmap the pages just copied out of a read-only memory map (they stay in the OS page cache).
    Without this, every page ever read through the map counts in the process's RSS: reading all
    of VOCASET's data_verts.npy once would show ~7 GB resident although little is allocated."""
    mm = getattr(memmap, "_mmap", None)  # np.memmap keeps its mmap.mmap here
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)  # read-only shared map: pages re-fault from the cache


def split_stem(stem: str) -> tuple[str, str] | None:
    """ "FaceTalk_170728_03272_TA_sentence01" -> (subject, "sentence01")."""
    subject, _, sentence = stem.rpartition("_")
    return (subject, sentence) if subject and sentence else None


def _float_audio(audio) -> np.ndarray | None:
    """Any 1-D/2-D numeric array -> mono float32 (None if not audio); integer PCM scaled to [-1, 1]."""
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or not np.issubdtype(audio.dtype, np.number):
        return None
    scale = float(np.iinfo(audio.dtype).max) + 1.0 if np.issubdtype(audio.dtype, np.integer) else 1.0
    audio = audio.astype(np.float32) / np.float32(scale)
    if audio.ndim == 2:  # (samples, channels) or (channels, samples): average the short axis
        audio = audio.mean(axis=int(np.argmin(audio.shape)))
    return audio.astype(np.float32)


class Vocaset:
    """An opened VOCASET folder (see `open_vocaset`). Nothing large is loaded: `.verts` is a
    read-only memory map and `.load_verts` copies out one sequence at a time."""

    def __init__(self, cfg: DataConfig, deepspeech: bool = True):
        self.cfg = cfg
        self.paths = p = resolve_paths(cfg)
        self.layout, self.source_fps = p.layout, int(cfg.source_fps)
        self.templates = self._load_templates(p.templates)
        self.gaps: list[tuple[str, str, int]] = []  # (subject, sentence, missing frame indices)
        self._index: Index
        if p.layout == "vocaset":
            assert p.data_verts is not None and p.idx_map is not None  # resolve_paths sets both for this layout
            verts = open_npy(p.data_verts)
            if verts.ndim != 3 or verts.shape[2] != 3:
                raise VocaganError(f"data_verts must have shape (frames, vertices, 3), got {verts.shape}", p.data_verts)
            if not np.issubdtype(verts.dtype, np.floating):
                raise VocaganError(f"data_verts must hold floats, got {verts.dtype}", p.data_verts)
            self.verts: np.ndarray | None = verts
            self.n_vertices = int(verts.shape[1])
            self._index = self._load_index(p.idx_map, len(verts))
        else:
            assert p.vertices_dir is not None  # resolve_paths sets it for the converted layout
            self.verts = None
            self.n_vertices = int(next(iter(self.templates.values())).shape[0]) if self.templates else 0
            self._index = {}
            for f in sorted(p.vertices_dir.glob("*.npy")):
                if (pair := split_stem(f.stem)) is not None:
                    self._index.setdefault(pair[0], {})[pair[1]] = f
        for subject, template in self.templates.items():
            if template.shape[0] != self.n_vertices:
                raise VocaganError(
                    f"template of {subject} has {template.shape[0]} vertices, the sequences have {self.n_vertices}",
                    p.templates,
                )
        self.faces = self.template_mesh = self.colors = None
        if p.template_ply is not None:
            self.template_mesh, self.faces, self.colors = read_mesh_with_colors(p.template_ply)
            if len(self.template_mesh) != self.n_vertices:
                raise VocaganError(
                    f"mesh has {len(self.template_mesh)} vertices, the sequences have {self.n_vertices}", p.template_ply
                )
        self._raw = (
            nested_dict(safe_load_pickle(p.raw_audio), p.raw_audio, "a dict subject -> sentence -> audio", 2)
            if p.raw_audio
            else None
        )
        self._wavs: dict[tuple[str, str], Path] = {}
        if self._raw is None and p.wav_dir is not None:
            self._wavs = {pair: f for f in sorted(p.wav_dir.glob("*.wav")) if (pair := split_stem(f.stem))}
        self._deepspeech = (
            nested_dict(safe_load_pickle(p.deepspeech), p.deepspeech, "a dict subject -> sentence -> features", 2)
            if p.deepspeech and deepspeech
            else None
        )
        self.masks, self.masks_source = self._load_masks(p.masks)
        self.skipped: list[tuple[str, str, str]] = []  # (subject, sentence, why): in some files, not all
        self.absent: list[tuple[str, str]] = []  # requested by a split but in no file
        self._splits = {name: self._build_split(name) for name in ("train", "val", "test")}
        self._report()

    # -- loading and validation
    def _load_templates(self, path: Path) -> dict[str, np.ndarray]:
        out = {}
        for subject, t in nested_dict(safe_load_pickle(path), path, "a dict subject -> (V, 3) array", 1).items():
            t = np.asarray(t)
            if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.number):
                raise VocaganError(f"template of {subject} must be a (V, 3) array, got {t.shape}", path)
            out[subject] = t.astype(np.float32)
        return out

    def _load_index(self, path: Path, n_rows: int) -> Index:
        """subject -> sentence -> rows of data_verts (n_rows rows) in frame order (frame keys sorted)."""
        raw = nested_dict(safe_load_pickle(path), path, "a dict subject -> sentence -> {frame: row}", 3)
        index: Index = {}
        for subject, sentences in raw.items():
            for sentence, frames in sentences.items():
                try:
                    keys = sorted(int(k) for k in frames)
                    by_int = {int(k): int(v) for k, v in frames.items()}
                except (TypeError, ValueError):
                    raise VocaganError(f"{subject}/{sentence}: frame and row numbers must be integers", path) from None
                if not keys:
                    continue
                rows = np.array([by_int[k] for k in keys], np.int64)
                if rows.min() < 0 or rows.max() >= n_rows:
                    raise VocaganError(
                        f"{subject}/{sentence}: row {int(rows.max() if rows.max() >= n_rows else rows.min())}"
                        f" is outside data_verts.npy ({n_rows} frames)",
                        path,
                    )
                if (missing := keys[-1] - keys[0] + 1 - len(keys)) > 0:
                    self.gaps.append((subject, sentence, missing))
                index.setdefault(subject, {})[sentence] = rows
        return index

    def _load_masks(self, path: Path | None) -> tuple[dict | None, str]:
        if path is None:
            return None, "none"
        masks = {}
        for name, idx in nested_dict(safe_load_pickle(path), path, "a dict region -> vertex indices", 1).items():
            idx = np.asarray(idx)
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise VocaganError(f"region '{name}' must be a 1-D array of vertex indices", path)
            if len(idx) and (idx.min() < 0 or idx.max() >= self.n_vertices):
                raise VocaganError(f"region '{name}' has vertex indices outside 0..{self.n_vertices - 1}", path)
            masks[name] = idx.astype(np.int64)
        return masks, str(path)

    # -- splits
    def _missing(self, subject: str, sentence: str) -> list[str]:
        """Why (subject, sentence) cannot be used: one reason per file that lacks it."""
        p, why = self.paths, []
        if sentence not in self._index.get(subject, {}):
            why.append(f"not in {p.idx_map.name if p.idx_map else VERTICES_NPY + '/'}")
        if subject not in self.templates:
            why.append(f"no template in {p.templates.name}")
        if self._raw is not None and p.raw_audio is not None and sentence not in self._raw.get(subject, {}):
            why.append(f"not in {p.raw_audio.name}")
        if self._raw is None and p.wav_dir is not None and (subject, sentence) not in self._wavs:
            why.append(f"no {WAV_DIR}/{subject}_{sentence}.wav")
        if (
            self._deepspeech is not None
            and p.deepspeech is not None
            and sentence not in self._deepspeech.get(subject, {})
        ):
            why.append(f"not in {p.deepspeech.name}")
        return why

    def _anywhere(self, subject: str, sentence: str) -> bool:
        """Whether any file holds (subject, sentence): meshes, raw audio, wavs or DeepSpeech windows."""
        return (
            sentence in self._index.get(subject, {})
            or (self._raw is not None and sentence in self._raw.get(subject, {}))
            or (subject, sentence) in self._wavs
            or (self._deepspeech is not None and sentence in self._deepspeech.get(subject, {}))
        )

    def _build_split(self, name: str) -> tuple[list[tuple[str, str]], int]:
        subjects = getattr(self.cfg, f"{name}_subjects")
        sentences = [sentence_name(s) for s in getattr(self.cfg, f"{name}_sentences")]
        pairs = []
        for subject in subjects:
            for sentence in sentences:
                if not self._anywhere(subject, sentence):
                    # In no file at all: the corpus is smaller than the split asks for. Counted and
                    # reported apart from real holes (a sequence some files have and others lack).
                    if (subject, sentence) not in self.absent:
                        self.absent.append((subject, sentence))
                elif why := self._missing(subject, sentence):
                    if (subject, sentence, "; ".join(why)) not in self.skipped:
                        self.skipped.append((subject, sentence, "; ".join(why)))
                else:
                    pairs.append((subject, sentence))
        return pairs, len(subjects) * len(sentences)

    def _report(self) -> None:
        """One log line per open: skipped sequences (by reason, with examples) and frame gaps."""
        parts = []
        if self.skipped:
            reasons = Counter(r for _, _, why in self.skipped for r in why.split("; "))
            examples = ", ".join(f"{s}/{q}" for s, q, _ in self.skipped[:3])
            parts.append(
                f"skipped {len(self.skipped)} requested sequence(s) missing from some file ("
                + ", ".join(f"{n} {r}" for r, n in reasons.most_common())
                + f"; e.g. {examples})"
            )
        if self.absent:
            parts.append(
                f"{len(self.absent)} requested sequence(s) are in no file (the data holds fewer "
                f"subjects/sentences than the split asks for; e.g. {self.absent[0][0]}/{self.absent[0][1]})"
            )
        if self.gaps:
            parts.append(
                f"{len(self.gaps)} sequence(s) have frame-index gaps (e.g. {self.gaps[0][0]}/"
                f"{self.gaps[0][1]}: {self.gaps[0][2]} missing), frames taken in index order"
            )
        message = "vocaset: " + "; ".join(parts)
        if parts and message not in _REPORTED:  # once per process, though prepare/evaluate reopen the data
            _REPORTED.add(message)
            log(message)

    def subjects(self) -> list[str]:
        return sorted(self._index)

    def sentences(self, subject: str) -> list[str]:
        return sorted(self._index.get(subject, {}))

    def split(self, name: str) -> list[tuple[str, str]]:
        """(subject, "sentenceNN") pairs of split `name` present in every file."""
        if name not in self._splits:
            raise VocaganError(f"unknown split '{name}' (valid: train, val, test)")
        pairs, requested = self._splits[name]
        if requested and not pairs:
            where = self.paths.idx_map or self.paths.vertices_dir
            reasons = sorted({r for s, _, r in self.skipped if s in getattr(self.cfg, f"{name}_subjects")})
            why = "; ".join(reasons)[:200] or "none of them is in any file: check the split's subjects/sentences"
            raise VocaganError(f"no complete sequence for split '{name}' ({requested} requested; {why})", where)
        return list(pairs)

    # -- per sequence
    def _rows(self, subject: str, sentence: str):
        try:
            return self._index[subject][sentence]
        except KeyError:
            raise VocaganError(
                f"no sequence {subject}/{sentence}", self.paths.idx_map or self.paths.vertices_dir
            ) from None

    def sequence_length(self, subject: str, sentence: str) -> int:
        """Frames of a sequence at `source_fps`, without loading it."""
        rows = self._rows(subject, sentence)
        return len(rows) if isinstance(rows, np.ndarray) else len(open_npy(rows))

    def load_verts(self, subject: str, sentence: str) -> np.ndarray:
        """(T, V, 3) float32 metres at `source_fps`, frames in index order; only this sequence is read."""
        rows = self._rows(subject, sentence)
        if isinstance(rows, np.ndarray):
            path = self.paths.data_verts
            verts = self._read_rows(rows)
        else:
            path = rows
            data = open_npy(path)
            data = as_vertex_frames(data, self.n_vertices)
            if data.ndim != 3 or data.shape[1:] != (self.n_vertices, 3):
                raise VocaganError(
                    f"expected (T, {self.n_vertices * 3}) or (T, {self.n_vertices}, 3), got {data.shape}", path
                )
            verts = np.array(data, np.float32)
        if not np.isfinite(verts).all():
            bad = np.flatnonzero(~np.isfinite(verts).reshape(len(verts), -1).all(axis=1))
            raise VocaganError(
                f"NaN/inf in sequence {subject}/{sentence} (frame {int(bad[0])}, {len(bad)} frame(s))", path
            )
        return verts

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows (T,) of data_verts.npy -> (T, V, 3) float32.

        A C-order file is read with positioned reads (`os.preadv`, one per run of consecutive rows)
        straight into the output: nothing is mapped, so nothing read counts in this process's RSS,
        and threads can read at the same time (prepare reads with two). All of the VOCASET-sized
        corpus: 2.2 s of CPU, against 2.4-3.3 s through the memory map (page faults, then
        `_release_map`). Other layouts (Fortran order, no preadv) go through the memory map."""
        v, path = self.verts, self.paths.data_verts
        assert v is not None and path is not None  # rows index data_verts.npy: the VOCASET layout
        if not isinstance(v, np.memmap) or not v.flags.c_contiguous or not hasattr(os, "preadv"):
            contiguous = np.all(np.diff(rows) == 1)
            verts = np.array(v[rows[0] : rows[-1] + 1] if contiguous else v[rows], np.float32)
            _release_map(v)
            return verts
        out = np.empty((len(rows), self.n_vertices, 3), v.dtype)
        frame_bytes = out[0].nbytes if len(out) else 0
        starts = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist()]  # runs of consecutive rows
        with open(path, "rb", buffering=0) as f:
            for begin, end in zip(starts, [*starts[1:], len(rows)], strict=True):
                block = out[begin:end].data.cast("B")
                offset, done = int(v.offset) + int(rows[begin]) * frame_bytes, 0
                while done < len(block):  # a read may return less than asked
                    n = os.preadv(f.fileno(), [block[done:]], offset + done)
                    if n <= 0:
                        raise VocaganError(f"row {int(rows[begin])} onwards is cut short (truncated file?)", path)
                    done += n
        return out.astype(np.float32, copy=False)

    def raw_audio(self, subject: str, sentence: str) -> tuple[np.ndarray, int] | None:
        """(samples float32 1-D in [-1, 1], sample_rate) from raw_audio_fixed.pkl or wav/, or None."""
        if self._raw is not None:
            entry = self._raw.get(subject, {}).get(sentence)
            if entry is None:
                return None
            if not isinstance(entry, dict) or "audio" not in entry or "sample_rate" not in entry:
                raise VocaganError(f"{subject}/{sentence}: expected {{'audio', 'sample_rate'}}", self.paths.raw_audio)
            samples = _float_audio(entry["audio"])
            if samples is None:
                raise VocaganError(f"{subject}/{sentence}: 'audio' is not a 1-D sample array", self.paths.raw_audio)
            sr = entry["sample_rate"]
            if not isinstance(sr, (int, float, np.number)) or not np.isfinite(sr) or int(sr) <= 0:
                raise VocaganError(
                    f"{subject}/{sentence}: invalid sample_rate {sr!r} (must be > 0)", self.paths.raw_audio
                )
            return samples, int(sr)
        wav = self._wavs.get((subject, sentence))
        if wav is None:
            return None
        from vocagan.formats.audio import load_audio

        return load_audio(wav)

    def deepspeech(self, subject: str, sentence: str) -> np.ndarray | None:
        """(T60, 16, 29) float32 DeepSpeech windows, or None when absent."""
        if self._deepspeech is None or (entry := self._deepspeech.get(subject, {}).get(sentence)) is None:
            return None
        features = np.asarray(entry["audio"] if isinstance(entry, dict) else entry, np.float32)
        if features.ndim != 3 or features.shape[1:] != (16, 29):
            raise VocaganError(
                f"{subject}/{sentence}: expected (T, 16, 29) windows, got {features.shape}", self.paths.deepspeech
            )
        return features


def open_vocaset(cfg: DataConfig, deepspeech: bool = True) -> Vocaset:
    """Open a VOCASET folder (or the converted vertices_npy layout) described by `cfg`.

    deepspeech=False leaves processed_audio_deepspeech.pkl unread (~350 MB on VOCASET) for callers
    that use raw audio only; the splits then do not depend on it (`deepspeech()` returns None)."""
    return Vocaset(cfg, deepspeech)
