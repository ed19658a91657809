"""Motion as morph targets: a model's output exactly, any vertex sequence within the tolerance, and the
per-frame weight tables for engines."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vocagan.checkpoint import load_checkpoint
from vocagan.errors import VocaganError
from vocagan.morph import fit_vertices, from_coefficients, write_weights_csv, write_weights_json


@pytest.fixture(scope="module")
def toy(tmp_path_factory, toy_checkpoint):
    _, ckpt = load_checkpoint(toy_checkpoint(tmp_path_factory.mktemp("ck") / "toy.pt"))
    prepared = ckpt.prepared
    coefs = np.random.default_rng(0).normal(size=(40, prepared.motion_dim)).astype(np.float32)
    return prepared, coefs


def test_from_coefficients_reproduces_the_decoded_meshes(toy):
    prepared, coefs = toy
    template = prepared.template("SubjB")
    anim = from_coefficients(prepared, coefs, template, prepared.faces, 30)
    want = prepared.to_vertices(coefs, template)
    assert np.abs(anim.vertices() - want).max() < 1e-7  # metres: exact up to float32 rounding
    assert anim.names[0] == "mean" and len(anim.names) == 1 + prepared.motion_dim
    np.testing.assert_array_equal(anim.weights[:, 0], 1.0)
    np.testing.assert_allclose(anim.weights[:, 1:], coefs)
    assert np.array_equal(anim.base, template)  # the rest pose is the neutral face
    moving = (anim.targets != 0).any(axis=(0, 2))
    assert set(np.nonzero(moving)[0]) <= set(prepared.crop)  # targets only move the mouth crop


def test_fit_vertices_pca_within_tolerance_and_projection(toy):
    prepared, coefs = toy
    template = prepared.template("SubjA")
    verts = prepared.to_vertices(coefs, template)
    fit = fit_vertices(verts, template, prepared.faces, 30, tol_mm=0.01)
    assert fit.max_error_mm <= 0.01 and fit.method == "PCA of the sequence"
    assert len(fit.animation.names) <= 1 + prepared.motion_dim + 1
    assert np.abs(fit.animation.vertices() - verts).max() * 1000 <= 0.01
    projected = fit_vertices(verts, template, prepared.faces, 30, prepared=prepared)
    assert projected.max_error_mm < 1e-3 and projected.method == "checkpoint basis"
    np.testing.assert_allclose(projected.animation.weights[:, 1:], coefs, atol=1e-3)
    with pytest.raises(VocaganError, match="does not lie in the checkpoint's basis"):
        fit_vertices(verts, template * 1.01, prepared.faces, 30, prepared=prepared)
    with pytest.raises(VocaganError, match="do not match"):
        fit_vertices(verts[:, :10], template, prepared.faces, 30)


def test_still_sequence_needs_only_the_mean(toy):
    prepared, _ = toy
    template = prepared.template("SubjA")
    verts = np.repeat(template[None], 5, axis=0)
    fit = fit_vertices(verts, template, prepared.faces, 30)
    assert fit.animation.names == ["mean"] and fit.max_error_mm == 0.0


def test_weight_tables(tmp_path, toy):
    prepared, coefs = toy
    anim = from_coefficients(prepared, coefs, prepared.template("SubjA"), prepared.faces, 30)
    with open(write_weights_csv(tmp_path / "w.csv", anim)) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "time_s", *anim.names] and len(rows) == 1 + len(coefs)
    assert rows[2][:2] == ["1", "0.033333"]
    np.testing.assert_allclose(np.array(rows[1:], float)[:, 2:], anim.weights, rtol=1e-6, atol=1e-6)
    doc = json.loads(write_weights_json(tmp_path / "w.json", anim, {"glb": "x.glb"}).read_text())
    assert doc["targets"] == anim.names and doc["fps"] == 30 and doc["glb"] == "x.glb"
    assert doc["frames"][3]["frame"] == 3 and abs(doc["frames"][3]["time"] - 0.1) < 1e-9
    np.testing.assert_allclose(doc["frames"][3]["weights"], anim.weights[3], rtol=1e-6)
