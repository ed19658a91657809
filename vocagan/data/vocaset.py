"""The one VOCASET reader and writer: files, subjects, splits, holes.

VOCASET's training data is five files (see DESIGN.md §1): `data_verts.npy` (N, 5023, 3) float32
at 60 fps, `subj_seq_to_idx.pkl` (subject -> "sentenceNN" -> frame -> row of data_verts),
`templates.pkl` (subject -> (V,3)), `processed_audio_deepspeech.pkl` and `raw_audio_fixed.pkl`
(subject -> sentence -> {"audio", "sample_rate"}), plus `FLAME_sample.ply` for the faces.

- `open_vocaset(DataConfig)` memory-maps data_verts read-only, loads the pickles through a
  restricted unpickler (`safe_load_pickle`) and works out each split, skipping (and reporting
  once) the sequences missing from any file it read (the DeepSpeech pickle only when asked). It
  also reads the converted layout of later repos (`vertices_npy/<subject>_<sentenceNN>.npy`
  (T, V*3) + `wav/` + `templates.pkl`).
- `VocasetWriter` writes the files with bounded memory (frames are streamed to disk) and
  atomically (temporary names, renamed at `close()`).

`vocagan.data.convert` turns a user's own meshes + wavs into these files.
"""

from __future__ import annotations

import importlib
import mmap
import os
import pickle
import struct
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.config import DataConfig
from vocagan.data.mesh import read_mesh, write_ply
from vocagan.errors import VocaganError
from vocagan.utils import log

DATA_VERTS, IDX_MAP, TEMPLATES = "data_verts.npy", "subj_seq_to_idx.pkl", "templates.pkl"
DEEPSPEECH, RAW_AUDIO, TEMPLATE_PLY = "processed_audio_deepspeech.pkl", "raw_audio_fixed.pkl", "FLAME_sample.ply"
FLAME_MASKS, REGION_MASKS = "FLAME_masks.pkl", "region_masks.pkl"
VERTICES_NPY, WAV_DIR = "vertices_npy", "wav"
SOURCE_FPS = 60


def sentence_name(sentence: int | str) -> str:
    """1 -> "sentence01"; a string is kept as it is."""
    return f"sentence{sentence:02d}" if isinstance(sentence, (int, np.integer)) else str(sentence)


# ============================================================================ safe pickles
def _numpy_attr(submodule: str, name: str):
    """numpy._core.<submodule>.<name> (numpy 2), else numpy.core.<submodule>.<name> (numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text, encoding="latin1", *rest):
    """`_codecs.encode` as Python 3 writes bytes in protocol-2 pickles; only latin1 is needed."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict:
    import collections

    allowed = {}
    for mod in ("builtins", "__builtin__"):  # __builtin__: Python 2 pickles
        for cls in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool):
            allowed[(mod, cls.__name__)] = cls
    allowed[("__builtin__", "unicode")], allowed[("__builtin__", "long")] = str, int
    for package in ("numpy._core", "numpy.core"):  # both map to the installed numpy
        allowed[(f"{package}.multiarray", "_reconstruct")] = _numpy_attr("multiarray", "_reconstruct")
        allowed[(f"{package}.multiarray", "scalar")] = _numpy_attr("multiarray", "scalar")
        allowed[(f"{package}.numeric", "_frombuffer")] = _numpy_attr("numeric", "_frombuffer")  # protocol 5
    allowed[("numpy", "ndarray")], allowed[("numpy", "dtype")] = np.ndarray, np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays/scalars/dtypes and builtin containers, strings and numbers only."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # Python 2 `str` -> str (arrays accept latin1 str)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise VocaganError(f"refusing to unpickle {module}.{name} (only numpy arrays, dicts, lists, "
                               "strings and numbers are allowed)", self._path) from None


def safe_load_pickle(path: str | Path) -> object:
    """Load a pickle with the restricted unpickler (Python 2 / numpy 1 pickles included)."""
    path = Path(path)
    if not path.is_file():
        raise VocaganError("file not found", path)
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            return _RestrictedUnpickler(f, path).load()
    except VocaganError:
        raise
    except MemoryError as e:  # a few corrupt/hostile bytes can ask for a 400 GB array
        raise VocaganError(f"unpickling needs more memory than is available ({str(e) or 'MemoryError'}); "
                           "corrupt or hostile file?", path) from None
    except Exception as e:  # noqa: BLE001 - any failure while decoding untrusted bytes means a bad file
        raise VocaganError(f"corrupt or truncated pickle ({type(e).__name__}: {e})", path) from None


def _key(k) -> str:
    """Pickle keys as str: Python 2 byte strings may arrive as bytes."""
    return k.decode("latin1") if isinstance(k, (bytes, bytearray)) else str(k)


def _nested(obj, path: Path, what: str, depth: int) -> dict:
    """Check `obj` is a dict nested `depth` levels deep (e.g. subject -> sentence -> x); str keys."""
    if not isinstance(obj, dict):
        raise VocaganError(f"wrong structure: expected {what}, got {type(obj).__name__}", path)
    if depth == 1:
        return {_key(k): v for k, v in obj.items()}
    return {_key(k): _nested(v, path, what, depth - 1) for k, v in obj.items()}


# ============================================================================ writer
_NPY_HEADER_BYTES = 128  # magic + version + length + padded dict; room for any realistic row count


def _npy_header(n_rows: int, n_vertices: int) -> bytes:
    """A fixed-size .npy v1.0 header for a (n_rows, n_vertices, 3) '<f4' C-order array."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, 3), }" % (n_rows, n_vertices)
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
    optional region_masks.pkl) is written under temporary names and renamed only by `close()`.
    Pickled audio is kept in memory until `close()` (it must be pickled whole); vertices are not.
    """

    def __init__(self, out_dir: str | Path, n_vertices: int, faces=None, template_ply_vertices=None,
                 masks: dict[str, np.ndarray] | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.n_vertices = int(n_vertices)
        self.faces = None if faces is None else np.asarray(faces, np.int32)
        self.template_ply_vertices = template_ply_vertices
        self.masks = masks
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

    def __enter__(self) -> "VocasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_subject(self, subject: str, template) -> None:
        template = np.asarray(template, np.float32)
        if template.shape != (self.n_vertices, 3) or not np.isfinite(template).all():
            raise VocaganError(f"template of {subject} must be finite ({self.n_vertices}, 3), got "
                               f"{template.shape}", self.out_dir)
        self.templates[subject] = template
        self.index.setdefault(subject, {})

    def add_sequence(self, subject: str, sentence: str | int, verts, audio, sample_rate: int,
                     deepspeech=None) -> None:
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
            self.deepspeech.setdefault(subject, {})[sentence] = {"audio": deepspeech,
                                                                 "sample_rate": int(sample_rate)}
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
            write_ply(self._tmp(TEMPLATE_PLY), ply_vertices, self.faces)
            for tmp, final in self._pending:
                os.replace(tmp, final)
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


# ============================================================================ reader
@dataclass
class VocasetPaths:
    """Resolved input files. `data_verts`/`idx_map` are None in the converted layout, where the
    sequences are `vertices_dir/<subject>_<sentence>.npy`; `wav_dir` is the raw-audio fallback."""

    data_verts: Path | None
    idx_map: Path | None
    templates: Path
    deepspeech: Path | None = None
    raw_audio: Path | None = None
    template_ply: Path | None = None
    masks: Path | None = None
    wav_dir: Path | None = None
    vertices_dir: Path | None = None
    layout: str = "vocaset"  # "vocaset" | "converted"


_REPORTED: set[str] = set()  # holes already reported in this process


def resolve_paths(cfg: DataConfig) -> VocasetPaths:
    """Explicit paths win over `cfg.root`/<standard name>; a missing required file is an error."""
    root = Path(cfg.root) if cfg.root else None
    if root is not None and not root.is_dir():
        raise VocaganError("data folder not found", root)
    # With only the seed's explicit flags, optional files (raw_audio_fixed.pkl, masks) are looked
    # for next to data_verts.npy: VOCASET ships its training files in one folder.
    siblings = Path(cfg.data_verts_path).parent if root is None and cfg.data_verts_path else None

    def pick(explicit: str | None, name: str, required: bool) -> Path | None:
        if explicit:
            if not Path(explicit).is_file():
                raise VocaganError("file not found", explicit)
            return Path(explicit)
        if root is None:
            if required:
                raise VocaganError(f"no {name}: give the data folder (data.root / --data) or its explicit path")
            return siblings / name if siblings is not None and (siblings / name).is_file() else None
        if (root / name).is_file():
            return root / name
        if required:
            raise VocaganError("file not found", root / name)
        return None

    converted = (root is not None and not cfg.data_verts_path and not (root / DATA_VERTS).is_file()
                 and (root / VERTICES_NPY).is_dir())
    masks = pick(cfg.masks_path, FLAME_MASKS, False) or pick(None, REGION_MASKS, False)
    wav_dir = root / WAV_DIR if root is not None and (root / WAV_DIR).is_dir() else None
    return VocasetPaths(
        data_verts=None if converted else pick(cfg.data_verts_path, DATA_VERTS, True),
        idx_map=None if converted else pick(cfg.idx_map_path, IDX_MAP, True),
        templates=pick(cfg.template_path, TEMPLATES, True),
        deepspeech=pick(cfg.audio_pkl_path, DEEPSPEECH, False),
        raw_audio=pick(cfg.raw_audio_path, RAW_AUDIO, False),
        template_ply=pick(cfg.template_ply_path, TEMPLATE_PLY, False),
        masks=masks, wav_dir=wav_dir,
        vertices_dir=root / VERTICES_NPY if converted else None,
        layout="converted" if converted else "vocaset")


def _open_npy(path: Path) -> np.ndarray:
    """np.load(mmap_mode="r") with one-line errors for truncated/corrupt files."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a corrupt header raises ValueError/SyntaxError/TokenError/...
        raise VocaganError(f"not a readable .npy file ({' '.join(str(e).split())[:160]})", path) from None


def _release_map(memmap: np.ndarray) -> None:
    """Unmap the pages just copied out of a read-only memory map (they stay in the OS page cache).
    Without this, every page ever read through the map counts in the process's RSS: reading all
    of VOCASET's data_verts.npy once would show ~7 GB resident although little is allocated."""
    mm = getattr(memmap, "_mmap", None)      # np.memmap keeps its mmap.mmap here
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)       # read-only shared map: pages re-fault from the cache


def _split_stem(stem: str) -> tuple[str, str] | None:
    """"FaceTalk_170728_03272_TA_sentence01" -> (subject, "sentence01")."""
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
        if p.layout == "vocaset":
            self.verts: np.ndarray | None = _open_npy(p.data_verts)
            if self.verts.ndim != 3 or self.verts.shape[2] != 3:
                raise VocaganError(f"data_verts must have shape (frames, vertices, 3), got {self.verts.shape}",
                                   p.data_verts)
            if not np.issubdtype(self.verts.dtype, np.floating):
                raise VocaganError(f"data_verts must hold floats, got {self.verts.dtype}", p.data_verts)
            self.n_vertices = int(self.verts.shape[1])
            self._index = self._load_index(p.idx_map)
        else:
            self.verts = None
            self.n_vertices = int(next(iter(self.templates.values())).shape[0]) if self.templates else 0
            self._index = {}
            for f in sorted(p.vertices_dir.glob("*.npy")):
                if (pair := _split_stem(f.stem)) is not None:
                    self._index.setdefault(pair[0], {})[pair[1]] = f
        for subject, template in self.templates.items():
            if template.shape[0] != self.n_vertices:
                raise VocaganError(f"template of {subject} has {template.shape[0]} vertices, the sequences have "
                                   f"{self.n_vertices}", p.templates)
        self.faces = self.template_mesh = None
        if p.template_ply is not None:
            self.template_mesh, self.faces = read_mesh(p.template_ply)
            if len(self.template_mesh) != self.n_vertices:
                raise VocaganError(f"mesh has {len(self.template_mesh)} vertices, the sequences have "
                                   f"{self.n_vertices}", p.template_ply)
        self._raw = (_nested(safe_load_pickle(p.raw_audio), p.raw_audio, "a dict subject -> sentence -> audio", 2)
                     if p.raw_audio else None)
        self._wavs: dict[tuple[str, str], Path] = {}
        if self._raw is None and p.wav_dir is not None:
            self._wavs = {pair: f for f in sorted(p.wav_dir.glob("*.wav")) if (pair := _split_stem(f.stem))}
        self._deepspeech = (_nested(safe_load_pickle(p.deepspeech), p.deepspeech,
                                    "a dict subject -> sentence -> features", 2)
                            if p.deepspeech and deepspeech else None)
        self.masks, self.masks_source = self._load_masks(p.masks)
        self.skipped: list[tuple[str, str, str]] = []  # (subject, sentence, why): in some files, not all
        self.absent: list[tuple[str, str]] = []  # requested by a split but in no file
        self._splits = {name: self._build_split(name) for name in ("train", "val", "test")}
        self._report()

    # -- loading and validation
    def _load_templates(self, path: Path) -> dict[str, np.ndarray]:
        out = {}
        for subject, t in _nested(safe_load_pickle(path), path, "a dict subject -> (V, 3) array", 1).items():
            t = np.asarray(t)
            if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.number):
                raise VocaganError(f"template of {subject} must be a (V, 3) array, got {t.shape}", path)
            out[subject] = t.astype(np.float32)
        return out

    def _load_index(self, path: Path) -> dict[str, dict[str, np.ndarray]]:
        """subject -> sentence -> rows of data_verts in frame order (frame keys sorted)."""
        raw = _nested(safe_load_pickle(path), path, "a dict subject -> sentence -> {frame: row}", 3)
        n_rows = len(self.verts)
        index: dict[str, dict[str, np.ndarray]] = {}
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
                    raise VocaganError(f"{subject}/{sentence}: row {int(rows.max() if rows.max() >= n_rows else rows.min())}"
                                       f" is outside data_verts.npy ({n_rows} frames)", path)
                if (missing := keys[-1] - keys[0] + 1 - len(keys)) > 0:
                    self.gaps.append((subject, sentence, missing))
                index.setdefault(subject, {})[sentence] = rows
        return index

    def _load_masks(self, path: Path | None) -> tuple[dict | None, str]:
        if path is None:
            return None, "none"
        masks = {}
        for name, idx in _nested(safe_load_pickle(path), path, "a dict region -> vertex indices", 1).items():
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
        if self._raw is not None and sentence not in self._raw.get(subject, {}):
            why.append(f"not in {p.raw_audio.name}")
        if self._raw is None and p.wav_dir is not None and (subject, sentence) not in self._wavs:
            why.append(f"no {WAV_DIR}/{subject}_{sentence}.wav")
        if self._deepspeech is not None and sentence not in self._deepspeech.get(subject, {}):
            why.append(f"not in {p.deepspeech.name}")
        return why

    def _anywhere(self, subject: str, sentence: str) -> bool:
        """Whether any file holds (subject, sentence): meshes, raw audio, wavs or DeepSpeech windows."""
        return (sentence in self._index.get(subject, {})
                or (self._raw is not None and sentence in self._raw.get(subject, {}))
                or (subject, sentence) in self._wavs
                or (self._deepspeech is not None and sentence in self._deepspeech.get(subject, {})))

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
            parts.append(f"skipped {len(self.skipped)} requested sequence(s) missing from some file ("
                         + ", ".join(f"{n} {r}" for r, n in reasons.most_common()) + f"; e.g. {examples})")
        if self.absent:
            parts.append(f"{len(self.absent)} requested sequence(s) are in no file (the data holds fewer "
                         f"subjects/sentences than the split asks for; e.g. {self.absent[0][0]}/{self.absent[0][1]})")
        if self.gaps:
            parts.append(f"{len(self.gaps)} sequence(s) have frame-index gaps (e.g. {self.gaps[0][0]}/"
                         f"{self.gaps[0][1]}: {self.gaps[0][2]} missing), frames taken in index order")
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
            raise VocaganError(f"no sequence {subject}/{sentence}",
                               self.paths.idx_map or self.paths.vertices_dir) from None

    def sequence_length(self, subject: str, sentence: str) -> int:
        """Frames of a sequence at `source_fps`, without loading it."""
        rows = self._rows(subject, sentence)
        return len(rows) if isinstance(rows, np.ndarray) else len(_open_npy(rows))

    def load_verts(self, subject: str, sentence: str) -> np.ndarray:
        """(T, V, 3) float32 metres at `source_fps`, frames in index order; only this sequence is read."""
        rows = self._rows(subject, sentence)
        if isinstance(rows, np.ndarray):
            path = self.paths.data_verts
            verts = self._read_rows(rows)
        else:
            path = rows
            data = _open_npy(path)
            if data.ndim == 2 and data.shape[1] == self.n_vertices * 3:
                data = data.reshape(len(data), self.n_vertices, 3)
            if data.ndim != 3 or data.shape[1:] != (self.n_vertices, 3):
                raise VocaganError(f"expected (T, {self.n_vertices * 3}) or (T, {self.n_vertices}, 3), "
                                   f"got {data.shape}", path)
            verts = np.array(data, np.float32)
        if not np.isfinite(verts).all():
            bad = np.flatnonzero(~np.isfinite(verts).reshape(len(verts), -1).all(axis=1))
            raise VocaganError(f"NaN/inf in sequence {subject}/{sentence} (frame {int(bad[0])}, "
                               f"{len(bad)} frame(s))", path)
        return verts

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows (T,) of data_verts.npy -> (T, V, 3) float32.

        A C-order file is read with positioned reads (`os.preadv`, one per run of consecutive rows)
        straight into the output: nothing is mapped, so nothing read counts in this process's RSS,
        and threads can read at the same time (prepare reads with two). All of the VOCASET-sized
        corpus: 2.2 s of CPU, against 2.4-3.3 s through the memory map (page faults, then
        `_release_map`). Other layouts (Fortran order, no preadv) go through the memory map."""
        v = self.verts
        if not v.flags.c_contiguous or not hasattr(os, "preadv"):
            contiguous = np.all(np.diff(rows) == 1)
            verts = np.array(v[rows[0]:rows[-1] + 1] if contiguous else v[rows], np.float32)
            _release_map(v)
            return verts
        out = np.empty((len(rows), self.n_vertices, 3), v.dtype)
        frame_bytes = out[0].nbytes if len(out) else 0
        starts = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist()]       # runs of consecutive rows
        with open(self.paths.data_verts, "rb", buffering=0) as f:
            for begin, end in zip(starts, [*starts[1:], len(rows)]):
                block = memoryview(out[begin:end]).cast("B")
                offset, done = int(v.offset) + int(rows[begin]) * frame_bytes, 0
                while done < len(block):                # a read may return less than asked
                    n = os.preadv(f.fileno(), [block[done:]], offset + done)
                    if n <= 0:
                        raise VocaganError(f"row {int(rows[begin])} onwards is cut short (truncated file?)",
                                           self.paths.data_verts)
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
                raise VocaganError(f"{subject}/{sentence}: invalid sample_rate {sr!r} (must be > 0)", self.paths.raw_audio)
            return samples, int(sr)
        wav = self._wavs.get((subject, sentence))
        if wav is None:
            return None
        from vocagan.data.audio import load_audio

        return load_audio(wav)

    def deepspeech(self, subject: str, sentence: str) -> np.ndarray | None:
        """(T60, 16, 29) float32 DeepSpeech windows, or None when absent."""
        if self._deepspeech is None or (entry := self._deepspeech.get(subject, {}).get(sentence)) is None:
            return None
        features = np.asarray(entry["audio"] if isinstance(entry, dict) else entry, np.float32)
        if features.ndim != 3 or features.shape[1:] != (16, 29):
            raise VocaganError(f"{subject}/{sentence}: expected (T, 16, 29) windows, got {features.shape}",
                               self.paths.deepspeech)
        return features


def open_vocaset(cfg: DataConfig, deepspeech: bool = True) -> Vocaset:
    """Open a VOCASET folder (or the converted vertices_npy layout) described by `cfg`.

    deepspeech=False leaves processed_audio_deepspeech.pkl unread (~350 MB on VOCASET) for callers
    that use raw audio only; the splits then do not depend on it (`deepspeech()` returns None)."""
    return Vocaset(cfg, deepspeech)
