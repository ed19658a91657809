"""The model registry: the one list of model names. CLI choices, report labels, the seed scripts
(`main_<name>.py`) and `compare` all read it. Adding a model is one file in this folder (a
`MotionModel` subclass with `name`, `label` and a `Config` dataclass), one line here and one YAML
in configs/.

    cfg = load_config(overrides=["model.name=transformer_gan", "model.d_model=96"])   # typed, checked
    model = build(cfg.model, audio_dim=80, motion_dim=32, n_styles=8)
"""

from __future__ import annotations

from vocagan.errors import VocaganError
from vocagan.models.audio import AudioInput
from vocagan.models.base import ModelConfig, MotionModel
from vocagan.models.rnn import RNNModel
from vocagan.models.transformer import TransformerModel
from vocagan.models.transformer_gan import TransformerGANModel
from vocagan.models.transformer_vae import TransformerVAEModel

MODELS: dict[str, type[MotionModel]] = {
    cls.name: cls
    for cls in (
        RNNModel,
        TransformerModel,
        TransformerVAEModel,
        TransformerGANModel,
    )
}


def model_class(name: str) -> type[MotionModel]:
    if name not in MODELS:
        raise VocaganError(f"unknown model '{name}'; valid models: {', '.join(MODELS)}")
    return MODELS[name]


def model_name(cfg: ModelConfig) -> str:
    """The registered name of the model a Config dataclass instance belongs to."""
    for name, cls in MODELS.items():
        if type(cfg) is cls.Config:
            return name
    raise VocaganError(f"{type(cfg).__name__} is not the Config of a registered model ({', '.join(MODELS)})")


def label(name: str) -> str:
    """How reports name a model ("Transformer+GAN"); other entries (baselines) keep their name."""
    return MODELS[name].label if name in MODELS else name


def build(
    cfg: ModelConfig, audio_dim: int, motion_dim: int, n_styles: int, audio: AudioInput | None = None
) -> MotionModel:
    """The model whose Config `cfg` is (a `Config.model`, already checked by vocagan.config); `audio`
    says what its per-frame audio input holds (default: audio_dim precomputed features)."""
    name = model_name(cfg)
    if n_styles < 1:
        raise VocaganError("no training subjects (styles): the train split is empty")
    try:
        return MODELS[name](cfg, audio_dim, motion_dim, n_styles, audio)
    except ValueError as e:  # e.g. d_model not divisible by n_heads
        raise VocaganError(f"invalid hyper-parameters for model '{name}': {e}") from None


__all__ = ["MODELS", "AudioInput", "ModelConfig", "MotionModel", "build", "label", "model_class", "model_name"]
