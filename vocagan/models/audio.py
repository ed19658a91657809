"""How a model hears: the per-frame audio input it is given, and what it does with it first.

`AudioInput` (built by `prep.features.audio_input` from the feature spec, recorded in every
checkpoint) says what the dataset's `audio` arrays (B, T, dim) hold:

- precomputed features (log-mel, DeepSpeech windows, a frozen encoder's chosen layer): `Hear` passes
  them through;
- every layer of a frozen encoder side by side (`layers` > 1): `Hear` mixes them with learned
  softmax weights (the weighted sum of all layers, as SUPERB / UniTalker);
- raw waveform, `dim` samples per frame (`encoder` set: the encoder is fine-tuned inside the model):
  `Hear` runs the pretrained encoder (`vocagan.encoders`), picks or mixes its layers and moves its
  50 Hz frames onto the model's frames. Its convolutional feature extractor stays frozen; the rest
  is frozen for the first `freeze_steps` training steps, then trained at its own learning rate
  (`MotionModel.encoder_groups`, part of the model's own optimisation step).

`MotionModel.step_loss` and `MotionModel.predict` run `Hear` once; everything after it sees
features (B, T, Hear.out_dim).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vocagan.encoders import EncoderInfo, build_network, hidden_states


@dataclass(frozen=True)
class AudioInput:
    dim: int  # values per frame in the dataset's audio arrays
    layers: int = 1  # > 1: that many encoder layers side by side (dim = layers * width)
    layer: int = -1  # fine-tune: the hidden state used (-1: last), unless mix
    mix: bool = False  # fine-tune: learned weighted sum of all hidden states
    fps: float = 30.0  # model frames per second (fine-tune: dim * fps = the waveform rate)
    freeze_steps: int = 0  # fine-tune: training steps before the encoder (but its CNN) trains
    encoder: dict | None = None  # fine-tune: EncoderInfo.to_dict()
    load_weights: bool = False  # fine-tune: start from the folder's weights (training), else the
    # architecture only (a checkpoint's weights follow)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None, dim: int) -> AudioInput:
        """From a checkpoint's record; checkpoints older than this record held plain features."""
        if not d:
            return cls(dim=int(dim))
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class LayerMix(nn.Module):
    """(..., L, H) -> (..., H): softmax-weighted sum over the L layers (weights start equal)."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.logits, 0).to(states.dtype)
        return torch.einsum("...lh,l->...h", states, w)


def frames_at_fps(h: torch.Tensor, src_fps: float, fps: float, n_frames: int) -> torch.Tensor:
    """(B, T_src, H) frames at times j / src_fps -> (B, n_frames, H) at times i / fps: the rule of
    `vocagan.frames.resample_frames` (every k-th frame when src_fps = k * fps, else linear
    interpolation, times past the end take the last frame), differentiable."""
    ratio = float(src_fps) / float(fps)
    T = h.shape[1]
    if ratio.is_integer() and (n_frames - 1) * int(ratio) < T:
        return h[:, :: int(ratio)][:, :n_frames]
    pos = (torch.arange(n_frames, dtype=torch.float64, device=h.device) * ratio).clamp(0, T - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=T - 1)
    w = (pos - i0).to(h.dtype).view(1, -1, 1)
    return h[:, i0] * (1 - w) + h[:, i1] * w


class SpeechEncoder(nn.Module):
    """Waveform frames (B, T, spf) -> encoder features (B, T, H) at the model's frames."""

    def __init__(self, spec: AudioInput):
        super().__init__()
        if spec.encoder is None:
            raise ValueError("a SpeechEncoder needs AudioInput.encoder (an EncoderInfo dict)")
        self.info = EncoderInfo.from_dict(spec.encoder)
        self.spec = spec
        self.net = build_network(self.info, pretrained=spec.load_weights)
        # LayerDrop would skip whole layers at random in training, and with them hidden states a chosen
        # layer or the layer mix refers to: off (SpecAugment-style time masking, the other fine-tuning
        # regulariser of these encoders, stays as the folder's config sets it)
        self.net.config.layerdrop = 0.0
        self.cnn = self.net.feature_extractor
        for p in self.cnn.parameters():  # the convolutional feature extractor stays frozen
            p.requires_grad_(False)
        if hasattr(self.net, "masked_spec_embed"):  # only used for pre-training's masking
            self.net.masked_spec_embed.requires_grad_(False)
        self.mix = LayerMix(self.info.n_layers + 1) if spec.mix else None
        self.updates: torch.Tensor
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # training steps seen (resume-safe)
        self.out_dim = self.info.hidden_size

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def frozen_now(self) -> bool:
        return int(self.updates) < self.spec.freeze_steps

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, train: bool) -> torch.Tensor:
        B, T, spf = frames.shape
        valid = mask.unsqueeze(-1).expand(-1, -1, spf).reshape(B, T * spf).to(frames.dtype)  # (B, N)
        wave = frames.reshape(B, T * spf) * valid
        if self.info.normalize:  # per sequence, over its valid samples
            n = valid.sum(1, keepdim=True).clamp_min(1.0)
            mean = (wave * valid).sum(1, keepdim=True) / n
            var = ((wave - mean).pow(2) * valid).sum(1, keepdim=True) / n
            wave = (wave - mean) * torch.rsqrt(var + 1e-7) * valid
        learn = train and self.training and torch.is_grad_enabled()
        frozen = self.frozen_now()  # step k is frozen for k < freeze_steps, as the learning rate is
        if learn:
            self.updates.add_(1)
        self.net.train(self.training)
        with torch.set_grad_enabled(learn and not frozen):
            states = hidden_states(self.net, wave.float(), self.info, attention_mask=valid.long())  # (L+1,B,T50,H)
        h = self.mix(states.permute(1, 2, 0, 3)) if self.mix is not None else states[self.spec.layer]
        src_fps = spf * self.spec.fps / self.info.stride  # the waveform runs at spf * fps Hz
        return frames_at_fps(h, src_fps, self.spec.fps, T)


class Hear(nn.Module):
    """The model's first stage (see the module doc): (B, T, dim) -> (B, T, out_dim)."""

    def __init__(self, spec: AudioInput):
        super().__init__()
        self.spec = spec
        self.encoder = SpeechEncoder(spec) if spec.encoder else None
        self.mix = LayerMix(spec.layers) if spec.layers > 1 and self.encoder is None else None
        if self.encoder is not None:
            self.out_dim = self.encoder.out_dim
        else:
            self.out_dim = spec.dim // spec.layers
        self.passthrough = self.encoder is None and self.mix is None

    def forward(self, audio: torch.Tensor, mask: torch.Tensor, train: bool = False) -> torch.Tensor:
        """train: this call's gradients may train a fine-tuned encoder (and count as a training step)."""
        if self.encoder is not None:
            return self.encoder(audio, mask, train)
        if self.mix is not None:
            B, T, _ = audio.shape
            return self.mix(audio.view(B, T, self.spec.layers, -1))
        return audio

    def encoder_parameters(self) -> list[nn.Parameter]:
        """A fine-tuned encoder's trainable parameters (not its CNN, not the layer mix); [] otherwise."""
        return self.encoder.trainable() if self.encoder is not None else []


def samples_per_frame(sample_rate: int, fps: float) -> int:
    """Waveform samples per model frame in fine-tune mode (the waveform is resampled to spf * fps Hz,
    within 0.2 % of the encoder's rate at 30/60 fps: 534 * 30 = 16020 Hz)."""
    return int(math.ceil(sample_rate / fps))
