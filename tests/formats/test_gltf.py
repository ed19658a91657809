"""glTF binary with morph targets: round trip, the layout the spec asks for (sparse targets, bounds,
one weights track), the Khronos validator's verdict, and clear errors on files it cannot read."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from vocagan.errors import VocaganError
from vocagan.formats.gltf import MorphAnimation, glb_bytes, read_glb, write_glb


@pytest.fixture()
def animation(icosphere) -> MorphAnimation:
    verts, faces = icosphere(2)
    rng = np.random.default_rng(0)
    lower = verts[:, 1] < 0
    targets = np.zeros((3, len(verts), 3), np.float32)
    targets[:, lower] = rng.normal(0, 0.01, (3, int(lower.sum()), 3))
    times = np.arange(20) / 30
    weights = rng.normal(size=(20, 3)).astype(np.float32)
    return MorphAnimation(
        base=verts,
        faces=faces,
        targets=targets,
        names=["a", "b", "c"],
        times=times,
        weights=weights,
        fps=30.0,
        extras={"audio": "clip.wav"},
    )


def _json_chunk(data: bytes) -> dict:
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    size, kind = struct.unpack("<II", data[12:20])
    assert kind == 0x4E4F534A
    return json.loads(data[20 : 20 + size])


def test_round_trip_reproduces_every_frame(tmp_path, animation):
    path = write_glb(tmp_path / "a.glb", animation)
    back = read_glb(path)
    np.testing.assert_array_equal(back.faces, animation.faces)
    np.testing.assert_allclose(back.vertices(), animation.vertices(), atol=1e-7)
    assert back.names == ["a", "b", "c"] and back.fps == 30.0 and back.extras == {"audio": "clip.wav"}
    np.testing.assert_allclose(back.times, animation.times, atol=1e-7)


def test_layout_sparse_targets_bounds_and_one_weights_track(animation):
    doc = _json_chunk(glb_bytes(animation))
    prim = doc["meshes"][0]["primitives"][0]
    moving = int((animation.targets != 0).any(axis=(0, 2)).sum())
    assert doc["meshes"][0]["extras"]["targetNames"] == ["a", "b", "c"]
    for target in prim["targets"]:
        acc = doc["accessors"][target["POSITION"]]
        assert "bufferView" not in acc and "byteOffset" not in acc  # sparse over zeros
        assert acc["sparse"]["count"] == moving < len(animation.base)
        assert len(acc["min"]) == len(acc["max"]) == 3
    (channel,) = doc["animations"][0]["channels"]
    assert channel["target"]["path"] == "weights"
    sampler = doc["animations"][0]["samplers"][0]
    assert doc["accessors"][sampler["output"]]["count"] == 20 * 3  # T x K weights, not T meshes
    assert doc["asset"]["extras"]["audio"] == "clip.wav"


def test_khronos_validator_finds_no_issue(tmp_path, animation, gltf_validator):
    report = gltf_validator(write_glb(tmp_path / "a.glb", animation))
    issues = report["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_unreadable_files_are_one_line_errors(tmp_path, animation):
    (tmp_path / "x.glb").write_bytes(b"not a glb at all")
    with pytest.raises(VocaganError, match="bad magic"):
        read_glb(tmp_path / "x.glb")
    data = bytearray(glb_bytes(animation))
    (tmp_path / "cut.glb").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(VocaganError, match="cut.glb"):
        read_glb(tmp_path / "cut.glb")
    with pytest.raises(VocaganError, match="cannot read"):
        read_glb(tmp_path / "missing.glb")


def test_times_must_increase(animation):
    animation.times = np.zeros(20)
    with pytest.raises(VocaganError, match="strictly increasing"):
        glb_bytes(animation)
