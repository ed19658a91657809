"""vocagan.prep.features: `features_at_fps` (the one feature function of training and inference:
log-mel at the mesh frame times, edge-padded), `feature_dim`, and vocal-tract-length perturbation
(`vtlp_warp` moves spectral peaks by the warp factor). How SequenceDataset applies VTLP:
tests/test_dataset.py."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vocagan.config import FeatureConfig
from vocagan.errors import VocaganError
from vocagan.formats import audio
from vocagan.prep.features import feature_dim, features_at_fps, vtlp_warp

SPEC = FeatureConfig()


def peak_band(x: np.ndarray) -> int:
    return int(features_at_fps(x, 16000, SPEC, 30, 10)[5].argmax())


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- features at mesh fps
@pytest.mark.parametrize("sr,fps", [(16000, 60), (44100, 30), (22050, 25)])
def test_features_at_fps_alignment(sr, fps, tone):
    """A tone burst starting at t = 1 s shows up at mesh frame fps * 1 (within one frame)."""
    spec = FeatureConfig()
    x = np.concatenate([np.zeros(sr, np.float32), tone(800, 0.5, sr)])
    n_frames = int(round(1.5 * fps))
    f = features_at_fps(x, sr, spec, fps, n_frames)
    assert f.shape == (n_frames, feature_dim(spec)) and f.dtype == np.float32
    energy = f.max(axis=1)
    onset = int(np.argmax(energy > 0.5 * (energy.min() + energy.max())))
    assert abs(onset - fps) <= 1


def test_features_at_fps_pads_with_edge_values_and_rejects_other_kinds(tone):
    spec = FeatureConfig()
    x = tone(500, 0.5, 16000)
    f = features_at_fps(x, 16000, spec, 60, 60)  # 1 s of frames for 0.5 s of audio
    assert np.array_equal(f[-1], f[31]) and np.isfinite(f).all()
    with pytest.raises(VocaganError, match="deepspeech"):
        features_at_fps(x, 16000, FeatureConfig(kind="deepspeech"), 60, 10)
    assert feature_dim(FeatureConfig(kind="deepspeech")) == 16 * 29
    with pytest.raises(VocaganError, match="wav2vec2"):
        feature_dim(FeatureConfig(kind="wav2vec2"))


def test_features_fast_and_long_audio_bounded():
    spec = FeatureConfig()
    x = np.random.default_rng(3).standard_normal(10 * 44100).astype(np.float32) * 0.1
    features_at_fps(x[:4410], 44100, spec, 60, 6)  # warm-up (torch start, filterbank cache)
    best = min(_timed(lambda: features_at_fps(x, 44100, spec, 60, 600)) for _ in range(3))
    assert best < 0.1, f"10 s of 44.1 kHz audio took {best:.3f} s"
    # 10 minutes at 16 kHz: works (chunked STFT) and gives one row per mesh frame
    long = np.zeros(600 * 16000, np.float32)
    long[::7] = 0.01
    f = features_at_fps(long, 16000, spec, 30, 600 * 30)
    assert f.shape == (18000, 80) and np.isfinite(f).all()


def test_real_speech_featurises(shared_data):
    path = shared_data / "audio" / "cmu_arctic_a0009.wav"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    x, sr = audio.load_audio(path)
    assert sr == 16000 and 3.0 < len(x) / sr < 3.2
    n = int(round(len(x) / sr * 60))
    f = features_at_fps(x, sr, FeatureConfig(), 60, n)
    assert f.shape == (n, 80) and np.isfinite(f).all()
    # the phone labels put silence at both ends: speech frames carry more energy than the first 0.1 s
    energy = f.max(axis=1)
    assert energy[:6].mean() < np.median(energy[30:-30]) - 2.0
    ds = audio.deepspeech_like_windows(x, sr, n)
    assert ds.shape == (n, 16, 29)


# ----------------------------------------------------------------------------- VTLP
def test_identity_at_alpha_one():
    mel = np.random.default_rng(0).normal(size=(7, SPEC.n_mels)).astype(np.float32)
    np.testing.assert_allclose(vtlp_warp(mel, 1.0, SPEC), mel, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_warp_moves_a_tone_to_alpha_times_its_frequency(alpha, tone):
    mel = features_at_fps(tone(1000.0, 0.5, 16000), 16000, SPEC, 30, 10)  # (10, n_mels)
    warped = vtlp_warp(mel, alpha, SPEC)
    assert warped.shape == mel.shape and warped.dtype == np.float32
    assert int(warped[5].argmax()) == peak_band(tone(1000.0 * alpha, 0.5, 16000))
    assert int(warped[5].argmax()) != int(mel[5].argmax())


@pytest.mark.parametrize("n", [0, 200, 300, 5000, 48077])
@pytest.mark.parametrize("sizes", [[1600], [1, 7, 300, 2000]])
def test_streaming_features_equal_features_at_fps(n, sizes):
    """Pushed in pieces, the features are those of the whole recording, and memory stays bounded."""
    from vocagan.config import FeatureConfig
    from vocagan.frames import audio_frames
    from vocagan.prep.features import StreamingFeatures, features_at_fps

    spec = FeatureConfig()
    x = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    n_frames = audio_frames(n, 16000, 30)
    want = features_at_fps(x, 16000, spec, 30, n_frames) if n_frames else np.zeros((0, 80), np.float32)
    stream = StreamingFeatures(spec, 30)
    out, i, k = [], 0, 0
    while i < n:
        step = sizes[k % len(sizes)]
        out.append(stream.push(x[i : i + step]))
        assert len(stream.padded) <= 2 * spec.n_fft + max(sizes)  # bounded buffer
        i, k = i + step, k + 1
    out.append(stream.end())
    got = np.concatenate(out)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert 16 < stream.lookahead_ms < 25  # half a 512-sample window (16 ms) + the 100 -> 30 fps interpolation
