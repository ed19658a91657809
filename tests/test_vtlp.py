"""Vocal-tract-length perturbation: `audio.vtlp_warp` moves spectral peaks by the warp factor, and
SequenceDataset applies it to training items only, seeded, without changing the crops."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan.config import FeatureConfig
from vocagan.prep.features import features_at_fps, vtlp_warp
from vocagan.dataset import SequenceDataset
from vocagan.errors import VocaganError

from test_dataset import toy_prepared  # noqa: E402  (tests/ is on sys.path under pytest)

SPEC = FeatureConfig()


def tone(hz: float, sr: int = 16000) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(sr // 2) / sr).astype(np.float32)


def peak_band(x: np.ndarray) -> int:
    return int(features_at_fps(x, 16000, SPEC, 30, 10)[5].argmax())


def test_identity_at_alpha_one():
    mel = np.random.default_rng(0).normal(size=(7, SPEC.n_mels)).astype(np.float32)
    np.testing.assert_allclose(vtlp_warp(mel, 1.0, SPEC), mel, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_warp_moves_a_tone_to_alpha_times_its_frequency(alpha):
    mel = features_at_fps(tone(1000.0), 16000, SPEC, 30, 10)            # (10, n_mels)
    warped = vtlp_warp(mel, alpha, SPEC)
    assert warped.shape == mel.shape and warped.dtype == np.float32
    assert int(warped[5].argmax()) == peak_band(tone(1000.0 * alpha))
    assert int(warped[5].argmax()) != int(mel[5].argmax())


def prepared_with_features():
    p = toy_prepared()
    p.meta["features"] = {"kind": "logmel", "n_mels": 6, "fmin": 40.0, "fmax": 8000.0, "sample_rate": 16000}
    rng = np.random.default_rng(0)
    for s in p.audio:                                               # a spectrum-like ramp plus noise per frame
        p.audio[s] = (np.linspace(0, 1, 6)[None] + rng.normal(size=p.audio[s].shape) * 0.1).astype(np.float32)
    return p


def test_dataset_warps_training_items_only_and_keeps_the_crops():
    p = prepared_with_features()
    plain = SequenceDataset(p, "train", crop_frames=8, seed=3)
    warped = SequenceDataset(p, "train", crop_frames=8, seed=3, vtlp=0.1)
    again = SequenceDataset(p, "train", crop_frames=8, seed=3, vtlp=0.1)
    for _ in range(3):
        a, b, c = plain[1], warped[1], again[1]
        assert np.array_equal(a["motion"].numpy(), b["motion"].numpy())         # the same window
        assert not np.allclose(a["audio"].numpy(), b["audio"].numpy())          # different features
        assert np.array_equal(b["audio"].numpy(), c["audio"].numpy())           # seeded
    val_plain, val_warp = SequenceDataset(p, "val"), SequenceDataset(p, "val", vtlp=0.1)
    assert np.array_equal(val_plain[0]["audio"].numpy(), val_warp[0]["audio"].numpy())


def test_bad_vtlp_and_non_logmel_features():
    p = prepared_with_features()
    with pytest.raises(VocaganError, match="vtlp"):
        SequenceDataset(p, "train", vtlp=0.7)
    p.meta["features"]["kind"] = "deepspeech"                       # windows of logits: no frequency axis
    ds = SequenceDataset(p, "train", vtlp=0.1)
    assert ds.vtlp == 0.0


def test_train_config_carries_vtlp():
    from vocagan.config import load_config

    assert load_config(None, ["train.vtlp=0.1"]).train.vtlp == pytest.approx(0.1)
    assert load_config(None, []).train.vtlp == 0.0                      # off by default
