"""Self-describing checkpoints: everything evaluate/animate/render need, and nothing that runs code.

A checkpoint is a `torch.save` of plain containers (dict, list, str, int, float, bool, None) and
tensors, loaded with `torch.load(..., weights_only=True)` so a tampered file cannot execute code.
It holds:
  format/version          "vocagan-checkpoint", 1
  model                   {"name", "config", "audio_dim", "motion_dim", "n_styles", "audio"} (model.describe();
                          "audio" says what the model hears per frame, with the fine-tuned encoder's
                          config, weights hash and original folder when it has one)
  state_dict              model weights (a GAN's discriminator included)
  config                  the whole resolved Config as a JSON string
  stats                   Prepared.stats_dict(): regions, PCA basis, normalisation, templates, faces,
                          (a frozen encoder's config, weights hash and folder in its meta["encoder"]),
                          styles, fps, feature spec (numpy arrays stored as tensors, tagged)
  epoch, metrics          training epoch and validation metrics when saved
  extra                   anything else the trainer adds (optimizer/scheduler/RNG state in last.pt)
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocagan.config import Config, FeatureConfig, config_from_dict
from vocagan.errors import VocaganError
from vocagan.utils import atomic_path, existing_file

FORMAT = "vocagan-checkpoint"
VERSION = 1
_ARRAY, _STR_ARRAY = "__ndarray__", "__ndarray_str__"


# ----------------------------------------------------------------------------- plain containers
def to_storable(obj: Any) -> Any:
    """numpy arrays -> tagged tensors, numpy scalars -> Python, dataclasses/tuples -> dict/list."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "US":  # strings cannot be tensors
            return {_STR_ARRAY: obj.astype(str).tolist()}
        if obj.dtype.kind == "O":
            raise TypeError("object arrays cannot be stored in a checkpoint")
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_storable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        # int keys stay ints (optimizer state is keyed by parameter index)
        return {(k if isinstance(k, (str, int)) else str(k)): to_storable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_storable(v) for v in obj]
    return obj


def from_storable(obj: Any) -> Any:
    """Inverse of `to_storable` (tagged tensors back to numpy arrays)."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return obj[_ARRAY].numpy()
        if set(obj) == {_STR_ARRAY}:
            return np.asarray(obj[_STR_ARRAY])
        return {k: from_storable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_storable(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- save
def save_checkpoint(
    path: str | Path,
    model,
    config: Config,
    prepared_stats: dict,
    extra: dict | None = None,
    epoch: int = 0,
    metrics: dict | None = None,
) -> Path:
    """Write `path` atomically. `model` may be wrapped (DDP): its `.module` is saved."""
    model = getattr(model, "module", model)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": json.dumps(model.describe()),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": json.dumps(config.to_dict()),
        "stats": to_storable(prepared_stats),
        "epoch": int(epoch),
        "metrics": json.dumps(to_storable(metrics or {})),
        "extra": to_storable(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


# ----------------------------------------------------------------------------- load
@dataclass
class Checkpoint:
    """What a checkpoint describes, besides the weights."""

    path: Path
    model_name: str
    model_config: dict  # the model's hyper-parameters (its Config dataclass as a dict)
    audio_dim: int
    motion_dim: int
    n_styles: int
    config: Config  # the whole resolved training Config
    stats: dict  # Prepared.stats_dict() with numpy arrays
    epoch: int
    metrics: dict
    extra: dict = field(default_factory=dict)
    audio: dict | None = None  # model.describe()["audio"]: what the model hears per frame
    _prepared: Any = None

    @property
    def meta(self) -> dict:
        """The preprocessing facts (fps, styles, regions source, feature spec, ...)."""
        meta = self.stats.get("meta", {})
        return json.loads(meta) if isinstance(meta, str) else dict(meta)

    @property
    def styles(self) -> list[str]:
        return [str(s) for s in self.meta.get("styles", [])]

    @property
    def fps(self) -> int:
        return int(self.meta.get("fps", self.config.data.fps))

    @property
    def encoder(self) -> dict | None:
        """The pretrained speech encoder the model hears through (EncoderInfo as a dict: model_type,
        config, weights_sha256, path), frozen or fine-tuned; None for other features."""
        if "encoder" in self.meta:
            return dict(self.meta["encoder"])
        return dict(self.audio["encoder"]) if self.audio and self.audio.get("encoder") else None

    @property
    def features(self) -> FeatureConfig:
        """The audio feature spec the model was trained on."""
        return self.config.features

    @property
    def prepared(self):
        """A Prepared-like object rebuilt from the stats (decode, to_vertices, regions, templates...)."""
        if self._prepared is None:
            from vocagan.prep.prepared import Prepared

            self._prepared = Prepared.from_stats_dict(self.stats)
        return self._prepared

    def style_index(self, subject: str) -> int:
        if subject not in self.styles:
            raise VocaganError(
                f"style '{subject}' is not a training subject of this model; choose one of: {', '.join(self.styles)}",
                self.path,
            )
        return self.styles.index(subject)


def read_checkpoint(path: str | Path) -> dict:
    """The raw payload (weights_only); a corrupt or foreign file -> VocaganError naming it."""
    path = Path(path)
    existing_file(path, "checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file, disallowed pickled object, ...
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        if "Weights only load failed" in str(e):  # torch's advice (weights_only=False) would run the code
            detail = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), "")[:160]
            raise VocaganError(
                f"not a readable vocagan checkpoint: it holds objects a checkpoint never contains, "
                f"refused without running them ({detail}); corrupt or tampered file?",
                path,
            ) from None
        reason = lines[0][:160] if lines else "no message"
        raise VocaganError(
            f"not a readable vocagan checkpoint: corrupt, truncated or another kind of file ({type(e).__name__}: "
            f"{reason})",
            path,
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise VocaganError("not a vocagan checkpoint (no 'format: vocagan-checkpoint' marker)", path)
    if int(payload.get("version", 0)) > VERSION:
        raise VocaganError(
            f"checkpoint version {payload.get('version')} is newer than this vocagan "
            f"supports ({VERSION}); upgrade vocagan",
            path,
        )
    missing = [k for k in ("model", "state_dict", "config", "stats") if k not in payload]
    if missing:
        raise VocaganError(f"checkpoint lacks {', '.join(missing)}", path)
    return payload


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """-> (model in eval mode on `device`, Checkpoint)."""
    from vocagan.models import AudioInput, build

    path = Path(path)
    payload = read_checkpoint(path)
    try:
        desc = json.loads(payload["model"])
        saved = json.loads(payload["config"])
        saved["model"] = {"name": desc["name"], **desc["config"]}  # the model exactly as built (every field)
        cfg = config_from_dict(saved)
        metrics = json.loads(payload.get("metrics", "{}"))
        audio = AudioInput.from_dict(desc.get("audio"), desc["audio_dim"])  # absent before encoders existed
        model = build(cfg.model, desc["audio_dim"], desc["motion_dim"], desc["n_styles"], audio)
    except VocaganError as e:  # e.g. an unknown model name or config key: say which checkpoint
        raise VocaganError(str(e) if e.path else f"checkpoint describes an invalid model: {e}", path) from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # JSONDecodeError is a ValueError
        raise VocaganError(f"checkpoint metadata is corrupt ({type(e).__name__}: {e})", path) from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        raise VocaganError(f"weights do not match model '{desc['name']}' ({str(e).splitlines()[0]})", path) from None
    model.to(device).eval()
    ckpt = Checkpoint(
        path=path,
        model_name=desc["name"],
        model_config=desc["config"],
        audio_dim=desc["audio_dim"],
        motion_dim=desc["motion_dim"],
        n_styles=desc["n_styles"],
        config=cfg,
        stats=from_storable(payload["stats"]),
        epoch=int(payload.get("epoch", 0)),
        metrics=metrics,
        extra=from_storable(payload.get("extra", {})),
        audio=desc.get("audio"),
    )
    return model, ckpt


def warm_start(model, path: str | Path, prepared) -> tuple[int, Checkpoint]:
    """Initial weights for `model` from the checkpoint at `path` (`train.init_from`): the same kind of
    model, or one the model can start from (`MotionModel.warm_start`, e.g. a GAN's generator from a
    Transformer). It must have been trained on the same prepared data (PCA basis, normalisation,
    crop, templates): on any other its weights would mean something else. -> (tensors loaded, Checkpoint)."""
    from vocagan.prep.prepared import STAT_ARRAYS

    source, ckpt = load_checkpoint(path)
    ours = prepared.stats_dict()
    differ = [k for k in STAT_ARRAYS if not np.array_equal(np.asarray(ckpt.stats[k]), np.asarray(ours[k]))]
    if differ:
        raise VocaganError(
            f"train.init_from: trained on other prepared data ({', '.join(differ)} differ); start from a "
            "checkpoint of the same data, split and preprocessing",
            path,
        )
    try:
        return model.warm_start(source.state_dict(), ckpt.model_name), ckpt
    except VocaganError as e:
        raise VocaganError(str(e), path) from None


# ----------------------------------------------------------------------------- RNG state (for --resume)
def rng_state(generator: torch.Generator | None = None) -> dict:
    """torch/numpy/python (and CUDA) global RNG states, plus a data-loader generator's."""
    state = {"torch": torch.get_rng_state(), "numpy": list(np.random.get_state()), "python": random.getstate()}
    if generator is not None:
        state["loader"] = generator.get_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Inverse of `rng_state` (accepts the lists a checkpoint round trip makes of tuples)."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
