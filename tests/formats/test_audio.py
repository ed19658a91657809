"""vocagan.formats.audio: loading any wav, resampling, log-mel, DeepSpeech windows. (Features at the
mesh frame rate: tests/prep/test_features.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vocagan.config import FeatureConfig
from vocagan.errors import VocaganError
from vocagan.formats import audio


def peak_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


# ----------------------------------------------------------------------------- load / save
@pytest.mark.parametrize(
    "subtype,sr", [("PCM_16", 16000), ("PCM_24", 44100), ("FLOAT", 22050), ("PCM_U8", 8000), ("PCM_32", 11025)]
)
def test_load_audio_formats_and_rates(tmp_path, subtype, sr, tone):
    x = tone(440, 0.5, sr, amp=0.5)
    path = tmp_path / "a.wav"
    sf.write(path, x, sr, subtype=subtype)
    y, sr_read = audio.load_audio(path)
    assert sr_read == sr and y.dtype == np.float32 and y.ndim == 1 and len(y) == len(x)
    tol = 0.02 if subtype == "PCM_U8" else 1e-3
    np.testing.assert_allclose(y, x, atol=tol)


def test_load_audio_stereo_is_averaged_and_flac(tmp_path, tone):
    left, right = tone(300, 0.3, 16000, 0.4), tone(300, 0.3, 16000, 0.2)
    path = tmp_path / "s.flac"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="PCM_16")
    y, sr = audio.load_audio(path)
    assert sr == 16000 and y.shape == left.shape
    np.testing.assert_allclose(y, 0.5 * (left + right), atol=2e-4)


@pytest.mark.parametrize("fmt,subtype,ext", [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_load_audio_compressed(tmp_path, fmt, subtype, ext, tone):
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}")
    x = tone(440, 1.0, 22050, 0.5)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, 22050, format=fmt, subtype=subtype)
    y, sr = audio.load_audio(path)
    assert sr == 22050 and abs(len(y) - len(x)) < 0.05 * len(x)
    assert peak_freq(y, sr) == pytest.approx(440, abs=3)


def test_load_audio_float_over_one_is_scaled(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.0, 2.0, -4.0, 1.0], np.float32), 16000, subtype="FLOAT")
    y, _ = audio.load_audio(path)
    assert np.abs(y).max() == pytest.approx(1.0)
    np.testing.assert_allclose(y, [0.0, 0.5, -1.0, 0.25])


def test_load_audio_partial_nan_zeroed(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.1, np.nan, 0.2, np.inf], np.float32), 16000, subtype="FLOAT")
    y, _ = audio.load_audio(path)
    np.testing.assert_allclose(y, [0.1, 0.0, 0.2, 0.0], atol=1e-7)


def test_load_audio_errors_name_the_file(tmp_path, tone):
    missing = tmp_path / "nope.wav"
    with pytest.raises(VocaganError, match="nope.wav.*not found"):
        audio.load_audio(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF1234WAVEnot really a wav file at all")
    with pytest.raises(VocaganError, match="garbage.wav.*cannot read audio"):
        audio.load_audio(garbage)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(VocaganError, match="empty.wav.*empty"):
        audio.load_audio(empty)
    nan = tmp_path / "allnan.wav"
    sf.write(nan, np.full(100, np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(VocaganError, match="allnan.wav.*NaN"):
        audio.load_audio(nan)
    # a wav header claiming sample rate 0
    zero = tmp_path / "zero_sr.wav"
    sf.write(zero, tone(100, 0.1, 16000), 16000, subtype="PCM_16")
    data = bytearray(zero.read_bytes())
    data[24:28] = (0).to_bytes(4, "little")
    zero.write_bytes(bytes(data))
    with pytest.raises(VocaganError, match="zero_sr.wav"):
        audio.load_audio(zero)


def test_save_wav_roundtrip_atomic(tmp_path, tone):
    x = tone(200, 0.25, 22000, 0.9)
    x[10] = 3.0  # clipped, not wrapped
    out = audio.save_wav(tmp_path / "sub" / "o.wav", x, 22000)
    info = sf.info(out)
    assert info.subtype == "PCM_16" and info.samplerate == 22000 and info.frames == len(x)
    y, sr = audio.load_audio(out)
    assert y[10] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(np.delete(y, 10), np.delete(x, 10), atol=1e-4)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["o.wav"]  # no temporary left behind


# ----------------------------------------------------------------------------- resample
@pytest.mark.parametrize(
    "sr_in,sr_out", [(44100, 16000), (22050, 16000), (16000, 22000), (8000, 16000), (16001, 16000)]
)
def test_resample_length_and_frequency(sr_in, sr_out, tone):
    x = tone(440, 1.0, sr_in)
    y = audio.resample(x, sr_in, sr_out)
    assert y.dtype == np.float32
    assert abs(len(y) - len(x) * sr_out / sr_in) <= 1
    assert peak_freq(y, sr_out) == pytest.approx(440, abs=2)


def test_resample_identity_and_chunked_equals_oneshot(monkeypatch):
    from scipy.signal import resample_poly

    x = np.random.default_rng(0).standard_normal(50_000).astype(np.float32)
    assert np.array_equal(audio.resample(x, 16000, 16000), x)
    monkeypatch.setattr(audio, "_CHUNK_SAMPLES", 4096)  # force the chunked path
    for sr_in, sr_out, up, down in [(44100, 16000, 160, 441), (16000, 22050, 441, 320)]:
        oneshot = resample_poly(x, up, down)[: -(-len(x) * up // down)]
        np.testing.assert_allclose(audio.resample(x, sr_in, sr_out), oneshot, atol=1e-5)


# ----------------------------------------------------------------------------- log-mel
def test_logmel_shape_determinism_and_tone_band(tone):
    spec = FeatureConfig()
    x = tone(1000, 1.0, 16000)
    a, b = audio.logmel(x, 16000, spec), audio.logmel(x.copy(), 16000, spec)
    assert a.shape == (1 + len(x) // spec.hop_length, spec.n_mels) and a.dtype == np.float32
    assert np.array_equal(a, b)
    # the peak band is the one whose centre frequency is closest to 1 kHz
    mels = np.linspace(audio.hz_to_mel(spec.fmin), audio.hz_to_mel(spec.fmax), spec.n_mels + 2)
    centres = audio.mel_to_hz(mels[1:-1])
    assert abs(int(np.median(a.argmax(1))) - int(np.argmin(np.abs(centres - 1000)))) <= 1


def test_logmel_matches_torch_stft_and_handles_short_input():
    import torch

    spec = FeatureConfig()
    x = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    win = torch.nn.functional.pad(torch.hann_window(400, periodic=True), (56, 56))
    power = (
        torch.stft(
            torch.from_numpy(x), 512, 160, 512, window=win, center=True, pad_mode="reflect", return_complex=True
        ).abs()
        ** 2
    )
    ref = torch.log(power.T @ audio.mel_filterbank(16000, 512, 80, 40.0, 8000.0) + 1e-6).numpy()
    np.testing.assert_allclose(audio.logmel(x, 16000, spec), ref, atol=1e-4)
    for n in (0, 1, 100):  # shorter than one window: still finite
        out = audio.logmel(np.ones(n, np.float32) * 0.1, 16000, spec)
        assert out.shape == (1 + n // 160, 80) and np.isfinite(out).all()


def test_logmel_chunked_equals_unchunked(monkeypatch):
    spec = FeatureConfig()
    x = np.random.default_rng(2).standard_normal(40_000).astype(np.float32)
    whole = audio.logmel(x, 16000, spec)
    monkeypatch.setattr(audio, "_CHUNK_FRAMES", 7)
    np.testing.assert_allclose(audio.logmel(x, 16000, spec), whole, atol=1e-5)


# ----------------------------------------------------------------------------- DeepSpeech windows
def test_deepspeech_windows_hand_computed():
    """2 logit frames at 50 fps (t = 0, 0.02 s) -> 3 frames at 60 fps (t = 0, 1/60, 2/60)."""
    logits = np.zeros((2, 29), np.float32)
    logits[0, 0], logits[1, 0] = 0.0, 6.0
    w = audio.deepspeech_windows(logits, 3)
    assert w.shape == (3, 16, 29) and w.dtype == np.float32
    # channel 0 at 60 fps: interp at t=0 -> 0, t=1/60 -> 6 * (1/60)/0.02 = 5, t=2/60 -> clamped 6
    at60 = [0.0, 5.0, 6.0]
    for i in range(3):
        col = w[i, :, 0]
        # window i holds frames i-8 .. i+7 of the 60 fps track, zero outside it
        expect = [at60[j] if 0 <= j < 3 else 0.0 for j in range(i - 8, i + 8)]
        np.testing.assert_allclose(col, expect, atol=1e-6)
    assert np.all(w[:, :, 1:] == 0)


def test_deepspeech_windows_matches_voca_loop():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((53, 29)).astype(np.float32)
    n60 = 64
    # VOCA's audio_handler, written out
    t_in, t_out = np.arange(53) / 50.0, np.arange(n60) / 60.0
    feats = np.stack([np.interp(t_out, t_in, logits[:, c]) for c in range(29)], 1)
    padded = np.concatenate([np.zeros((8, 29)), feats, np.zeros((8, 29))])
    voca = np.stack([padded[i : i + 16] for i in range(0, padded.shape[0] - 16, 1)])
    np.testing.assert_allclose(audio.deepspeech_windows(logits, n60), voca, atol=1e-6)


def test_deepspeech_like_windows_shape_and_timing(tone):
    sr = 22000
    x = np.concatenate([np.zeros(sr, np.float32), tone(700, 1.0, sr)])
    w = audio.deepspeech_like_windows(x, sr, 120)
    assert w.shape == (120, 16, 29) and np.isfinite(w).all()
    centre = w[:, 8, :].mean(axis=1)  # the window's centre frame = the mesh frame
    assert centre[40:55].mean() < centre[70:110].mean()
