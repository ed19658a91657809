"""The faster prepare (issue #2) gives what the straightforward computation gives: positioned reads
of data_verts.npy, the per-sequence reader, and the PCA of `prepare` against float64 numpy; the
old-vs-new cache comparison of benchmarks/bench_prepare.py. (The chunked covariance itself:
test_pca.py.)"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from vocagan.errors import VocaganError
from vocagan.formats.vocaset import open_vocaset
from vocagan.formats.vocaset_writer import VocasetWriter
from vocagan.frames import audio_frames, resample_frames
from vocagan.prep import prepare as pp
from vocagan.prep.prepared import Prepared


# ----------------------------------------------------------------------------- reading
def test_load_verts_reads_the_rows_of_the_index_map(tmp_path, monkeypatch, micro_config):
    """Positioned reads (no memory map) give the rows the index map names, in frame order: runs of
    consecutive rows, reversed rows, a dropped frame, big-endian float64 data; a short read is an
    error naming the file."""
    rng = np.random.default_rng(1)
    with VocasetWriter(tmp_path, n_vertices=9) as w:
        w.add_subject("S", np.zeros((9, 3), np.float32))
        for n in (1, 2):
            w.add_sequence("S", n, rng.normal(size=(7, 9, 3)).astype(np.float32), np.zeros(800, np.float32), 8000)
    index = pickle.loads((tmp_path / "subj_seq_to_idx.pkl").read_bytes())
    index["S"]["sentence02"] = {0: 13, 1: 12, 2: 2, 3: 3, 4: 4, 6: 0}  # reversed, a run, a gap
    (tmp_path / "subj_seq_to_idx.pkl").write_bytes(pickle.dumps(index, protocol=2))
    cfg = micro_config(tmp_path, Path("unused")).data
    cfg.train_subjects, cfg.train_sentences = ["S"], [1, 2]
    for dtype in ("<f4", ">f8"):
        verts = np.load(tmp_path / "data_verts.npy").astype(dtype)
        np.save(tmp_path / "data_verts.npy", verts)
        vs = open_vocaset(cfg)
        assert vs.verts.dtype == np.dtype(dtype)
        got = vs.load_verts("S", "sentence01"), vs.load_verts("S", "sentence02")
        assert all(g.dtype == np.float32 for g in got)
        assert np.array_equal(got[0], verts[0:7].astype(np.float32))
        assert np.array_equal(got[1], verts[[13, 12, 2, 3, 4, 0]].astype(np.float32))
    monkeypatch.setattr(os, "preadv", lambda fd, buffers, offset: 0)
    with pytest.raises(VocaganError, match=r"data_verts\.npy: row 0 onwards is cut short"):
        vs.load_verts("S", "sentence01")


def test_threaded_reader_keeps_order_and_values(micro_corpus, micro_prepared, micro_config):
    """The two reader threads give, in split order, crop(resample_fps(align(load_verts(...)))) and
    the features, as one sequence at a time would."""
    from vocagan.prep.features import features_at_fps

    cfg = micro_config(micro_corpus, Path("unused"))
    vs = open_vocaset(cfg.data)
    pairs = vs.split("train")
    seqs = list(pp._read(vs, cfg, pairs, "train", micro_prepared.crop, []))
    assert [(q.subject, q.sentence) for q in seqs] == pairs
    for q in seqs:
        samples, sr = vs.raw_audio(q.subject, q.sentence)
        verts, trimmed = pp.align(vs.load_verts(q.subject, q.sentence), audio_frames(len(samples), sr, 60))
        want = pp.crop(resample_frames(verts, 60, 30), vs.templates[q.subject], micro_prepared.crop)
        assert q.trimmed == trimmed and np.array_equal(q.offsets, want.reshape(len(want), -1))
        assert np.array_equal(q.audio, features_at_fps(samples, sr, cfg.features, 30, len(want)))


# ----------------------------------------------------------------------------- PCA
def test_prepare_equals_a_straightforward_float64_pca(micro_corpus, micro_prepared, micro_config):
    """Whole sequences read with load_verts, aligned, every 2nd frame, cropped, one float64
    covariance, LAPACK eigh: the same components (up to sign), variances and coefficients."""
    p = micro_prepared
    vs = open_vocaset(micro_config(micro_corpus, Path("unused")).data)
    crop = p.crop

    def offsets(split):
        out = []
        for q in p.seqs[split]:
            verts = vs.load_verts(q.subject, q.sentence)
            samples, sr = vs.raw_audio(q.subject, q.sentence)
            verts, _ = pp.align(verts, audio_frames(len(samples), sr, 60))
            cropped = pp.crop(resample_frames(verts, 60, 30), vs.templates[q.subject], crop)  # (T, M, 3)
            out.append(cropped.reshape(len(cropped), -1))
        return np.concatenate(out).astype(np.float64)

    train = offsets("train")
    w, v = np.linalg.eigh(np.cov(train.T))
    k = p.motion_dim
    ref = v[:, ::-1][:, :k].T  # (K, D)
    assert np.allclose(np.abs((ref * p.pca_components).sum(1)), 1, atol=1e-6)
    assert np.allclose(p.explained_variance_ratio, w[::-1][:k] / w.sum(), rtol=1e-5)
    assert np.allclose(p.pca_mean, train.mean(0), atol=1e-9)
    sign = np.sign((ref * p.pca_components).sum(1))
    coefs = (train - train.mean(0)) @ ref.T * sign  # (T, K) with prepare's signs
    assert np.allclose(p.coef_std, coefs.std(0, ddof=1), rtol=1e-4)
    for split in ("train", "test"):
        c = (offsets(split) - train.mean(0)) @ ref.T * sign
        assert np.abs((c - p.coef_mean) / p.coef_std - p.motion[split]).max() < 1e-3


# ----------------------------------------------------------------------------- old vs new cache check
@pytest.fixture(scope="module")
def bench_prepare(repo):
    """benchmarks/bench_prepare.py, loaded as a module."""
    spec = importlib.util.spec_from_file_location("bench_prepare", repo / "benchmarks" / "bench_prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cache_comparison_accepts_sign_flips_and_catches_changes(micro_prepared, tmp_path, capsys, bench_prepare):
    bench = bench_prepare
    assert bench.compare_main(micro_prepared.path, micro_prepared.path) == 0
    flipped = Prepared.load(micro_prepared.path)
    flipped.pca_components[0] *= -1  # same basis, other sign
    flipped.coef_mean[0] *= -1
    for split in ("train", "val", "test"):
        flipped.motion[split][:, 0] *= -1
    flipped.save(tmp_path / "flipped.npz")
    assert bench.compare_main(micro_prepared.path, tmp_path / "flipped.npz") == 0
    assert "equivalent" in capsys.readouterr().out
    changed = Prepared.load(micro_prepared.path)
    changed.motion["test"][3, 0] += 0.01
    changed.save(tmp_path / "changed.npz")
    assert bench.compare_main(micro_prepared.path, tmp_path / "changed.npz") == 1
    assert "motion coefficients (sign-aligned): max abs diff (normalised units): 0.01" in capsys.readouterr().out
