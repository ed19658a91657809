"""The built-in corpus' face: Google's MediaPipe canonical face mesh (a real human face shape,
Apache-2.0, shipped unmodified in vocagan/assets/ with its licence and a NOTICE), turned into a head
that can speak:

1. the mesh in metres (it comes in cm), the iris landmarks kept only to place the eyes;
2. the mouth cut open along the inner lip line (MediaPipe's lips are joined by a strip of triangles)
   and the eye openings cut open along the lid lines;
3. the lips brought together at rest (MediaPipe's neutral face has them ~6 mm apart), so a bilabial
   closure looks like one;
4. Loop subdivision (`levels` times) for smooth shading;
5. a mouth interior behind the lips (inner lips, upper and lower teeth, a dark cavity), joined to the
   lip edges so the surface stays in one piece when the jaw opens;
6. an eyeball behind each lid opening (sclera, iris, pupil; it does not move) and a blink that brings
   the upper lid down onto the lower one.

Per-vertex colours (skin, lips, teeth, dark mouth, eyes) travel with the mesh: FLAME_sample.ply of the
corpus holds them and every renderer shows them. Regions (lips, forehead, eye region, ...) are known
by construction and written as the corpus' region_masks.pkl.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.synth.face import REF_HALF_WIDTH, Head, MouthFrame, boundary_loops, smoothstep

ASSET = Path(__file__).resolve().parents[1] / "assets" / "mediapipe_face_model_with_iris.obj"

# MediaPipe face-mesh landmark indices (the lip and eye contours of its published topology)
INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]  # mouth corner .. mouth corner
INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
EYE_OPENINGS = (
    [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],  # subject's right
    [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466],
)
IRIS_CENTRES = (468, 473)  # each followed by four iris-rim landmarks
N_FACE = 468  # landmarks of the face surface (the rest are irises)
CM = 0.01

REST_SLIT = 0.0004  # gap between the lips at rest (m)
# colours (linear RGB in [0, 1])
SKIN = (0.80, 0.77, 0.75)
LIPS = (0.74, 0.56, 0.56)
MOUTH = (0.09, 0.04, 0.045)
TEETH = (0.88, 0.87, 0.82)
SCLERA = (0.92, 0.91, 0.89)
IRIS = (0.30, 0.40, 0.52)
PUPIL = (0.03, 0.03, 0.04)
# the mouth interior, ring by ring behind the lip edge: (x shrink, y offset on the upper side, on the
# lower side (m, signed), depth behind the lip edge (m), what it is)
INTERIOR = [
    (0.03, 0.0008, -0.0008, 0.0018, "inner lip"),
    (0.06, -0.0025, -0.0035, 0.0034, "teeth"),
    (0.10, 0.0050, -0.0050, 0.0040, "teeth"),
    (0.22, 0.0085, -0.0085, 0.0090, "cavity"),
    (0.35, 0.0060, -0.0060, 0.0220, "cavity"),
]


def canonical_head(levels: int = 1, path: Path = ASSET) -> Head:
    """The speaking head built from the MediaPipe mesh at `path` (see the module docstring).
    levels 0: ~730 vertices (tests), 1: ~2300 (the demo)."""
    from vocagan.formats.mesh import read_mesh

    verts, faces = read_mesh(path)
    if len(verts) < IRIS_CENTRES[1] + 5:
        raise VocaganError(f"expected MediaPipe's face mesh with irises (478 vertices), got {len(verts)}", path)
    v = verts.astype(np.float64) * CM
    irises = v[list(IRIS_CENTRES)]
    iris_radius = float(np.mean([np.linalg.norm(v[c + 1 : c + 5] - v[c], axis=1).mean() for c in IRIS_CENTRES]))
    v, faces = v[:N_FACE], faces[(faces < N_FACE).all(1)]
    openings = [set(INNER_UPPER) | set(INNER_LOWER), *map(set, EYE_OPENINGS)]
    faces = faces[[not any(set(t) <= hole for hole in openings) for t in faces.tolist()]]
    lower, lips = _sides(v)
    v = _close_lips(v, lower)
    eye_zone, forehead = _zones(v, irises)
    attrs = np.stack([lower, lips, eye_zone, forehead], 1)
    for _ in range(levels):
        v, faces, attrs = loop_subdivide(v, faces, attrs)
    lower, lips, eye_zone, forehead = attrs.T
    n_face = len(v)
    loops = boundary_loops(faces)
    mouth_loop = min(loops, key=lambda lp: np.abs(v[lp, :2].mean(0) - v[lips > 0.99, :2].mean(0)).sum())
    eye_loops = sorted(
        (lp for lp in loops if np.linalg.norm(v[lp, :2].mean(0) - irises[:, :2], axis=1).min() < 0.01),
        key=lambda lp: v[lp, 0].mean(),
    )
    if len(eye_loops) != 2:
        raise VocaganError(f"the face mesh should have two eye openings after cutting, found {len(eye_loops)}", path)
    colors = np.tile(SKIN, (n_face, 1))
    colors[lips > 0.99] = LIPS
    v, faces, lower, colors = _mouth_interior(v, faces, lower, colors, mouth_loop)
    moves = np.ones(len(v))
    blink = np.zeros_like(v)
    for loop in eye_loops:
        blink += _blink(v, loop, moves > 0)
    eyeballs = []
    for loop in eye_loops:
        centre = irises[np.argmin(np.abs(irises[:, 0] - v[loop, 0].mean()))]
        ev, ef, ec = _eyeball(v, loop, centre, iris_radius)
        eyeballs.append(np.arange(len(v), len(v) + len(ev)))
        v, faces = np.concatenate([v, ev]), np.concatenate([faces, ef])
        colors = np.concatenate([colors, ec])
    n = len(v)
    pad = n - len(lower)
    lower, moves = np.concatenate([lower, np.zeros(pad)]), np.concatenate([moves, np.zeros(pad)])
    blink = np.concatenate([blink, np.zeros((pad, 3))])
    regions = _regions(v, n_face, lips, eye_zone, forehead, eyeballs)
    frame = _mouth_frame(v, regions["lips"], lower)
    return Head(
        v.astype(np.float32),
        faces.astype(np.int32),
        frame,
        lower.astype(np.float32),
        regions,
        colors=colors.astype(np.float32),
        moves=moves.astype(np.float32),
        blink=blink.astype(np.float32),
    )


# ----------------------------------------------------------------------------- lips
def _lip_line(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y) of the line midway between the inner lip contours, sorted by x; and its order."""
    x = v[INNER_UPPER, 0]
    y = 0.5 * (v[INNER_UPPER, 1] + v[INNER_LOWER, 1])
    order = np.argsort(x)
    return x[order], y[order], order


def _sides(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lower (V,): 0 upper side of the mouth, 1 lower (jaw) side, 0.5 at the corners, smooth across
    the lip line beyond them; lips (V,): 1 on the lips (between the outer and inner contours)."""
    lx, ly, _ = _lip_line(v)
    y_line = np.interp(v[:, 0], lx, ly)
    lower = smoothstep((y_line + 0.002 - v[:, 1]) / 0.004)
    upper_lip = _inside(v[:, :2], np.concatenate([v[OUTER_UPPER, :2], v[INNER_UPPER[::-1], :2]]))
    lower_lip = _inside(v[:, :2], np.concatenate([v[OUTER_LOWER, :2], v[INNER_LOWER[::-1], :2]]))
    upper_lip[INNER_UPPER + OUTER_UPPER] = True
    lower_lip[INNER_LOWER + OUTER_LOWER] = True
    lower[upper_lip], lower[lower_lip] = 0.0, 1.0
    corners = [INNER_UPPER[0], INNER_UPPER[-1], OUTER_UPPER[0], OUTER_UPPER[-1]]
    lower[corners] = 0.5
    return lower, (upper_lip | lower_lip).astype(np.float64)


def _inside(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Points p (N, 2) inside the closed polygon poly (K, 2) (even-odd rule) -> bool (N,)."""
    x, y = p[:, :1], p[:, 1:2]
    x0, y0 = poly[None, :, 0], poly[None, :, 1]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    dy = np.where(y1 == y0, 1e-12, y1 - y0)
    crossing = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / dy)
    return crossing.sum(1) % 2 == 1


def _close_lips(v: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Bring the inner lip contours to REST_SLIT apart; the lips and the skin around follow with a
    smooth falloff (1.4 cm across the lip line, 6 mm beyond the corners)."""
    lx, ly, order = _lip_line(v)
    up = REST_SLIT / 2 - (v[INNER_UPPER, 1][order] - ly)  # < 0: the upper lip comes down
    lo = (ly - v[INNER_LOWER, 1][order]) - REST_SLIT / 2  # > 0: the lower lip comes up
    y_line = np.interp(v[:, 0], lx, ly)
    corner = abs(v[INNER_UPPER[0], 0])
    fall = (1 - smoothstep(np.abs(v[:, 1] - y_line) / 0.014)) * (1 - smoothstep((np.abs(v[:, 0]) - corner) / 0.006))
    shift = np.where(lower > 0.5, np.interp(v[:, 0], lx, lo), np.interp(v[:, 0], lx, up))
    out = v.copy()
    out[:, 1] += fall * np.where(lower == 0.5, 0.0, shift)
    return out


# ----------------------------------------------------------------------------- subdivision
def loop_subdivide(v: np.ndarray, faces: np.ndarray, attrs: np.ndarray):
    """One step of Loop subdivision: every triangle becomes four; positions are smoothed with Loop's
    weights (Warren's beta), boundary curves as cubic B-splines (so the cut lip and lid lines stay
    crisp). attrs (V, k) are carried linearly: a new vertex gets the mean of its edge's ends.
    Returns (vertices, faces, attrs) with vertices [old..., one per edge...]."""
    n, nf = len(v), len(faces)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges, inv, count = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    opposite = np.concatenate([faces[:, 2], faces[:, 0], faces[:, 1]])  # the corner facing each edge
    opp_sum = np.zeros((len(edges), 3))
    np.add.at(opp_sum, inv, v[opposite])
    a, b = v[edges[:, 0]], v[edges[:, 1]]
    border = count == 1
    odd = np.where(border[:, None], 0.5 * (a + b), 0.375 * (a + b) + 0.125 * opp_sum)

    def neighbour_sums(e):
        s, d = np.zeros((n, 3)), np.zeros(n)
        np.add.at(s, e[:, 0], v[e[:, 1]])
        np.add.at(s, e[:, 1], v[e[:, 0]])
        np.add.at(d, e[:, 0], 1)
        np.add.at(d, e[:, 1], 1)
        return s, d

    total, degree = neighbour_sums(edges)
    beta = np.where(degree > 3, 3.0 / (8.0 * np.maximum(degree, 1)), 3.0 / 16.0)
    even = (1 - degree * beta)[:, None] * v + beta[:, None] * total
    b_total, b_degree = neighbour_sums(edges[border])
    on_curve = b_degree == 2
    even[on_curve] = 0.75 * v[on_curve] + 0.125 * b_total[on_curve]
    even[b_degree > 2] = v[b_degree > 2]  # a pinch point stays put
    mid = n + inv.reshape(3, nf).T  # (F, 3): edges 01, 12, 20
    c0, c1, c2 = faces.T
    m01, m12, m20 = mid.T
    new_faces = np.concatenate(
        [np.stack(t, 1) for t in ((c0, m01, m20), (m01, c1, m12), (m20, m12, c2), (m01, m12, m20))]
    )
    new_attrs = np.concatenate([attrs, 0.5 * (attrs[edges[:, 0]] + attrs[edges[:, 1]])])
    return np.concatenate([even, odd]), new_faces.astype(np.int32), new_attrs


# ----------------------------------------------------------------------------- mouth interior
def _mouth_interior(v, faces, lower, colors, loop):
    """Rings behind the lip edges (INTERIOR), then one vertex at the back; its faces run against the
    face's own edges of the loop, so the surface stays consistently oriented. Upper-side rings move
    with the upper lip, lower-side rings with the jaw."""
    p = v[loop]
    side = np.where(lower[loop] < 0.25, 1.0, np.where(lower[loop] > 0.75, -1.0, 0.0))  # +1 upper, -1 lower
    x0 = float(np.median(p[:, 0]))
    lateral = np.sqrt(np.clip(1 - ((p[:, 0] - x0) / np.abs(p[:, 0] - x0).max()) ** 2, 0, 1))  # 0 at the corners
    y_line = p[:, 1] - side * REST_SLIT / 2
    teeth = smoothstep((lateral - 0.3) / 0.3)[:, None]
    inner = smoothstep(lateral / 0.5)[:, None]
    n, start = len(loop), len(v)
    rings, ring_colors, new_faces, prev = [], [], [], np.asarray(loop)
    for k, (shrink, up, down, depth, what) in enumerate(INTERIOR):
        q = np.empty_like(p)
        q[:, 0] = x0 + (p[:, 0] - x0) * (1 - shrink)
        q[:, 1] = y_line + lateral * np.where(side > 0, up, np.where(side < 0, down, 0.0))
        q[:, 2] = p[:, 2] - depth * (0.4 + 0.6 * lateral)
        rings.append(q)
        mix = {"inner lip": inner * 0.75 * np.array(LIPS), "teeth": teeth * np.array(TEETH)}.get(what, 0.0)
        weight = {"inner lip": inner, "teeth": teeth}.get(what, 0.0)
        ring_colors.append(mix + (1 - weight) * np.array(MOUTH))
        ids = start + k * n + np.arange(n)
        nxt_prev, nxt_ids = np.roll(prev, -1), np.roll(ids, -1)
        new_faces += [np.stack([nxt_prev, prev, ids], 1), np.stack([nxt_prev, ids, nxt_ids], 1)]
        prev = ids
    back = start + len(INTERIOR) * n
    rings.append(np.array([[x0, float(np.median(y_line)), float(p[:, 2].max()) - 0.026]]))
    ring_colors.append(np.array([MOUTH]))
    new_faces.append(np.stack([np.roll(prev, -1), prev, np.full(n, back)], 1))
    ring_lower = np.where(side > 0, 0.0, np.where(side < 0, 1.0, 0.5))
    return (
        np.concatenate([v, *rings]),
        np.concatenate([faces, *new_faces]),
        np.concatenate([lower, np.tile(ring_lower, len(INTERIOR)), [0.5]]),
        np.concatenate([colors, *[np.broadcast_to(c, (len(r), 3)) for c, r in zip(ring_colors, rings, strict=True)]]),
    )


# ----------------------------------------------------------------------------- eyes
def _eyeball(v, loop, centre, iris_radius):
    """A patch of eyeball behind one lid opening: circles around the iris centre (pupil, iris, its rim)
    on an ellipsoid, then a ring 2.5 mm beyond the opening, kept 1.5 mm behind the lids. One vertex
    per opening vertex in each ring, so the patch follows the almond shape of the opening."""
    p = v[loop]
    rel = p[:, :2] - centre[:2]
    order = np.argsort(np.arctan2(rel[:, 1], rel[:, 0]))
    rho = np.linalg.norm(rel[order], axis=1)
    unit = rel[order] / rho[:, None]
    apex = centre[2] - 0.0008
    axes = (0.016, 0.013, 0.012)  # eyeball half-axes x, y, z (m)

    def ring(r):
        xy = unit * r[:, None]
        bulge = np.sqrt(np.clip(1 - (xy[:, 0] / axes[0]) ** 2 - (xy[:, 1] / axes[1]) ** 2, 0, 1))
        return np.concatenate([centre[:2] + xy, (apex - axes[2] * (1 - bulge))[:, None]], 1)

    pupil = 0.42 * iris_radius
    rings, colors = [np.array([[centre[0], centre[1], apex]])], [PUPIL]
    # where the opening is narrower than the iris (towards the corners) the rings keep distinct radii
    for r, cap, c in ((pupil, 0.6, PUPIL), (1.2 * pupil, 0.7, IRIS), (0.9 * iris_radius, 0.85, IRIS),
                      (1.06 * iris_radius, 0.95, SCLERA)):  # fmt: skip
        rings.append(ring(np.minimum(r, cap * rho)))
        colors += [c] * len(loop)
    far = ring(rho + 0.0025)
    far[:, 2] = np.minimum(far[:, 2], p[order, 2] - 0.0015)
    rings.append(far)
    colors += [SCLERA] * len(loop)
    n, base = len(loop), len(v)
    ids = np.arange(n)
    tris = [np.stack([np.full(n, base), base + 1 + ids, base + 1 + np.roll(ids, -1)], 1)]
    for r in range(len(rings) - 2):
        a, b = base + 1 + r * n + ids, base + 1 + (r + 1) * n + ids
        tris += [np.stack([a, b, np.roll(b, -1)], 1), np.stack([a, np.roll(b, -1), np.roll(a, -1)], 1)]
    return np.concatenate(rings), np.concatenate(tris), np.asarray(colors, np.float64)


def _blink(v, loop, skin):
    """(V, 3): at coefficient 1 the upper lid of this opening comes down to a quarter of the way above
    the lower lid, which rises to meet it; the skin above follows over ~7 mm, below over ~4 mm."""
    p = v[loop]
    i0, i1 = int(np.argmin(p[:, 0])), int(np.argmax(p[:, 0]))
    chord = np.interp(p[:, 0], [p[i0, 0], p[i1, 0]], [p[i0, 1], p[i1, 1]])

    def contour(pts):
        o = np.argsort(pts[:, 0])
        return lambda x: np.interp(x, pts[o, 0], pts[o, 1])

    upper, lower = contour(p[p[:, 1] >= chord]), contour(p[p[:, 1] <= chord])
    x, y = v[:, 0], v[:, 1]
    u, lo = upper(x), lower(x)
    meet = lo + 0.25 * (u - lo)
    mid = 0.5 * (u + lo)
    inside = (x > p[i0, 0]) & (x < p[i1, 0])
    near = skin & inside & (np.abs(y - mid) < 0.02)
    w_up = np.exp(-((np.maximum(y - u, 0) / 0.007) ** 2)) * (y >= mid) * near
    w_lo = np.exp(-((np.maximum(lo - y, 0) / 0.004) ** 2)) * (y < mid) * near
    d = np.zeros_like(v)
    d[:, 1] = w_up * (meet - u) + w_lo * (meet - lo)
    d[:, 2] = w_up * 0.25 * np.where(inside, u - lo, 0.0)  # the lid slides over the eyeball
    return d


# ----------------------------------------------------------------------------- regions and frame
def _zones(v, irises) -> tuple[np.ndarray, np.ndarray]:
    """Coarse-mesh membership (V,) of the eye region (lids, brows, around the eyes) and the forehead."""
    eye = np.zeros(len(v))
    for c in irises:
        eye = np.maximum(eye, ((((v[:, 0] - c[0]) / 0.026) ** 2 + ((v[:, 1] - c[1] - 0.003) / 0.016) ** 2) <= 1))
    forehead = (v[:, 1] > irises[:, 1].mean() + 0.02) & (np.abs(v[:, 0]) < 0.06)
    return eye, forehead.astype(np.float64)


def _regions(v, n_face, lips, eye_zone, forehead, eyeballs) -> dict:
    """FLAME_masks-style index arrays (lips, face, forehead, eye_region, ..., mouth_interior)."""
    idx = lambda m: np.flatnonzero(m).astype(np.int64)  # noqa: E731
    skin = np.arange(len(v)) < n_face
    x, y = v[:, 0], v[:, 1]
    face_eye = skin & (np.pad(eye_zone, (0, len(v) - n_face)) > 0.99)
    lip_mask = skin & (np.pad(lips, (0, len(v) - n_face)) > 0.99)
    nose_top = float(v[np.argmax(np.where(skin, v[:, 2], -np.inf)), 1])
    return {
        "lips": idx(lip_mask),
        "face": idx(skin),
        "forehead": idx(skin & (np.pad(forehead, (0, len(v) - n_face)) > 0.99) & ~face_eye),
        "eye_region": idx(face_eye),
        "left_eye_region": idx(face_eye & (x > 0)),
        "right_eye_region": idx(face_eye & (x < 0)),
        "nose": idx(skin & (np.abs(x) < 0.02) & (y > v[lip_mask, 1].max() + 0.004) & (y < nose_top + 0.035)),
        "left_eyeball": eyeballs[1].astype(np.int64),
        "right_eyeball": eyeballs[0].astype(np.int64),
        "mouth_interior": np.arange(n_face, eyeballs[0][0], dtype=np.int64),
    }


def _mouth_frame(v, lips, lower) -> MouthFrame:
    """Lip-line centre (the slit between the central lips), corner half-width and scale from the lips
    (+x the subject's left)."""
    lip = v[lips]
    central = lips[np.abs(v[lips, 0]) < 0.003]
    upper, below = central[lower[central] < 0.5], central[lower[central] > 0.5]
    y = 0.5 * (float(v[upper, 1].min()) + float(v[below, 1].max()))
    half = float(0.5 * np.ptp(lip[:, 0]))
    centre = np.array([0.0, y, float(v[central, 2].max())])
    nose = v[np.argmax(v[:, 2])].astype(np.float64)
    return MouthFrame(
        centre,
        half,
        nose,
        0.5 * (v.min(0) + v.max(0)),
        half / REF_HALF_WIDTH,
        "MediaPipe canonical face (lip line by construction)",
    )
