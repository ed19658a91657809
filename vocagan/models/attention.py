"""Attention with no length cap: an ALiBi-style bias (-slope * |i - j|, one slope per head) computed on
the fly for any T, optionally limited to a local band and made causal for streaming, and the
transformer encoder built on it (`TransformerEncoder`, with a cached `stream` twin)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class EncoderStream:
    """State of `TransformerEncoder.stream`: the position of the next frame, each block's cached keys
    and values of the last `band` frames ((H, n, Dh) each)."""

    keys: list
    values: list
    position: int = 0


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Geometric head slopes 2^(-8/n * (1..n)) as in ALiBi (Press et al. 2022): (H,)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


def distance_bias(
    queries: torch.Tensor, keys: torch.Tensor, slopes: torch.Tensor, band: int = 0, causal: bool = False
) -> torch.Tensor:
    """(H, Q, K) additive bias between frame positions queries (Q,) and keys (K,): -slope_h * |i-j|,
    -inf outside |i-j| <= band (band > 0) and, causal, on keys after the query."""
    signed = (keys[None, :] - queries[:, None]).float()  # (Q,K) key minus query, frames
    bias = -slopes.to(queries.device)[:, None, None] * signed.abs()  # (H,Q,K)
    blocked = torch.zeros_like(signed, dtype=torch.bool)
    if band > 0:
        blocked |= signed.abs() > band
    if causal:
        blocked |= signed > 0
    return bias.masked_fill(blocked, float("-inf"))


def attention_bias(mask: torch.Tensor, slopes: torch.Tensor, band: int = 0, causal: bool = False) -> torch.Tensor:
    """Additive attention bias (B,H,T,T) for any T: -slope_h * |i-j| (in frames), -inf on padded keys,
    when band > 0 outside |i-j| <= band (local attention; generalises to any length) and, causal, on
    keys after the query. Without padding the result is a broadcast view (every row keeps its own key)."""
    B, T = mask.shape
    pos = torch.arange(T, device=mask.device)
    bias = distance_bias(pos, pos, slopes, band, causal).unsqueeze(0).expand(B, -1, -1, -1)  # (B,H,T,T)
    if not bool((~mask).any()):
        return bias
    bias = bias.masked_fill(~mask[:, None, None, :], float("-inf"))  # padded keys
    # A query row with every key blocked (a padded query when T has no valid key) would give NaN.
    all_blocked = torch.isinf(bias).all(-1, keepdim=True)
    return bias.masked_fill(all_blocked, 0.0)


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """x (B,T,D) -> (B,T,D). `cache` [keys, values] ((B,H,C,Dh) each): keys and values of earlier
        frames, prepended to this call's and replaced by the concatenation (streaming; the caller
        trims them and builds `bias` (.., T, C+T) to match)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3x(B,H,T,Dh)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        if self.training and self.dropout > 0:
            y = attention_with_dropout(q, k, v, bias, self.dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.out(y.transpose(1, 2).reshape(B, T, D))


def attention_with_dropout(q, k, v, bias, p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh) + bias) with dropout, then @ v: the arithmetic of torch's SDPA math
    path (which training with dropout uses on CPU), bit for bit, without its check for rows whose every
    key is masked (`attention_bias` never leaves one)."""
    s = math.sqrt(1.0 / math.sqrt(q.shape[-1]))  # SDPA scales q and k by sqrt(scale) each
    a = torch.matmul(q * s, k.transpose(-2, -1) * s) + bias.to(q.dtype)
    return torch.matmul(F.dropout(torch.softmax(a, -1), p, True), v)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN x), x + MLP(LN x)."""

    def __init__(self, d_model: int, n_heads: int, ff_mult: int = 4, dropout: float = 0.1):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), bias, cache))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerEncoder(nn.Module):
    """Stack of blocks sharing one ALiBi bias; (B,T,D), mask (B,T) -> (B,T,D), final LayerNorm.
    causal: each frame attends to itself and the past `band` frames only (streaming)."""

    slopes: torch.Tensor  # (H,) ALiBi slopes, a buffer

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_layers: int,
        ff_mult: int = 4,
        dropout: float = 0.1,
        band: int = 0,
        causal: bool = False,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, ff_mult, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.band, self.causal = band, causal
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bias = attention_bias(mask, self.slopes, self.band, self.causal)  # (B,H,T,T), built once per call
        for block in self.blocks:
            x = block(x, bias)
        return self.ln(x) * mask.unsqueeze(-1).to(x.dtype)

    def stream_start(self) -> EncoderStream:
        if not (self.causal and self.band > 0):
            raise ValueError("only a causal encoder with a bounded band can stream")
        d = self.ln.normalized_shape[0]
        h = len(self.slopes)
        empty = [torch.zeros(1, h, 0, d // h) for _ in self.blocks]
        return EncoderStream(keys=list(empty), values=list(empty))

    @torch.no_grad()
    def stream(self, state: EncoderStream, x: torch.Tensor) -> torch.Tensor:
        """The next frames x (n, D) -> (n, D), as `forward` computes them for the whole sequence."""
        n = len(x)
        if n == 0:
            return x
        cached = state.keys[0].shape[2]
        queries = torch.arange(state.position, state.position + n)
        keys = torch.arange(state.position - cached, state.position + n)
        bias = distance_bias(queries, keys, self.slopes, self.band, causal=True).unsqueeze(0)  # (1,H,n,C+n)
        h = x.unsqueeze(0)
        for i, block in enumerate(self.blocks):
            cache = [state.keys[i], state.values[i]]
            h = block(h, bias, cache)
            state.keys[i], state.values[i] = (c[:, :, max(0, c.shape[2] - self.band) :] for c in cache)
        state.position += n
        return self.ln(h)[0]
