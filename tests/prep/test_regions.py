"""Vertex regions: geometric lips/mouth/upper face, masks, index files, and the check against the
real FLAME template + FLAME_masks.pkl (skipped when ../shared/data is absent)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vocagan.errors import VocaganError
from vocagan.prep.regions import Regions, geometric_regions, load_index_file, resolve_regions


def toy_head(n_theta: int = 48, n_phi: int = 40, with_cavity: bool = True) -> np.ndarray:
    """A head-like point cloud: an ellipsoid (metres, +y up, +z forward) with a nose bump and,
    optionally, a few mouth-cavity points hidden behind the surface below the nose."""
    th, ph = np.meshgrid(np.linspace(0, 2 * np.pi, n_theta, endpoint=False), np.linspace(0.05, np.pi - 0.05, n_phi))
    x = 0.08 * np.sin(ph) * np.sin(th)
    y = 0.11 * np.cos(ph)
    z = 0.09 * np.sin(ph) * np.cos(th)
    pts = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    nose = np.exp(-((pts[:, 0] / 0.012) ** 2 + ((pts[:, 1] + 0.005) / 0.02) ** 2)) * (pts[:, 2] > 0)
    pts[:, 2] += 0.03 * nose
    if with_cavity:
        cav = np.array([[dx, -0.04, 0.05] for dx in (-0.006, -0.002, 0.002, 0.006)])
        pts = np.concatenate([pts, cav])
    return pts.astype(np.float32)


def test_geometric_regions_are_deterministic_and_consistent():
    head = toy_head()
    a, b = geometric_regions(head), geometric_regions(head.copy())
    for name in ("mouth", "lips", "upper_face"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        idx = getattr(a, name)
        assert idx.dtype == np.int64 and len(idx) > 0 and np.all(np.diff(idx) > 0)
    assert np.isin(a.lips, a.mouth).all()  # the crop always covers LVE vertices
    assert not np.intersect1d(a.mouth, a.upper_face).size  # mouth below the nose, upper face above
    assert head[a.lips, 1].mean() < head[a.upper_face, 1].mean()
    assert head[a.mouth, 2].min() > -0.05  # front of the head only, not the back
    assert a.source.startswith("geometry:") and "mouth cavity" in a.source


def test_geometry_is_unit_independent():
    head = toy_head()
    metres, mm = geometric_regions(head), geometric_regions(head * 1000.0)
    assert np.array_equal(metres.lips, mm.lips) and np.array_equal(metres.mouth, mm.mouth)


def test_geometry_without_mouth_cavity_falls_back():
    r = geometric_regions(toy_head(with_cavity=False))
    assert len(r.lips) > 0 and np.isin(r.lips, r.mouth).all()
    assert "no mouth cavity" in r.source


def test_masks_dict_gives_lips_and_upper_face():
    head = toy_head()
    masks = {"lips": np.array([5, 7, 7, 9]), "forehead": np.array([100, 101]), "eye_region": np.array([101, 102])}
    r = resolve_regions(head, masks, masks_source="/x/FLAME_masks.pkl")
    assert r.lips.tolist() == [5, 7, 9]
    assert r.upper_face.tolist() == [100, 101, 102]
    assert np.isin(r.lips, r.mouth).all()
    assert r.source.startswith("FLAME_masks.pkl:")


def test_masks_errors_name_the_file():
    head = toy_head()
    with pytest.raises(VocaganError, match="masks.pkl.*lack forehead"):
        resolve_regions(head, {"lips": [1], "eye_region": [2]}, masks_source="masks.pkl")
    with pytest.raises(VocaganError, match="outside"):
        resolve_regions(head, {"lips": [len(head)], "forehead": [1], "eye_region": [2]}, masks_source="m.pkl")


def test_index_file_npy_and_txt(tmp_path):
    head = toy_head()
    geo = geometric_regions(head)
    np.save(tmp_path / "mouth.npy", np.array([3, 1, 2]))
    (tmp_path / "mouth.txt").write_text("3 1\n2\n")
    assert load_index_file(tmp_path / "mouth.npy", len(head)).tolist() == [1, 2, 3]
    assert load_index_file(tmp_path / "mouth.txt", len(head)).tolist() == [1, 2, 3]
    r = resolve_regions(head, mouth_indices_path=tmp_path / "mouth.txt")
    assert np.array_equal(r.mouth, np.union1d([1, 2, 3], geo.lips))  # lips are always added
    assert "index file mouth.txt" in r.source and "lip vertices it lacked" in r.source
    (tmp_path / "bad.txt").write_text("1 two 3")
    with pytest.raises(VocaganError, match="bad.txt"):
        load_index_file(tmp_path / "bad.txt", len(head))
    with pytest.raises(VocaganError, match="not found"):
        load_index_file(tmp_path / "absent.npy", len(head))


def test_regions_round_trip_as_arrays():
    r = geometric_regions(toy_head())
    back = Regions.from_arrays(r.to_arrays(), r.source)
    assert all(np.array_equal(getattr(r, k), getattr(back, k)) for k in ("mouth", "lips", "upper_face"))


def test_bad_template_raises():
    with pytest.raises(VocaganError):
        geometric_regions(np.zeros((5, 2)))


def _iou(a, b) -> float:
    return len(np.intersect1d(a, b)) / len(np.union1d(a, b))


def test_real_flame_template_against_flame_masks(shared_data, capsys):
    """The geometric definition on the real FLAME template, scored against FLAME_masks.pkl."""
    from vocagan.formats.mesh import read_mesh

    verts, faces = read_mesh(shared_data / "flame" / "FLAME_sample.ply")
    with open(shared_data / "regions" / "FLAME_masks.pkl", "rb") as f:
        masks = pickle.load(f, encoding="latin1")  # trusted reference file (a dict of index arrays)
    flame_lips = np.unique(masks["lips"])
    flame_upper = np.union1d(masks["forehead"], masks["eye_region"])

    geo = geometric_regions(verts, faces)
    contained = np.isin(flame_lips, geo.mouth).mean()
    lips_iou = _iou(geo.lips, flame_lips)
    upper_iou = _iou(geo.upper_face, flame_upper)
    geo_nofaces = geometric_regions(verts)
    with capsys.disabled():
        print(
            f"\n[FLAME] geometric mouth region ({len(geo.mouth)} v) contains {contained:.1%} of FLAME lips; "
            f"lips IoU {lips_iou:.3f} ({len(geo.lips)} vs {len(flame_lips)}); upper-face IoU {upper_iou:.3f} "
            f"(with faces), {_iou(geo_nofaces.upper_face, flame_upper):.3f} (vertices only)"
        )
    assert contained >= 0.95
    assert lips_iou >= 0.7
    assert upper_iou >= 0.7
    assert np.isin(flame_lips, geo_nofaces.mouth).mean() >= 0.95

    with_masks = resolve_regions(
        verts, masks, masks_source=str(shared_data / "regions" / "FLAME_masks.pkl"), faces=faces
    )
    assert len(with_masks.lips) == 250 and len(with_masks.upper_face) == len(flame_upper)
    assert np.isin(flame_lips, with_masks.mouth).all()


def test_geometry_on_the_synthetic_corpus_head():
    """The geometric rules also find the mouth of the synthetic corpus' head (the MediaPipe face, whose
    exact lips are known by construction)."""
    canonical = pytest.importorskip("vocagan.synth.canonical")
    head = canonical.canonical_head(1)
    geo = geometric_regions(head.vertices, head.faces)
    lips = head.regions["lips"]
    assert np.isin(lips, geo.mouth).mean() >= 0.95
    # the geometric lips are lip vertices, or the mouth interior right behind them (inner lips, teeth;
    # the ellipsoid reaches 0.14 head widths deep: FLAME's mouth holds little there, this face a cavity)
    assert np.isin(geo.lips, np.union1d(lips, head.regions["mouth_interior"])).mean() >= 0.9
    assert abs(geo.source.count("mouth cavity")) == 1


def test_geometric_mouth_region_covers_the_speech_motion(tiny_corpus):
    """The crop must hold what moves in speech (lips, jaw, chin, lower cheeks): < 5% of the motion
    energy of the built-in corpus may lie outside the geometric mouth region."""
    from vocagan.config import DataConfig
    from vocagan.formats.vocaset import open_vocaset

    vs = open_vocaset(
        DataConfig(root=str(tiny_corpus), train_sentences=[1, 2], val_sentences=[21], test_sentences=[21])
    )
    pairs = vs.split("train")
    energy = np.zeros(vs.n_vertices)
    for subject, sentence in pairs:
        energy += ((vs.load_verts(subject, sentence) - vs.templates[subject]) ** 2).sum(axis=(0, 2))
    mouth = resolve_regions(vs.templates[pairs[0][0]], faces=vs.faces).mouth
    outside = np.ones(vs.n_vertices, bool)
    outside[mouth] = False
    assert energy[outside].sum() / energy.sum() < 0.05
    assert len(mouth) < 0.6 * vs.n_vertices  # still a crop, not the whole head
