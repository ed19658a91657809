"""Model audio features: what a model hears, computed one way for training and for inference.

`features_at_fps` is THE feature function: training (through `prep/prepare.py`) and inference
(`animate` on any user recording) both call it, so a model never sees features computed two
different ways. Every kind lands on the mesh frame times i / fps through `frames.resample_frames`:
- `logmel`: resample to `FeatureConfig.sample_rate`, log-mel spectrogram (`formats/audio.py`) at
  `sample_rate / hop_length` fps;
- `phonetic`: PocketSphinx phone one-hots at 100 fps (`prep/phonetic.py`), optionally beside log-mel;
- `encoder`, frozen: the pretrained encoder's chosen hidden state (or all of them side by side, for
  a learned weighted sum) at its 50 fps, frame j centred on time j / 50 as log-mel frames are
  (`vocagan.encoders`); fine-tuned: the waveform itself, `samples_per_frame` samples per mesh frame
  (the model runs the encoder, `models/audio.py`).
`audio_input` tells the model which of these it gets; `encoder_for` resolves the encoder folder of a
spec and, for a trained model, checks it is the one the model was trained with. `vtlp_warp` is the
optional training augmentation (log-mel).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vocagan.config import Config, FeatureConfig
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


def feature_dim(spec: FeatureConfig, fps: float = 30.0) -> int:
    """Width F of the per-frame audio features for this spec at `fps` mesh frames per second."""
    if spec.kind == "logmel":
        return int(spec.n_mels)
    if spec.kind == "phonetic":
        from vocagan.prep.phonetic import PHONES

        return len(PHONES) + (int(spec.n_mels) if spec.phonetic_logmel else 0)
    if spec.kind == "encoder":
        if spec.encoder_finetune:
            from vocagan.models.audio import samples_per_frame

            return samples_per_frame(16000, fps)
        info = encoder_for(spec)
        return info.hidden_size * ((info.n_layers + 1) if spec.encoder_mix else 1)
    if spec.kind == "deepspeech":
        return DS_WINDOW * DS_CHARS  # flattened (16, 29) window
    raise VocaganError(f"unknown feature kind '{spec.kind}' (valid: logmel, phonetic, encoder, deepspeech)")


def _logmel_at_fps(x: np.ndarray, sr: int, spec: FeatureConfig, fps: float, n_frames: int) -> np.ndarray:
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


def features_at_fps(x: np.ndarray, sr: int, spec: FeatureConfig, fps: float, n_frames: int) -> np.ndarray:
    """THE audio feature function (training and inference): (n_frames, feature_dim(spec, fps)) float32
    at mesh frame times i / fps (edge values beyond the end of the audio); see the module doc."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if spec.kind == "logmel":
        return _logmel_at_fps(x, sr, spec, fps, n_frames)
    if spec.kind == "phonetic":
        from vocagan.prep.phonetic import phone_features

        phones = phone_features(x, sr, fps, n_frames)  # (n_frames, P)
        if not spec.phonetic_logmel:
            return phones
        return np.concatenate([_logmel_at_fps(x, sr, spec, fps, n_frames), phones], axis=1).astype(np.float32)
    if spec.kind == "encoder":
        return _encoder_features(x, sr, spec, fps, n_frames)
    raise VocaganError(
        f"features_at_fps computes features from audio; kind '{spec.kind}' "
        "comes from precomputed windows (processed_audio_deepspeech.pkl)"
    )


def _encoder_features(x: np.ndarray, sr: int, spec: FeatureConfig, fps: float, n_frames: int) -> np.ndarray:
    if spec.encoder_finetune:  # the waveform at spf * fps Hz, cut into frames of spf samples
        from vocagan.models.audio import samples_per_frame

        spf = samples_per_frame(16000, fps)
        y = resample(x, int(sr), int(round(spf * fps)))
        y = np.pad(y, (0, max(0, int(n_frames) * spf - len(y))))[: int(n_frames) * spf]
        return y.reshape(int(n_frames), spf).astype(np.float32)
    from vocagan.encoders import check_layer, encode

    info = encoder_for(spec)
    check_layer(spec.encoder_layer, info)
    states = encode(
        resample(x, int(sr), info.sample_rate), info, layer=spec.encoder_layer, all_layers=spec.encoder_mix
    )  # (T50, F) at info.fps
    return resample_frames(states, info.fps, fps, int(n_frames)).astype(np.float32)


def encoder_for(spec: FeatureConfig, recorded: dict | None = None):
    """The `EncoderInfo` of spec.encoder_path. With `recorded` (what a checkpoint stored about the
    encoder it was trained with), a missing folder or different weights is one VocaganError that
    says what to do."""
    from pathlib import Path

    from vocagan.encoders import SUPPORTED, inspect_encoder

    if recorded is not None and not Path(str(spec.encoder_path)).expanduser().is_dir():
        kind = SUPPORTED.get(recorded.get("model_type", ""), "speech")
        raise VocaganError(
            f"this model hears speech through a frozen {kind} encoder (weights sha256 "
            f"{recorded.get('weights_sha256', '?')[:12]}) that was at {spec.encoder_path} and is gone: put that "
            "folder back, or pass --encoder DIR with a copy of it",
            spec.encoder_path,
        )
    info = inspect_encoder(spec.encoder_path)
    if recorded is not None and info.weights_sha256 != recorded.get("weights_sha256"):
        raise VocaganError(
            f"not the encoder this model was trained with: its weights have sha256 {info.weights_sha256[:12]}, "
            f"the model's encoder {recorded.get('weights_sha256', '?')[:12]} (was at {recorded.get('path')})",
            spec.encoder_path,
        )
    return info


def with_encoder(spec: FeatureConfig, encoder: str | None) -> FeatureConfig:
    """The spec with its encoder folder replaced by `encoder` (the --encoder flag), when given."""
    if encoder is None:
        return spec
    if spec.kind != "encoder":
        raise VocaganError(
            f"--encoder is for models that hear through a pretrained encoder; this one uses features.kind={spec.kind}",
            encoder,
        )
    return dataclasses.replace(spec, encoder_path=str(encoder))


def audio_input(cfg: Config, audio_dim: int):
    """What the model built from `cfg` is given per frame (`models.audio.AudioInput`)."""
    from vocagan.models.audio import AudioInput

    spec = cfg.features
    if spec.kind != "encoder":
        return AudioInput(dim=int(audio_dim), fps=float(cfg.data.fps))
    if not spec.encoder_finetune:
        layers = encoder_for(spec).n_layers + 1 if spec.encoder_mix else 1
        return AudioInput(dim=int(audio_dim), layers=layers, fps=float(cfg.data.fps))
    from vocagan.encoders import check_layer

    info = encoder_for(spec)
    check_layer(spec.encoder_layer, info)
    return AudioInput(
        dim=int(audio_dim),
        layer=spec.encoder_layer,
        mix=spec.encoder_mix,
        fps=float(cfg.data.fps),
        freeze_steps=cfg.train.encoder_freeze_steps,
        encoder=info.to_dict(),
    )
