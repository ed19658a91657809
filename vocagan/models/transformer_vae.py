"""Transformer+VAE: a conditional VAE whose decoder is the transformer.

Speech does not determine motion: the same sentence is spoken with more or less articulation, a
different rhythm of pauses. A latent z (one per sequence/crop, `latent_dim`) carries that residual:

  posterior q(z | motion, audio): conv front end over [audio features, motion] -> small transformer
      -> masked mean over time -> (mu, logvar)  (B, latent_dim)
  decoder p(motion | audio, style, z): TransformerBackbone with Linear(z) added to every frame
  prior p(z) = N(0, I)

loss = reconstruction terms (as every model) + beta(epoch) * KL, where beta rises linearly from 0
to `kl_weight` over `kl_anneal_epochs` (avoids posterior collapse early), and each latent
dimension's KL below `free_bits` nats is not penalised.

`predict(n_samples=1)` decodes the prior MEAN (z = 0): deterministic output for evaluation.
`predict(n_samples>1)` draws z ~ N(0, I) per sample (diversity).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vocagan.fields import option
from vocagan.models.attention import TransformerEncoder
from vocagan.models.audio import AudioInput
from vocagan.models.base import GenerativeModel
from vocagan.models.layers import ConvFrontEnd, masked_pool
from vocagan.models.transformer import TransformerBackbone, TransformerConfig


@dataclass
class TransformerVAEConfig(TransformerConfig):
    latent_dim: int = option(16, lo=1, hi=4096)
    posterior_layers: int = option(1, lo=1, hi=64)  # transformer layers in q(z | motion, audio)
    kl_weight: float = option(0.01, lo=0.0)  # final beta (KL is summed over latent dims, mean over batch)
    kl_anneal_epochs: int = option(20, lo=0)  # beta rises linearly over this many epochs
    free_bits: float = option(0.05, lo=0.0)  # nats per latent dim not penalised
    # chance of decoding a crop with z = 0 (keeps the prior mean useful)
    latent_dropout: float = option(0.1, lo=0.0, hi=1.0)


class TransformerVAEModel(GenerativeModel):
    Config = TransformerVAEConfig
    name = "transformer_vae"
    label = "Transformer+VAE"

    def __init__(
        self, cfg: TransformerVAEConfig, audio_dim: int, motion_dim: int, n_styles: int, audio: AudioInput | None = None
    ):
        super().__init__(cfg, audio_dim, motion_dim, n_styles, audio)
        d = cfg.d_model
        self.decoder = TransformerBackbone(cfg, self.feature_dim, motion_dim, n_styles)
        # Posterior: [audio, motion] per frame -> pooled latent statistics.
        self.post_front = ConvFrontEnd(self.feature_dim + motion_dim, d, cfg.conv_layers, cfg.conv_kernel, cfg.dropout)
        self.post_encoder = TransformerEncoder(d, cfg.n_heads, cfg.posterior_layers, cfg.ff_mult, cfg.dropout)
        self.post_head = nn.Linear(d, 2 * cfg.latent_dim)
        self.latent_proj = nn.Linear(cfg.latent_dim, d)
        nn.init.zeros_(self.post_head.weight)  # start with q = N(0, I): KL 0, decoder learns audio first
        nn.init.zeros_(self.post_head.bias)

    # ------------------------------------------------------------------ pieces
    def posterior(self, audio, motion, mask):
        """q(z | motion, audio): (B,T,F), (B,T,K), (B,T) -> mu, logvar (B, latent_dim)."""
        h = self.post_front(torch.cat([audio, motion.to(audio.dtype)], -1), mask)  # (B,T,D)
        h = masked_pool(self.post_encoder(h, mask), mask)  # (B,D)
        mu, logvar = self.post_head(h).float().chunk(2, -1)
        return mu, logvar.clamp(-8.0, 8.0)

    @property
    def code_dim(self) -> int:
        return self.cfg.latent_dim

    def conditioned(self, code):
        """The decoder p(motion | audio, style, z = code): the backbone and its conditioning."""
        return self.decoder, self.latent_proj(code.to(self.latent_proj.weight.dtype))

    def beta(self) -> float:
        ramp = max(1, self.cfg.kl_anneal_epochs)
        return self.cfg.kl_weight * min(1.0, (self.epoch + 1) / ramp)

    # ------------------------------------------------------------------ interface
    def loss(self, batch):
        audio, motion, mask = batch["audio"], batch["motion"], batch["mask"]
        mu, logvar = self.posterior(audio, motion, mask)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation
        if self.training and self.cfg.latent_dropout > 0:
            keep = (torch.rand(z.shape[0], 1, device=z.device) >= self.cfg.latent_dropout).to(z.dtype)
            z = z * keep
        pred = self.generate(audio, batch["style"], mask, z)
        parts = self.reconstruction_losses(pred, motion, mask)
        kl_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)  # (latent_dim,) nats
        parts["kl"] = kl_dim.sum()
        kl_penalised = kl_dim.clamp_min(self.cfg.free_bits).sum()
        parts["beta"] = torch.tensor(self.beta(), device=pred.device)
        parts["loss"] = self.weighted(parts) + self.beta() * kl_penalised
        return parts
