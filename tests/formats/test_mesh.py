"""PLY/OBJ reader and writer: round trips, both endiannesses, ASCII, polygons, bad files, real FLAME PLY."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from vocagan.errors import VocaganError
from vocagan.formats.mesh import read_mesh, write_obj, write_ply


@pytest.fixture()
def mesh():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(40, 3)).astype(np.float32)  # (V, 3)
    faces = rng.integers(0, 40, size=(60, 3)).astype(np.int32)  # (F, 3)
    return vertices, faces


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip_is_exact(tmp_path, mesh, binary):
    vertices, faces = mesh
    write_ply(tmp_path / "m.ply", vertices, faces, binary=binary)
    v, f = read_mesh(tmp_path / "m.ply")
    assert v.dtype == np.float32 and f.dtype == np.int32
    np.testing.assert_array_equal(v, vertices)
    np.testing.assert_array_equal(f, faces)
    header = (tmp_path / "m.ply").read_bytes()[:60]
    assert (b"binary_little_endian" in header) == binary


def test_ply_without_faces(tmp_path, mesh):
    write_ply(tmp_path / "p.ply", mesh[0])
    v, f = read_mesh(tmp_path / "p.ply")
    np.testing.assert_array_equal(v, mesh[0])
    assert f.shape == (0, 3)


def test_obj_round_trip_is_exact(tmp_path, mesh):
    vertices, faces = mesh
    write_obj(tmp_path / "m.obj", vertices, faces)
    v, f = read_mesh(tmp_path / "m.obj")
    np.testing.assert_array_equal(v, vertices)
    np.testing.assert_array_equal(f, faces)


def test_obj_quads_slashes_and_negative_indices(tmp_path):
    (tmp_path / "q.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1/1 2/1/1 3/1/1 4/1/1\nf -4//1 -3//1 -1//1\n"
    )
    v, f = read_mesh(tmp_path / "q.obj")
    assert v.shape == (4, 3)
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3], [0, 1, 3]])


def _binary_ply(order: str, vertices, polygons, extra_prop: bool = False) -> bytes:
    fmt = {"<": "binary_little_endian", ">": "binary_big_endian"}[order]
    head = f"ply\nformat {fmt} 1.0\ncomment test\nelement vertex {len(vertices)}\n"
    head += "property float x\nproperty float y\nproperty float z\n"
    head += "property uchar red\n" if extra_prop else ""
    head += f"element face {len(polygons)}\nproperty list uchar int vertex_indices\nend_header\n"
    body = b""
    for v in vertices:
        body += struct.pack(order + "3f", *v) + (b"\x07" if extra_prop else b"")
    for p in polygons:
        body += struct.pack(order + "B" + "i" * len(p), len(p), *p)
    return head.encode() + body


@pytest.mark.parametrize("order", ["<", ">"])
def test_binary_ply_both_endians_mixed_polygons(tmp_path, order):
    vertices = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0.5, 2, 0.25)]
    polygons = [(0, 1, 2, 3), (2, 4, 3)]  # a quad then a triangle: the variable-length path
    (tmp_path / "m.ply").write_bytes(_binary_ply(order, vertices, polygons, extra_prop=True))
    v, f = read_mesh(tmp_path / "m.ply")
    np.testing.assert_array_equal(v, np.array(vertices, np.float32))
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3], [2, 4, 3]])


def test_binary_big_endian_triangles_fast_path(tmp_path, mesh):
    vertices, faces = mesh
    (tmp_path / "be.ply").write_bytes(_binary_ply(">", vertices.tolist(), faces.tolist()))
    v, f = read_mesh(tmp_path / "be.ply")
    np.testing.assert_array_equal(v, vertices)
    np.testing.assert_array_equal(f, faces)


def test_ascii_ply_with_quads_and_extra_properties(tmp_path):
    text = (
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "property float nx\nelement face 1\nproperty list uchar int vertex_index\nend_header\n"
        "0 0 0 9\n1 0 0 9\n1 1 0 9\n0 1 0 9\n4 0 1 2 3\n"
    )
    (tmp_path / "a.ply").write_text(text)
    v, f = read_mesh(tmp_path / "a.ply")
    assert v.shape == (4, 3) and v[2].tolist() == [1, 1, 0]
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3]])


def _expect_error(path, fragment: str):
    with pytest.raises(VocaganError) as err:
        read_mesh(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_mesh_files_give_one_line_errors(tmp_path, mesh):
    _expect_error(tmp_path / "missing.ply", "file not found")
    write_ply(tmp_path / "t.ply", *mesh)
    data = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "trunc.ply").write_bytes(data[:-100])
    _expect_error(tmp_path / "trunc.ply", "truncated")
    (tmp_path / "trunc_v.ply").write_bytes(data[:300])
    _expect_error(tmp_path / "trunc_v.ply", "truncated")
    (tmp_path / "nohead.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\n")
    _expect_error(tmp_path / "nohead.ply", "end_header")
    (tmp_path / "range.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    _expect_error(tmp_path / "range.obj", "out of range")
    (tmp_path / "bad.obj").write_text("v 0 zero 0\n")
    _expect_error(tmp_path / "bad.obj", "line 1")
    (tmp_path / "x.stl").write_bytes(b"solid x")
    _expect_error(tmp_path / "x.stl", "not a PLY or OBJ")
    (tmp_path / "short.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
        "property float y\nproperty float z\nend_header\n0 0 0\n1 1\n"
    )
    _expect_error(tmp_path / "short.ply", "truncated")


def test_write_rejects_bad_shapes(tmp_path):
    with pytest.raises(VocaganError, match="vertices must have shape"):
        write_ply(tmp_path / "x.ply", np.zeros((4, 2)))
    with pytest.raises(VocaganError, match="out of range"):
        write_obj(tmp_path / "x.obj", np.zeros((3, 3)), [[0, 1, 3]])
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_real_flame_sample_ply(shared_data, tmp_path):
    v, f = read_mesh(shared_data / "flame" / "FLAME_sample.ply")
    assert v.shape == (5023, 3) and f.shape == (9976, 3)
    assert 0.05 < float(np.ptp(v[:, 1])) < 0.5  # a head in metres
    write_ply(tmp_path / "copy.ply", v, f)
    v2, f2 = read_mesh(tmp_path / "copy.ply")
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(f2, f)


@pytest.mark.parametrize("kind", ["binary", "ascii", "obj"])
def test_per_vertex_colours_round_trip(tmp_path, kind, icosphere):
    from vocagan.formats.mesh import read_mesh_with_colors

    v, f = icosphere(1)
    colors = np.random.default_rng(0).uniform(0, 1, (len(v), 3))
    path = tmp_path / ("m.obj" if kind == "obj" else "m.ply")
    if kind == "obj":
        write_obj(path, v, f, colors=colors)
    else:
        write_ply(path, v, f, binary=kind == "binary", colors=colors)
    v2, f2, c2 = read_mesh_with_colors(path)
    assert np.array_equal(v2, v) and np.array_equal(f2, f)
    assert c2.shape == (len(v), 3) and np.abs(c2 - colors).max() <= 0.5 / 255 + 1e-3  # stored as 8 bits
    assert read_mesh(path)[0].shape == v.shape  # the colour-blind reader still reads it
    write_ply(tmp_path / "plain.ply", v, f)
    assert read_mesh_with_colors(tmp_path / "plain.ply")[2] is None
