"""RNN: a bidirectional GRU from speech features to mouth motion (the recurrent baseline).

audio (B,T,F) -> conv front end -> concat style embedding on every frame -> (bi)GRU -> linear head
-> motion (B,T,K). Padded frames are packed away so the backward direction starts at each
sequence's real end; any length works (the GRU has no positional table).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from vocagan.errors import VocaganError
from vocagan.fields import option
from vocagan.models.audio import AudioInput
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

    def __init__(self, cfg: RNNConfig, audio_dim: int, motion_dim: int, n_styles: int, audio: AudioInput | None = None):
        super().__init__(cfg, audio_dim, motion_dim, n_styles, audio)
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
        y = gru_packed(self.gru, packed) if torch.is_grad_enabled() else self.gru(packed)[0]
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)  # (B,T,H*dirs)
        return self.head(y) * mask.unsqueeze(-1).to(y.dtype)  # (B,T,K)


def gru_packed(gru: nn.GRU, packed: PackedSequence) -> PackedSequence:
    """`gru(packed)[0]` computed the way torch's CPU implementation does it, operation for operation
    (the same values and gradients, bit for bit), except that each time step's slice of the
    precomputed input gates is taken with one `split` instead of one `narrow` per step: the gradient of
    a narrow is a zero tensor of the whole sequence's size, so torch's backward pass costs O(T^2) in the
    sequence length (about 40 % of a training step at 120 frames). Initial hidden state zero."""
    sizes = packed.batch_sizes.tolist()
    x = packed.data
    dirs = 2 if gru.bidirectional else 1
    for layer in range(gru.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(gru, "weight_ih" + sfx), getattr(gru, "weight_hh" + sfx)
            b_ih, b_hh = (getattr(gru, "bias_ih" + sfx), getattr(gru, "bias_hh" + sfx)) if gru.bias else (None, None)
            gates = F.linear(x, w_ih, b_ih).split(sizes)  # per time step: (batch_t, 3H)
            h0 = x.new_zeros(sizes[0], gru.hidden_size)
            outs.append(_gru_reverse(gates, h0, w_hh, b_hh, sizes) if d else _gru_forward(gates, h0, w_hh, b_hh, sizes))
        x = torch.cat(outs, -1) if dirs == 2 else outs[0]
        if gru.dropout and gru.training and layer < gru.num_layers - 1:
            x = F.dropout(x, gru.dropout, True)
    return PackedSequence(x, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


def _gru_cell(gates: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh) -> torch.Tensor:
    """One GRU step from precomputed input gates, in torch's order of operations (GRUCell)."""
    gi = gates.unsafe_chunk(3, 1)
    gh = F.linear(h, w_hh, b_hh).unsafe_chunk(3, 1)
    reset = gh[0].add_(gi[0]).sigmoid_()
    update = gh[1].add_(gi[1]).sigmoid_()
    new = gi[2].add(gh[2].mul_(reset)).tanh_()
    return (h - new).mul_(update).add_(new)


def _gru_forward(gates, h, w_hh, b_hh, sizes: list[int]) -> torch.Tensor:
    """Time-major packed steps, batch sizes non-increasing: finished sequences drop off the end."""
    outs = []
    for g, n in zip(gates, sizes, strict=True):
        if n < len(h):
            h = h[:n]
        h = _gru_cell(g, h, w_hh, b_hh)
        outs.append(h)
    return torch.cat(outs, 0)


def _gru_reverse(gates, h0, w_hh, b_hh, sizes: list[int]) -> torch.Tensor:
    """The same, last step first: sequences join (with their initial state) as their last frame comes."""
    h = h0[: sizes[-1]]
    outs = []
    for g, n in zip(reversed(gates), reversed(sizes), strict=True):
        if n > len(h):
            h = torch.cat([h, h0[len(h) : n]], 0)
        h = _gru_cell(g, h, w_hh, b_hh)
        outs.append(h)
    return torch.cat(outs[::-1], 0)
