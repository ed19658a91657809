"""VOCASET's file names and where they are: `resolve_paths(DataConfig) -> VocasetPaths` (explicit paths
win over the data folder's standard names; a missing required file is an error). Read by
`formats/vocaset.py` (the reader) and written by `formats/vocaset_writer.py`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.config import DataConfig
from vocagan.errors import VocaganError
from vocagan.utils import existing_dir, existing_file

DATA_VERTS, IDX_MAP, TEMPLATES = "data_verts.npy", "subj_seq_to_idx.pkl", "templates.pkl"
DEEPSPEECH, RAW_AUDIO, TEMPLATE_PLY = "processed_audio_deepspeech.pkl", "raw_audio_fixed.pkl", "FLAME_sample.ply"
FLAME_MASKS, REGION_MASKS = "FLAME_masks.pkl", "region_masks.pkl"
VERTICES_NPY, WAV_DIR = "vertices_npy", "wav"
SOURCE_FPS = 60


def sentence_name(sentence: int | str) -> str:
    """1 -> "sentence01"; a string is kept as it is."""
    return f"sentence{sentence:02d}" if isinstance(sentence, (int, np.integer)) else str(sentence)


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


def resolve_paths(cfg: DataConfig) -> VocasetPaths:
    """Explicit paths win over `cfg.root`/<standard name>; a missing required file is an error."""
    root = Path(cfg.root) if cfg.root else None
    if root is not None:
        existing_dir(root, "data folder")
    # With only the seed's explicit flags, optional files (raw_audio_fixed.pkl, masks) are looked
    # for next to data_verts.npy: VOCASET ships its training files in one folder.
    siblings = Path(cfg.data_verts_path).parent if root is None and cfg.data_verts_path else None

    def given(explicit: str) -> Path:
        existing_file(explicit)
        return Path(explicit)

    def need(explicit: str | None, name: str) -> Path:
        """A required file: the explicit path, else <root>/<name>."""
        if explicit:
            return given(explicit)
        if root is None:
            raise VocaganError(f"no {name}: give the data folder (data.root / --data) or its explicit path")
        existing_file(root / name)
        return root / name

    def pick(explicit: str | None, name: str) -> Path | None:
        """An optional file: the explicit path, else <root>/<name> (or beside data_verts.npy) if present."""
        if explicit:
            return given(explicit)
        folder = root if root is not None else siblings
        return folder / name if folder is not None and (folder / name).is_file() else None

    vertices_dir = None  # the converted layout: one .npy per sequence
    if (
        root is not None
        and not cfg.data_verts_path
        and not (root / DATA_VERTS).is_file()
        and (root / VERTICES_NPY).is_dir()
    ):
        vertices_dir = root / VERTICES_NPY
    converted = vertices_dir is not None
    masks = pick(cfg.masks_path, FLAME_MASKS) or pick(None, REGION_MASKS)
    wav_dir = root / WAV_DIR if root is not None and (root / WAV_DIR).is_dir() else None
    return VocasetPaths(
        data_verts=None if converted else need(cfg.data_verts_path, DATA_VERTS),
        idx_map=None if converted else need(cfg.idx_map_path, IDX_MAP),
        templates=need(cfg.template_path, TEMPLATES),
        deepspeech=pick(cfg.audio_pkl_path, DEEPSPEECH),
        raw_audio=pick(cfg.raw_audio_path, RAW_AUDIO),
        template_ply=pick(cfg.template_ply_path, TEMPLATE_PLY),
        masks=masks,
        wav_dir=wav_dir,
        vertices_dir=vertices_dir,
        layout="converted" if converted else "vocaset",
    )
