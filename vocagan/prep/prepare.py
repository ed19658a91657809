"""Preprocessing: VOCASET folder -> `Prepared` arrays for training, cached as one `.npz`.

`prepare(cfg)` runs:
  a) per sequence, in two reader threads: `align` (mesh and audio trimmed to the shorter; the
     trimmed frames are counted and reported), `frames.resample_frames` (source_fps 60 ->
     cfg.data.fps: every k-th frame of both), `crop` (motion offsets = verts - template[subject], mouth
     region only, or the whole face), audio features at the target fps (`prep.features.features_at_fps`,
     or DeepSpeech windows);
  b) regions (`vocagan.prep.regions`): the mouth crop, lips and upper face;
  c) PCA (`vocagan.prep.pca`) fitted on the TRAIN split only: exact covariance (float32 products
     of chunk-centred rows, float64 sums) and ARPACK for the top components, for crops up to
     EXACT_MAX_DIM dims; an incremental SVD (plus a second read) above that; coefficient
     normalisation from the train split only;
  d) cache: `<cache_dir>/<hash>.npz` (no pickles), the hash covering the input files'
     fingerprints and every config value that changes the output; written atomically.
Memory holds the cropped offsets, not the meshes: ~2.0 GB peak RSS at VOCASET size. Where the time
goes is logged per phase; at VOCASET size the exact covariance (41k train frames x 4.6k dims: 8.7e11
multiply-adds) is the largest part. The `Prepared` container lives in prep/prepared.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vocagan.config import SPLITS, Config
from vocagan.errors import VocaganError
from vocagan.frames import audio_frames, fps_step, resample_frames
from vocagan.prep.pca import (
    IncrementalPCA,
    Moments,
    blas_threads,
    choose_components,
    coef_stats,
    fix_signs,
    top_components,
)
from vocagan.prep.prepared import Prepared, SequenceInfo
from vocagan.prep.regions import resolve_regions
from vocagan.utils import file_fingerprint, log, progress

CACHE_VERSION = 6  # bump when the output of prepare changes for the same inputs
EXACT_MAX_DIM = 6000  # exact (D x D) covariance up to this crop dimension 3M (288 MB float64)
VAL_OFFSETS_MAX_BYTES = 256 << 20  # keep the val split's true offsets in the cache below this size


# ----------------------------------------------------------------------------- a) align + fps
def align(verts: np.ndarray, audio_frames: int) -> tuple[np.ndarray, int]:
    """Trim a mesh sequence (T, ...) and its audio (`audio_frames` frames at the same rate) to the
    shorter. Returns (verts[:n], trimmed) where `trimmed` = frames dropped from the longer stream."""
    n = min(len(verts), int(audio_frames))
    return verts[:n], abs(len(verts) - int(audio_frames))


# ----------------------------------------------------------------------------- a) crop
def crop(verts: np.ndarray, template: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """verts (T, V, 3), template (V, 3), indices (M,) -> motion offsets (T, M, 3) float32."""
    return (verts[:, indices] - template[indices]).astype(np.float32)


# ----------------------------------------------------------------------------- d) cache
def cache_dir(cfg: Config) -> Path:
    return Path(cfg.prep.cache_dir or os.environ.get("VOCAGAN_CACHE") or Path.home() / ".cache" / "vocagan")


def input_files(p, cfg: Config) -> dict[str, Path]:
    """The files (of the resolved `VocasetPaths` p) whose content determines the prepared arrays."""
    files = {
        "templates": p.templates,
        "template_ply": p.template_ply,
        "masks": p.masks,
        "mouth_indices": cfg.data.mouth_indices_path,
    }
    if p.layout == "vocaset":
        files.update(data_verts=p.data_verts, idx_map=p.idx_map)
    else:
        files.update({f"vertices/{f.name}": f for f in sorted(p.vertices_dir.glob("*.npy"))})
    if cfg.features.kind == "deepspeech":
        files["deepspeech"] = p.deepspeech
    elif p.raw_audio is not None:
        files["raw_audio"] = p.raw_audio
    elif p.wav_dir is not None:
        files.update({f"wav/{f.name}": f for f in sorted(p.wav_dir.glob("*.wav"))})
    return {k: Path(v) for k, v in files.items() if v is not None}


def cache_key(paths, cfg: Config) -> str:
    """Hash of the input fingerprints + every config value that affects the output (cheap: needs
    only the resolved paths, so a cache hit never loads the pickles)."""
    data = {k: v for k, v in asdict(cfg.data).items() if not k.endswith("_path") and k != "root"}
    prep = {k: v for k, v in asdict(cfg.prep).items() if k != "cache_dir"}
    features = asdict(cfg.features)
    if cfg.features.kind == "encoder" and not cfg.features.encoder_finetune:
        # a frozen encoder is identified by what it computes (weights, architecture), not by where it lies
        from vocagan.prep.features import encoder_for

        info = encoder_for(cfg.features)
        features["encoder_path"] = {
            "weights_sha256": info.weights_sha256,
            "config_sha256": hashlib.sha256(info.config.encode()).hexdigest(),
        }
    spec = {
        "version": CACHE_VERSION,
        "data": data,
        "features": features,
        "prep": prep,
        "files": {k: file_fingerprint(v) for k, v in input_files(paths, cfg).items()},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


# ----------------------------------------------------------------------------- prepare
def _check_features(p, cfg: Config) -> None:
    kind = cfg.features.kind
    root = Path(cfg.data.root) if cfg.data.root else None
    if kind == "deepspeech" and p.deepspeech is None:
        raise VocaganError(
            "features.kind 'deepspeech' needs processed_audio_deepspeech.pkl, which is absent",
            cfg.data.audio_pkl_path or (root / "processed_audio_deepspeech.pkl" if root else None),
        )
    if kind != "deepspeech" and p.raw_audio is None and p.wav_dir is None:
        raise VocaganError(
            f"features.kind '{kind}' needs raw audio (raw_audio_fixed.pkl or wav/), which is absent",
            cfg.data.raw_audio_path or (root / "raw_audio_fixed.pkl" if root else None),
        )


def _sequence(vs, cfg: Config, subject: str, sentence: str):
    """One aligned sequence at the target fps -> (verts (T, V, 3), audio features (T, F), trimmed)
    or None when its audio entry is missing."""
    verts = vs.load_verts(subject, sentence)  # (T60, V, 3)
    if cfg.features.kind == "deepspeech":
        src = vs.paths.deepspeech
        windows = vs.deepspeech(subject, sentence)  # (T60, 16, 29)
        if windows is None:
            return None
        verts, trimmed = align(verts, len(windows))
        feats = resample_frames(windows[: len(verts)], vs.source_fps, cfg.data.fps)
        feats = feats.reshape(len(feats), -1)  # (T, 16 * 29)
        verts = resample_frames(verts, vs.source_fps, cfg.data.fps)
    else:
        from vocagan.prep.features import features_at_fps

        src = vs.paths.raw_audio or vs.paths.wav_dir
        audio = vs.raw_audio(subject, sentence)
        if audio is None:
            return None
        samples, sr = audio
        verts, trimmed = align(verts, audio_frames(len(samples), sr, vs.source_fps))
        verts = resample_frames(verts, vs.source_fps, cfg.data.fps)
        feats = features_at_fps(samples, sr, cfg.features, cfg.data.fps, len(verts))  # (T, F)
    if len(verts) == 0:
        return None
    if not np.isfinite(feats).all():
        raise VocaganError(f"NaN/inf in the audio features of {subject}/{sentence}", src)
    return verts, feats.astype(np.float32), trimmed


def _template_for_regions(vs, styles: list[str]) -> np.ndarray:
    return vs.template_mesh if vs.template_mesh is not None else vs.templates[styles[0]]


@dataclass
class _Seq:
    subject: str
    sentence: str
    audio: np.ndarray  # (T, F) features at cfg.data.fps
    offsets: np.ndarray | None  # (T, 3M) cropped motion offsets (dropped once projected, except val)
    trimmed: int
    coefs: np.ndarray | None = None  # (T, K) PCA coefficients (not yet normalised)


def _prefetch(fn, items, depth: int = 4, workers: int = 2):
    """Yield fn(item) for each item in order, computed up to `depth` items ahead by `workers`
    threads (reading is positioned file reads, features numpy/scipy/torch: they release the GIL, so
    two threads keep both cores busy). Exceptions surface in the caller, in order."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque(pool.submit(fn, x) for x in itertools.islice(items, depth))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, x) for x in itertools.islice(items, 1))
            yield result


def _read(vs, cfg: Config, pairs: list, split: str, idx: np.ndarray, no_audio: list):
    """Yield a `_Seq` per usable sequence of `split` (progress bar per sequence)."""

    def load(pair):
        item = _sequence(vs, cfg, *pair)
        if item is None:
            return pair, None
        verts, feats, trimmed = item
        return pair, (feats, crop(verts, vs.templates[pair[0]], idx).reshape(len(verts), -1), trimmed)

    # torch on one thread while the reader threads compute log-mel features (each thread's STFTs
    # are small; torch's pool on top of two readers would oversubscribe the cores)
    from vocagan.utils import one_torch_thread

    with one_torch_thread() if cfg.features.kind != "deepspeech" else contextlib.nullcontext():
        for (subject, sentence), item in progress(
            _prefetch(load, pairs), desc=f"prepare {split}", total=len(pairs), unit="seq"
        ):
            if item is None:
                if (subject, sentence) not in no_audio:
                    no_audio.append((subject, sentence))
                continue
            yield _Seq(subject, sentence, item[0], item[1], item[2])


class _Clock:
    """Wall seconds per named phase of prepare, for its log line (where the time goes)."""

    def __init__(self):
        self.last, self.laps = time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.laps.items())


def _fit_and_project(vs, cfg: Config, pairs: dict, idx: np.ndarray, no_audio: list, clock: _Clock):
    """PCA on the train split (exact: one read of the data; incremental: two), then every split
    projected. Returns (seqs per split, mean (D,), components (K, D), explained ratio (K,), method)."""
    dim = 3 * len(idx)
    keep = cfg.prep.pca_components if cfg.prep.pca_components > 0 else cfg.prep.pca_max_components
    seqs: dict[str, list[_Seq]] = {s: [] for s in SPLITS}
    if dim <= EXACT_MAX_DIM:
        method = "exact covariance, float64 sums"
        for split in SPLITS:  # read everything first (two threads), then the products (BLAS threads)
            seqs[split] = list(_read(vs, cfg, pairs[split], split, idx, no_audio))
        clock.lap("read + features")
        if not seqs["train"]:
            raise VocaganError("split 'train' has no sequences with audio", vs.paths.data_verts)
        moments = Moments(dim)
        for seq in progress(seqs["train"], desc="covariance", unit="seq"):
            moments.add(seq.offsets)
        mean, cov = moments.mean_cov()
        del moments
        total = float(np.trace(cov))
        clock.lap("covariance")
        variances, components = top_components(cov, keep)
        clock.lap("eigenvectors")
        del cov
    else:
        method = "incremental SVD"
        ipca = IncrementalPCA(dim, keep + 16)
        for seq in _read(vs, cfg, pairs["train"], "train", idx, no_audio):
            ipca.add(seq.offsets)
        if ipca.n == 0:
            raise VocaganError("split 'train' has no sequences with audio", vs.paths.data_verts)
        mean, components, variances, total = ipca.result()
        clock.lap("read + incremental PCA")
    if cfg.prep.pca_components > len(variances):
        raise VocaganError(
            f"prep.pca_components={cfg.prep.pca_components} exceeds the {len(variances)} "
            f"components the crop ({dim} dims) and train frames allow"
        )
    k = choose_components(variances, total, cfg.prep.pca_variance, cfg.prep.pca_max_components, cfg.prep.pca_components)
    components = fix_signs(components[:k]).astype(np.float32)  # (K, D)
    ratio = (variances[:k] / max(total, 1e-30)).astype(np.float32)
    mean = mean.astype(np.float32)

    def project(seq: _Seq, split: str) -> _Seq:
        seq.coefs = (seq.offsets - mean) @ components.T  # (T, K)
        if split != "val":
            seq.offsets = None
        return seq

    with blas_threads(1):  # one small product per sequence: 2 BLAS threads were 6x slower on busy cores
        for split in SPLITS:
            if seqs[split] or dim <= EXACT_MAX_DIM:
                seqs[split] = [project(q, split) for q in seqs[split]]
            else:  # incremental: second read, projected with the final basis
                seqs[split] = [project(q, split) for q in _read(vs, cfg, pairs[split], split, idx, no_audio)]
    clock.lap("projection")
    return seqs, mean, components, ratio, method


def prepare(cfg: Config) -> Prepared:
    """Align, crop, PCA and normalise the VOCASET folder of `cfg.data`; cached (see module doc)."""
    from vocagan.formats.vocaset import open_vocaset
    from vocagan.formats.vocaset_files import resolve_paths
    from vocagan.prep.features import feature_dim

    t0 = time.perf_counter()
    paths = resolve_paths(cfg.data)
    step = fps_step(cfg.data.source_fps, cfg.data.fps, paths.data_verts or paths.vertices_dir)
    _check_features(paths, cfg)
    path = cache_dir(cfg) / f"{cache_key(paths, cfg)}.npz"
    if path.is_file():
        try:
            prepared = Prepared.load(path)
            log(f"using cached prepared data {path}")
            return prepared
        except (VocaganError, OSError, ValueError, KeyError) as e:
            log(f"warning: unreadable cache {path} ({e}); rebuilding it")

    clock = _Clock()
    vs = open_vocaset(cfg.data, deepspeech=cfg.features.kind == "deepspeech")  # the splits depend on what is read
    pairs = {s: vs.split(s) for s in SPLITS}
    for s, p in pairs.items():
        if not p:
            raise VocaganError(
                f"split '{s}' has no sequences (set data.{s}_subjects / data.{s}_sentences)",
                vs.paths.idx_map or vs.paths.vertices_dir,
            )

    styles = list(dict.fromkeys(s for s, _ in pairs["train"]))  # train subjects, config order
    names = list(dict.fromkeys(s for p in pairs.values() for s, _ in p))
    regions = resolve_regions(
        _template_for_regions(vs, styles),
        vs.masks,
        cfg.data.mouth_indices_path,
        vs.masks_source if vs.masks is not None else "",
        faces=vs.faces,
    )
    idx = regions.mouth if cfg.prep.region == "mouth" else np.arange(vs.n_vertices)
    no_audio: list[tuple[str, str]] = []
    clock.lap("open")
    seqs, mean, components, ratio, method = _fit_and_project(vs, cfg, pairs, idx, no_audio, clock)
    for s in SPLITS:
        if not seqs[s]:
            raise VocaganError(f"split '{s}' has no sequences with audio", vs.paths.raw_audio or vs.paths.deepspeech)
    coef_mean, coef_std = coef_stats([q.coefs for q in seqs["train"]], cfg.prep.normalize)

    trimmed = [(q.subject, q.sentence, q.trimmed) for s in SPLITS for q in seqs[s] if q.trimmed]
    if trimmed:
        log(
            f"aligned mesh and audio: trimmed {sum(n for *_, n in trimmed)} frame(s) in {len(trimmed)} "
            f"sequence(s) to the shorter stream (e.g. {trimmed[0][0]}/{trimmed[0][1]}: {trimmed[0][2]})"
        )
    if no_audio:
        log(f"skipped {len(no_audio)} sequence(s) without audio (e.g. {no_audio[0][0]}/{no_audio[0][1]})")
    val_frames = sum(len(q.audio) for q in seqs["val"])
    true_offsets = {}
    if val_frames * 3 * len(idx) * 4 <= VAL_OFFSETS_MAX_BYTES:
        true_offsets["val"] = np.concatenate([q.offsets for q in seqs["val"]]).reshape(val_frames, len(idx), 3)
    infos: dict[str, list[SequenceInfo]] = {}
    for s in SPLITS:
        infos[s], start = [], 0
        for q in seqs[s]:
            infos[s].append(SequenceInfo(q.subject, q.sentence, start, len(q.audio)))
            start += len(q.audio)
    meta = {
        "version": CACHE_VERSION,
        "fps": cfg.data.fps,
        "source_fps": vs.source_fps,
        "step": step,
        "region": cfg.prep.region,
        "region_source": regions.source,
        "features": asdict(cfg.features),
        "feature_dim": feature_dim(cfg.features, cfg.data.fps),
        "styles": styles,
        "template_names": names,
        "subjects": {s: list(dict.fromkeys(x.subject for x in infos[s])) for s in SPLITS},
        "skipped": [list(x) for x in vs.skipped] + [[a, b, "audio missing or empty"] for a, b in no_audio],
        "absent": len(vs.absent),
        "trimmed_frames": int(sum(n for *_, n in trimmed)),
        "trimmed_sequences": len(trimmed),
        "pca_method": method,
        "pca_dim": 3 * len(idx),
        "explained_variance": float(ratio.sum()),
        "normalize": cfg.prep.normalize,
        "data_fingerprint": path.stem,
        "n_vertices": vs.n_vertices,
    }
    if cfg.features.kind == "encoder" and not cfg.features.encoder_finetune:  # recorded by every checkpoint
        from vocagan.prep.features import encoder_for

        meta["encoder"] = encoder_for(cfg.features).to_dict()
    prepared = Prepared(
        meta=meta,
        faces=np.asarray(vs.faces if vs.faces is not None else np.zeros((0, 3)), np.int32),
        colors=np.asarray(vs.colors if vs.colors is not None else np.zeros((0, 3)), np.float32),
        templates=np.stack([vs.templates[n] for n in names]).astype(np.float32),
        regions=regions,
        crop=np.asarray(idx, np.int64),
        pca_components=components,
        pca_mean=mean,
        explained_variance_ratio=ratio,
        coef_mean=coef_mean,
        coef_std=coef_std,
        seqs=infos,
        audio={s: np.concatenate([q.audio for q in seqs[s]]).astype(np.float32) for s in SPLITS},
        motion={
            s: ((np.concatenate([q.coefs for q in seqs[s]]) - coef_mean) / coef_std).astype(np.float32) for s in SPLITS
        },
        true_offsets=true_offsets,
    )
    prepared.save(path)
    clock.lap("stats + save")
    log(f"prepared data written to {path} ({time.perf_counter() - t0:.1f} s: {clock})")
    return prepared
