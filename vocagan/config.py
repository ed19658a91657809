"""Typed configuration: dataclass defaults in code, experiments in small YAML files, dotted overrides.

    cfg = load_config("configs/transformer_gan.yaml", overrides=["train.epochs=5", "model.d_model=64"])

Unknown keys (in YAML or overrides) fail loudly with the list of valid keys. Model-specific
hyper-parameters live in `cfg.model` (a dict: `name` plus that model's own config fields); the
model registry validates them against the model's config dataclass (`vocagan.models.build`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vocagan.errors import VocaganError

# The standard VOCASET split. The train order is the one-hot "style" order used by VOCA and peers.
TRAIN_SUBJECTS = [
    "FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170725_00137_TA",
    "FaceTalk_170915_00223_TA", "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
    "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA",
]
VAL_SUBJECTS = ["FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"]
TEST_SUBJECTS = ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"]
SPLITS = ("train", "val", "test")   # DataConfig.<split>_subjects / <split>_sentences name each one
DEFAULT_MODEL = "transformer_gan"


@dataclass
class DataConfig:
    """Where the VOCASET files are and which sequences form each split.

    `root` is a folder holding the standard file names; any explicit path overrides it.
    """

    root: str | None = None
    data_verts_path: str | None = None        # data_verts.npy
    audio_pkl_path: str | None = None         # processed_audio_deepspeech.pkl
    raw_audio_path: str | None = None         # raw_audio_fixed.pkl
    idx_map_path: str | None = None           # subj_seq_to_idx.pkl
    template_path: str | None = None          # templates.pkl
    template_ply_path: str | None = None      # FLAME_sample.ply (faces, mouth region geometry)
    masks_path: str | None = None             # FLAME_masks.pkl (lips/forehead/eye_region/...)
    mouth_indices_path: str | None = None     # optional .npy/.txt of mouth vertex indices
    source_fps: int = 60                      # capture rate of data_verts.npy
    fps: int = 30                             # training/evaluation rate (must divide source_fps)
    train_subjects: list[str] = field(default_factory=lambda: list(TRAIN_SUBJECTS))
    val_subjects: list[str] = field(default_factory=lambda: list(VAL_SUBJECTS))
    test_subjects: list[str] = field(default_factory=lambda: list(TEST_SUBJECTS))
    train_sentences: list[int] = field(default_factory=lambda: list(range(1, 41)))
    val_sentences: list[int] = field(default_factory=lambda: list(range(21, 41)))
    test_sentences: list[int] = field(default_factory=lambda: list(range(21, 41)))


@dataclass
class FeatureConfig:
    """Audio features. `logmel` (default) is computed from raw audio, so `animate` works on any wav;
    `deepspeech` reads the precomputed (T60, 16, 29) windows (cannot featurise new audio);
    `wav2vec2` runs a local pretrained encoder folder (`encoder_path`)."""

    kind: str = "logmel"
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    fmin: float = 40.0
    fmax: float = 8000.0
    encoder_path: str | None = None


@dataclass
class PrepConfig:
    """Preprocessing: region crop, PCA, normalisation, cache."""

    region: str = "mouth"            # "mouth" (cropped Δmesh) or "face" (all vertices)
    pca_variance: float = 0.999      # keep the fewest components explaining this fraction...
    pca_max_components: int = 64     # ...but never more than this
    pca_components: int = 0          # >0 forces an exact count (overrides the two above)
    normalize: bool = True           # z-score PCA coefficients with train-split stats
    cache_dir: str | None = None     # default: $VOCAGAN_CACHE or ~/.cache/vocagan


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    grad_clip: float = 1.0
    patience: int = 30               # early stopping on validation LVE (epochs without improvement)
    crop_frames: int = 120           # random training crops (frames at cfg.data.fps); 0 = whole sequences
    vtlp: float = 0.0                # vocal-tract-length perturbation of training features: warp in [1-vtlp, 1+vtlp]
    seed: int = 0
    device: str = "auto"
    bf16: bool = True                # bf16 autocast on CUDA only
    num_workers: int = 0
    checkpoint_every: int = 1        # epochs between last.pt checkpoints (for --resume)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    prep: PrepConfig = field(default_factory=PrepConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": DEFAULT_MODEL})
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, values: dict, where: str):
    """Instantiate dataclass `cls` from a dict, recursing into nested dataclasses; reject unknown keys."""
    if not isinstance(values, dict):
        raise VocaganError(f"config section '{where}' must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(str(k) for k in set(values) - set(known))  # YAML keys may be None/int
    if unknown:
        raise VocaganError(f"unknown config key(s) {', '.join(where + '.' + k if where else k for k in unknown)}; "
                           f"valid keys in '{where or 'top level'}': {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = value
    obj = cls(**kwargs)
    _check_types(obj, where)
    return obj


def _check_types(obj, where: str) -> None:
    """Coerce/validate scalar fields so `train.epochs=abc` fails here, not deep in training."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        hint = hints[f.name]
        key = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(hint) or value is None:
            continue
        if typing.get_origin(hint) is list:  # list[str] / list[int]: flat lists of that type only
            item = typing.get_args(hint)[0]
            if not isinstance(value, list) or not all(type(v) is item for v in value):
                raise VocaganError(f"config key {key} must be a list of {item.__name__}, got "
                                   f"{type(value).__name__} {str(value)[:60] if not isinstance(value, list) else ''}")
            continue
        base = {int: int, float: float, bool: bool, str: str}
        target = next((t for t in (bool, int, float, str) if _admits(hint, t)), None)
        if target is None:
            continue
        if target in (int, float) and isinstance(value, str):
            value = _number_or_text(value)  # YAML 1.1 reads "3e-4" as a string
        if target is bool and not isinstance(value, bool):
            raise VocaganError(f"config key {key} must be true/false, got {value!r}")
        if target in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise VocaganError(f"config key {key} must be a number, got {value!r}")
        if target is int and isinstance(value, float):
            if not value.is_integer():
                raise VocaganError(f"config key {key} must be an integer, got {value!r}")
            value = int(value)
        setattr(obj, f.name, base[target](value))


def _admits(hint, t) -> bool:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (list, dict):
        return False
    return hint is t or t in args


def _number_or_text(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_value(text: str) -> Any:
    """Parse an override value: 5 -> int, 1e-3 -> float, true -> bool, [1,2] -> list (YAML rules)."""
    value = _number_or_text(text.strip())
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `a.b=value` strings to a nested dict (in place) and return it."""
    for item in overrides or []:
        if "=" not in item:
            raise VocaganError(f"override '{item}' must look like section.key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise VocaganError(f"override '{item}': '{p}' is not a section")
        node[parts[-1]] = parse_value(text)
    return raw


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise VocaganError("config file not found", path)
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as e:
        raise VocaganError(f"not UTF-8 text (byte {e.start})", path) from None
    except RecursionError:
        raise VocaganError("invalid YAML (nested too deeply)", path) from None
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "invalid YAML"
        raise VocaganError(f"invalid YAML ({first})", path) from None
    if not isinstance(raw, dict):
        raise VocaganError("a config file must hold a mapping of sections", path)
    if _too_large(raw, 100_000):  # YAML aliases can expand a 1 kB file into 10^9 list items
        raise VocaganError("config holds more than 100000 values (YAML alias expansion?)", path)
    return raw


def _too_large(obj, limit: int) -> bool:
    """True when `obj` (aliases counted each time they are reached) has more than `limit` nodes."""
    stack, seen = [obj], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> Config:
    """Defaults <- `base` dict <- YAML file <- dotted overrides."""
    raw: dict = {"model": {"name": DEFAULT_MODEL}}
    for layer in (base or {}, load_yaml(path) if path else {}):
        _merge(raw, layer)
    if path:
        _build_or_error(raw, path)  # a bad file is named in the error; a bad override is not the file's fault
    apply_overrides(raw, overrides or [])
    return _build_or_error(raw, None)


def _build_or_error(raw: dict, path) -> Config:
    try:
        return _build(Config, raw, "")
    except VocaganError as e:
        raise VocaganError(str(e), path) from None
    except TypeError as e:  # e.g. a scalar where a section was expected
        raise VocaganError(f"invalid config: {e}", path) from None


def _merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def config_from_dict(d: dict) -> Config:
    """Rebuild a Config saved by `Config.to_dict()` (e.g. from a checkpoint)."""
    return _build(Config, d, "")


def config_differences(saved: dict, cfg: Config, ignore=frozenset()) -> list[str]:
    """Dotted keys ("train.lr") whose value differs between a config dict saved by an earlier run
    (`Config.to_dict()`, e.g. in last.pt) and `cfg`, except those in `ignore`. Keys added to Config
    since that run count as their defaults; a key since removed shows up as a difference."""
    try:
        saved = config_from_dict(saved).to_dict()
    except VocaganError:
        pass
    old, new = _flatten(saved), _flatten(cfg.to_dict())
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ignore)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out
