"""Model audio features: what a model hears, computed one way for training and for inference.

`features_at_fps` is THE feature function: training (through `prep/prepare.py`) and inference
(`animate` on any user recording) both call it, so a model never sees features computed two
different ways. For `logmel` it resamples to `FeatureConfig.sample_rate`, computes a log-mel
spectrogram (`formats/audio.py`) at `sample_rate / hop_length` fps and interpolates it onto the mesh
frame times i / fps (`frames.resample_frames`). `vtlp_warp` is the optional training augmentation.
"""

from __future__ import annotations

import math

import numpy as np

from vocagan.config import FeatureConfig
from vocagan.errors import VocaganError
from vocagan.formats.audio import DS_CHARS, DS_WINDOW, hz_to_mel, logmel, logmel_frames, mel_to_hz, resample
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


class StreamingFeatures:
    """`features_at_fps` for audio that arrives in pieces: push samples at `spec.sample_rate`, get
    the feature frames (at `fps`) whose values are final, identical to `features_at_fps` over the
    whole recording (same log-mel arithmetic, `logmel_frames`; same interpolation as
    `frames.resample_frames`). Memory stays bounded: only the samples and log-mel frames that later
    frames still need are kept.

    A log-mel frame is final once its STFT window has all its samples; a feature frame once the
    log-mel frames it interpolates are final (and the audio reaches half a frame past it, the
    rounding of `frames.audio_frames`). `lookahead_ms`: the most audio any frame waits for after its
    own time. `end()` adds the reflect padding of the last window and returns the remaining frames.
    """

    def __init__(self, spec: FeatureConfig, fps: float):
        if spec.kind != "logmel":
            raise VocaganError(f"streaming needs log-mel features computed from audio, not '{spec.kind}'")
        self.spec, self.fps = spec, float(fps)
        self.sr, self.hop, self.n_fft = int(spec.sample_rate), int(spec.hop_length), int(spec.n_fft)
        self.half = self.n_fft // 2
        self.ratio = (self.sr / self.hop) / self.fps  # log-mel frames per feature frame
        self.raw: list[np.ndarray] = []  # samples before the left padding can be made (the first half+1)
        self.padded = np.zeros(0, np.float32)  # the padded signal from padded index `origin`
        self.origin = 0
        self.n_in = 0  # samples received
        self.mel = np.zeros((0, int(spec.n_mels)), np.float32)  # log-mel frames from index `mel_origin`
        self.mel_origin = 0
        self.done = 0  # feature frames returned
        self.ended = False
        phases = range(0, 1000)
        self.lookahead_ms = 1000.0 * max(
            max((math.ceil(i * self.ratio - 1e-9) * self.hop + self.n_fft - self.half) / self.sr, (i + 0.5) / self.fps)
            - i / self.fps
            for i in phases
        )

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Samples (n,) float32 in [-1, 1] -> new feature frames (m, n_mels)."""
        if self.ended:
            raise VocaganError("the stream has ended")
        x = np.asarray(samples, np.float32).reshape(-1)
        self.n_in += len(x)
        if self.origin == 0 and not len(self.padded):
            self.raw.append(x)
            if self.n_in <= self.half:  # the reflect padding of the first window needs half + 1 samples
                return self._empty()
            x = np.concatenate(self.raw)
            self.raw = []
            x = np.concatenate([x[1 : self.half + 1][::-1], x])  # np.pad(mode="reflect") on the left
        self.padded = np.concatenate([self.padded, x])
        complete = (self.origin + len(self.padded) - self.n_fft) // self.hop + 1  # mel frames with a full window
        self._mel_until(complete)
        return self._frames(final=False)

    def end(self) -> np.ndarray:
        """No more audio: the remaining frames (as `features_at_fps` computes the end of a clip)."""
        if self.ended:
            return self._empty()
        self.ended = True
        n = self.n_in
        if n == 0:
            return self._empty()
        if self.raw or n <= self.half:  # short stream: compute it whole, exactly as offline
            whole = np.concatenate(self.raw) if self.raw else self.padded[self.half - self.origin :]
            from vocagan.frames import audio_frames

            out = features_at_fps(whole, self.sr, self.spec, self.fps, audio_frames(n, self.sr, int(self.fps)))
            return out[self.done :]
        tail_needed = self.n_fft - self.half  # np.pad(mode="reflect") on the right: x[n-2], x[n-3], ...
        last = self.padded[len(self.padded) - tail_needed - 1 : len(self.padded) - 1][::-1]
        self.padded = np.concatenate([self.padded, last])
        self._mel_until(1 + n // self.hop)
        return self._frames(final=True)

    # -- internals
    def _empty(self) -> np.ndarray:
        return np.zeros((0, int(self.spec.n_mels)), np.float32)

    def _mel_until(self, count: int) -> None:
        first = self.mel_origin + len(self.mel)
        if count <= first:
            return
        new = logmel_frames(self.padded, first * self.hop - self.origin, count - first, self.sr, self.spec)
        self.mel = np.concatenate([self.mel, new])

    def _frames(self, final: bool) -> np.ndarray:
        from vocagan.frames import audio_frames

        n_mel = self.mel_origin + len(self.mel)
        if final:
            stop = audio_frames(self.n_in, self.sr, int(self.fps))
        else:  # frame i needs log-mel frame floor(i * ratio) + 1 and round(n_in * fps / sr) > i
            stop = min(
                int(math.floor((n_mel - 1) / self.ratio + 1e-9)) if n_mel > 1 else 0,
                audio_frames(self.n_in, self.sr, int(self.fps)),
            )
            while stop > self.done and math.floor((stop - 1) * self.ratio) + 1 >= n_mel:
                stop -= 1
        if stop <= self.done:
            return self._empty()
        pos = np.clip(np.arange(self.done, stop, dtype=np.float64) * self.ratio, 0.0, n_mel - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_mel - 1)
        w = (pos - i0).astype(np.float32)[:, None]
        out = (self.mel[i0 - self.mel_origin] * (1.0 - w) + self.mel[i1 - self.mel_origin] * w).astype(np.float32)
        self.done = stop
        # forget what later frames no longer need
        keep_mel = int(math.floor(self.done * self.ratio))
        if keep_mel > self.mel_origin:
            self.mel = self.mel[keep_mel - self.mel_origin :]
            self.mel_origin = keep_mel
        keep_sample = (self.mel_origin + len(self.mel)) * self.hop  # the next log-mel window starts here
        drop = max(0, min(keep_sample - self.origin, len(self.padded) - self.n_fft - 2))
        if drop > 0:
            self.padded = self.padded[drop:]
            self.origin += drop
        return out
