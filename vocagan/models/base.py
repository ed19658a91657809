"""The interface every model implements, and the reconstruction losses they share.

    model = build({"name": "transformer", "d_model": 128}, audio_dim=80, motion_dim=32, n_styles=8)
    motion = model(audio, style, mask)                # (B,T,F), (B,), (B,T) -> (B,T,K)
    parts = model.loss(batch)                         # {"loss": ..., "recon": ..., "velocity": ..., ...}
    samples = model.predict(audio, style, n_samples)  # (n_samples, B, T, K), any T

`motion` is the normalised PCA coefficients of the mouth region (see data/preprocess.py). `style`
indexes the training subjects; unseen subjects are animated with a training style the caller picks.
Optional hooks the trainer calls (no-ops here): `set_epoch(epoch)` for schedules inside a model
(KL annealing, adversarial warm-up) and `set_decoder(LipDecoder)` for vertex-space lip losses.
`configure_optimizers(train_cfg, total_steps)` returns the model's optimisation steps, each with its
parameters, optimiser and schedule, run in order on every batch (`step_loss(batch, name)` gives each
step's losses): one step for most models; a GAN's critic adds its own before the generator's. The
trainer never asks which kind of model it has.

How a model hears (`models/audio.py`): `self.hear` turns the dataset's per-frame audio (B, T, audio_dim)
into the features the model's layers see (B, T, feature_dim): a pass-through for precomputed features,
a learned mix of a frozen encoder's layers, or a pretrained speech encoder being fine-tuned. The public
entry points `step_loss` and `predict` run it once; `forward`, `loss` and the models' own methods see
features. A fine-tuned encoder trains inside the model's own optimisation step at its own learning
rate (`encoder_groups`: zero for train.encoder_freeze_steps steps, then warm-up + cosine); the
trainer does not know it is there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from vocagan.errors import VocaganError
from vocagan.fields import option
from vocagan.models.audio import AudioInput, Hear
from vocagan.models.layers import ConvFrontEnd, LipDecoder, full_mask, masked_mean, vertex_losses
from vocagan.models.optim import OptimStep, ParamGroup, frozen_then, optim_step
from vocagan.utils import log

if TYPE_CHECKING:
    from vocagan.config import TrainConfig


@dataclass
class ModelConfig:
    """Fields every model shares (each model's Config extends it): the audio front end and the
    weights of the reconstruction losses. The vertex-space terms need `set_decoder` (the trainer
    installs it); without it only `recon` and a coefficient-space `velocity` are computed."""

    conv_layers: int = option(2, lo=0, hi=64)  # front-end residual temporal convolutions
    conv_kernel: int = option(5, lo=1, hi=255)  # frames; context = conv_layers * (kernel // 2) each side
    dropout: float = option(0.1, lo=0.0, hi=1.0, hi_open=True)
    utterance_norm: bool = True  # z-score each audio feature over the sequence (speaker/channel invariance)
    freq_masks: int = option(2, lo=0, hi=64)  # training augmentation: feature bands zeroed per sequence...
    freq_mask_width: int = option(8, lo=0, hi=1024)  # ...each up to this many features wide
    freq_shift: int = option(0, lo=0, hi=1024)  # training augmentation: shift features by up to +-this many bins
    # Streaming: -1 = the model sees the whole clip (offline); >= 0 = causal, frame t hears no audio after
    # frame t + lookahead (2 frames at 30 fps: 67 ms, + 23 ms of STFT window = 90 ms; `vocagan serve`)
    lookahead: int = option(-1, lo=-1, hi=1000)
    norm_window: int = option(150, lo=1, hi=1_000_000)  # causal models: utterance_norm over the last N frames...
    norm_prior: int = option(30, lo=0, hi=1_000_000)  # ...plus this many pseudo-frames of learnt statistics
    recon_weight: float = option(0.1, lo=0.0)  # MSE on normalised PCA coefficients (all components equally)
    mouth_weight: float = option(1.0, lo=0.0)  # mean squared mouth-crop vertex error, mm^2
    velocity_weight: float = option(1.0, lo=0.0)  # the same on frame-to-frame differences (timing)
    lip_weight: float = option(0.5, lo=0.0)  # mean squared lip-vertex error, mm^2
    lip_max_weight: float = option(0.5, lo=0.0)  # per-frame max over lip vertices (the LVE itself), mm^2
    # squared error of the mouth opening (upper-lower lip gap), mm^2, counted (1 + boost) times on frames
    # whose true lips are closed (<= prep.regions.CLOSED_MM above rest). 1 / 4 vs 0 / 0 (demo GAN, 5 seeds,
    # when closed meant <= 0 mm): test LVE 0.337 +- 0.013 vs 0.347 +- 0.021, mouth corr. 0.923 vs 0.904,
    # synthetic bilabials closed 88% vs 82%
    opening_weight: float = option(1.0, lo=0.0)
    opening_close_boost: float = option(4.0, lo=0.0)


class MotionModel(nn.Module):
    """Base class: stores dims and config, validates inputs, shares losses and `predict`."""

    Config = ModelConfig  # subclasses replace it with their own dataclass (which includes these fields)
    name = "base"  # the registry key (vocagan.models.MODELS)
    label = "base"  # how reports name the model

    hear_step = "model"  # the optimisation step through which a fine-tuned encoder learns

    def __init__(self, cfg, audio_dim: int, motion_dim: int, n_styles: int, audio: AudioInput | None = None):
        super().__init__()
        self.cfg = cfg
        self.audio_dim, self.motion_dim, self.n_styles = int(audio_dim), int(motion_dim), int(n_styles)
        self.hear = Hear(audio or AudioInput(dim=self.audio_dim))
        if self.hear.spec.dim != self.audio_dim:
            raise ValueError(f"audio input spec has {self.hear.spec.dim} values per frame, audio_dim is {audio_dim}")
        self.feature_dim = self.hear.out_dim  # what the model's own layers see per frame
        self.lip_decoder: LipDecoder | None = None
        self.epoch = 0

    # ------------------------------------------------------------------ hooks for the trainer
    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer at the start of every epoch (0-based)."""
        self.epoch = int(epoch)

    def set_decoder(self, decoder: LipDecoder | None) -> None:
        """Install the lip-vertex decoder so `loss` adds the vertex-space lip terms."""
        self.lip_decoder = decoder
        if decoder is not None and decoder.opening_basis is None and self.cfg.opening_weight > 0:
            log(
                f"[{self.name}] the mouth-opening loss is off (model.opening_weight={self.cfg.opening_weight} "
                "asked for it): the lip region has no upper and lower lip to measure an opening between"
            )

    def describe(self) -> dict:
        """Everything needed to rebuild this model: name, hyper-parameters, dims."""
        return {
            "name": self.name,
            "config": asdict(self.cfg),
            "audio_dim": self.audio_dim,
            "motion_dim": self.motion_dim,
            "n_styles": self.n_styles,
            "audio": dataclasses.replace(self.hear.spec, load_weights=False).to_dict(),
        }

    def warm_start(self, state_dict: dict, source: str) -> int:
        """Initial weights from a trained model of kind `source` (a registry name): this base class
        takes its own kind only, every tensor. Returns the number of tensors loaded."""
        if source != self.name:
            raise VocaganError(f"a {self.name} model cannot start from a {source} checkpoint")
        return load_strict(self, state_dict)

    def configure_optimizers(self, tc: TrainConfig, total_steps: int) -> list[OptimStep]:
        """The optimisation steps of one training iteration, in order: here the one step over every
        parameter (a GAN adds its critic's step first), a fine-tuned encoder at its own rate."""
        return [
            optim_step(
                "model", "train_", self.own_parameters(), tc, total_steps, extra=self.encoder_groups(tc, total_steps)
            )
        ]

    def own_parameters(self) -> list[nn.Parameter]:
        """Every parameter but a fine-tuned encoder's (`encoder_groups` holds those)."""
        skip = {id(p) for p in self.hear.encoder_parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def encoder_groups(self, tc: TrainConfig, total_steps: int) -> list[ParamGroup]:
        """A fine-tuned encoder's parameters (not its frozen CNN): train.encoder_lr, zero for the first
        train.encoder_freeze_steps steps, then warm-up + cosine. None without such an encoder."""
        params = self.hear.encoder_parameters()
        if not params:
            return []
        return [
            ParamGroup(params, tc.encoder_lr, frozen_then(self.hear.spec.freeze_steps, tc.warmup_steps, total_steps))
        ]

    def step_loss(self, batch: dict, step: str) -> dict[str, torch.Tensor]:
        """The losses of optimisation step `step` (a name from `configure_optimizers`): the audio heard
        once (with gradients into a fine-tuned encoder in `hear_step` only), then `features_loss`."""
        learn = step == self.hear_step
        with torch.set_grad_enabled(torch.is_grad_enabled() and (learn or self.hear.passthrough)):
            audio = self.hear(batch["audio"], batch["mask"], train=learn)
        return self.features_loss({**batch, "audio": audio}, step)

    def features_loss(self, batch: dict, step: str) -> dict[str, torch.Tensor]:
        """`step_loss` on a batch whose audio is already heard (B, T, feature_dim)."""
        return self.loss(batch)

    # ------------------------------------------------------------------ interface
    def forward(self, audio: torch.Tensor, style: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """audio (B,T,F), style (B,), mask (B,T) or None (every frame real) -> motion (B,T,K)."""
        return self.motion(audio, style, self.mask_or_full(audio, mask))

    def motion(self, audio: torch.Tensor, style: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The model's own forward pass; mask (B,T) bool, True on real frames."""
        raise NotImplementedError

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        pred = self(batch["audio"], batch["style"], batch["mask"])
        parts = self.reconstruction_losses(pred, batch["motion"], batch["mask"])
        parts["loss"] = self.weighted(parts)
        return parts

    @torch.no_grad()
    def predict(
        self, audio: torch.Tensor, style: torch.Tensor, n_samples: int = 1, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B,T,audio_dim), (B,) -> (n_samples, B, T, K): the audio heard, then `predict_features`."""
        self.check_inputs(audio, style)
        mask = self.mask_or_full(audio, mask)
        return self.predict_features(self.hear(audio, mask), style, n_samples, mask)

    def predict_features(
        self, audio: torch.Tensor, style: torch.Tensor, n_samples: int, mask: torch.Tensor
    ) -> torch.Tensor:
        """`predict` on heard audio (B,T,feature_dim). Deterministic models repeat the one prediction."""
        out = self(audio, style, mask)
        return out.unsqueeze(0).expand(n_samples, *out.shape).clone()

    def compiled(self, build: bool = True):
        """The model's deterministic forward (audio (1,T,F), style (1,), mask (1,T)) -> (1,T,K) as a frozen
        TorchScript graph optimised for CPU inference (weights prepacked, ops fused: about a third less CPU
        time than eager at 4 s of audio, benchmarks/bench_infer.py), built once per model (about 1 s) and
        checked against the eager forward at two lengths; None, and the eager path is used, when that check
        fails or the model cannot be traced (a causal model: its windowed normalisation branches on the
        length in Python). Built for the weights and mode of the moment (eval only: None in training mode).
        build=False: the graph if one was built, else None. Building costs more than it saves on one short
        clip, so `animate` only uses a graph a long-running caller built (the benchmarks, a Python loop over
        many files)."""
        if self.training:
            return None
        if "_vocagan_compiled" in self.__dict__ or not build:
            return self.__dict__.get("_vocagan_compiled")
        fast = None
        if not any(getattr(m, "causal", False) for m in self.modules()):
            import warnings

            g = torch.Generator().manual_seed(0)
            probes = [torch.randn(1, n, self.audio_dim, generator=g) * 3 for n in (64, 37)]
            style = torch.zeros(1, dtype=torch.long)
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
                    mask = torch.ones(1, 64, dtype=torch.bool)
                    traced = torch.jit.trace(self, (probes[0], style, mask), check_trace=False)
                    fast = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                    for x in probes:
                        m = torch.ones(x.shape[:2], dtype=torch.bool)
                        want, got = self(x, style, m), fast(x, style, m)
                        if got.shape != want.shape or (got - want).abs().max() > 1e-4 * (1 + want.abs().max()):
                            fast = None
                            break
            except (RuntimeError, TypeError, ValueError) as e:  # a model the tracer cannot follow: eager is exact
                log(f"[{self.name}] running eagerly ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
                fast = None
        self.__dict__["_vocagan_compiled"] = fast
        return fast

    # ------------------------------------------------------------------ streaming
    def stream_start(self, style: int):
        """A live stream's state for training style index `style` (a causal model, lookahead >= 0)."""
        raise VocaganError(f"{self.label} cannot stream (only the transformer models with model.lookahead >= 0)")

    def stream_step(self, state, audio: np.ndarray) -> np.ndarray:
        """The next feature frames (n, F) -> the motion frames (m, K) that became final: the same values
        as `predict` on the whole sequence (deterministic output: the prior mean for VAE/GAN)."""
        raise NotImplementedError

    def stream_end(self, state) -> np.ndarray:
        """No more audio: the last motion frames (their missing future is the last audio frame)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared pieces
    def check_inputs(self, audio: torch.Tensor, style: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[-1] != self.audio_dim:
            raise VocaganError(f"audio features must be (B, T, {self.audio_dim}), got {tuple(audio.shape)}")
        if style.shape != audio.shape[:1]:
            raise VocaganError(f"style must be (B,) = ({audio.shape[0]},), got {tuple(style.shape)}")
        if style.numel() and (int(style.min()) < 0 or int(style.max()) >= self.n_styles):
            raise VocaganError(
                f"style index out of range 0..{self.n_styles - 1} (unseen subjects need a "
                f"training style): {style.tolist()}"
            )

    def front_end(self, d_model: int) -> ConvFrontEnd:
        return make_front_end(self.cfg, self.feature_dim, d_model)

    def reconstruction_losses(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict:
        """recon (coefficient MSE); with the decoder also mouth, velocity, lip, lip_max in mm^2 (velocity
        in mm^2 per frame^2; without the decoder it is the coefficient-space velocity MSE)."""
        pred = pred.float()
        parts = {"recon": masked_mean((pred - target).pow(2), mask)}
        pair = mask[:, 1:] & mask[:, :-1]  # (B,T-1) both frames valid
        dv = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])  # (B,T-1,K)
        dec = self.lip_decoder
        if dec is None:
            parts["velocity"] = masked_mean(dv.pow(2), pair) if dv.shape[1] else pred.sum() * 0
            return parts
        # mouth-crop vertex MSE without decoding all vertices: the PCA rows are orthonormal, so
        # mean_v |err_v|^2 = sum_k w_k * err_k^2 with w_k = (1000 * std_k)^2 / M  (mm^2)
        parts["mouth"] = masked_mean((pred - target).pow(2) @ dec.mouth_weights, mask)
        parts["velocity"] = masked_mean(dv.pow(2) @ dec.mouth_weights, pair) if dv.shape[1] else pred.sum() * 0
        parts.update(vertex_losses(pred, target, mask, dec))
        if dec.opening_basis is not None:
            parts["opening"] = opening_loss(pred, target, mask, dec, self.cfg.opening_close_boost)
        return parts

    def weighted(self, parts: dict) -> torch.Tensor:
        """Sum of `parts[name] * cfg.<name>_weight` over the reconstruction terms present."""
        c = self.cfg
        total = c.recon_weight * parts["recon"] + c.velocity_weight * parts["velocity"]
        if "lip" in parts:
            total = (
                total
                + c.mouth_weight * parts["mouth"]
                + c.lip_weight * parts["lip"]
                + c.lip_max_weight * parts["lip_max"]
            )
        if "opening" in parts and c.opening_weight:
            total = total + c.opening_weight * parts["opening"]
        return total

    @staticmethod
    def mask_or_full(audio: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return full_mask(audio) if mask is None else mask.bool()


class GenerativeModel(MotionModel):
    """A model that decodes motion from (audio, style, a code (B, code_dim)) with a N(0, I) prior on
    the code (the VAE's latent, the GAN's noise). Its deterministic output (`forward`, `predict` with
    n_samples=1) is the prior mean, a zero code; `predict` with n_samples>1 draws one code per sample."""

    @property
    def code_dim(self) -> int:
        raise NotImplementedError

    def conditioned(self, code: torch.Tensor):
        """-> (the TransformerBackbone that decodes motion, its conditioning (B, D) for code (B, code_dim))."""
        raise NotImplementedError

    def generate(self, audio: torch.Tensor, style: torch.Tensor, mask: torch.Tensor, code: torch.Tensor):
        """(B,T,F), (B,), (B,T) bool, (B, code_dim) -> motion (B,T,K)."""
        backbone, cond = self.conditioned(code)
        return backbone(audio, style, mask, cond=cond)

    def stream_start(self, style: int):
        backbone, cond = self.conditioned(torch.zeros(1, self.code_dim))  # the prior mean, as predict(n_samples=1)
        return backbone.stream_start(style, cond)

    def stream_step(self, state, audio):
        return self.conditioned(torch.zeros(1, self.code_dim))[0].stream_step(state, audio)

    def stream_end(self, state):
        backbone = self.conditioned(torch.zeros(1, self.code_dim))[0]
        return backbone.stream_step(state, np.zeros((0, self.audio_dim), np.float32), end=True)

    def motion(self, audio: torch.Tensor, style: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generate(audio, style, mask, self.prior_codes(1, audio.shape[0], audio.device)[0])

    def predict_features(
        self, audio: torch.Tensor, style: torch.Tensor, n_samples: int, mask: torch.Tensor
    ) -> torch.Tensor:
        codes = self.prior_codes(n_samples, audio.shape[0], audio.device)
        return torch.stack([self.generate(audio, style, mask, code) for code in codes])  # (S,B,T,K)

    def prior_codes(self, n_samples: int, batch: int, device) -> list[torch.Tensor]:
        """The prior mean (zeros) when one sample is asked for, so that output is deterministic;
        standard-normal draws otherwise. Each (batch, code_dim)."""
        if n_samples == 1:
            return [torch.zeros(batch, self.code_dim, device=device)]
        return [torch.randn(batch, self.code_dim, device=device) for _ in range(n_samples)]


def load_strict(module: nn.Module, state_dict: dict) -> int:
    """module.load_state_dict(strict) with a mismatch as one VocaganError line; returns the count."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise VocaganError(f"the weights do not fit ({str(e).splitlines()[0]}; different hyper-parameters?)") from None
    return len(state_dict)


def opening_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, dec: LipDecoder, close_boost: float = 0.0
) -> torch.Tensor:
    """Mean squared error of the mouth opening (mm^2): the one dimension that decides lip contact,
    which the many-vertex MSE terms weight like any other. Frames whose true lips are closed (opening
    at most `dec.closed_mm` above rest) count (1 + close_boost) times."""
    basis, offset = dec.opening_basis, dec.opening_offset
    if basis is None or offset is None:
        raise ValueError("the opening loss needs a LipDecoder built with `opening` weights")
    err = (pred.float() - target) @ basis  # (B,T) mm, linear in coefs
    weight = 1.0 + close_boost * (target @ basis + offset <= dec.closed_mm).float()
    return masked_mean(weight * err.pow(2), mask) if close_boost else masked_mean(err.pow(2), mask)


def make_front_end(cfg: ModelConfig, audio_dim: int, d_model: int) -> ConvFrontEnd:
    """The audio front end configured by the shared ModelConfig fields."""
    return ConvFrontEnd(
        audio_dim,
        d_model,
        cfg.conv_layers,
        cfg.conv_kernel,
        cfg.dropout,
        utterance_norm=cfg.utterance_norm,
        freq_masks=cfg.freq_masks,
        freq_mask_width=cfg.freq_mask_width,
        freq_shift=cfg.freq_shift,
        lookahead=cfg.lookahead,
        norm_window=cfg.norm_window,
        norm_prior=cfg.norm_prior,
    )
