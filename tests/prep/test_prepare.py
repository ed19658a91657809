"""vocagan.prep.prepare: alignment, crop, PCA (train split only), normalisation, cache, errors, and an
end-to-end `prepare` (on the hand-made micro corpus of tests/prep/conftest.py, and on the synthetic
tiny corpus + CLI). The PCA numerics themselves are tested in test_pca.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vocagan.config import TRAIN_SUBJECTS
from vocagan.errors import VocaganError
from vocagan.prep import prepare as pp
from vocagan.prep.prepared import Prepared


# ----------------------------------------------------------------------------- pure steps
def test_align_trims_to_the_shorter_and_reports_it():
    verts = np.zeros((10, 4, 3))
    assert [len(x) for x in (pp.align(verts, 8)[0], pp.align(verts, 12)[0], pp.align(verts, 10)[0])] == [8, 10, 10]
    assert [pp.align(verts, n)[1] for n in (8, 12, 10)] == [2, 2, 0]


def test_crop_offsets_shape_and_values():
    verts = np.random.default_rng(0).random((5, 20, 3)).astype(np.float32)
    template = verts[0]
    out = pp.crop(verts, template, np.array([2, 7, 11]))
    assert out.shape == (5, 3, 3) and out.dtype == np.float32
    assert np.allclose(out[0], 0) and np.allclose(out[3], verts[3, [2, 7, 11]] - template[[2, 7, 11]])


# ----------------------------------------------------------------------------- prepare
def test_prepare_end_to_end(micro_prepared):
    p = micro_prepared
    assert [len(p.seqs[s]) for s in ("train", "val", "test")] == [16, 4, 4]
    assert p.styles == TRAIN_SUBJECTS and p.fps == 30
    assert p.meta["trimmed_frames"] == 2 and p.meta["trimmed_sequences"] == 1  # the short-audio sequence
    assert np.isin(p.regions.lips, p.crop).all() and len(p.crop) < p.meta["n_vertices"]
    k = p.motion_dim
    assert 1 <= k <= 4  # rank-4 motion
    assert p.explained_variance_ratio.sum() >= 0.999
    for s in ("train", "val", "test"):
        frames = sum(q.length for q in p.seqs[s])
        assert p.audio[s].shape == (frames, 80) and p.motion[s].shape == (frames, k)
        assert np.isfinite(p.audio[s]).all() and np.isfinite(p.motion[s]).all()
    # normalisation from the train split: train coefficients are z-scored
    assert np.allclose(p.motion["train"].mean(0), 0, atol=1e-4)
    assert np.allclose(p.motion["train"].std(0, ddof=1), 1, atol=1e-3)
    text = p.summary()
    for needle in ("train: 16 sequences", "trimmed", "PCA", "logmel, 80 dims", "regions: geometry", str(p.path)):
        assert needle in text


def test_fps_and_offsets_match_the_raw_data(micro_corpus, micro_prepared, micro_config):
    """val true offsets = (verts[::2] - template)[crop] read straight from the files; the trimmed
    sequence (audio 2 frames short at 60 fps) has ceil((T60 - 2) / 2) frames at 30 fps."""
    from vocagan.formats.vocaset import open_vocaset

    p = micro_prepared
    vs = open_vocaset(micro_config(micro_corpus, Path("unused")).data)
    for i, info in enumerate(p.seqs["val"]):
        verts = vs.load_verts(info.subject, info.sentence)
        assert info.length == len(range(0, len(verts), 2))
        expect = verts[::2][:, p.crop] - vs.templates[info.subject][p.crop]
        assert np.allclose(p.true_offsets_of("val", i), expect, atol=1e-7)
    first = p.seqs["train"][0]  # the short-audio sequence (subject 0, sentence21)
    assert (first.subject, first.sentence) == (TRAIN_SUBJECTS[0], "sentence21")
    assert first.length == len(range(0, len(vs.load_verts(first.subject, first.sentence)) - 2, 2))


def test_decode_matches_true_offsets(micro_prepared):
    p = micro_prepared
    true = p.true_offsets["val"]  # (sum T, M, 3) un-PCA'd
    decoded = p.decode(p.motion["val"])
    assert decoded.shape == true.shape
    assert np.abs(decoded - true).max() < 1e-3 * np.abs(true).max() + 1e-7  # rank-4 data, near exact
    torch_decoded = p.decode(torch.from_numpy(p.motion["val"]))
    assert isinstance(torch_decoded, torch.Tensor) and np.allclose(torch_decoded.numpy(), decoded, atol=1e-6)
    info = p.seqs["val"][0]
    verts = p.to_vertices(p.motion["val"][: info.length], info.subject)
    template = p.template(info.subject)
    assert verts.shape == (info.length, p.meta["n_vertices"], 3)
    outside = np.setdiff1d(np.arange(len(template)), p.crop)
    assert np.array_equal(verts[:, outside], np.broadcast_to(template[outside], (info.length, len(outside), 3)))
    assert np.allclose(verts[:, p.crop] - template[p.crop], p.true_offsets_of("val", 0), atol=1e-5)


def test_stats_dict_round_trip(micro_prepared):
    d = micro_prepared.stats_dict()
    assert isinstance(d["meta"], str) and all(isinstance(v, np.ndarray) for k, v in d.items() if k != "meta")
    back = Prepared.from_stats_dict({k: (torch.from_numpy(v) if k != "meta" else v) for k, v in d.items()})
    coefs = micro_prepared.motion["test"][:10]
    assert np.allclose(back.decode(coefs), micro_prepared.decode(coefs))
    assert back.styles == micro_prepared.styles and np.array_equal(back.regions.lips, micro_prepared.regions.lips)


def test_pca_uses_the_train_split_only(micro_corpus, micro_prepared, tmp_path, micro_config, make_micro_corpus):
    other = make_micro_corpus(tmp_path / "other", val_modes_scale=3.0)  # same train data, different val motion
    p2 = pp.prepare(micro_config(other, tmp_path / "cache"))
    assert p2.path != micro_prepared.path
    for name in ("pca_components", "pca_mean", "coef_mean", "coef_std", "explained_variance_ratio"):
        assert np.array_equal(getattr(p2, name), getattr(micro_prepared, name)), name
    assert np.array_equal(p2.motion["train"], micro_prepared.motion["train"])
    assert not np.allclose(p2.motion["val"], micro_prepared.motion["val"])
    assert np.abs(p2.motion["val"]).std() > 2 * np.abs(micro_prepared.motion["val"]).std()  # not re-normalised


def test_exact_component_count_and_deepspeech(micro_corpus, tmp_path, micro_config):
    p = pp.prepare(micro_config(micro_corpus, tmp_path, pca_components=2))
    assert p.motion_dim == 2 and p.explained_variance_ratio.shape == (2,)
    cfg = micro_config(micro_corpus, tmp_path)
    cfg.features.kind = "deepspeech"
    cfg.data.fps = 60
    p = pp.prepare(cfg)
    assert p.audio["train"].shape[1] == 16 * 29 and p.fps == 60
    assert p.meta["trimmed_frames"] == 2


def test_logmel_splits_do_not_depend_on_the_deepspeech_pickle(tmp_path, micro_config, make_micro_corpus):
    """A sequence missing only from processed_audio_deepspeech.pkl is used by log-mel features (the
    pickle is not even read) and skipped, with a note, by DeepSpeech features."""
    import pickle

    root = make_micro_corpus(tmp_path / "c")
    ds_path = root / "processed_audio_deepspeech.pkl"
    with open(ds_path, "rb") as f:
        ds = pickle.load(f)
    del ds[TRAIN_SUBJECTS[1]]["sentence22"]
    with open(ds_path, "wb") as f:
        pickle.dump(ds, f, protocol=2)
    train = lambda p: {(q.subject, q.sentence) for q in p.seqs["train"]}  # noqa: E731
    logmel = pp.prepare(micro_config(root, tmp_path / "cache"))
    assert (TRAIN_SUBJECTS[1], "sentence22") in train(logmel)
    cfg = micro_config(root, tmp_path / "cache")
    cfg.features.kind = "deepspeech"
    deep = pp.prepare(cfg)
    assert train(logmel) - train(deep) == {(TRAIN_SUBJECTS[1], "sentence22")}


def test_face_region_incremental_matches_exact(micro_corpus, tmp_path, monkeypatch, micro_config):
    exact = pp.prepare(micro_config(micro_corpus, tmp_path / "a", region="face", pca_components=3))
    monkeypatch.setattr(pp, "EXACT_MAX_DIM", 10)  # force the incremental path
    inc = pp.prepare(micro_config(micro_corpus, tmp_path / "b", region="face", pca_components=3))
    assert exact.meta["pca_method"].startswith("exact") and inc.meta["pca_method"] == "incremental SVD"
    assert len(inc.crop) == inc.meta["n_vertices"]
    overlap = np.abs(inc.pca_components @ exact.pca_components.T)
    assert np.allclose(overlap, np.eye(3), atol=1e-3)
    assert np.allclose(inc.explained_variance_ratio, exact.explained_variance_ratio, rtol=1e-3)
    assert np.allclose(np.abs(inc.motion["test"]), np.abs(exact.motion["test"]), atol=1e-2)


# ----------------------------------------------------------------------------- cache
def test_cache_hit_is_fast_and_identical(micro_corpus, tmp_path, capsys, micro_config):
    cfg = micro_config(micro_corpus, tmp_path)
    t0 = time.perf_counter()
    first = pp.prepare(cfg)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = pp.prepare(cfg)
    warm = time.perf_counter() - t0
    assert "using cached prepared data" in capsys.readouterr().err
    assert second.path == first.path and warm < cold
    for s in ("train", "val", "test"):
        assert np.array_equal(first.motion[s], second.motion[s]) and np.array_equal(first.audio[s], second.audio[s])
        assert [vars(q) for q in first.seqs[s]] == [vars(q) for q in second.seqs[s]]
    assert first.meta == second.meta
    assert [f.name for f in tmp_path.iterdir()] == [first.path.name]  # no temporary file left
    cfg.data.fps = 20  # a config change -> a new cache file
    from vocagan.formats.vocaset_files import resolve_paths

    assert pp.cache_key(resolve_paths(cfg.data), cfg) != first.path.stem


def test_cache_written_atomically(micro_prepared, tmp_path, monkeypatch):
    target = tmp_path / "x.npz"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        micro_prepared.save(target)
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temp file
    monkeypatch.undo()
    threads = [threading.Thread(target=micro_prepared.save, args=(target,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [f.name for f in tmp_path.iterdir()] == ["x.npz"]
    assert np.array_equal(Prepared.load(target).motion["train"], micro_prepared.motion["train"])


def test_corrupt_cache_is_rebuilt(micro_corpus, tmp_path, capsys, micro_config):
    cfg = micro_config(micro_corpus, tmp_path)
    first = pp.prepare(cfg)
    first.path.write_bytes(b"not a zip")
    again = pp.prepare(cfg)
    assert "rebuilding" in capsys.readouterr().err
    assert np.array_equal(again.motion["train"], first.motion["train"])


# ----------------------------------------------------------------------------- bad input
def test_bad_fps_names_the_file(micro_corpus, tmp_path, micro_config):
    cfg = micro_config(micro_corpus, tmp_path)
    cfg.data.fps = 25
    with pytest.raises(VocaganError, match=r"data_verts\.npy.*divisor"):
        pp.prepare(cfg)


def test_missing_feature_file_names_it(tmp_path, micro_config, make_micro_corpus):
    root = make_micro_corpus(tmp_path / "c", deepspeech=False)
    cfg = micro_config(root, tmp_path / "cache")
    cfg.features.kind = "deepspeech"
    with pytest.raises(VocaganError, match=r"processed_audio_deepspeech\.pkl"):
        pp.prepare(cfg)
    cfg.features.kind = "wav2vec2"
    with pytest.raises(VocaganError, match="wav2vec2"):
        pp.prepare(cfg)


def test_empty_split_names_the_file(micro_corpus, tmp_path, micro_config):
    cfg = micro_config(micro_corpus, tmp_path)
    cfg.data.val_subjects = ["FaceTalk_nobody"]
    with pytest.raises(VocaganError, match=r"subj_seq_to_idx\.pkl.*'val'"):
        pp.prepare(cfg)
    cfg = micro_config(micro_corpus, tmp_path)
    cfg.data.test_subjects = []
    with pytest.raises(VocaganError, match=r"subj_seq_to_idx\.pkl.*'test'"):
        pp.prepare(cfg)


def test_nan_in_a_sequence_names_the_file(tmp_path, micro_config, make_micro_corpus):
    root = make_micro_corpus(tmp_path / "c")
    verts = np.load(root / "data_verts.npy", mmap_mode="r+")
    verts[100, 3, 1] = np.nan
    verts.flush()
    del verts
    with pytest.raises(VocaganError, match=r"data_verts\.npy.*NaN"):
        pp.prepare(micro_config(root, tmp_path / "cache"))


# ----------------------------------------------------------------------------- the synthetic corpus + CLI
def test_prepare_tiny_corpus_and_cli(request, tmp_path, capsys):
    pytest.importorskip("vocagan.synth.corpus")
    from vocagan.cli import main

    tiny = request.getfixturevalue("tiny_corpus")
    assert main(["prepare", "--data", str(tiny), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "prepared data:" in out.out and "PCA" in out.out
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    p = Prepared.load(files[0])
    assert all(len(p.seqs[s]) > 0 for s in ("train", "val", "test"))
    assert np.isin(p.regions.lips, p.crop).all()
    assert main(["prepare", "--data", str(tiny), "--cache-dir", str(tmp_path)]) == 0
    assert "using cached prepared data" in capsys.readouterr().err
    assert main(["prepare", "--data", str(tiny), "--cache-dir", str(tmp_path), "--fps", "25"]) == 1
    assert "error:" in capsys.readouterr().err


def test_prefetch_keeps_order_and_raises_in_order():
    assert list(pp._prefetch(lambda x: x * x, range(10), depth=3)) == [x * x for x in range(10)]

    def fail_at_4(x):
        if x == 4:
            raise VocaganError("bad sequence", "data_verts.npy")
        return x

    got = []
    with pytest.raises(VocaganError, match="bad sequence"):
        for x in pp._prefetch(fail_at_4, range(10)):
            got.append(x)
    assert got == [0, 1, 2, 3]
