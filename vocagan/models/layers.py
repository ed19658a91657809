"""Blocks shared by two or more models: the audio front end, a length-unbounded transformer encoder,
masked reductions and the lip-vertex decoder used by the vertex-space losses.

Position information has no length cap: attention carries an ALiBi-style bias (-slope * |i - j|,
one slope per head) computed on the fly for any T, optionally limited to a local band, and the
convolutional front end adds local order. A model trained on 4 s crops therefore runs on 100 s of
audio (peers with a learned/sinusoidal table of 600 positions crash there).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- masked helpers
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B,T,...) over the valid frames of mask (B,T) and all trailing dims -> scalar."""
    m = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - 2)))
    denom = m.sum() * (x[0, 0].numel() if x.dim() > 2 else 1)
    return (x * m).sum() / denom.clamp_min(1.0)


def masked_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean over valid frames: x (B,T,D), mask (B,T) -> (B,D)."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def full_mask(x: torch.Tensor) -> torch.Tensor:
    """An all-valid mask (B,T) for x (B,T,...)."""
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


# ----------------------------------------------------------------------------- audio front end
class ConvFrontEnd(nn.Module):
    """Audio features (B,T,F) -> (B,T,D): optional per-sequence feature normalisation, a linear
    projection, then residual temporal convolutions.

    utterance_norm: each feature is z-scored over the valid frames of its own sequence, removing
    speaker/channel offsets (loudness, vocal tract colour) that unseen test voices do not share.
    freq_masks/freq_mask_width/freq_shift: training augmentation, bands of features zeroed
    (SpecAugment) and a random shift along the feature axis (meaningful for log-mel features).
    The convolutions see +-(kernel//2 * n_layers) frames: co-articulation context, and local order
    for the (permutation-invariant) attention that follows. Padded frames are zeroed before every
    convolution so a sequence's output does not depend on how much padding its batch has.
    """

    def __init__(
        self,
        audio_dim: int,
        d_model: int,
        n_layers: int = 2,
        kernel: int = 5,
        dropout: float = 0.1,
        utterance_norm: bool = False,
        freq_masks: int = 0,
        freq_mask_width: int = 0,
        freq_shift: int = 0,
    ):
        super().__init__()
        self.utterance_norm, self.freq_masks, self.freq_mask_width = utterance_norm, freq_masks, freq_mask_width
        self.freq_shift = freq_shift
        self.proj = nn.Sequential(nn.LayerNorm(audio_dim), nn.Linear(audio_dim, d_model))
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.dropout = nn.Dropout(dropout)

    def normalise(self, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sequence, per-feature z-score over valid frames: (B,T,F) -> (B,T,F)."""
        m = mask.unsqueeze(-1).to(audio.dtype)  # (B,T,1)
        n = m.sum(1, keepdim=True).clamp_min(1.0)
        mean = (audio * m).sum(1, keepdim=True) / n  # (B,1,F)
        var = ((audio - mean).pow(2) * m).sum(1, keepdim=True) / n
        return (audio - mean) * torch.rsqrt(var + 1e-3)

    def augment(self, audio: torch.Tensor) -> torch.Tensor:
        """Training only: shift the feature axis by up to +-freq_shift (edge-replicated; for mel
        features a change of vocal-tract length/formants), then zero `freq_masks` random bands."""
        B, _, F_ = audio.shape
        idx = torch.arange(F_, device=audio.device)
        if self.freq_shift > 0:
            shift = torch.randint(-self.freq_shift, self.freq_shift + 1, (B, 1, 1), device=audio.device)
            src = (idx.view(1, 1, F_) - shift).clamp(0, F_ - 1).expand(B, audio.shape[1], F_)
            audio = audio.gather(2, src)
        keep = torch.ones(B, 1, F_, device=audio.device, dtype=audio.dtype)
        for _ in range(self.freq_masks):
            width = torch.randint(0, self.freq_mask_width + 1, (B, 1, 1), device=audio.device)
            start = (torch.rand(B, 1, 1, device=audio.device) * (F_ - width + 1)).long()
            keep = keep * ~((idx >= start) & (idx < start + width))
        return audio * keep

    def forward(self, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(audio.dtype)  # (B,T,1)
        if self.utterance_norm:
            audio = self.normalise(audio, mask)
        if self.training and ((self.freq_masks > 0 and self.freq_mask_width > 0) or self.freq_shift > 0):
            audio = self.augment(audio)
        h = self.proj(audio) * m  # (B,T,D)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            y = conv(norm(h).transpose(1, 2)).transpose(1, 2)  # (B,T,D)
            h = (h + self.dropout(F.gelu(y))) * m
        return h


# ----------------------------------------------------------------------------- attention
def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Geometric head slopes 2^(-8/n * (1..n)) as in ALiBi (Press et al. 2022): (H,)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


def attention_bias(mask: torch.Tensor, slopes: torch.Tensor, band: int = 0) -> torch.Tensor:
    """Additive attention bias (B,H,T,T) for any T: -slope_h * |i-j| (in frames), -inf on padded keys
    and, when band > 0, outside |i-j| <= band (local attention; generalises to any length). A query
    row whose every key is blocked gets 0 (no NaN). Without padding the result is a broadcast view."""
    B, T = mask.shape
    pos = torch.arange(T, device=mask.device)
    dist = (pos[None, :] - pos[:, None]).abs().float()  # (T,T)
    bias = -slopes.to(mask.device)[:, None, None] * dist  # (H,T,T)
    if band > 0:
        bias = bias.masked_fill((dist > band)[None], float("-inf"))
    padded = ~mask
    if not bool(padded.any()):
        return bias.unsqueeze(0).expand(B, -1, -1, -1)
    bias = bias.unsqueeze(0).masked_fill(padded[:, None, None, :], float("-inf"))  # (B,H,T,T)
    # rows with no valid key: a padded query beyond the band, or a sequence without frames
    valid = mask.to(torch.int32).cumsum(1)  # (B,T) valid keys up to each position
    if band > 0:
        hi = valid.gather(1, (pos + band).clamp_max(T - 1).expand(B, -1))
        lo = valid.gather(1, (pos - band - 1).clamp_min(0).expand(B, -1)) * (pos - band - 1 >= 0)
        empty = hi - lo == 0  # (B,T)
    else:
        empty = (valid[:, -1:] == 0).expand(B, T)
    if bool(empty.any()):
        bias = bias.masked_fill(empty[:, None, :, None], 0.0)
    return bias


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3x(B,H,T,Dh)
        if self.training and self.dropout > 0:
            y = attention_with_dropout(q, k, v, bias, self.dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.out(y.transpose(1, 2).reshape(B, T, D))


def attention_with_dropout(q, k, v, bias, p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh) + bias) with dropout, then @ v: the arithmetic of torch's SDPA math
    path (which training with dropout uses on CPU), bit for bit, without its check for rows whose every
    key is masked (`attention_bias` never makes one)."""
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

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), bias))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerEncoder(nn.Module):
    slopes: torch.Tensor  # (H,) ALiBi slopes, a buffer

    """Stack of blocks sharing one ALiBi bias; (B,T,D), mask (B,T) -> (B,T,D), final LayerNorm."""

    def __init__(
        self, d_model: int, n_heads: int, n_layers: int, ff_mult: int = 4, dropout: float = 0.1, band: int = 0
    ):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, ff_mult, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.band = band
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bias = attention_bias(mask, self.slopes, self.band)  # (B,H,T,T), built once per call
        for block in self.blocks:
            x = block(x, bias)
        return self.ln(x) * mask.unsqueeze(-1).to(x.dtype)


# ----------------------------------------------------------------------------- vertex-space decoder
class LipDecoder(nn.Module):
    """Normalised coefficients (B,T,K) -> lip-vertex offsets in millimetres (B,T,L,3).

    Built from the preprocessing stats: offsets = (coef * coef_std + coef_mean) @ components + pca_mean,
    keeping only the lip columns of the mouth crop. Buffers are not persistent: the trainer installs
    the decoder from the prepared data, a loaded checkpoint does not need it.
    """

    # buffers (registered in __init__), declared for the type checker
    basis: torch.Tensor  # (K, 3L)
    offset: torch.Tensor  # (3L,)
    mouth_weights: torch.Tensor  # (K,)
    opening_basis: torch.Tensor | None  # (K,); None without an opening definition
    opening_offset: torch.Tensor | None  # ()

    def __init__(self, components, pca_mean, coef_mean, coef_std, lip_positions, opening=None, closed_mm: float = 0.0):
        super().__init__()
        components = torch.as_tensor(components, dtype=torch.float32)  # (K, 3M)
        lips = torch.as_tensor(lip_positions, dtype=torch.long)  # (L,) positions in the crop
        cols = (lips[:, None] * 3 + torch.arange(3)[None]).reshape(-1)  # (3L,) x,y,z columns
        std = torch.as_tensor(coef_std, dtype=torch.float32)
        mean = torch.as_tensor(coef_mean, dtype=torch.float32)
        basis = components[:, cols] * std[:, None] * 1000.0  # (K, 3L) in mm
        offset = (mean @ components[:, cols] + torch.as_tensor(pca_mean, dtype=torch.float32)[cols]) * 1000.0
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("offset", offset, persistent=False)
        # (K,) per-coefficient weights giving the mean squared mouth-crop vertex error in mm^2
        # (components have orthonormal rows, so the squared norm splits over coefficients)
        n_crop = components.shape[1] // 3
        self.register_buffer("mouth_weights", (std * 1000.0).pow(2) / n_crop, persistent=False)
        self.n_lips = int(lips.numel())
        # mouth opening (metrics.mouth_opening) linearised about the neutral face: `opening` (3M,) weights
        # (prep.regions.opening_weights)
        # crop offsets -> opening change (m); here as coefs (B,T,K) @ opening_basis (K,) + opening_offset, mm
        basis = offset = None
        if opening is not None:
            a = torch.as_tensor(opening, dtype=torch.float32)  # (3M,)
            basis = components @ a * std * 1000.0  # (K,) mm per unit coef
            offset = (mean @ components + torch.as_tensor(pca_mean, dtype=torch.float32)) @ a * 1000.0
        self.register_buffer("opening_basis", basis, persistent=False)
        self.register_buffer("opening_offset", offset, persistent=False)
        self.closed_mm = float(closed_mm)  # lips count as closed at <= this opening above rest (mm)

    @classmethod
    def from_prepared(cls, prepared) -> LipDecoder:
        """From a Prepared (or a checkpoint's rebuilt one): its PCA/normalisation and regions
        (`Prepared.lip_decoder_arrays`)."""
        return cls(**prepared.lip_decoder_arrays())

    def forward(self, coefs: torch.Tensor) -> torch.Tensor:
        y = coefs.float() @ self.basis + self.offset  # (B,T,3L)
        return y.view(*coefs.shape[:-1], self.n_lips, 3)


def vertex_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, decoder: LipDecoder) -> dict:
    """Lip losses in mm^2: "lip" = mean squared lip-vertex error, "lip_max" = mean over frames of the
    max over lip vertices (the LVE definition, made differentiable through the max)."""
    err = (decoder(pred) - decoder(target)).pow(2).sum(-1)  # (B,T,L) squared mm
    return {"lip": masked_mean(err, mask), "lip_max": masked_mean(err.amax(-1), mask)}
