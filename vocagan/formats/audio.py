"""Audio files and signal representations (pure torch + scipy; no torchaudio, no librosa):
`load_audio` / `save_wav`, polyphase `resample`, the log-mel spectrogram, and VOCA's construction of
the (T60, 16, 29) DeepSpeech windows (`deepspeech_windows`; `deepspeech_like_windows` feeds it a
stand-in computed from the audio itself, which the synthetic corpus and `convert` store in
`processed_audio_deepspeech.pkl`: DeepSpeech v0.1.0 cannot run here). What a model hears is built
from these by `prep/features.py`.

Long audio (minutes) is processed in chunks so memory stays bounded; results are identical to an
unchunked computation.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from vocagan.config import FeatureConfig
from vocagan.errors import VocaganError
from vocagan.utils import atomic_path, existing_file, log, one_torch_thread

DS_WINDOW = 16  # VOCA: frames per DeepSpeech window (centred on the mesh frame)
DS_CHARS = 29  # DeepSpeech v0.1.0 output alphabet size
DS_FPS = 50  # DeepSpeech logit rate
LOG_EPS = 1e-6  # log(mel + eps): finite on digital silence
_CHUNK_SAMPLES = 1 << 20  # resampling chunk (~1 M input samples)
_CHUNK_FRAMES = 4096  # STFT chunk in frames (~41 s at 100 fps)


# ----------------------------------------------------------------------------- I/O
def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read wav/flac/ogg/mp3 (anything libsndfile reads) -> (mono float32 samples in [-1, 1], sample rate).

    Integer formats are scaled by soundfile; channels are averaged; a float file whose peak exceeds
    1 is scaled down to peak 1 (and logged). NaN/inf samples are zeroed (logged); an unreadable,
    empty or all-NaN file, or one with sample rate <= 0, raises VocaganError naming the file.
    """
    import soundfile as sf

    path = Path(path)
    path = existing_file(path, "audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except Exception as e:  # noqa: BLE001 - soundfile raises LibsndfileError/RuntimeError/TypeError for bad files
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise VocaganError(f"cannot read audio ({detail})", path) from None
    if sr is None or int(sr) <= 0:
        raise VocaganError(f"invalid sample rate {sr}", path)
    if data.size == 0:
        raise VocaganError("audio file is empty (0 samples)", path)
    x = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0].astype(np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        raise VocaganError("audio holds no finite samples (all NaN/inf)", path)
    if not finite.all():
        log(f"warning: {path}: {int((~finite).sum())} NaN/inf samples set to 0")
        x = np.where(finite, x, 0.0)
    peak = float(np.abs(x).max())
    if peak > 1.0:
        log(f"warning: {path}: float samples peak at {peak:.3g} > 1, scaled to peak 1")
        x = x / peak
    return x.astype(np.float32), int(sr)


def save_wav(path: str | Path, x: np.ndarray, sr: int) -> Path:
    """Write mono 16-bit PCM wav atomically (samples clipped to [-1, 1])."""
    import soundfile as sf

    path = Path(path)
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if int(sr) <= 0:
        raise VocaganError(f"invalid sample rate {sr}", path)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), x, int(sr), subtype="PCM_16", format="WAV")
    return path


# ----------------------------------------------------------------------------- resampling
def _rational(sr_in: int, sr_out: int, max_den: int = 1000) -> tuple[int, int]:
    """up/down factors for sr_out/sr_in; exact when small, else the best approximation with den <= max_den."""
    ratio = Fraction(int(sr_out), int(sr_in))
    if ratio.denominator > max_den or ratio.numerator > max_den * 8:
        ratio = ratio.limit_denominator(max_den)
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) -> float32, length ceil(len * up / down).

    Long inputs are processed in chunks with enough context on each side that the result equals
    the one-shot computation (up to float rounding), so memory stays bounded.
    """
    from scipy.signal import resample_poly

    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if int(sr_in) <= 0 or int(sr_out) <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if int(sr_in) == int(sr_out) or x.size == 0:
        return x.copy()
    up, down = _rational(sr_in, sr_out)
    n_out = -(-x.size * up // down)
    if x.size <= 2 * _CHUNK_SAMPLES:
        return resample_poly(x, up, down).astype(np.float32)[:n_out]
    # Chunked: output sample n sits at input position n*down/up. Chunks start at multiples of
    # `down` input samples so they map to whole output samples; `pad` covers the filter half-length
    # (scipy: 10 * max(up, down) taps at the up-sampled rate = 10*max/up input samples).
    half = math.ceil(10 * max(up, down) / up) + 2
    pad = -(-half // down) * down
    step = max(down, (_CHUNK_SAMPLES // down) * down)
    out = np.empty(n_out, dtype=np.float32)
    for s in range(0, x.size, step):
        e = min(x.size, s + step)
        lo, hi = max(0, s - pad), min(x.size, e + pad)
        y = resample_poly(x[lo:hi], up, down)
        o0 = s * up // down  # first output sample of this chunk (exact: s % down == 0)
        o1 = n_out if e == x.size else e * up // down
        skip = o0 - lo * up // down  # outputs produced by the left context
        out[o0:o1] = y[skip : skip + (o1 - o0)]
    return out


# ----------------------------------------------------------------------------- log-mel
def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
    """(n_fft//2+1, n_mels) torch.float32 triangular HTK-mel filters, area-normalised (Slaney style)."""
    import torch

    fmax = min(float(fmax), sr / 2.0)
    fmin = max(0.0, min(float(fmin), fmax - 1.0))
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1)
    up = (freqs[None] - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - freqs[None]) / np.maximum(upper - centre, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))  # (n_mels, n_freq)
    fb *= 2.0 / np.maximum(upper - lower, 1e-9)  # equal area per band
    # a band narrower than one FFT bin would be all-zero: give it its nearest bin
    empty = fb.sum(axis=1) == 0
    if empty.any():
        nearest = np.abs(freqs[None] - centre[empty]).argmin(axis=1)
        fb[np.where(empty)[0], nearest] = 2.0 / np.maximum(upper[empty, 0] - lower[empty, 0], 1e-9)
    return torch.from_numpy(fb.T.astype(np.float32)).contiguous()


def logmel(x: np.ndarray, sr: int, spec: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram of `x` at its own rate `sr` -> (1 + len // hop, n_mels) float32.

    Frame j is centred on sample j * hop (time j * hop / sr; centred STFT, reflect padding), so the
    frame rate is sr / hop. Power spectrum of a Hann-windowed STFT, mel filterbank, log(mel + 1e-6).
    `features_at_fps` resamples to spec.sample_rate first; call that for model features.
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    n_fft, hop = int(spec.n_fft), int(spec.hop_length)
    half = n_fft // 2
    mode: Literal["reflect", "constant"] = "reflect" if x.size > half else "constant"
    padded = np.pad(x, (half, n_fft - half), mode=mode) if x.size else np.zeros(n_fft, np.float32)
    return logmel_frames(padded, 0, 1 + x.size // hop, sr, spec)


def logmel_frames(padded: np.ndarray, start: int, n_frames: int, sr: int, spec: FeatureConfig) -> np.ndarray:
    """Log-mel frames (n_frames, n_mels) float32 of an already padded signal: frame f uses
    padded[start + f * hop : start + f * hop + n_fft]. `logmel` (a whole clip) and the streaming
    features (`prep.features.StreamingFeatures`, a piece at a time) share this arithmetic."""
    import torch  # imported here: `vocagan synth` and friends should not pay torch's start-up

    n_fft, hop = int(spec.n_fft), int(spec.hop_length)
    win = min(int(spec.win_length), n_fft)
    fb = mel_filterbank(int(sr), n_fft, int(spec.n_mels), float(spec.fmin), float(spec.fmax))
    window = torch.hann_window(win, periodic=True, dtype=torch.float32)
    window = torch.nn.functional.pad(window, ((n_fft - win) // 2, n_fft - win - (n_fft - win) // 2))
    out = np.empty((n_frames, fb.shape[1]), dtype=np.float32)
    signal = torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32))
    with one_torch_thread():
        for f0 in range(0, n_frames, _CHUNK_FRAMES):
            f1 = min(n_frames, f0 + _CHUNK_FRAMES)
            seg = signal[start + f0 * hop : start + (f1 - 1) * hop + n_fft]  # frames f0..f1-1, un-centred
            frames = seg.unfold(0, n_fft, hop)[: f1 - f0]  # (n, n_fft)
            spectrum = torch.fft.rfft(frames * window, dim=-1)  # (n, n_fft//2+1) complex
            power = spectrum.real.square() + spectrum.imag.square()
            out[f0:f1] = torch.log(power @ fb + LOG_EPS).numpy()  # (n, n_mels)
    return out


# ----------------------------------------------------------------------------- DeepSpeech windows
def deepspeech_windows(logits_50fps: np.ndarray, n_frames_60: int) -> np.ndarray:
    """VOCA's DeepSpeech input: (T50, 29) logits at 50 fps -> (n_frames_60, 16, 29) float32.

    As VOCA's audio_handler: np.interp of each channel from times j/50 onto i/60 (clamped at the
    ends), zero-pad 8 frames before and after, window i = padded[i : i + 16] (frames i-8 .. i+7).
    """
    logits = np.asarray(logits_50fps, dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be (T50 > 0, C), got {logits.shape}")
    t_in = np.arange(logits.shape[0], dtype=np.float64) / DS_FPS
    t_out = np.arange(int(n_frames_60), dtype=np.float64) / 60.0
    at60 = np.stack([np.interp(t_out, t_in, logits[:, c]) for c in range(logits.shape[1])], axis=1)
    half = DS_WINDOW // 2
    padded = np.concatenate([np.zeros((half, logits.shape[1])), at60, np.zeros((half, logits.shape[1]))])
    idx = np.arange(int(n_frames_60))[:, None] + np.arange(DS_WINDOW)[None, :]  # (T60, 16)
    return padded[idx].astype(np.float32)


def deepspeech_like_windows(x: np.ndarray, sr: int, n_frames_60: int) -> np.ndarray:
    """A DeepSpeech-v0.1.0 stand-in computed from the audio itself -> (n_frames_60, 16, 29) float32.

    29-band log-mel at 50 fps (16 kHz, 20 ms hop), each band standardised over the utterance, then
    VOCA's windowing (`deepspeech_windows`). It carries no linguistic knowledge: it only gives the
    DeepSpeech input path data of the right shape and timing.
    """
    spec = FeatureConfig(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=320, n_mels=DS_CHARS, fmin=60.0, fmax=7600.0
    )
    mel = logmel(resample(x, int(sr), spec.sample_rate), spec.sample_rate, spec)  # (T50, 29)
    mel = (mel - mel.mean(axis=0)) / (mel.std(axis=0) + 1e-3)
    return deepspeech_windows(mel, n_frames_60)
