"""SequenceDataset + collate over hand-built Prepared arrays (and over the tiny corpus when the
synthetic generator is available); vocal-tract-length perturbation applied to training items only,
seeded, without changing the crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocagan.dataset import SequenceDataset, collate
from vocagan.errors import VocaganError
from vocagan.prep.prepared import Prepared, SequenceInfo
from vocagan.prep.regions import Regions

F, K, V = 6, 3, 10


def toy_prepared(lengths=None) -> Prepared:
    """Prepared arrays whose audio row r of split s holds r (so crops can be located)."""
    lengths = lengths or {"train": [12, 30, 5], "val": [9, 4], "test": [7]}
    subjects = {"train": ["A", "B", "A"], "val": ["C", "C"], "test": ["D"]}
    seqs, audio, motion = {}, {}, {}
    for s, ls in lengths.items():
        starts = np.concatenate([[0], np.cumsum(ls)[:-1]])
        seqs[s] = [
            SequenceInfo(subj, f"sentence{i + 1:02d}", int(st), n)
            for i, (subj, st, n) in enumerate(zip(subjects[s], starts, ls, strict=True))
        ]
        total = sum(ls)
        audio[s] = np.repeat(np.arange(total, dtype=np.float32)[:, None], F, 1)
        motion[s] = np.repeat(np.arange(total, dtype=np.float32)[:, None], K, 1) * 0.5
    meta = {
        "styles": ["A", "B"],
        "template_names": ["A", "B", "C", "D"],
        "fps": 30,
        "feature_dim": F,
        "n_vertices": V,
        "region_source": "test",
    }
    crop = np.array([1, 2, 3])
    return Prepared(
        meta=meta,
        faces=np.zeros((0, 3), np.int32),
        templates=np.zeros((4, V, 3), np.float32),
        regions=Regions(crop, crop[:2], np.array([8, 9]), "test"),
        crop=crop,
        pca_components=np.eye(K, 9, dtype=np.float32),
        pca_mean=np.zeros(9, np.float32),
        explained_variance_ratio=np.ones(K, np.float32) / K,
        coef_mean=np.zeros(K, np.float32),
        coef_std=np.ones(K, np.float32),
        seqs=seqs,
        audio=audio,
        motion=motion,
    )


def test_items_are_whole_sequences_for_val_and_test():
    p = toy_prepared()
    val = SequenceDataset(p, "val", crop_frames=3)  # crops apply to training only
    assert len(val) == 2
    item = val[1]
    assert item["audio"].shape == (4, F) and item["motion"].shape == (4, K)
    assert item["audio"][0, 0].item() == 9  # rows 9..12 of the split
    assert item["style"] == -1 and item["subject"] == "C" and item["sentence"] == "sentence02"
    assert item["audio"].dtype == torch.float32


def test_training_crops_are_seeded_and_change_per_epoch():
    p = toy_prepared()
    a, b = SequenceDataset(p, "train", crop_frames=8, seed=7), SequenceDataset(p, "train", crop_frames=8, seed=7)
    starts_a = [a[1]["audio"][0, 0].item() for _ in range(6)]
    starts_b = [b[1]["audio"][0, 0].item() for _ in range(6)]
    assert starts_a == starts_b  # reproducible
    assert len(set(starts_a)) > 1  # not the same window every time
    item = a[1]
    assert item["audio"].shape == (8, F) and item["motion"].shape == (8, K) and item["style"] == 1
    first = item["audio"][0, 0].item()
    assert 12 <= first <= 12 + 30 - 8  # inside sequence 1 (rows 12..41)
    assert torch.equal(item["audio"][:, 0], torch.arange(first, first + 8, dtype=torch.float32))
    assert torch.equal(item["motion"][:, 0], item["audio"][:, 0] * 0.5)  # audio and motion cropped together
    assert a[2]["audio"].shape == (5, F)  # shorter than the crop: whole sequence
    c = SequenceDataset(p, "train", crop_frames=8, seed=7)
    c.set_epoch(1)
    assert [c[1]["audio"][0, 0].item() for _ in range(6)] != starts_a
    d = SequenceDataset(p, "train", crop_frames=8, seed=8)
    assert [d[1]["audio"][0, 0].item() for _ in range(6)] != starts_a


def test_collate_pads_and_masks():
    p = toy_prepared()
    ds = SequenceDataset(p, "train")
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["audio"].shape == (3, 30, F) and batch["motion"].shape == (3, 30, K)
    assert batch["lengths"].tolist() == [12, 30, 5] and batch["style"].tolist() == [0, 1, 0]
    assert batch["mask"].dtype == torch.bool and batch["mask"].sum(1).tolist() == [12, 30, 5]
    assert not batch["mask"][2, 5:].any() and batch["audio"][2, 5:].abs().sum() == 0
    assert batch["style"].dtype == torch.long and batch["subject"] == ["A", "B", "A"]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    assert [b["audio"].shape[0] for b in loader] == [2, 1]


def test_unknown_split():
    with pytest.raises(VocaganError, match="unknown split"):
        SequenceDataset(toy_prepared(), "dev")


def test_dataset_over_prepared_tiny_corpus(request, tmp_path):
    pytest.importorskip("vocagan.synth.corpus")
    from vocagan.config import Config
    from vocagan.prep.prepare import prepare

    cfg = Config()
    cfg.data.root = str(request.getfixturevalue("tiny_corpus"))
    cfg.prep.cache_dir = str(tmp_path)
    p = prepare(cfg)
    train = SequenceDataset(p, "train", crop_frames=10, seed=0)
    batch = collate([train[i] for i in range(min(4, len(train)))])
    assert batch["audio"].shape[-1] == p.audio_dim and batch["motion"].shape[-1] == p.motion_dim
    assert batch["audio"].shape[1] <= 10 and (batch["style"] >= 0).all()
    test = SequenceDataset(p, "test")
    assert all(test[i]["style"] == -1 for i in range(len(test)))
    assert sum(test[i]["audio"].shape[0] for i in range(len(test))) == len(p.audio["test"])


# ----------------------------------------------------------------------------- VTLP
def prepared_with_features():
    p = toy_prepared()
    p.meta["features"] = {"kind": "logmel", "n_mels": 6, "fmin": 40.0, "fmax": 8000.0, "sample_rate": 16000}
    rng = np.random.default_rng(0)
    for s in p.audio:  # a spectrum-like ramp plus noise per frame
        p.audio[s] = (np.linspace(0, 1, 6)[None] + rng.normal(size=p.audio[s].shape) * 0.1).astype(np.float32)
    return p


def test_dataset_warps_training_items_only_and_keeps_the_crops():
    p = prepared_with_features()
    plain = SequenceDataset(p, "train", crop_frames=8, seed=3)
    warped = SequenceDataset(p, "train", crop_frames=8, seed=3, vtlp=0.1)
    again = SequenceDataset(p, "train", crop_frames=8, seed=3, vtlp=0.1)
    for _ in range(3):
        a, b, c = plain[1], warped[1], again[1]
        assert np.array_equal(a["motion"].numpy(), b["motion"].numpy())  # the same window
        assert not np.allclose(a["audio"].numpy(), b["audio"].numpy())  # different features
        assert np.array_equal(b["audio"].numpy(), c["audio"].numpy())  # seeded
    val_plain, val_warp = SequenceDataset(p, "val"), SequenceDataset(p, "val", vtlp=0.1)
    assert np.array_equal(val_plain[0]["audio"].numpy(), val_warp[0]["audio"].numpy())


def test_bad_vtlp_and_non_logmel_features():
    p = prepared_with_features()
    with pytest.raises(VocaganError, match="vtlp"):
        SequenceDataset(p, "train", vtlp=0.7)
    p.meta["features"]["kind"] = "deepspeech"  # windows of logits: no frequency axis
    ds = SequenceDataset(p, "train", vtlp=0.1)
    assert ds.vtlp == 0.0
