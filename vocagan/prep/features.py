"""Model audio features: what a model hears, computed one way for training and for inference.

`features_at_fps` is THE feature function: training (through `prep/prepare.py`) and inference
(`animate` on any user recording) both call it, so a model never sees features computed two
different ways. For `logmel` it resamples to `FeatureConfig.sample_rate`, computes a log-mel
spectrogram (`formats/audio.py`) at `sample_rate / hop_length` fps and interpolates it onto the mesh
frame times i / fps (`frames.resample_frames`). `vtlp_warp` is the optional training augmentation.
"""

from __future__ import annotations

import numpy as np

from vocagan.config import FeatureConfig
from vocagan.errors import VocaganError
from vocagan.formats.audio import DS_CHARS, DS_WINDOW, hz_to_mel, logmel, mel_to_hz, resample
from vocagan.frames import resample_frames


def vtlp_warp(mel: np.ndarray, alpha: float, spec: FeatureConfig) -> np.ndarray:
    """Vocal-tract-length perturbation of log-mel features (T, n_mels) -> (T, n_mels): the spectrum a
    tract `alpha` times shorter would give (every frequency f moves to alpha * f; alpha > 1 raises the
    formants). Band j takes the value at frequency centre_j / alpha, read by linear interpolation along
    the mel axis (edge bands repeat beyond fmin/fmax). Cheap augmentation of speaker diversity."""
    mel = np.asarray(mel, np.float32)
    n = mel.shape[-1]
    if n < 2:
        return mel.copy()
    fmax = min(float(spec.fmax), spec.sample_rate / 2.0)
    lo, hi = hz_to_mel(max(0.0, min(float(spec.fmin), fmax - 1.0))), hz_to_mel(fmax)
    step = (hi - lo) / (n + 1)
    centre = mel_to_hz(lo + step * np.arange(1, n + 1))  # (n,) band centres, Hz
    pos = (hz_to_mel(centre / float(alpha)) - lo) / step - 1.0  # (n,) fractional band index
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    frac = (pos - i0).astype(np.float32)
    return mel[..., i0] * (1.0 - frac) + mel[..., i0 + 1] * frac


def feature_dim(spec: FeatureConfig) -> int:
    """Width F of the per-frame audio features for this spec."""
    if spec.kind == "logmel":
        return int(spec.n_mels)
    if spec.kind == "deepspeech":
        return DS_WINDOW * DS_CHARS  # flattened (16, 29) window
    raise VocaganError(f"unknown feature kind '{spec.kind}' (valid: logmel, deepspeech)")


def features_at_fps(x: np.ndarray, sr: int, spec: FeatureConfig, fps: float, n_frames: int) -> np.ndarray:
    """THE audio feature function (training and inference): (n_frames, feature_dim(spec)) float32.

    Resample to spec.sample_rate, log-mel at spec.sample_rate / hop fps, linear interpolation onto
    mesh frame times i / fps (edge values beyond the end of the audio).
    """
    if spec.kind != "logmel":
        raise VocaganError(
            f"features_at_fps computes 'logmel' features from audio; kind '{spec.kind}' "
            "comes from precomputed windows (processed_audio_deepspeech.pkl)"
        )
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    y = resample(x, int(sr), int(spec.sample_rate))
    mel = logmel(y, int(spec.sample_rate), spec)  # (M, n_mels) at sr/hop fps
    return resample_frames(mel, spec.sample_rate / spec.hop_length, fps, int(n_frames))
