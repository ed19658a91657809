"""vocagan.synth.face and vocagan.synth.canonical: the built-in face (the MediaPipe mesh, shipped with
its licence; one consistently oriented surface, mouth opened and filled with an interior, eyeballs,
colours, regions), Loop subdivision, locating the mouth, and the motion basis (the jaw opens the
mouth, the lips close, the lids blink, the skull and the eyeballs stay still)."""

from __future__ import annotations

import fnmatch
import hashlib

import numpy as np
import pytest
import tomllib

from vocagan.synth import canonical, face
from vocagan.synth import corpus as synthetic


def edge_counts(faces: np.ndarray) -> tuple[np.ndarray, bool]:
    """(how many faces use each undirected edge, oriented: no directed edge twice)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, counts = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)
    return counts, len(np.unique(e, axis=0)) == len(e)


@pytest.fixture(scope="module")
def head():
    return canonical.canonical_head(synthetic.SCALES["small"].face_levels)


def test_the_mediapipe_mesh_ships_with_its_licence_and_notice(repo):
    assets = repo / "vocagan" / "assets"
    obj = assets / "mediapipe_face_model_with_iris.obj"
    notice = (assets / "MEDIAPIPE_NOTICE").read_text()
    assert hashlib.sha256(obj.read_bytes()).hexdigest() in notice  # shipped unmodified, as the NOTICE says
    assert "Apache License" in (assets / "MEDIAPIPE_LICENSE").read_text()
    assert "modified" in notice and "google-ai-edge/mediapipe" in notice
    globs = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vocagan"]
    for f in (obj, assets / "MEDIAPIPE_NOTICE", assets / "MEDIAPIPE_LICENSE"):  # in the wheel
        assert any(fnmatch.fnmatch(str(f.relative_to(repo / "vocagan")), g) for g in globs), f


@pytest.mark.parametrize("scale", ["tiny", "small"])
def test_canonical_head_is_one_oriented_surface_with_an_open_mouth_inside(scale):
    h = canonical.canonical_head(synthetic.SCALES[scale].face_levels)
    v, f = h.vertices, h.faces
    lo, hi = {"tiny": (700, 800), "small": (2200, 2450)}[scale]
    assert lo <= len(v) <= hi and f.dtype == np.int32 and v.dtype == np.float32
    counts, oriented = edge_counts(f)
    assert oriented and counts.max() == 2  # manifold, consistently oriented
    areas = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert areas.min() > 1e-10
    assert 0.15 <= np.ptp(v[:, 1]) <= 0.21 and 0.13 <= np.ptp(v[:, 0]) <= 0.18  # a real face's size (m)
    # boundaries: the face outline and the two lid openings; none at the lips (the interior closes them),
    # and the two eyeball patches
    loops = face.boundary_loops(f)
    r = h.regions
    lips_y = v[r["lips"], 1]
    assert not any(lips_y.min() <= v[lp, 1].mean() <= lips_y.max() and np.ptp(v[lp, 0]) < 0.06 for lp in loops)
    assert len(loops) == 5
    # regions by construction
    assert {"lips", "face", "forehead", "eye_region", "mouth_interior", "left_eyeball", "right_eyeball"} <= set(r)
    assert np.abs(lips_y - h.frame.centre[1]).max() < 0.015  # the lips hug the lip line
    assert v[r["forehead"], 1].min() > v[r["eye_region"], 1].mean() > lips_y.max()
    assert (v[r["left_eyeball"], 0] > 0).all() and (v[r["right_eyeball"], 0] < 0).all()  # +x: the subject's left
    interior = v[r["mouth_interior"]]
    assert (interior[:, 2] < h.frame.centre[2]).all()  # behind the lips
    # colours: dark inside the mouth (but the teeth), white eyeballs with dark pupils
    c = h.colors
    assert c.shape == v.shape and c.min() >= 0 and c.max() <= 1
    luminance = c @ [0.3, 0.59, 0.11]
    inside = luminance[r["mouth_interior"]]
    assert np.mean(inside < 0.1) > 0.35 and inside.max() > 0.7 and np.median(luminance[r["face"]]) > 0.6  # teeth
    eye = luminance[r["left_eyeball"]]
    assert eye.max() > 0.8 and eye.min() < 0.1
    assert (h.moves[r["left_eyeball"]] == 0).all() and (h.moves[r["face"]] == 1).all()


def test_the_lips_meet_at_rest_and_open_along_the_inner_line(head):
    """MediaPipe's neutral lips are ~6 mm apart; the built-in face closes them to a slit at rest."""
    v, lower = head.vertices, head.lower
    r = head.regions
    lips = v[r["lips"]]
    mid = r["lips"][np.abs(lips[:, 0]) < 0.002]
    up, lo = mid[lower[mid] < 0.5], mid[lower[mid] > 0.5]
    gap = v[up, 1].min() - v[lo, 1].max()
    assert 0 < gap < 0.001  # a slit under a millimetre
    assert abs(head.frame.centre[1] - 0.5 * (v[up, 1].min() + v[lo, 1].max())) < 1e-4  # the lip line: the slit
    inside = r["lips"][np.abs(v[r["lips"], 0]) < 0.8 * head.frame.half_width]
    assert set(np.unique(lower[inside])) <= {0.0, 1.0}  # every lip vertex between the corners on one side


def test_motion_basis_opens_closes_and_blinks(head, lip_aperture):
    basis = face.motion_basis(head.vertices, head.frame, head.lower, head.moves, head.blink)
    assert basis.shape == (len(face.BASIS_NAMES), len(head.vertices), 3)
    r = head.regions
    jaw = basis[0] + basis[1]  # jaw coefficient 1
    opening = lip_aperture(head.vertices[None] + jaw[None], head.vertices, r["lips"])[0]
    assert 0.005 < opening < 0.013  # ~5-12 mm, like real speech
    assert np.abs(jaw[r["forehead"]]).max() < 1e-4
    sealed = jaw + basis[2] + basis[3]  # close while the jaw is open
    assert lip_aperture(head.vertices[None] + sealed[None], head.vertices, r["lips"])[0] < 0.3 * opening
    eyeballs = np.concatenate([r["left_eyeball"], r["right_eyeball"]])
    assert np.abs(basis[:, eyeballs]).max() == 0  # rigid
    # a blink brings each upper lid down onto the lower one: the lid gap above the iris closes
    closed = head.vertices + basis[7]
    for ball in (r["left_eyeball"], r["right_eyeball"]):
        x = head.vertices[ball, 0].mean()
        lids = r["eye_region"][np.abs(head.vertices[r["eye_region"], 0] - x) < 0.003]
        y0 = head.vertices[ball, 1].mean()
        above, below = lids[head.vertices[lids, 1] > y0], lids[head.vertices[lids, 1] < y0]
        rest = head.vertices[above, 1].min() - head.vertices[below, 1].max()
        shut = closed[above, 1].min() - closed[below, 1].max()
        assert rest > 0.004 and shut < 0.25 * rest


def test_the_mouth_interior_shows_dark_when_the_jaw_opens(head):
    """Rendered (numpy rasteriser, the heads' own colours): at rest the mouth is a thin line; on an open
    vowel a dark hole shows between the lips."""
    from vocagan.render import frame_camera, render_frames

    basis = face.motion_basis(head.vertices, head.frame, head.lower, head.moves, head.blink)
    poses = np.stack([head.vertices, head.vertices + basis[0] + basis[1]])
    camera = frame_camera(head.vertices)
    images = list(render_frames(poses, head.faces, 128, "numpy", colors=head.colors, camera=camera))
    rows, cols = slice(78, 100), slice(44, 84)  # the mouth, at 128 px
    dark = [int((img[rows, cols].astype(float).mean(2) < 40).sum()) for img in images]
    assert dark[1] > 4 * max(dark[0], 5), dark


def test_loop_subdivision_keeps_a_closed_mesh_closed_and_carries_attributes(icosphere):
    v, f = icosphere(1)
    attrs = np.linspace(0, 1, len(v))[:, None]
    nv, nf, na = canonical.loop_subdivide(v.astype(np.float64), f, attrs)
    counts, oriented = edge_counts(f)
    assert len(nv) == len(v) + len(counts) and len(nf) == 4 * len(f)
    new_counts, new_oriented = edge_counts(nf)
    assert oriented and new_oriented and (new_counts == 2).all()
    radius = np.linalg.norm(nv, axis=1)
    assert radius.std() < 0.03 * radius.mean()  # smooth: still round
    e = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
    assert np.allclose(na[len(v) :, 0], attrs[e, 0].mean(1))  # a new vertex: the mean of its edge's ends
    # an open flat patch stays flat and keeps its boundary on the boundary line
    grid = np.array([[x, y, 0.0] for y in range(3) for x in range(3)])
    tris = np.array([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [3, 4, 7], [3, 7, 6], [4, 5, 8], [4, 8, 7]])
    gv, _, _ = canonical.loop_subdivide(grid, tris, np.zeros((9, 1)))
    assert np.abs(gv[:, 2]).max() == 0 and gv[:, :2].min() >= 0 and gv[:, :2].max() <= 2
