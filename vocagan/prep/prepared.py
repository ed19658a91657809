"""The prepared arrays (`Prepared`, produced by `prep/prepare.py`, stored as one `.npz` without
pickles). Nothing here knows the VOCASET file formats; `vocagan/dataset.py` serves them to torch.

`Prepared` also decodes model outputs: normalised PCA coefficients (..., T, K) -> mouth offsets
(..., T, M, 3) -> full meshes (T, V, 3), and exports the arrays a checkpoint needs to do the same
without the dataset (`stats_dict` / `from_stats_dict`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocagan.config import SPLITS
from vocagan.errors import VocaganError
from vocagan.prep.regions import CLOSED_MM, Regions, lip_positions, opening_weights
from vocagan.utils import atomic_path

# Arrays that describe the preprocessing (what a checkpoint stores); per-split data comes on top.
STAT_ARRAYS = (
    "faces",
    "templates",
    "crop",
    "pca_components",
    "pca_mean",
    "explained_variance_ratio",
    "coef_mean",
    "coef_std",
)
OPTIONAL_ARRAYS = ("colors",)  # absent from checkpoints and caches written before they existed


@dataclass
class SequenceInfo:
    """Where one sequence lies in the concatenated per-split arrays."""

    subject: str
    sentence: str
    start: int  # first row in audio[split] / motion[split]
    length: int  # frames at meta["fps"]


@dataclass
class Prepared:
    """Plain arrays for training, validation and decoding (see docs/architecture.md)."""

    meta: dict  # JSON: fps, source_fps, region source, features, styles, ...
    faces: np.ndarray  # (F, 3) int32; (0, 3) when no template PLY was given
    templates: np.ndarray  # (S, V, 3) float32, in meta["template_names"] order
    regions: Regions  # mouth, lips, upper_face indices into the full mesh
    crop: np.ndarray  # (M,) vertices of the motion offsets (mouth, or all for "face")
    pca_components: np.ndarray  # (K, 3M) float32, rows orthonormal
    pca_mean: np.ndarray  # (3M,)
    explained_variance_ratio: np.ndarray  # (K,)
    coef_mean: np.ndarray  # (K,) train-split normalisation (0 when normalise is off)
    coef_std: np.ndarray  # (K,) (1 when normalise is off)
    seqs: dict[str, list[SequenceInfo]] = field(default_factory=dict)
    audio: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (sum T, F) float32
    motion: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (sum T, K) normalised coefs
    true_offsets: dict[str, np.ndarray] = field(default_factory=dict)  # "val" -> (sum T, M, 3) when cheap
    path: Path | None = None  # the cache file it was saved to / loaded from
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (V, 3) RGB; (0, 3): none

    # -- facts
    @property
    def vertex_colors(self) -> np.ndarray | None:
        """(V, 3) per-vertex colours of the mesh (from the template PLY), or None."""
        return self.colors if len(self.colors) == self.meta.get("n_vertices", -1) else None

    @property
    def styles(self) -> list[str]:
        return list(self.meta["styles"])

    def template_colors(self, template: str | None = None) -> np.ndarray | None:
        """(V, 3) per-vertex colours of a face: a mesh file's own when `template` is one (not a stored
        subject), else the training template PLY's, else None."""
        if template is not None and template not in self.template_names:
            from vocagan.formats.mesh import read_mesh_with_colors

            colors = read_mesh_with_colors(template)[2]
            if colors is not None:
                return colors
        return self.vertex_colors

    @property
    def template_names(self) -> list[str]:
        return list(self.meta["template_names"])

    @property
    def fps(self) -> int:
        return int(self.meta["fps"])

    @property
    def audio_dim(self) -> int:
        return int(self.meta["feature_dim"])

    @property
    def motion_dim(self) -> int:
        return int(self.pca_components.shape[0])

    def style_index(self, subject: str) -> int:
        """Position of a training subject in the style order; -1 for unseen subjects."""
        return self.meta["styles"].index(subject) if subject in self.meta["styles"] else -1

    def template(self, subject: str) -> np.ndarray:
        """(V, 3) neutral face of a subject."""
        if subject not in self.meta["template_names"]:
            raise VocaganError(f"no template for '{subject}' (have: {', '.join(self.meta['template_names'])})")
        return self.templates[self.meta["template_names"].index(subject)]

    def sequence(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(audio (T, F), motion (T, K)) of the i-th sequence of a split (views, no copy)."""
        info = self.seqs[split][i]
        rows = slice(info.start, info.start + info.length)
        return self.audio[split][rows], self.motion[split][rows]

    def true_offsets_of(self, split: str, i: int) -> np.ndarray | None:
        """(T, M, 3) true (un-PCA'd) offsets of a sequence, if the cache holds them for that split."""
        if split not in self.true_offsets:
            return None
        info = self.seqs[split][i]
        return self.true_offsets[split][info.start : info.start + info.length]

    # -- decoding
    def decode_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """The decoder folded into one affine map: (basis (K, 3M), offset (3M,)) float32 with
        crop offsets = coefs @ basis + offset, i.e. basis = coef_std[:, None] * pca_components and
        offset = coef_mean @ pca_components + pca_mean (computed once, in float64)."""
        cached = self.__dict__.get("_decode_basis")
        if cached is None:
            comps = np.asarray(self.pca_components, np.float64)
            basis = np.asarray(self.coef_std, np.float64)[:, None] * comps
            offset = np.asarray(self.coef_mean, np.float64) @ comps + np.asarray(self.pca_mean, np.float64)
            cached = (basis.astype(np.float32), offset.astype(np.float32))
            self.__dict__["_decode_basis"] = cached
        return cached

    def decode(self, coefs):
        """Normalised coefficients (..., T, K) -> mouth offsets (..., T, M, 3); numpy or torch in,
        the same type out (torch keeps coefs' device and dtype)."""
        m = len(self.crop)
        basis, offset = self.decode_basis()
        if isinstance(coefs, torch.Tensor):
            flat = coefs @ torch.as_tensor(basis, dtype=coefs.dtype, device=coefs.device) + torch.as_tensor(
                offset, dtype=coefs.dtype, device=coefs.device
            )
        else:
            flat = np.asarray(coefs, np.float32) @ basis + offset
        return flat.reshape(*flat.shape[:-1], m, 3)

    def to_vertices(self, coefs, template):
        """Normalised coefficients (..., T, K) + template (a subject name or a (V, 3) array) ->
        full meshes (..., T, V, 3): the template everywhere, template + offsets in the crop.
        (numpy: the template is written once into the output and the crop overwritten with
        template + decoded offsets, one matrix product: like-for-like speed, benchmarks/bench_infer.py)"""
        base = self.template(template) if isinstance(template, str) else template
        if np.shape(base)[0] != self.meta["n_vertices"]:
            raise VocaganError(
                f"template has {np.shape(base)[0]} vertices, the prepared data {self.meta['n_vertices']}"
            )
        if isinstance(coefs, torch.Tensor):
            offsets = self.decode(coefs)  # (..., T, M, 3)
            base_t = torch.as_tensor(np.asarray(base), dtype=offsets.dtype, device=offsets.device)
            verts = base_t.expand(*offsets.shape[:-2], *base_t.shape).clone()
            verts[..., self.crop, :] += offsets
            return verts
        rest = np.asarray(base, np.float32)
        basis, offset = self.decode_basis()
        c = np.asarray(coefs, np.float32)
        lead = c.shape[:-1]
        out = np.empty((*lead, *rest.shape), np.float32)
        out[...] = rest
        crop_rest = rest[self.crop].reshape(-1)  # (3M,) template in the crop
        out[..., self.crop, :] = (c @ basis + (offset + crop_rest)).reshape(*lead, len(self.crop), 3)
        return out

    def lip_decoder_arrays(self) -> dict:
        """What `models.layers.LipDecoder` needs (the vertex-space lip and opening losses, validation
        LVE): PCA basis, normalisation, the lips' positions in the crop, the linearised mouth opening
        and the closure threshold."""
        return {
            "components": self.pca_components,
            "pca_mean": self.pca_mean,
            "coef_mean": self.coef_mean,
            "coef_std": self.coef_std,
            "lip_positions": lip_positions(self.crop, self.regions.lips),
            "opening": opening_weights(self.crop, self.templates.mean(0), self.regions.lips),
            "closed_mm": CLOSED_MM,
        }

    # -- what a checkpoint stores
    def stats_dict(self) -> dict:
        """{"meta": JSON str, name: ndarray, ...}: everything `decode`/`to_vertices`/metrics need."""
        out: dict[str, str | np.ndarray] = {"meta": json.dumps(self.meta, sort_keys=True)}
        out.update({k: np.asarray(getattr(self, k)) for k in STAT_ARRAYS + OPTIONAL_ARRAYS})
        out.update(self.regions.to_arrays())
        return out

    @classmethod
    def from_stats_dict(cls, d: dict) -> Prepared:
        """Rebuild (without per-split data) from `stats_dict()`; tensors are accepted too."""
        meta = json.loads(d["meta"]) if isinstance(d["meta"], str) else dict(d["meta"])
        arr = {
            k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in d.items() if k != "meta"
        }
        stats: dict[str, Any] = {k: arr[k] for k in STAT_ARRAYS + OPTIONAL_ARRAYS if k in arr or k in STAT_ARRAYS}
        return cls(meta=meta, regions=Regions.from_arrays(arr, meta["region_source"]), **stats)

    # -- cache file
    def save(self, path: str | Path) -> Path:
        """One .npz (no pickles), written atomically: concurrent writers never leave a torn file."""
        path = Path(path)
        arrays = {k: v for k, v in self.stats_dict().items() if k != "meta"}
        seqs = {s: [[q.subject, q.sentence, q.start, q.length] for q in self.seqs.get(s, [])] for s in SPLITS}
        arrays["meta"] = np.array(json.dumps({"meta": self.meta, "seqs": seqs}, sort_keys=True))
        for s in self.audio:
            arrays[f"audio_{s}"], arrays[f"motion_{s}"] = self.audio[s], self.motion[s]
        for s, a in self.true_offsets.items():
            arrays[f"true_offsets_{s}"] = a
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append a second ".npz"
                np.savez(f, **arrays)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Prepared:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            head = json.loads(str(arrays.pop("meta")))
            meta = head["meta"]
            p = cls(
                meta=meta,
                regions=Regions.from_arrays(arrays, meta["region_source"]),
                **{k: arrays[k] for k in STAT_ARRAYS + OPTIONAL_ARRAYS if k in arrays or k in STAT_ARRAYS},
                path=path,
            )
            for s in SPLITS:
                p.seqs[s] = [SequenceInfo(a, b, int(c), int(n)) for a, b, c, n in head["seqs"].get(s, [])]
                if f"audio_{s}" in arrays:
                    p.audio[s], p.motion[s] = arrays[f"audio_{s}"], arrays[f"motion_{s}"]
                if f"true_offsets_{s}" in arrays:
                    p.true_offsets[s] = arrays[f"true_offsets_{s}"]
        except Exception as e:  # noqa: BLE001 - BadZipFile, bad JSON, missing keys: all mean a corrupt file
            raise VocaganError(f"unreadable prepared-data file ({type(e).__name__}: {e})", path) from None
        return p

    def summary(self) -> str:
        m = self.meta
        lines = [f"prepared data: {self.path}"]
        for s in SPLITS:
            if s in self.seqs:
                frames = sum(q.length for q in self.seqs[s])
                lines.append(
                    f"  {s:5s}: {len(self.seqs[s])} sequences, {frames} frames, subjects "
                    f"{len(m['subjects'].get(s, []))}"
                )
        skipped = m.get("skipped", [])
        line = f"  skipped pairs: {len(skipped)}"
        if skipped:
            reasons = Counter(r for *_, r in skipped).most_common(3)
            line += (
                " ("
                + "; ".join(f"{n}x {r}" for r, n in reasons)
                + "; e.g. "
                + ", ".join(f"{a}/{b}" for a, b, _ in skipped[:2])
                + ")"
            )
        lines.append(line)
        if m.get("absent"):
            lines.append(
                f"  requested by the split but in no file: {m['absent']} pairs (a corpus smaller than the split)"
            )
        lines.append(
            f"  mesh/audio alignment: {m['trimmed_frames']} frame(s) at {m['source_fps']} fps trimmed in "
            f"{m['trimmed_sequences']} sequence(s) (to the shorter of mesh and audio)"
        )
        lines.append(f"  fps: {m['fps']} (capture {m['source_fps']}; 1 frame in {m['step']} kept)")
        lines.append(
            f"  crop: {m['region']} region, {len(self.crop)} vertices; lips {len(self.regions.lips)}, "
            f"upper face {len(self.regions.upper_face)}"
        )
        lines.append(f"  regions: {self.regions.source}")
        lines.append(
            f"  PCA ({m['pca_method']}, train split only): {self.motion_dim} components of {m['pca_dim']} "
            f"dims, {100 * m['explained_variance']:.3f}% of train variance kept"
        )
        lines.append(f"  normalisation: {'z-score per component, train-split stats' if m['normalize'] else 'off'}")
        lines.append(f"  audio features: {m['features']['kind']}, {m['feature_dim']} dims per frame")
        lines.append(f"  styles ({len(m['styles'])}): {', '.join(m['styles'])}")
        return "\n".join(lines)
