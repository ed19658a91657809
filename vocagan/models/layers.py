"""Blocks shared by two or more models: the audio front end, masked reductions, the causal helpers of
streaming and the lip-vertex decoder used by the vertex-space losses (attention and the transformer
encoder: `attention.py`).

The convolutional front end adds local order; attention carries no position table (ALiBi-style
bias), so a model trained on 4 s crops runs on 100 s of audio.

Streaming (`lookahead` >= 0): the front end advances the features by `lookahead` frames (frame t
hears the audio of frame t + lookahead), then every layer is causal: left-padded convolutions, a
windowed utterance normalisation over the last `norm_window` frames, and attention to the past
`band` frames only. Frame t then depends on no audio after frame t + lookahead, and each block has
a `stream` twin that computes new frames from a small cached state (`*Stream` classes) with the
same result as the batch forward (tests/models/test_streaming.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
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


# ----------------------------------------------------------------------------- causal helpers
def advance(x: torch.Tensor, mask: torch.Tensor, frames: int) -> torch.Tensor:
    """x (B,T,F) -> y with y[:, t] = x[:, min(t + frames, length - 1)] per sequence (its valid length):
    frame t of a causal model hears the audio of frame t + frames; past the end, the last frame."""
    if frames <= 0:
        return x
    T = x.shape[1]
    last = (mask.sum(1) - 1).clamp_min(0)  # (B,)
    idx = torch.minimum(torch.arange(T, device=x.device)[None] + frames, last[:, None])  # (B,T)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def windowed_zscore(
    x: torch.Tensor, mask: torch.Tensor, window: int, prior: torch.Tensor | None = None, prior_frames: int = 0
) -> torch.Tensor:
    """Causal per-feature z-score: frame t uses the mean/variance over the valid frames among
    t-window+1..t (float64 running sums), plus `prior_frames` pseudo-frames of mean prior[0] and
    variance exp(prior[1]) (prior (2, F), learnt: the first frames of a stream have few statistics).
    (B,T,F) -> (B,T,F) in x's dtype."""
    m = mask.unsqueeze(-1).to(torch.float64)  # (B,T,1)
    xd = x.to(torch.float64) * m
    sums = [torch.cumsum(a, 1) for a in (m, xd, xd * xd)]

    def windowed(c: torch.Tensor) -> torch.Tensor:
        if window >= c.shape[1]:
            return c
        return torch.cat([c[:, :window], c[:, window:] - c[:, :-window]], 1)

    n, s1, s2 = (windowed(c) for c in sums)
    if prior is not None and prior_frames > 0:
        mu0, var0 = prior[0].to(torch.float64), prior[1].to(torch.float64).exp()
        n, s1, s2 = n + prior_frames, s1 + prior_frames * mu0, s2 + prior_frames * (var0 + mu0 * mu0)
    n = n.clamp_min(1.0)
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0.0)
    return ((x.to(torch.float64) - mean) / torch.sqrt(var + 1e-3)).to(x.dtype)


@dataclass
class _WindowStats:
    """The last `window` frames of a stream and their z-score (the streaming `windowed_zscore`)."""

    frames: list = field(default_factory=list)

    def push(self, x: np.ndarray, window: int, prior: np.ndarray | None = None, prior_frames: int = 0) -> np.ndarray:
        out = np.empty_like(x)
        n0, mu0, var0 = 0, np.zeros(1), np.zeros(1)
        if prior is not None and prior_frames > 0:
            n0, mu0, var0 = prior_frames, prior[0].astype(np.float64), np.exp(prior[1].astype(np.float64))
        for i, row in enumerate(x.astype(np.float64)):
            self.frames.append(row)
            del self.frames[: max(0, len(self.frames) - window)]
            buf = np.asarray(self.frames)
            n = len(buf) + n0
            mean = (buf.sum(0) + n0 * mu0) / n
            var = np.maximum(((buf * buf).sum(0) + n0 * (var0 + mu0 * mu0)) / n - mean * mean, 0.0)
            out[i] = (row - mean) / np.sqrt(var + 1e-3)
        return out


@dataclass
class FrontEndStream:
    """State of `ConvFrontEnd.stream`: raw frames waiting for their look-ahead, the normalisation
    window, each convolution's last kernel-1 inputs."""

    conv: list
    queue: list = field(default_factory=list)  # raw frames of the shifted frames not yet computed
    norm: _WindowStats = field(default_factory=_WindowStats)
    seen: int = 0
    emitted: int = 0
    last: np.ndarray | None = None


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
    lookahead >= 0 makes it causal (module docstring): features advanced by `lookahead` frames,
    convolutions over the past kernel-1 frames, normalisation over the last `norm_window` frames
    (with `norm_prior` pseudo-frames of learnt statistics, so the first frames of a stream are usable).
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
        lookahead: int = -1,
        norm_window: int = 0,
        norm_prior: int = 0,
    ):
        super().__init__()
        self.utterance_norm, self.freq_masks, self.freq_mask_width = utterance_norm, freq_masks, freq_mask_width
        self.freq_shift = freq_shift
        self.lookahead, self.norm_window, self.kernel = int(lookahead), int(norm_window), int(kernel)
        self.audio_dim, self.d_model = int(audio_dim), int(d_model)
        self.causal = self.lookahead >= 0
        self.norm_prior = int(norm_prior)
        if self.causal and utterance_norm and self.norm_prior > 0:  # learnt prior statistics (mean, log variance)
            self.prior = nn.Parameter(torch.zeros(2, audio_dim))
        else:
            self.register_parameter("prior", None)
        self.proj = nn.Sequential(nn.LayerNorm(audio_dim), nn.Linear(audio_dim, d_model))
        pad = 0 if self.causal else kernel // 2  # causal: left padding by kernel-1, in forward
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, padding=pad) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.dropout = nn.Dropout(dropout)

    def normalise(self, audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sequence, per-feature z-score over valid frames: (B,T,F) -> (B,T,F). Causal: over
        the valid frames among the last `norm_window` (statistics in float64)."""
        if self.causal:
            return windowed_zscore(audio, mask, self.norm_window, self.prior, self.norm_prior)
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
        if self.causal:
            audio = advance(audio, mask, self.lookahead)
        if self.utterance_norm:
            audio = self.normalise(audio, mask)
        if self.training and ((self.freq_masks > 0 and self.freq_mask_width > 0) or self.freq_shift > 0):
            audio = self.augment(audio)
        h = self.proj(audio) * m  # (B,T,D)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(h).transpose(1, 2)  # (B,D,T)
            if self.causal:
                x = F.pad(x, (self.kernel - 1, 0))
            y = conv(x).transpose(1, 2)  # (B,T,D)
            h = (h + self.dropout(F.gelu(y))) * m
        return h

    # -- streaming (causal only): the same computation, a few new frames at a time
    def stream_start(self) -> FrontEndStream:
        return FrontEndStream(conv=[torch.zeros(self.kernel - 1, self.d_model) for _ in self.convs])

    @torch.no_grad()
    def stream(self, state: FrontEndStream, audio: np.ndarray, end: bool = False) -> torch.Tensor:
        """New raw feature frames (n, F) -> the outputs (m, D) that became final. Frame t needs raw
        frame t + lookahead; `end=True` closes the stream (the missing future is the last frame, as
        `advance` does at a sequence end)."""
        audio = np.asarray(audio, np.float32).reshape(-1, self.audio_dim)
        for row in audio:  # shifted frame t is raw frame t + lookahead: the first `lookahead` are never heard
            if state.seen >= self.lookahead:
                state.queue.append(row)
            state.seen += 1
            state.last = row
        if end and state.last is not None:  # past the end: the last raw frame (as `advance`)
            state.queue.extend([state.last] * (state.seen - state.emitted - len(state.queue)))
        if not state.queue:
            return torch.zeros(0, self.d_model)
        x = np.stack(state.queue).astype(np.float32)
        state.emitted += len(state.queue)
        state.queue = []
        if self.utterance_norm:
            prior = None if self.prior is None else self.prior.detach().numpy()
            x = state.norm.push(x, self.norm_window, prior, self.norm_prior)
        h = self.proj(torch.from_numpy(x))  # (n,D)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            inp = torch.cat([state.conv[i], norm(h)])  # (k-1+n, D)
            state.conv[i] = inp[len(inp) - (self.kernel - 1) :]
            y = conv(inp.t().unsqueeze(0))[0].t()  # (n,D)
            h = h + F.gelu(y)
        return h


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
