"""Vertex regions, defined in one place: the mouth crop (training), the lips (LVE) and the upper
face (FDD) all come from `resolve_regions`, so the crop and the metrics cannot drift apart.

Three definitions, in order of precedence (the one used is named in `Regions.source`, which goes
into every report):
1. a masks dict (the content of FLAME_masks.pkl, or the synthetic corpus' region_masks.pkl):
   lips = unique(masks["lips"]), upper face = forehead ∪ eye_region; the mouth crop is the
   geometric mouth region ∪ lips;
2. an index file (.npy, or whitespace-separated .txt) giving the mouth crop directly (lips are
   added if missing, so the crop always covers the LVE vertices);
3. geometry alone: lips, mouth region and upper face derived deterministically from the template.

The lips also define the mouth opening (`mouth_opening_vertices`: which lip vertices it is measured
between) and when the lips count as closed (`CLOSED_MM`); the metrics and the models' opening loss
read both from here.

Geometric convention (FLAME, VOCASET): +x the subject's left, +y up, +z forward (out of the face).
Sizes are fractions of the head width (x extent), so the rules work in metres or millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.formats.pickles import safe_load_pickle
from vocagan.utils import existing_file

# Shape of the geometric regions, as fractions of the head width w (FLAME: w = 0.20 m).
# Tuned on the FLAME template against FLAME_masks.pkl (tests/test_regions.py reports the overlap).
LIPS_AXES = (0.18, 0.08, 0.14)  # ellipsoid around the mouth centre: 36 x 16 x 28 mm on FLAME
MOUTH_AXES = (0.50, 0.60, 0.55)  # lips, jaw, chin, lower cheeks: 100 x 120 x 110 mm semi-axes on FLAME
# (sized so < 2.5% of the synthetic corpus' speech-motion energy lies outside, on FLAME or the built-in
# face: 0.9% on the built-in MediaPipe face)
MOUTH_TOP = -0.08  # the mouth region stops 0.08 w below the nose tip (nose excluded)
UPPER_BAND = (0.07, 0.50)  # upper face: from this far above the nose tip ... up to this
UPPER_HALF_WIDTH = 0.35  # |x - nose x| below this
UPPER_DEPTH = 0.40  # in front of (nose z - this): excludes ears and scalp
MOUTH_DROP = 0.19  # fallback: mouth centre this far below the nose tip
DEPTH_CELL = 0.02  # depth-buffer cell (x, y) for "visible from the front"
CLOSED_MM = 0.5  # lips count as closed at <= this opening above the neutral template (mm)


@dataclass
class Regions:
    """Vertex index sets (int64, sorted, unique) into the full mesh, and where they came from."""

    mouth: np.ndarray  # (M,) the mouth crop used for training; always contains `lips`
    lips: np.ndarray  # (L,) lip vertices for LVE
    upper_face: np.ndarray  # (U,) forehead ∪ eye region for FDD
    source: str  # "FLAME_masks.pkl: ...", "index file ...", "geometry: ..."

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for the prepared-data cache and checkpoints); `source` goes in JSON meta."""
        return {"region_mouth": self.mouth, "region_lips": self.lips, "region_upper_face": self.upper_face}

    @classmethod
    def from_arrays(cls, arrays: dict, source: str) -> Regions:
        mouth, lips, upper = (
            np.asarray(arrays[k], dtype=np.int64) for k in ("region_mouth", "region_lips", "region_upper_face")
        )
        return cls(mouth, lips, upper, source=source)


def _indices(values, n_vertices: int, what: str, path) -> np.ndarray:
    """Validate an index list: integers in [0, V), at least one; returns sorted unique int64."""
    arr = np.asarray(values)
    if arr.size == 0:
        raise VocaganError(f"{what} is empty", path)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.mod(arr, 1) == 0):
            raise VocaganError(f"{what} must hold integer vertex indices, got dtype {arr.dtype}", path)
    arr = np.unique(arr.astype(np.int64).ravel())
    if arr[0] < 0 or arr[-1] >= n_vertices:
        raise VocaganError(
            f"{what} has vertex index {arr[0] if arr[0] < 0 else arr[-1]} outside the template's 0..{n_vertices - 1}",
            path,
        )
    return arr


def load_index_file(path: str | Path, n_vertices: int) -> np.ndarray:
    """Read mouth vertex indices from a .npy file or a whitespace-separated .txt file."""
    path = Path(path)
    path = existing_file(path, "mouth index file")
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            values = np.array(path.read_text().split(), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - a corrupt .npy header raises ValueError/SyntaxError/TokenError/...
        raise VocaganError(f"cannot read vertex indices ({str(e).splitlines()[0]})", path) from None
    return _indices(values, n_vertices, "mouth index file", path)


def _main_component(template: np.ndarray, faces: np.ndarray | None) -> np.ndarray:
    """Bool (V,): vertices of the largest connected piece of the mesh (drops FLAME's eyeballs,
    teeth or tongue meshes, which would otherwise count as "visible face"). All True without faces."""
    n = len(template)
    if faces is None or len(faces) == 0:
        return np.ones(n, dtype=bool)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64)
    rows = f.ravel()
    cols = np.roll(f, 1, axis=1).ravel()  # each triangle's edges (a,b), (b,c), (c,a)
    graph = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return label == np.bincount(label).argmax()


def _depth_below_front(t: np.ndarray, width: float) -> np.ndarray:
    """(V,) how far each vertex lies behind the front-most vertex of its (x, y) cell: ~0 on the
    visible face, large for the mouth cavity, eye sockets and the back of the head."""
    cell = DEPTH_CELL * width
    key = np.floor((t[:, :2] - t[:, :2].min(0)) / cell).astype(np.int64)
    key = key[:, 0] * (key[:, 1].max() + 1) + key[:, 1]
    uniq, inv = np.unique(key, return_inverse=True)
    front = np.full(len(uniq), -np.inf)
    np.maximum.at(front, inv, t[:, 2])
    return front[inv] - t[:, 2]


def _ellipsoid(t: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return (((t - centre) / axes) ** 2).sum(1) <= 1.0


def geometric_regions(template: np.ndarray, faces: np.ndarray | None = None) -> Regions:
    """Lips, mouth region and upper face from the template's shape alone (deterministic).

    Nose tip = front-most vertex near the midline. Mouth centre: height of the mouth cavity (the
    vertices just below the nose that hide far behind the visible surface: inner lips, mouth
    opening), or MOUTH_DROP below the nose when the mesh has no cavity; depth = the visible
    surface there. Lips = a small ellipsoid around it; mouth region = a large one (lips, jaw,
    chin, lower cheeks) cut just below the nose; upper face = visible vertices above the eyes' lower
    lids in front of the ears.
    """
    t = np.asarray(template, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != 3 or len(t) < 10 or not np.isfinite(t).all():
        raise VocaganError(f"template must be a finite (V, 3) array with V >= 10, got shape {t.shape}")
    main = _main_component(t, faces)
    lo, hi = t[main].min(0), t[main].max(0)
    width = float(hi[0] - lo[0])
    if width <= 0:
        raise VocaganError("template has zero width along x; cannot derive regions from geometry")
    x_mid = 0.5 * (lo[0] + hi[0])
    candidates = np.flatnonzero(main & (np.abs(t[:, 0] - x_mid) < 0.15 * width))
    nose = t[candidates[np.argmax(t[candidates, 2])]]
    depth = _depth_below_front(t[main], width)
    depth_all = np.full(len(t), np.inf)
    depth_all[main] = depth

    # The mouth cavity: near the midline, between 0.08 w and 0.4 w below the nose tip, 0.04 w to
    # 0.2 w behind the visible surface (deeper: the underside of the chin). FLAME: 26 inner-lip
    # vertices around the mouth slit; the synthetic head: its mouth pocket.
    window = (
        main
        & (np.abs(t[:, 0] - nose[0]) < 0.06 * width)
        & (t[:, 1] < nose[1] - 0.08 * width)
        & (t[:, 1] > nose[1] - 0.4 * width)
    )
    cavity = window & (depth_all > 0.04 * width) & (depth_all < 0.2 * width)
    found_cavity = bool(cavity.any())
    mouth_y = t[cavity, 1].mean() if found_cavity else nose[1] - MOUTH_DROP * width
    surface = (
        main
        & (np.abs(t[:, 0] - nose[0]) < 0.04 * width)
        & (np.abs(t[:, 1] - mouth_y) < 0.03 * width)
        & (depth_all < 0.02 * width)
    )
    mouth_z = t[surface, 2].max() if surface.any() else nose[2] - 0.08 * width
    centre = np.array([nose[0], mouth_y, mouth_z])

    lips = np.flatnonzero(main & _ellipsoid(t, centre, np.array(LIPS_AXES) * width))
    mouth_mask = main & _ellipsoid(t, centre, np.array(MOUTH_AXES) * width) & (t[:, 1] <= nose[1] + MOUTH_TOP * width)
    mouth_mask[lips] = True
    upper = np.flatnonzero(
        main
        & (t[:, 1] > nose[1] + UPPER_BAND[0] * width)
        & (t[:, 1] < nose[1] + UPPER_BAND[1] * width)
        & (np.abs(t[:, 0] - nose[0]) < UPPER_HALF_WIDTH * width)
        & (t[:, 2] > nose[2] - UPPER_DEPTH * width)
        & (depth_all < 0.05 * width)
    )
    if len(lips) == 0 or len(upper) == 0:
        raise VocaganError(
            "could not find lips/upper face from the template geometry (expects a head, "
            "+y up, +z forward); pass a masks file or --mouth-indices"
        )
    how = "mouth cavity" if found_cavity else "no mouth cavity, fixed drop below the nose"
    source = (
        f"geometry: mouth centre {np.round(centre, 4).tolist()} ({how}); "
        f"lips {len(lips)}, mouth region {int(mouth_mask.sum())}, upper face {len(upper)} vertices"
    )
    return Regions(np.flatnonzero(mouth_mask).astype(np.int64), lips.astype(np.int64), upper.astype(np.int64), source)


def resolve_regions(
    template: np.ndarray,
    masks: dict | str | Path | None = None,
    mouth_indices_path: str | Path | None = None,
    masks_source: str = "",
    faces: np.ndarray | None = None,
) -> Regions:
    """The regions used for the crop AND the metrics.

    template: (V, 3) neutral face. masks: dict of index arrays (FLAME_masks.pkl content) or a path
    to such a pickle; masks_source names it in the report. mouth_indices_path: .npy/.txt of mouth
    crop indices (wins over the geometric mouth region). faces: (F, 3), optional; lets the
    geometry ignore separate pieces such as eyeballs.
    """
    template = np.asarray(template)
    n = len(template)
    content: object = masks  # a pickle may hold anything: checked below
    if isinstance(masks, (str, Path)):
        masks_source = masks_source or str(masks)
        content = safe_load_pickle(Path(masks))
    geo = geometric_regions(template, faces)
    if content is not None:
        where = masks_source or "masks"
        if not isinstance(content, dict):
            raise VocaganError(f"masks must be a dict of index arrays, got {type(content).__name__}", where)
        missing = [k for k in ("lips", "forehead", "eye_region") if k not in content]
        if missing:
            raise VocaganError(f"masks lack {', '.join(missing)} (has: {', '.join(map(str, content))})", where)
        lips = _indices(content["lips"], n, "masks['lips']", where)
        upper = np.union1d(
            _indices(content["forehead"], n, "masks['forehead']", where),
            _indices(content["eye_region"], n, "masks['eye_region']", where),
        )
        name = Path(masks_source).name if masks_source else "masks"
        mouth = np.union1d(geo.mouth, lips)
        source = (
            f"{name}: lips {len(lips)}, upper face (forehead ∪ eye_region) {len(upper)}; "
            f"mouth crop = geometric mouth region ∪ lips ({len(mouth)} vertices)"
        )
    else:
        lips, upper, mouth = geo.lips, geo.upper_face, geo.mouth
        source = geo.source + " (no masks file given)"
    if mouth_indices_path is not None:
        given = load_index_file(mouth_indices_path, n)
        mouth = np.union1d(given, lips)
        added = len(mouth) - len(given)
        source += f"; mouth crop from index file {Path(mouth_indices_path).name} ({len(given)} vertices" + (
            f", + {added} lip vertices it lacked)" if added else ")"
        )
    return Regions(mouth.astype(np.int64), lips.astype(np.int64), upper.astype(np.int64), source)


# ----------------------------------------------------------------------------- mouth opening
def mouth_opening_vertices(
    template: np.ndarray, lips: np.ndarray, up_axis: int = 1, lateral_axis: int = 0, band: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the vertices whose distance defines the mouth opening, from the lips region.

    Geometry of the template (FLAME convention: y up, x lateral): keep the lip vertices within
    `band` x lip width of the lips' median lateral coordinate (the central column of the mouth;
    the band doubles until it holds lip vertices both above and below); split them at the lips'
    mean height into upper and lower lip; of each, keep the half nearest that height (the inner
    lip edges, at the slit). Returns (upper_idx, lower_idx) into the mesh. ValueError when the
    lips have no vertical extent.
    """
    lips = np.unique(np.asarray(lips))
    pts = np.asarray(template[lips], dtype=np.float64)
    x, y = pts[:, lateral_axis], pts[:, up_axis]
    width, y_mid = x.max() - x.min(), y.mean()
    above, below = y > y_mid, y <= y_mid
    while True:
        central = np.abs(x - np.median(x)) <= band * width + 1e-12
        if (central & above).any() and (central & below).any():
            break
        if band >= 1.0 or not above.any():
            raise ValueError("lips region has no vertices above and below its mean height")
        band *= 2
    picked = []
    for side in (central & above, central & below):
        idx, dist = lips[side], np.abs(y[side] - y_mid)
        keep = max(1, (idx.size + 1) // 2)
        picked.append(np.sort(idx[np.argsort(dist, kind="stable")[:keep]]))
    return picked[0], picked[1]


def lip_positions(crop, lips) -> np.ndarray:
    """Positions (L,) of the lip vertices inside the crop (M,) of mesh indices the motion covers."""
    crop, lips = np.asarray(crop), np.asarray(lips)
    order = np.argsort(crop, kind="stable")
    pos = np.minimum(np.searchsorted(crop[order], lips), len(crop) - 1)
    if np.any(crop[order][pos] != lips):
        raise VocaganError("the lip vertices are not all inside the training crop (prep.region)")
    return order[pos]


def opening_weights(crop, template, lips) -> np.ndarray | None:
    """(3M,) weights w with crop offsets (M*3,) @ w = the first-order change of the mouth opening (m):
    the inner upper- minus lower-lip mean offset (`mouth_opening_vertices` of `template` (V,3)),
    projected on their rest direction. None when the lips have no upper/lower split."""
    try:
        upper, lower = mouth_opening_vertices(np.asarray(template), lips)
    except ValueError:
        return None
    gap = template[upper].mean(0) - template[lower].mean(0)  # (3,) rest opening vector
    direction = gap / max(float(np.linalg.norm(gap)), 1e-9)
    w = np.zeros((len(crop), 3), np.float64)
    w[lip_positions(crop, upper)] += direction / len(upper)
    w[lip_positions(crop, lower)] -= direction / len(lower)
    return w.reshape(-1).astype(np.float32)
