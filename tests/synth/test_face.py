"""vocagan.synth.face: the procedural head (closed, oriented, head-sized, with regions), locating the
mouth, and the motion basis (the jaw opens the mouth, the skull stays still)."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan.synth import corpus as synthetic
from vocagan.synth import face


def edges_ok(faces: np.ndarray) -> tuple[bool, bool]:
    """(closed: every edge in exactly two faces, oriented: no directed edge twice)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, counts = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)
    return bool((counts == 2).all()), len(np.unique(e, axis=0)) == len(e)


@pytest.mark.parametrize("scale", ["tiny", "small", "full"])
def test_procedural_head_is_closed_oriented_and_head_sized(scale):
    head = face.procedural_head(*synthetic.SCALES[scale].mesh)
    v, f = head.vertices, head.faces
    closed, oriented = edges_ok(f)
    assert closed and oriented
    assert face._signed_volume(v, f) > 0  # normals point outwards
    lo, hi = {"tiny": (300, 1000), "small": (950, 2000), "full": (4900, 5150)}[scale]
    assert lo <= len(v) <= hi and f.dtype == np.int32 and v.dtype == np.float32
    height = np.ptp(v[:, 1])
    assert 0.15 <= height <= 0.21 and np.abs(v.mean(0)).max() < 0.03  # FLAME-like scale, centred
    areas = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert areas.min() > 1e-8  # no degenerate triangles
    r = head.regions
    assert {"lips", "face", "forehead", "eye_region"} <= set(r)
    lips = v[r["lips"]]
    assert np.abs(lips[:, 1] - head.frame.centre[1]).max() < 0.015  # lips hug the lip line
    assert lips[:, 2].mean() > v[r["forehead"], 2].mean() - 0.03 and v[r["forehead"], 1].min() > lips[:, 1].max()
    assert np.isin(r["lips"], r["face"]).mean() > 0.8


def test_locate_mouth_finds_the_lip_line_of_the_procedural_head():
    head = face.procedural_head(*synthetic.SCALES["small"].mesh)
    frame, lower = face.locate_mouth(head.vertices, head.faces)
    assert abs(frame.centre[1] - head.frame.centre[1]) < 0.001
    assert abs(frame.centre[0]) < 1e-6
    clear = np.abs(head.vertices[:, 1] - head.frame.centre[1]) > 0.001  # not on the lip line itself
    assert np.mean((lower[clear] > 0.5) == (head.lower[clear] > 0.5)) > 0.99


def test_motion_basis_opens_the_mouth_and_keeps_the_skull_still(lip_aperture):
    head = face.procedural_head(*synthetic.SCALES["small"].mesh)
    basis = face.motion_basis(head.vertices, head.frame, head.lower)
    assert basis.shape == (len(face.BASIS_NAMES), len(head.vertices), 3)
    jaw = basis[0] + basis[1]  # jaw coefficient 1
    opening = lip_aperture(head.vertices[None] + jaw[None], head.vertices, head.regions["lips"])[0]
    assert 0.005 < opening < 0.012  # ~5-10 mm, like real speech
    assert np.abs(jaw[head.regions["scalp"]]).max() < 1e-4
    assert np.abs(jaw[head.regions["forehead"]]).max() < 1e-4
    sealed = jaw + basis[2] + basis[3]  # close while the jaw is open
    assert lip_aperture(head.vertices[None] + sealed[None], head.vertices, head.regions["lips"])[0] < 0.3 * opening
    up = np.concatenate([head.regions["forehead"], head.regions["eye_region"]])
    assert np.abs(basis[7][up]).max() > 1e-3 and np.abs(basis[8][up]).max() > 1e-3  # blink, brow
