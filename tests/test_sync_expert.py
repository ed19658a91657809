"""The lip-sync expert: distances by hand, then one expert trained on the tiny corpus' training split
(its accuracy above chance on held-out speakers, a shift of the motion found as an offset, save/load
giving the same embeddings, the cache keyed by the prepared data, and clear errors for bad files)."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan import metrics as M
from vocagan import sync_expert as S
from vocagan.config import Config
from vocagan.errors import VocaganError


def test_distances_by_hand():
    # 1-D embeddings: motion t, audio t + 1 -> the audio window at shift +1 matches exactly
    motion = np.arange(6, dtype=float)[:, None]
    audio = motion - 1.0
    d = S.distances(motion, audio, max_offset=1)
    assert d.shape == (4, 3)  # windows t = 1..4, every shift -1..1 exists
    np.testing.assert_allclose(d, [[2.0, 1.0, 0.0]] * 4)  # |m_t - a_{t+k}| = |1 - k|... = 2, 1, 0
    # the motion matches LATER audio, so it is early: offset -1
    assert M.sync_scores(d)[2] == -1
    assert S.distances(motion[:2], audio[:2], max_offset=1).shape == (0, 3)  # too short for every shift


@pytest.fixture(scope="module")
def prepared(tiny_corpus, tmp_path_factory):
    from vocagan.prep.prepare import prepare

    cfg = Config()
    cfg.data.root = str(tiny_corpus)
    cfg.prep.cache_dir = str(tmp_path_factory.mktemp("sync_cache"))
    return prepare(cfg)


@pytest.fixture(scope="module")
def trained(prepared, one_thread):
    return S.expert_for(prepared)  # trains (the default steps) and caches


def test_the_expert_finds_the_true_offset_on_held_out_speakers(trained, prepared):
    acc = trained.info["val"]
    assert acc["windows"] > 0 and acc["chance"] == pytest.approx(1 / 31)
    assert acc["window_within1"] > 5 * acc["chance"], acc  # far above chance on the validation speakers
    assert acc["sequence_top1"] >= 0.75, acc
    # a ground-truth motion shifted 4 frames later is found 4 frames late; the unshifted one in sync
    expert = trained.expert
    offsets, audio = S._offsets_and_audio(prepared, "test")[0]
    late = np.concatenate([np.repeat(offsets[:1], 4, 0), offsets[:-4]])
    a = expert.embed_audio(audio, prepared.fps)
    curves = {
        name: S.distances(expert.embed_motion(o, prepared.fps), a).mean(0)
        for name, o in (("true", offsets), ("late", late))
    }
    assert M.sync_scores(curves["true"][None])[2] == 0
    assert M.sync_scores(curves["late"][None])[2] == 4


def test_saved_expert_gives_the_same_embeddings_and_the_cache_is_reused(trained, prepared, tmp_path):
    assert trained.path == S.cache_path(prepared) and trained.path.is_file() and len(trained.sha256) == 64
    assert trained.info["trained_on"] == prepared.meta["data_fingerprint"]
    again = S.expert_for(prepared)  # read from the cache, not trained again
    assert again.sha256 == trained.sha256 and again.info == trained.info
    copy = S.save_expert(tmp_path / "copy.pt", trained.expert, trained.info)
    loaded = S.load_expert(copy)
    offsets, audio = S._offsets_and_audio(prepared, "val")[0]
    np.testing.assert_array_equal(
        loaded.expert.embed_motion(offsets, prepared.fps), trained.expert.embed_motion(offsets, prepared.fps)
    )
    np.testing.assert_array_equal(
        loaded.expert.embed_audio(audio, prepared.fps), trained.expert.embed_audio(audio, prepared.fps)
    )
    assert "validation offset retrieval" in loaded.describe()


def test_bad_expert_files_fail_with_one_clear_error(tmp_path, toy_checkpoint):
    with pytest.raises(VocaganError, match="sync expert not found"):
        S.load_expert(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(VocaganError, match="unreadable sync expert"):
        S.load_expert(junk)
    ckpt = toy_checkpoint(tmp_path / "model.pt")  # a model checkpoint is not an expert
    with pytest.raises(VocaganError, match="not a vocagan sync expert"):
        S.load_expert(ckpt)


def test_too_short_training_data_is_one_clear_error(prepared):
    from dataclasses import replace

    short = replace(prepared, seqs={**prepared.seqs, "train": [replace(q, length=10) for q in prepared.seqs["train"]]})
    with pytest.raises(VocaganError, match="long enough for the sync expert"):
        S.train_expert(short, steps=1)
