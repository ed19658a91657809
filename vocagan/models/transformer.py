"""Transformer: a non-autoregressive transformer encoder from speech features to mouth motion.

audio (B,T,F) -> conv front end (local context, order) -> + style embedding -> transformer encoder
with an ALiBi distance bias (no length cap; optional local band) -> linear head -> motion (B,T,K).

All frames are predicted in one pass (no autoregression, so inference on a 60 s clip is one
forward call). `TransformerBackbone` is reused as the decoder of the VAE and the generator of the GAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vocagan.errors import VocaganError
from vocagan.fields import option
from vocagan.models.attention import EncoderStream, TransformerEncoder
from vocagan.models.audio import AudioInput
from vocagan.models.base import ModelConfig, MotionModel, make_front_end
from vocagan.models.layers import FrontEndStream


@dataclass
class TransformerConfig(ModelConfig):
    d_model: int = option(128, lo=1, hi=16384)
    n_heads: int = option(4, lo=1, hi=256)
    n_layers: int = option(3, lo=1, hi=128)
    ff_mult: int = option(4, lo=1, hi=64)
    attention_band: int = option(0, lo=0)  # >0: attend only to |i-j| <= band frames (0: full, ALiBi-biased)
    style_dim: int = option(0, lo=0, hi=16384)  # 0: style embedding of size d_model added to every frame

    def check(self, where: str) -> None:
        if self.d_model % self.n_heads:
            raise VocaganError(f"{where}.d_model={self.d_model} must be a multiple of {where}.n_heads={self.n_heads}")
        if self.lookahead >= 0 and self.attention_band <= 0:
            raise VocaganError(
                f"{where}.lookahead={self.lookahead} (a streaming model) needs {where}.attention_band > 0: "
                "a bounded attention context keeps streaming cost and memory constant"
            )


class TransformerBackbone(nn.Module):
    """Shared generator body: (audio, style, extra conditioning) -> motion.

    `cond` (B, d_model) or (B,T,d_model) is added to every frame after the style embedding; the VAE
    passes its projected latent, the GAN its projected noise.
    """

    def __init__(self, cfg: TransformerConfig, audio_dim: int, motion_dim: int, n_styles: int):
        super().__init__()
        d = cfg.d_model
        self.front = make_front_end(cfg, audio_dim, d)
        self.style = nn.Embedding(n_styles, cfg.style_dim or d)
        self.style_proj = nn.Linear(cfg.style_dim, d) if cfg.style_dim else nn.Identity()
        self.encoder = TransformerEncoder(
            d, cfg.n_heads, cfg.n_layers, cfg.ff_mult, cfg.dropout, cfg.attention_band, causal=cfg.lookahead >= 0
        )
        self.head = nn.Linear(d, motion_dim)
        nn.init.normal_(self.style.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=0.02)  # start near the mean motion (coefficients ~0)

    def forward(
        self, audio: torch.Tensor, style: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.front(audio, mask)  # (B,T,D)
        h = h + self.style_proj(self.style(style)).unsqueeze(1)  # (B,1,D) broadcast over time
        if cond is not None:
            h = h + (cond.unsqueeze(1) if cond.dim() == 2 else cond)
        h = self.encoder(h, mask)  # (B,T,D)
        return self.head(h)  # (B,T,K)

    # -- streaming (a causal backbone: cfg.lookahead >= 0): forward's computation, a few frames at a time
    def stream_start(self, style: int, cond: torch.Tensor | None = None) -> BackboneStream:
        if not self.front.causal:
            raise VocaganError("this model sees the whole clip (model.lookahead=-1): it cannot stream")
        with torch.no_grad():
            offset = self.style_proj(self.style(torch.tensor([style])))[0]  # (D,)
            if cond is not None:
                offset = offset + cond.reshape(-1)
        return BackboneStream(self.front.stream_start(), self.encoder.stream_start(), offset)

    @torch.no_grad()
    def stream_step(self, state: BackboneStream, audio: np.ndarray, end: bool = False) -> np.ndarray:
        h = self.front.stream(state.front, audio, end)  # (n,D)
        h = self.encoder.stream(state.encoder, h + state.offset)
        return self.head(h).numpy()  # (n,K)


@dataclass
class BackboneStream:
    front: FrontEndStream
    encoder: EncoderStream
    offset: torch.Tensor  # (D,) style embedding (+ the VAE/GAN's conditioning at the prior mean)


class TransformerModel(MotionModel):
    Config = TransformerConfig
    name = "transformer"
    label = "Transformer"

    def __init__(
        self, cfg: TransformerConfig, audio_dim: int, motion_dim: int, n_styles: int, audio: AudioInput | None = None
    ):
        super().__init__(cfg, audio_dim, motion_dim, n_styles, audio)
        self.backbone = TransformerBackbone(cfg, self.feature_dim, motion_dim, n_styles)

    def motion(self, audio, style, mask):
        return self.backbone(audio, style, mask)

    def stream_start(self, style: int):
        return self.backbone.stream_start(style)

    def stream_step(self, state, audio):
        return self.backbone.stream_step(state, audio)

    def stream_end(self, state):
        return self.backbone.stream_step(state, np.zeros((0, self.audio_dim), np.float32), end=True)
