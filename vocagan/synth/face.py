"""Face geometry for the synthetic corpus: the `Head` a corpus animates (the built-in one is
`synth.canonical.canonical_head`), mouth location on a user mesh, identity reshaping, and the motion
basis (smooth deformation fields) that visemes drive.

Coordinates follow FLAME: metres, +y up, +z towards the viewer, origin near the head centre.
Everything about the mouth is expressed in a `MouthFrame` (lip-line centre, corner half-width,
scale), so the same deformation fields work on the built-in face and on FLAME_sample.ply.

Motion is linear in a few coefficients (`BASIS_NAMES`): motion(t) = coefs(t) @ basis. The jaw is
a weighted rotation about a hinge behind the mouth, written to second order (coefficients jaw and
jaw^2), which is exact to ~0.1 mm for the angles used here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# motion coefficients, in the order of the basis rows (synth_speech.py produces them)
BASIS_NAMES = ["jaw", "jaw2", "seal", "press", "round", "spread", "labiodental", "blink", "brow"]
JAW_MAX_RAD = 0.12  # jaw rotation at coefficient 1 (~9 mm at the lower lip on a FLAME-sized head)
REF_HALF_WIDTH = 0.027  # FLAME mouth corner-to-centre distance (m): defines `scale`


@dataclass
class MouthFrame:
    """Where the mouth is. `centre` = (x of the midline, y of the lip line, z of the lip front)."""

    centre: np.ndarray  # (3,)
    half_width: float  # mouth corner distance from the midline (m)
    nose_tip: np.ndarray  # (3,)
    head_centre: np.ndarray  # (3,) bounding-box centre
    scale: float = 1.0  # face size relative to FLAME (all field widths scale with it)
    source: str = "built-in face"

    def pivot(self) -> np.ndarray:
        """Jaw hinge (temporomandibular joint), behind and above the lip line."""
        s = self.scale
        return self.centre + np.array([0.0, 0.025 * s, -0.085 * s])


@dataclass
class Identity:
    """Per-subject face shape factors (1 = the base head)."""

    width: float = 1.0
    height: float = 1.0
    jaw: float = 1.0  # lower-face width
    lips: float = 1.0  # lip thickness / protrusion
    nose: float = 1.0
    chin: float = 1.0


@dataclass
class Head:
    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int32
    frame: MouthFrame
    lower: np.ndarray  # (V,) 1 = moves with the jaw (lower lip side), 0 = upper side
    regions: dict | None  # FLAME_masks-style {name: int64 indices}, None when unknown
    colors: np.ndarray | None = None  # (V, 3) float32 RGB in [0, 1] (skin, lips, mouth, eyes), None: uniform
    moves: np.ndarray | None = None  # (V,) 1 = deformed by speech, 0 = rigid (eyeballs); None: all move
    blink: np.ndarray | None = None  # (V, 3) the head's own blink field at coefficient 1; None: generic


def smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ----------------------------------------------------------------------------- a user's mesh
def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Vertex cycles of the mesh boundary (edges used by one face), each in traversal order."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    nxt = {int(a): int(b) for a, b in e[cnt[inv.reshape(-1)] == 1]}
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        cyc, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            cyc.append(v)
            v = nxt[v]
        loops.append(np.array(cyc))
    return loops


def locate_mouth(vertices: np.ndarray, faces: np.ndarray) -> tuple[MouthFrame, np.ndarray]:
    """Find the mouth of a face mesh (+y up, +z forward) -> (MouthFrame, lower (V,) in [0, 1]).

    The lip line is the hollow between the first two bulges (upper lip, lower lip) of the midline
    front profile below the nose tip (the front-most point). A mouth hole (FLAME: a boundary loop
    behind the lips, in front and below the nose tip) gives the corners and the back of the slot
    between the lips: a vertex is on the lower (jaw) side when it lies below the slot surface that
    joins the front lip line to the middle of the hole.
    """
    v = np.asarray(vertices, dtype=np.float64)
    width = float(np.ptp(v[:, 0]))
    nose = v[np.argmax(v[:, 2])]
    head_centre = 0.5 * (v.min(0) + v.max(0))
    z_cut = v[:, 2].min() + 0.6 * np.ptp(v[:, 2])
    cands = [
        lp
        for lp in boundary_loops(faces)
        if len(lp) >= 3
        and v[lp, 2].mean() > z_cut
        and v[lp, 1].mean() < nose[1]
        and np.ptp(v[lp, 0]) < 0.5 * width
        and abs(v[lp, 0].mean() - nose[0]) < 0.1 * width
    ]
    y_front = _profile_lip_line(v, np.asarray(faces), nose, width)
    if cands:
        p = v[max(cands, key=lambda c: v[c, 2].mean())]
        x0 = 0.5 * (p[:, 0].min() + p[:, 0].max())
        w = 1.1 * 0.5 * np.ptp(p[:, 0])
        hole_y, hole_z = 0.5 * (p[:, 1].min() + p[:, 1].max()), float(p[:, 2].mean())
        if y_front is None or not (p[:, 1].min() - 0.01 < y_front < p[:, 1].max() + 0.01):
            y_front = hole_y
        source = "geometry: lip line from the midline profile, corners from the mouth hole"
    else:
        x0, w = float(nose[0]), REF_HALF_WIDTH * width / 0.2
        hole_y = hole_z = None
        source = "geometry: lip line from the midline profile, corners from the head width"
        if y_front is None:
            y_front = nose[1] - 0.035 * width / 0.2
            source = "geometry: no lip profile found, lip line guessed 3.5 cm below the nose tip"
    s = w / REF_HALF_WIDTH
    near = (np.abs(v[:, 0] - x0) < 0.3 * w) & (np.abs(v[:, 1] - y_front) < 0.4 * w) & (v[:, 2] < nose[2] - 0.005 * s)
    z_front = float(v[near, 2].max()) if near.any() else float(nose[2] - 0.015 * s)
    frame = MouthFrame(np.array([x0, y_front, z_front]), float(w), nose.copy(), head_centre, s, source)
    if hole_y is None or hole_z is None:
        y_slit = np.full(len(v), y_front)
    else:  # the slot between the lips runs from the front lip line back to the hole
        y_slit = np.interp(v[:, 2], [hole_z, z_front], [hole_y, y_front])
    return frame, smoothstep((y_slit + 0.0006 * s - v[:, 1]) / (0.0012 * s)).astype(np.float32)


def _profile_lip_line(v, faces, nose, width) -> float | None:
    """y of the lip line: the lowest point of the midline front profile between the first two
    bulges below the nose tip (upper lip, lower lip); None when the profile has no such shape.
    The profile is the exact section of the surface by the plane x = x(nose tip)."""
    from scipy.signal import find_peaks

    s0 = width / 0.2
    ys = nose[1] - 0.012 * s0 - 0.0002 * s0 * np.arange(int(0.08 / 0.0002))  # downwards
    # triangle edges crossing the plane -> one segment (y, z)-(y, z) per crossing triangle
    tri = v[faces]  # (F, 3, 3)
    sx = tri[:, :, 0] - nose[0]
    crossings = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        t = sx[:, a] / np.where(sx[:, a] == sx[:, b], 1.0, sx[:, a] - sx[:, b])
        hit = (sx[:, a] * sx[:, b] <= 0) & (sx[:, a] != sx[:, b])
        crossings.append(np.where(hit[:, None], tri[:, a, 1:] + t[:, None] * (tri[:, b, 1:] - tri[:, a, 1:]), np.nan))
    pts = np.stack(crossings, 1)  # (F, 3 edges, (y, z))
    ok = np.isfinite(pts[:, :, 0]).sum(1) >= 2
    seg = np.stack([p[np.isfinite(p[:, 0])][:2] for p in pts[ok]]) if ok.any() else np.zeros((0, 2, 2))
    seg = seg[seg[:, :, 1].max(1) > nose[2] - 0.06 * s0]  # front part only
    if len(seg) == 0:
        return None
    y0, y1, z0, z1 = seg[:, 0, 0], seg[:, 1, 0], seg[:, 0, 1], seg[:, 1, 1]
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    inside = (ys[:, None] >= lo[None]) & (ys[:, None] <= hi[None])  # (B, S)
    t = (ys[:, None] - y0[None]) / np.where(y1 == y0, 1.0, y1 - y0)[None]
    prof = np.where(inside, z0[None] + t * (z1 - z0)[None], -np.inf).max(1)  # front-most z
    good = np.isfinite(prof)
    if good.sum() < 10:
        return None
    prof = np.interp(np.arange(len(ys)), np.flatnonzero(good), prof[good])
    peaks, _ = find_peaks(prof, prominence=0.0003 * s0)
    if len(peaks) < 2:
        return None
    return float(ys[peaks[0] + int(np.argmin(prof[peaks[0] : peaks[1] + 1]))])


def _mouth_zone(v, frame: MouthFrame, u_max: float, dy: float) -> np.ndarray:
    """1 inside the lip area (|x| < u_max corners, |y - lip line| < dy*scale, front), 0 away from it."""
    s = frame.scale
    u = np.abs(v[:, 0] - frame.centre[0]) / frame.half_width
    dyv = np.abs(v[:, 1] - frame.centre[1]) / s
    zf = (v[:, 2] - (frame.centre[2] - 0.035 * s)) / (0.01 * s)
    return (1 - smoothstep((u - u_max) / 0.3)) * (1 - smoothstep((dyv - dy) / 0.006)) * smoothstep(zf)


# ----------------------------------------------------------------------------- identity + motion
def reshape(points: np.ndarray, frame: MouthFrame, ident: Identity) -> np.ndarray:
    """Apply a subject's identity to points (vertices or frame anchors) of the base head."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3).copy()
    s, c, (x0, y_m, z_m) = frame.scale, frame.head_centre, frame.centre
    x, y = p[:, 0].copy(), p[:, 1].copy()
    lower_face = smoothstep((y_m + 0.012 * s - y) / (0.04 * s))
    p[:, 0] = x0 + (x - x0) * ident.width * (1.0 + (ident.jaw - 1.0) * lower_face)
    p[:, 1] = c[1] + (y - c[1]) * ident.height
    g = lambda cx, cy, sx, sy: np.exp(-0.5 * (((x - cx) / (sx * s)) ** 2 + ((y - cy) / (sy * s)) ** 2))  # noqa: E731
    front = smoothstep((p[:, 2] - (z_m - 0.05 * s)) / (0.02 * s))
    dz = (ident.lips - 1.0) * 0.004 * s * g(x0, y_m, 0.02, 0.009)
    dz += (ident.chin - 1.0) * 0.008 * s * g(x0, y_m - 0.035 * s, 0.022, 0.012)
    dz += (ident.nose - 1.0) * 0.012 * s * g(frame.nose_tip[0], frame.nose_tip[1], 0.012, 0.015)
    p[:, 2] += front * dz
    return p


def reshape_head(base: Head, ident: Identity) -> tuple[np.ndarray, MouthFrame]:
    """A subject's template (V, 3) float32 and its mouth frame."""
    f = base.frame
    verts = reshape(base.vertices, f, ident).astype(np.float32)
    anchors = reshape(np.stack([f.centre, f.nose_tip]), f, ident)
    frame = replace(
        f,
        centre=anchors[0],
        nose_tip=anchors[1],
        half_width=f.half_width * ident.width,
        head_centre=0.5 * (verts.min(0) + verts.max(0)),
        scale=f.scale * float(np.sqrt(ident.width * ident.height)),
    )
    return verts, frame


def motion_basis(
    vertices: np.ndarray,
    frame: MouthFrame,
    lower: np.ndarray,
    moves: np.ndarray | None = None,
    blink: np.ndarray | None = None,
) -> np.ndarray:
    """Deformation fields (len(BASIS_NAMES), V, 3) float32, in metres per unit coefficient.

    jaw/jaw2: rotation about the hinge weighted by w_jaw (lower side, lower face, in front of the
    hinge; smooth over the cheeks); seal (coefficient close*jaw): lower lip cancels the jaw opening;
    press: lips pushed together; round: corners inward + lips forward; spread: corners outward and
    up; labiodental: lower lip up and back against the upper teeth; blink: eyelids down (`blink`,
    a head's own (V, 3) field, replaces the generic one); brow: up. Rows of vertices with `moves` 0
    (rigid parts such as eyeballs) are zero.
    """
    v = np.asarray(vertices, dtype=np.float64)
    s = frame.scale
    x0, y_m, z_m = frame.centre
    rel = v - frame.pivot()
    u = np.abs(v[:, 0] - x0) / frame.half_width
    # vertical jaw weight: the slit labels near the lips, a broad blend over the cheeks
    delta = (0.002 + 0.02 * smoothstep((u - 1.0) / 1.5)) * s
    smooth = smoothstep((y_m + delta - v[:, 1]) / (2 * delta))
    zone = _mouth_zone(v, frame, 1.05, 0.02)
    vertical = zone * lower + (1 - zone) * smooth
    lateral = 1 - smoothstep((np.abs(v[:, 0] - x0) - 0.045 * s) / (0.035 * s))
    depth = smoothstep((rel[:, 2] + 0.01 * s) / (0.05 * s))
    neck = 1 - smoothstep((y_m - 0.05 * s - v[:, 1]) / (0.035 * s))
    w_jaw = vertical * lateral * depth * neck
    lips = _mouth_zone(v, frame, 1.0, 0.011)
    lip_low, lip_up = lips * lower, lips * (1 - lower)

    basis = np.zeros((len(BASIS_NAMES), len(v), 3))
    # rotation by a*w about +x: d = a*w*(0, -rz, ry) + (a*w)^2/2 * (0, -ry, -rz)
    basis[0] = JAW_MAX_RAD * w_jaw[:, None] * np.stack([0 * rel[:, 0], -rel[:, 2], rel[:, 1]], 1)
    basis[0, :, 1] += 0.002 * s * lip_up  # upper lip lifts a little
    basis[1] = 0.5 * JAW_MAX_RAD**2 * (w_jaw**2)[:, None] * np.stack([0 * rel[:, 0], -rel[:, 1], -rel[:, 2]], 1)
    basis[2] = -0.85 * basis[0] * lip_low[:, None]  # seal: undo jaw on lower lip
    basis[2, :, 1] -= 0.0015 * s * lip_up  # ...and bring the upper lip down
    basis[3, :, 1] = 0.0008 * s * (lip_low - lip_up)  # press
    basis[3, :, 2] = -0.0005 * s * lips
    g_round = np.exp(-((u / 1.3) ** 2)) * _mouth_zone(v, frame, 1.4, 0.016)
    basis[4, :, 0] = -0.22 * (v[:, 0] - x0) * g_round  # round: corners in
    basis[4, :, 1] = 0.0006 * s * g_round * (1 - 2 * lower)  # aperture rounds
    basis[4, :, 2] = 0.0045 * s * g_round  # lips forward
    corner = g_round * np.minimum(u, 1.0)
    cheek = np.exp(-0.5 * (((u - 1.4) / 0.5) ** 2 + ((v[:, 1] - y_m - 0.012 * s) / (0.012 * s)) ** 2))
    basis[5, :, 0] = 0.12 * (v[:, 0] - x0) * corner  # spread: corners out
    basis[5, :, 1] = 0.0008 * s * (corner + cheek * smoothstep((v[:, 2] - z_m + 0.04 * s) / (0.02 * s)))
    basis[5, :, 2] = -0.0015 * s * corner
    basis[6, :, 1] = 0.0035 * s * lip_low + 0.0006 * s * lip_up  # labiodental
    basis[6, :, 2] = -0.003 * s * lip_low
    front = smoothstep((v[:, 2] - (z_m - 0.05 * s)) / (0.015 * s))
    eye_y = y_m + 0.07 * s
    for ex in (x0 - 0.033 * s, x0 + 0.033 * s):  # blink: lids down
        g = np.exp(-0.5 * (((v[:, 0] - ex) / (0.013 * s)) ** 2 + ((v[:, 1] - eye_y - 0.004 * s) / (0.008 * s)) ** 2))
        basis[7, :, 1] -= 0.0035 * s * g * front
        basis[7, :, 2] += 0.0005 * s * g * front
    brow = np.exp(-0.5 * (((v[:, 1] - eye_y - 0.03 * s) / (0.016 * s)) ** 2 + ((v[:, 0] - x0) / (0.05 * s)) ** 2))
    basis[8, :, 1] = 0.002 * s * brow * front  # brow raise
    if blink is not None:
        basis[7] = blink
    if moves is not None:
        basis *= np.asarray(moves, np.float64)[None, :, None]
    return basis.astype(np.float32)
