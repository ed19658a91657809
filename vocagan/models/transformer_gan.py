"""Transformer+GAN: the transformer as generator, trained against a discriminator that judges both
realism and audio-motion synchrony.

Regression losses alone average over the many plausible mouth trajectories and give muted,
over-smoothed motion. The discriminator pushes toward motion with real dynamics and timing:

  generator  G(audio, style, noise): TransformerBackbone with Linear(noise) * noise_scale added to
             every frame (noise (B, noise_dim) per sequence, so samples can differ a little)
  discriminator D(audio, motion): temporal convolutions (spectral norm, dilations 1,2,4,...)
      realism branch: over [motion, velocity] only              -> per-frame logits (B,T)
      sync branch:    over [motion feats, audio feats, their product] -> per-frame logits (B,T)
    sync negatives: real motion with time-shifted audio (shift_min..shift_max frames, either way)
    and with another sequence's audio; generated motion is a negative for both branches.
    D sees each coefficient scaled by its share of the mesh motion (std_k / std_0, once the
    trainer installs the decoder), so the noise-level tail components cannot give fakes away.

    d_scales > 1: more critics of the same design, each judging the audio and motion averaged over
    2, 4, ... frames (multi-scale, as in MelGAN/HiFi-GAN: coarse critics see the slower dynamics);
    every loss is the mean over the scales. r1_weight > 0: the R1 penalty (Mescheder et al. 2018),
    r1_weight / 2 * |dD/dx|^2 on real motion x (both branches' logits, per valid frame).

Generator loss = reconstruction terms (recon, mouth, velocity, lip, lip_max; as every model)
               + ramp(epoch) * (adv_weight * adversarial + fm_weight * feature matching),
where ramp is 0 before `adv_start_epoch` and rises linearly over `adv_ramp_epochs` (the generator
first learns plain regression, then the critic sharpens it). `adv_loss`: "lsgan" or "hinge".
`predict(n_samples=1)` uses noise = 0 (deterministic); n_samples > 1 draws noise per sample.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from vocagan.errors import VocaganError
from vocagan.fields import option
from vocagan.models.audio import AudioInput
from vocagan.models.base import GenerativeModel, load_strict
from vocagan.models.layers import masked_mean
from vocagan.models.optim import OptimStep, optim_step
from vocagan.models.transformer import TransformerBackbone, TransformerConfig


@dataclass
class TransformerGANConfig(TransformerConfig):
    noise_dim: int = option(16, lo=1, hi=4096)
    noise_scale: float = option(0.1, lo=0.0)  # noise enters at 10% weight: small variation, not a new mean
    d_channels: int = option(64, lo=1, hi=8192)  # discriminator width
    d_layers: int = option(3, lo=1, hi=16)  # dilated conv layers per branch (dilation 1, 2, 4, ...)
    d_kernel: int = option(5, lo=1, hi=63)
    adv_loss: str = option("lsgan", choices=("lsgan", "hinge"))
    adv_weight: float = option(0.1, lo=0.0)  # 0.5 cost test LVE +0.015 (3/3 seeds, 40 ep) for lip accel. 0.623 vs 0.615
    fm_weight: float = option(5.0, lo=0.0)  # feature matching (L1 between D features of real and generated)
    adv_start_epoch: int = option(2, lo=0)  # generator ignores D before this epoch (D trains from epoch 0)
    adv_ramp_epochs: int = option(5, lo=0)
    shift_min: int = option(4, lo=1)  # frames; sync negatives are shifted by shift_min..shift_max
    shift_max: int = option(15, lo=1)
    d_lr_scale: float = option(1.0, lo=0.0, lo_open=True)  # the critic's learning rate = train.lr * this
    d_scales: int = option(1, lo=1, hi=6)  # critics at 1, 2, 4, ... frames per step (multi-scale)
    r1_weight: float = option(0.0, lo=0.0)  # R1 gradient penalty on real motion (0: off)

    def check(self, where: str) -> None:
        super().check(where)
        if self.shift_max < self.shift_min:
            raise VocaganError(f"{where}.shift_max={self.shift_max} must be >= {where}.shift_min={self.shift_min}")


def _conv(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Module:
    return spectral_norm(nn.Conv1d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation))


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """No gradients for the modules' parameters inside the block (inputs still get theirs)."""
    params = [p for module in modules for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class SyncDiscriminator(nn.Module):
    """(audio (B,T,F), motion (B,T,K), mask (B,T)) -> realism logits (B,T), sync logits (B,T), features."""

    def __init__(self, audio_dim: int, motion_dim: int, channels: int, n_layers: int, kernel: int):
        super().__init__()
        c = channels
        self.motion_in = _conv(2 * motion_dim, c, kernel)
        self.motion_layers = nn.ModuleList(_conv(c, c, kernel, 2**i) for i in range(n_layers))
        self.real_head = _conv(c, 1, 1)
        self.audio_norm = nn.LayerNorm(audio_dim)
        self.audio_in = _conv(audio_dim, c, kernel)
        self.sync_layers = nn.ModuleList(_conv(3 * c if i == 0 else c, c, kernel, 2**i) for i in range(n_layers))
        self.sync_head = _conv(c, 1, 1)

    def forward(self, audio, motion, mask):
        m = mask.unsqueeze(1).to(motion.dtype)  # (B,1,T)
        vel = torch.cat([motion[:, :1] * 0, motion[:, 1:] - motion[:, :-1]], 1)  # (B,T,K) velocity
        h = self.motion_in(torch.cat([motion, vel], -1).transpose(1, 2)) * m  # (B,C,T)
        feats = []
        for layer in self.motion_layers:
            h = (h + F.leaky_relu(layer(h), 0.2)) * m
            feats.append(h)
        real = self.real_head(h).squeeze(1)  # (B,T)
        a = F.leaky_relu(self.audio_in(self.audio_norm(audio).transpose(1, 2)), 0.2) * m
        s = torch.cat([h, a, h * a], 1)  # (B,3C,T); the product makes co-activation easy to see
        for i, layer in enumerate(self.sync_layers):
            y = F.leaky_relu(layer(s), 0.2)
            s = (y if i == 0 else s + y) * m
            feats.append(s)
        sync = self.sync_head(s).squeeze(1)  # (B,T)
        return real, sync, feats


class TransformerGANModel(GenerativeModel):
    Config = TransformerGANConfig
    name = "transformer_gan"
    label = "Transformer+GAN"

    hear_step = "generator"  # a fine-tuned encoder learns with the generator, never from the critic's loss

    def __init__(
        self, cfg: TransformerGANConfig, audio_dim: int, motion_dim: int, n_styles: int, audio: AudioInput | None = None
    ):
        super().__init__(cfg, audio_dim, motion_dim, n_styles, audio)
        self.generator = TransformerBackbone(cfg, self.feature_dim, motion_dim, n_styles)
        self.noise_proj = nn.Linear(cfg.noise_dim, cfg.d_model)
        self.discriminator = SyncDiscriminator(self.feature_dim, motion_dim, cfg.d_channels, cfg.d_layers, cfg.d_kernel)
        # the coarser scales' critics (none by default: checkpoints keep their names)
        self.coarse_discriminators = nn.ModuleList(
            SyncDiscriminator(self.feature_dim, motion_dim, cfg.d_channels, cfg.d_layers, cfg.d_kernel)
            for _ in range(cfg.d_scales - 1)
        )

    def warm_start(self, state_dict: dict, source: str) -> int:
        """A Transformer's weights are this generator's (same backbone, and how it hears: a layer mix or
        a fine-tuned encoder): the GAN then fine-tunes a trained regression model against its critic
        (the noise projection and the critic start fresh)."""
        if source == "transformer":

            def part(prefix: str) -> dict:
                return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}

            return load_strict(self.generator, part("backbone.")) + load_strict(self.hear, part("hear."))
        return super().warm_start(state_dict, source)

    # ------------------------------------------------------------------ training steps
    def configure_optimizers(self, tc, total_steps: int) -> list[OptimStep]:
        """The critic's step (Adam betas (0.5, 0.9) as GAN practice, learning rate scaled by
        d_lr_scale), then the generator's over every other parameter (a fine-tuned encoder at its own rate)."""
        critic = [*self.discriminator.parameters(), *self.coarse_discriminators.parameters()]
        skip = {id(p) for p in critic}
        generator = [p for p in self.own_parameters() if id(p) not in skip]
        return [
            optim_step("discriminator", "d_", critic, tc, total_steps, lr_scale=self.cfg.d_lr_scale, betas=(0.5, 0.9)),
            optim_step("generator", "train_", generator, tc, total_steps, extra=self.encoder_groups(tc, total_steps)),
        ]

    def features_loss(self, batch: dict, step: str) -> dict:
        return self.discriminator_loss(batch) if step == "discriminator" else self.loss(batch)

    # ------------------------------------------------------------------ generator (code: the noise)
    @property
    def code_dim(self) -> int:
        return self.cfg.noise_dim

    def conditioned(self, code):
        return self.generator, self.noise_proj(code.to(self.noise_proj.weight.dtype)) * self.cfg.noise_scale

    def _sample(self, batch):
        noise = torch.randn(batch["audio"].shape[0], self.cfg.noise_dim, device=batch["audio"].device)
        return self.generate(batch["audio"], batch["style"], batch["mask"], noise)

    def ramp(self) -> float:
        c = self.cfg
        if self.epoch < c.adv_start_epoch:
            return 0.0
        return min(1.0, (self.epoch - c.adv_start_epoch + 1) / max(1, c.adv_ramp_epochs))

    # ------------------------------------------------------------------ adversarial pieces
    def _target(self, logits, mask, positive: bool):
        """Per-frame adversarial loss for the discriminator side."""
        if self.cfg.adv_loss == "hinge":
            return masked_mean(F.relu(1.0 - logits) if positive else F.relu(1.0 + logits), mask)
        return masked_mean((logits - (1.0 if positive else 0.0)).pow(2), mask)

    def _fool(self, logits, mask):
        """Generator side: make D call generated motion real."""
        if self.cfg.adv_loss == "hinge":
            return -masked_mean(logits, mask)
        return masked_mean((logits - 1.0).pow(2), mask)

    def _shifted_audio(self, audio, mask):
        """Each sequence's audio rotated by +-shift frames within its own length: (B,T,F)."""
        B, T, _ = audio.shape
        lengths = mask.sum(1).clamp_min(1)  # (B,)
        c = self.cfg
        shift = torch.randint(c.shift_min, c.shift_max + 1, (B,), device=audio.device)
        sign = torch.randint(0, 2, (B,), device=audio.device) * 2 - 1
        shift = torch.minimum(shift, (lengths - 1).clamp_min(1)) * sign
        idx = (torch.arange(T, device=audio.device)[None] + shift[:, None]) % lengths[:, None]  # (B,T)
        return audio.gather(1, idx.unsqueeze(-1).expand_as(audio))

    def set_decoder(self, decoder) -> None:
        """Also scales what D sees: coefficient k by std_k / std_0, so D judges the motion that shows on
        the mesh, not the tail components (measurement noise, z-scored to unit variance like the rest)
        that it could otherwise use to tell real from generated, teaching the generator to jitter."""
        super().set_decoder(decoder)
        if decoder is not None:
            w = decoder.mouth_weights
            self.register_buffer("d_scale", (w / w.max()).sqrt(), persistent=False)

    def _judge(self, audio, motion, mask) -> list[tuple]:
        """The critics' verdicts, one (realism logits, sync logits, features, mask) per scale; scale i
        sees audio, motion and mask over windows of 2^i frames (a window counts when all its frames do)."""
        scale = getattr(self, "d_scale", None)
        motion = motion if scale is None else motion * scale.to(motion.dtype)
        out = [(*self.discriminator(audio, motion, mask), mask)]
        for i, critic in enumerate(self.coarse_discriminators, 1):
            k = 2**i
            if audio.shape[1] < k:  # too short for this scale (and the coarser ones)
                break
            pooled = [F.avg_pool1d(x.transpose(1, 2), k, k).transpose(1, 2) for x in (audio, motion)]
            m = F.max_pool1d((~mask).to(motion.dtype).unsqueeze(1), k, k).squeeze(1) == 0
            out.append((*critic(pooled[0], pooled[1], m), m))
        return out

    def _critics(self):
        return [self.discriminator, *self.coarse_discriminators]

    def discriminator_loss(self, batch):
        """One D update's loss: real motion is positive for both branches; generated motion is negative
        for both; real motion with shifted or another sequence's audio is negative for sync. With
        several scales, each term is the mean over them."""
        audio, motion, mask = batch["audio"], batch["motion"], batch["mask"]
        B = audio.shape[0]
        with torch.no_grad():
            fake = self._sample(batch).detach().to(motion.dtype)
        # one D call over [real | generated | real + shifted audio | real + another sequence's audio]
        other_mask = mask & mask.roll(1, 0)
        motions = torch.cat([motion, fake, motion, motion])
        if self.cfg.r1_weight > 0:
            motions.requires_grad_(True)
        verdicts = self._judge(
            torch.cat([audio, audio, self._shifted_audio(audio, mask), audio.roll(1, 0)]),
            motions,
            torch.cat([mask, mask, mask, other_mask]),
        )
        real_terms, sync_terms = [], []
        for r, s, _, m4 in verdicts:
            m, om = m4[:B], m4[3 * B :]
            real_r, fake_r = r[:B], r[B : 2 * B]
            real_s, fake_s, shift_s, mis_s = s.split(B)
            real_terms.append(self._target(real_r, m, True) + self._target(fake_r, m, False))
            negatives = [self._target(shift_s, m, False)]
            if B > 1:  # with one sequence the "other" audio is its own
                negatives.append(self._target(mis_s, om, False))
            sync_terms.append(
                self._target(real_s, m, True) + self._target(fake_s, m, False) + sum(negatives) / len(negatives)
            )
        parts = {"real": sum(real_terms) / len(verdicts), "sync": sum(sync_terms) / len(verdicts)}
        parts["loss"] = parts["real"] + parts["sync"]
        if self.cfg.r1_weight > 0:
            # R1: the critics' gradient on real motion (with its own audio), per valid frame
            real = sum((r[:B] * m[:B]).sum() + (s[:B] * m[:B]).sum() for r, s, _, m in verdicts)
            (grad,) = torch.autograd.grad(real, motions, create_graph=True)
            parts["r1"] = grad[:B].pow(2).sum() / mask.sum().clamp_min(1)
            parts["loss"] = parts["loss"] + 0.5 * self.cfg.r1_weight * parts["r1"]
        with torch.no_grad():  # D's accuracy on the sync task (real vs shifted audio), logged
            thr = 0.0 if self.cfg.adv_loss == "hinge" else 0.5
            real_s, _, shift_s, _ = verdicts[0][1].split(B)
            parts["sync_acc"] = 0.5 * (
                masked_mean((real_s > thr).float(), mask) + masked_mean((shift_s < thr).float(), mask)
            )
        return parts

    def loss(self, batch):
        audio, motion, mask = batch["audio"], batch["motion"], batch["mask"]
        pred = self._sample(batch) if self.training else self(audio, batch["style"], mask)
        parts = self.reconstruction_losses(pred, motion, mask)
        total = self.weighted(parts)
        ramp = self.ramp()
        if ramp > 0:
            # the critic judges here, it does not learn: no gradients for its weights (its own step
            # computes those), the real side only as feature-matching targets; one spectral norm for both
            with frozen(*self._critics()), parametrize.cached():
                verdicts = self._judge(audio, pred.to(motion.dtype), mask)
                with torch.no_grad():
                    real = self._judge(audio, motion, mask)
            parts["adv"] = sum(self._fool(r, m) + self._fool(s, m) for r, s, _, m in verdicts) / len(verdicts)
            # feature matching: D's features of generated vs real motion
            parts["fm"] = sum(
                sum((f - g).abs().mean() for f, g in zip(v[2], w[2], strict=True)) / len(v[2])
                for v, w in zip(verdicts, real, strict=True)
            ) / len(verdicts)
            total = total + ramp * (self.cfg.adv_weight * parts["adv"] + self.cfg.fm_weight * parts["fm"])
        else:  # keep the logged columns stable across epochs
            parts["adv"] = parts["fm"] = torch.zeros((), device=pred.device)
        parts["loss"] = total
        return parts
