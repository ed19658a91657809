"""Write a VOCASET folder (the five files, FLAME_sample.ply and wav/) with bounded memory and
atomically: frames stream to a temporary data_verts.npy, everything is renamed at `close()`.
The synthetic corpus and `convert` write through it; `formats/vocaset.py` reads what it writes."""

from __future__ import annotations

import os
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.formats.mesh import write_ply
from vocagan.formats.vocaset_files import (
    DATA_VERTS,
    DEEPSPEECH,
    IDX_MAP,
    RAW_AUDIO,
    REGION_MASKS,
    TEMPLATE_PLY,
    TEMPLATES,
    WAV_DIR,
    sentence_name,
)
from vocagan.utils import output_dir

_NPY_HEADER_BYTES = 128  # magic + version + length + padded dict; room for any realistic row count


def _npy_header(n_rows: int, n_vertices: int) -> bytes:
    """A fixed-size .npy v1.0 header for a (n_rows, n_vertices, 3) '<f4' C-order array."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n_rows:d}, {n_vertices:d}, 3), }}"
    body = _NPY_HEADER_BYTES - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode("latin1")


class VocasetWriter:
    """Write a VOCASET folder sequence by sequence with bounded memory.

        with VocasetWriter(out, n_vertices=5023, faces=faces) as w:
            w.add_subject("FaceTalk_170728_03272_TA", template)            # (V, 3)
            w.add_sequence("FaceTalk_170728_03272_TA", "sentence01", verts,  # (T60, V, 3) metres
                           audio, 22000, deepspeech=None)                   # float32 1-D, Hz

    Frames go straight to a temporary data_verts.npy whose header shape is patched at `close()`;
    everything (pickles protocol 2, FLAME_sample.ply, wav/<subject>_<sentence>.wav 16-bit PCM,
    optional region_masks.pkl; FLAME_sample.ply with per-vertex colours when given) is written under
    temporary names and renamed only by `close()`; without masks a stale region_masks.pkl is removed.
    Pickled audio is kept in memory until `close()` (it must be pickled whole); vertices are not.
    """

    def __init__(
        self,
        out_dir: str | Path,
        n_vertices: int,
        faces=None,
        template_ply_vertices=None,
        masks: dict[str, np.ndarray] | None = None,
        colors=None,
    ):
        self.out_dir = output_dir(out_dir)
        self.n_vertices = int(n_vertices)
        self.faces = None if faces is None else np.asarray(faces, np.int32)
        self.template_ply_vertices = template_ply_vertices
        self.masks = masks
        self.colors = colors  # (V, 3) per-vertex RGB of FLAME_sample.ply, or None
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final)
        self._verts_tmp = self._tmp(DATA_VERTS)
        self._verts_file = open(self._verts_tmp, "r+b")
        self._verts_file.write(_npy_header(0, self.n_vertices))
        self.n_rows = 0
        self.templates: dict[str, np.ndarray] = {}
        self.index: dict[str, dict[str, dict[int, int]]] = {}
        self.raw_audio: dict[str, dict[str, dict]] = {}
        self.deepspeech: dict[str, dict[str, dict]] = {}
        self.closed = False

    def _tmp(self, name: str, folder: Path | None = None) -> Path:
        folder = folder or self.out_dir
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{name}.", suffix=Path(name).suffix, dir=folder)
        os.close(fd)
        self._pending.append((Path(tmp), folder / name))
        return Path(tmp)

    def __enter__(self) -> VocasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_subject(self, subject: str, template) -> None:
        template = np.asarray(template, np.float32)
        if template.shape != (self.n_vertices, 3) or not np.isfinite(template).all():
            raise VocaganError(
                f"template of {subject} must be finite ({self.n_vertices}, 3), got {template.shape}", self.out_dir
            )
        self.templates[subject] = template
        self.index.setdefault(subject, {})

    def add_sequence(self, subject: str, sentence: str | int, verts, audio, sample_rate: int, deepspeech=None) -> None:
        """Append one sequence: verts (T60, V, 3) metres, audio float32 1-D at `sample_rate` Hz,
        deepspeech (T60, 16, 29) windows or None."""
        sentence = sentence_name(sentence)
        where = f"{subject}/{sentence}"
        if self.closed:
            raise VocaganError("writer already closed", self.out_dir)
        if subject not in self.templates:
            raise VocaganError(f"{where}: add_subject() first", self.out_dir)
        if sentence in self.index[subject]:
            raise VocaganError(f"{where} added twice", self.out_dir)
        verts = np.ascontiguousarray(verts, dtype="<f4")
        if verts.ndim != 3 or verts.shape[1:] != (self.n_vertices, 3) or len(verts) == 0:
            raise VocaganError(f"{where}: verts must be (T, {self.n_vertices}, 3), got {verts.shape}", self.out_dir)
        if not np.isfinite(verts).all():
            raise VocaganError(f"{where}: verts contain NaN/inf", self.out_dir)
        if self.index and any(self.index.values()) and (deepspeech is None) != (not self.deepspeech):
            raise VocaganError(f"{where}: give deepspeech windows for every sequence or for none", self.out_dir)
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or len(audio) == 0 or not np.isfinite(audio).all() or int(sample_rate) <= 0:
            raise VocaganError(f"{where}: audio must be finite, 1-D, non-empty, with sample_rate > 0", self.out_dir)
        self._verts_file.write(verts.data)  # stream: nothing of earlier sequences stays in memory
        self._verts_file.flush()
        self.index[subject][sentence] = {i: self.n_rows + i for i in range(len(verts))}
        self.n_rows += len(verts)
        self.raw_audio.setdefault(subject, {})[sentence] = {"audio": audio, "sample_rate": int(sample_rate)}
        if deepspeech is not None:
            deepspeech = np.asarray(deepspeech, np.float32)
            if deepspeech.ndim != 3 or deepspeech.shape[1:] != (16, 29):
                raise VocaganError(f"{where}: deepspeech must be (T, 16, 29), got {deepspeech.shape}", self.out_dir)
            self.deepspeech.setdefault(subject, {})[sentence] = {"audio": deepspeech, "sample_rate": int(sample_rate)}
        import soundfile

        wav = self._tmp(f"{subject}_{sentence}.wav", self.out_dir / WAV_DIR)
        soundfile.write(str(wav), np.clip(audio, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")

    def _dump(self, name: str, obj) -> None:
        with open(self._tmp(name), "wb") as f:
            pickle.dump(obj, f, protocol=2)  # the protocol of the original (Python 2) files

    def close(self) -> Path:
        """Finish every file and rename them onto their final names. Returns the folder."""
        if self.closed:
            raise VocaganError("writer already closed", self.out_dir)
        try:
            if self.n_rows == 0:
                raise VocaganError("no sequences were written", self.out_dir)
            self._verts_file.seek(0)
            self._verts_file.write(_npy_header(self.n_rows, self.n_vertices))  # patch the shape
            self._verts_file.close()
            self._dump(IDX_MAP, self.index)
            self._dump(TEMPLATES, self.templates)
            self._dump(RAW_AUDIO, self.raw_audio)
            if self.deepspeech:
                self._dump(DEEPSPEECH, self.deepspeech)
            if self.masks is not None:
                self._dump(REGION_MASKS, {k: np.asarray(v, np.int64) for k, v in self.masks.items()})
            ply_vertices = self.template_ply_vertices
            if ply_vertices is None:
                ply_vertices = next(iter(self.templates.values()))
            write_ply(self._tmp(TEMPLATE_PLY), ply_vertices, self.faces, colors=self.colors)
            for tmp, final in self._pending:
                os.replace(tmp, final)
            if self.masks is None and (self.out_dir / REGION_MASKS).is_file():
                (self.out_dir / REGION_MASKS).unlink()  # a previous corpus' regions would not fit this mesh
            self._pending.clear()
        except BaseException:
            self.abort()
            raise
        self.closed = True
        return self.out_dir

    def abort(self) -> None:
        """Remove every temporary file; nothing appears under the final names."""
        if not self._verts_file.closed:
            self._verts_file.close()
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()
        self.closed = True
