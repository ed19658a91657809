"""RNN: a bidirectional GRU from speech features to mouth motion (the recurrent baseline).

audio (B,T,F) -> conv front end -> concat style embedding on every frame -> (bi)GRU -> linear head
-> motion (B,T,K). Padded frames are packed away so the backward direction starts at each
sequence's real end; any length works (the GRU has no positional table).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vocagan.errors import VocaganError
from vocagan.fields import option
from vocagan.models.base import ModelConfig, MotionModel


@dataclass
class RNNConfig(ModelConfig):
    hidden: int = option(128, lo=1, hi=8192)  # GRU units per direction
    n_layers: int = option(2, lo=1, hi=64)
    bidirectional: bool = True  # False: a unidirectional GRU (with model.lookahead >= 0: causal end to end)
    style_dim: int = option(32, lo=1, hi=8192)

    def check(self, where: str) -> None:
        if self.lookahead >= 0 and self.bidirectional:
            raise VocaganError(
                f"{where}.lookahead={self.lookahead} (causal) needs {where}.bidirectional=false: a backward GRU "
                "hears the whole clip"
            )


class RNNModel(MotionModel):
    Config = RNNConfig
    name = "rnn"
    label = "RNN"

    def __init__(self, cfg: RNNConfig, audio_dim: int, motion_dim: int, n_styles: int):
        super().__init__(cfg, audio_dim, motion_dim, n_styles)
        self.front = self.front_end(cfg.hidden)
        self.style = nn.Embedding(n_styles, cfg.style_dim)
        self.gru = nn.GRU(
            cfg.hidden + cfg.style_dim,
            cfg.hidden,
            num_layers=cfg.n_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,
        )
        out = cfg.hidden * (2 if cfg.bidirectional else 1)
        norm, linear = nn.LayerNorm(out), nn.Linear(out, motion_dim)
        nn.init.normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
        self.head = nn.Sequential(norm, linear)

    def motion(self, audio, style, mask):
        B, T, _ = audio.shape
        h = self.front(audio, mask)  # (B,T,H)
        s = self.style(style).unsqueeze(1).expand(B, T, -1)  # (B,T,S)
        x = torch.cat([h, s.to(h.dtype)], -1)  # (B,T,H+S)
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)  # (B,T,H*dirs)
        return self.head(y) * mask.unsqueeze(-1).to(y.dtype)  # (B,T,K)
