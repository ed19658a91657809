"""The model registry: one name -> one class. Adding a model is one file and one line here.

    model = build({"name": "transformer_gan", "d_model": 96}, audio_dim=80, motion_dim=32, n_styles=8)
"""

from __future__ import annotations

from vocagan.errors import VocaganError
from vocagan.models.base import MotionModel, make_config
from vocagan.models.rnn import RNNModel
from vocagan.models.transformer import TransformerModel
from vocagan.models.transformer_gan import TransformerGANModel
from vocagan.models.transformer_vae import TransformerVAEModel

MODELS: dict[str, type[MotionModel]] = {
    "rnn": RNNModel,
    "transformer": TransformerModel,
    "transformer_vae": TransformerVAEModel,
    "transformer_gan": TransformerGANModel,
}


def model_class(name: str) -> type[MotionModel]:
    if name not in MODELS:
        raise VocaganError(f"unknown model '{name}'; valid models: {', '.join(MODELS)}")
    return MODELS[name]


def build(model_cfg: dict, audio_dim: int, motion_dim: int, n_styles: int) -> MotionModel:
    """Build a model from `{"name": ..., <hyper-parameters>}` (the `model` section of a Config)."""
    values = dict(model_cfg or {})
    if "name" not in values:
        raise VocaganError(f"model config needs a 'name'; valid models: {', '.join(MODELS)}")
    name = values.pop("name")
    cls = model_class(name)
    cfg = make_config(cls.Config, values, name)
    if n_styles < 1:
        raise VocaganError("no training subjects (styles): the train split is empty")
    try:
        return cls(cfg, audio_dim, motion_dim, n_styles)
    except ValueError as e:  # e.g. d_model not divisible by n_heads
        raise VocaganError(f"invalid hyper-parameters for model '{name}': {e}") from None


__all__ = ["MODELS", "MotionModel", "build", "model_class"]
