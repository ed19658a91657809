"""Typed configuration: dataclass defaults in code, experiments in small YAML files, dotted overrides.

    cfg = load_config("configs/transformer_gan.yaml", overrides=["train.epochs=5", "model.d_model=64"])
    cfg.model            # TransformerGANConfig(d_model=64, ...): the model's own Config, every field set
    cfg.model_name       # "transformer_gan"
    cfg.to_dict()        # every field of every section, the model's name included (config.yaml, checkpoints)

One validator for every section, the model's included (`build_section`): unknown keys fail with the
valid ones, values are coerced to the field's type (YAML reads "3e-4" as text), and each field's
admissible range or choices (declared once, next to its default, with `option`) are checked. The
model section is resolved to the Config dataclass of the model it names (the registry in
`vocagan.models`), so a run's config.yaml and every checkpoint hold every hyper-parameter with its
value: a changed library default can never pass unnoticed.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vocagan.errors import VocaganError
from vocagan.fields import build_section, number_or_text, option

# The standard VOCASET split. The train order is the one-hot "style" order used by VOCA and peers.
TRAIN_SUBJECTS = [
    "FaceTalk_170728_03272_TA",
    "FaceTalk_170904_00128_TA",
    "FaceTalk_170725_00137_TA",
    "FaceTalk_170915_00223_TA",
    "FaceTalk_170811_03274_TA",
    "FaceTalk_170913_03279_TA",
    "FaceTalk_170904_03276_TA",
    "FaceTalk_170912_03278_TA",
]
VAL_SUBJECTS = ["FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"]
TEST_SUBJECTS = ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"]
SPLITS = ("train", "val", "test")  # DataConfig.<split>_subjects / <split>_sentences name each one
DEFAULT_MODEL = "transformer_gan"


@dataclass
class DataConfig:
    """Where the VOCASET files are and which sequences form each split.

    `root` is a folder holding the standard file names; any explicit path overrides it.
    """

    root: str | None = None
    data_verts_path: str | None = None  # data_verts.npy
    audio_pkl_path: str | None = None  # processed_audio_deepspeech.pkl
    raw_audio_path: str | None = None  # raw_audio_fixed.pkl
    idx_map_path: str | None = None  # subj_seq_to_idx.pkl
    template_path: str | None = None  # templates.pkl
    template_ply_path: str | None = None  # FLAME_sample.ply (faces, mouth region geometry)
    masks_path: str | None = None  # FLAME_masks.pkl (lips/forehead/eye_region/...)
    mouth_indices_path: str | None = None  # optional .npy/.txt of mouth vertex indices
    source_fps: int = option(60, lo=1, hi=1000)  # capture rate of data_verts.npy
    fps: int = option(30, lo=1, hi=1000)  # training/evaluation rate (must divide source_fps)
    train_subjects: list[str] = option(factory=lambda: list(TRAIN_SUBJECTS))
    val_subjects: list[str] = option(factory=lambda: list(VAL_SUBJECTS))
    test_subjects: list[str] = option(factory=lambda: list(TEST_SUBJECTS))
    train_sentences: list[int] = option(factory=lambda: list(range(1, 41)))
    val_sentences: list[int] = option(factory=lambda: list(range(21, 41)))
    test_sentences: list[int] = option(factory=lambda: list(range(21, 41)))

    def check(self, where: str) -> None:
        if self.source_fps % self.fps:
            raise VocaganError(
                f"{where}.fps={self.fps} must divide {where}.source_fps={self.source_fps} (e.g. 60, 30, 20, 15)"
            )


@dataclass
class FeatureConfig:
    """Audio features: what a model hears (`vocagan.prep.features`). Computed from raw audio, so
    `animate` works on any recording:
    - `logmel` (default): a log-mel spectrogram;
    - `phonetic`: per-frame phone one-hots from PocketSphinx's phone recogniser (CMU's US-English
      acoustic model, trained on real speech; `vocagan.prep.phonetic`), beside the log-mel
      spectrogram when `phonetic_logmel` is true;
    - `encoder`: a pretrained speech encoder (wav2vec 2.0 / XLSR, HuBERT, WavLM) from the local
      Hugging Face folder `encoder_path` (optional extra: pip install 'vocagan[encoders]'): the
      hidden state `encoder_layer`, or a learned weighted sum of all of them (`encoder_mix`);
      frozen features computed once by prepare, or fine-tuned inside the model (`encoder_finetune`,
      with train.encoder_lr and train.encoder_freeze_steps).
    `deepspeech` reads the precomputed (T60, 16, 29) windows of processed_audio_deepspeech.pkl
    (such a model cannot featurise new audio)."""

    kind: str = option("logmel", choices=("logmel", "deepspeech", "phonetic", "encoder"))
    sample_rate: int = option(16000, lo=1000, hi=192000)
    n_fft: int = option(512, lo=16, hi=8192)
    win_length: int = option(400, lo=16, hi=8192)
    hop_length: int = option(160, lo=1, hi=8192)
    n_mels: int = option(80, lo=1, hi=512)
    fmin: float = option(40.0, lo=0.0)
    fmax: float = option(8000.0, lo=0.0, lo_open=True)
    phonetic_logmel: bool = False  # kind phonetic: the log-mel spectrogram beside the phone one-hots
    encoder_path: str | None = None  # kind encoder: folder with config.json + model.safetensors (save_pretrained)
    encoder_layer: int = option(-1, lo=-1, hi=4096)  # hidden state used: -1 last, 0 the CNN embedding, k layer k
    encoder_mix: bool = False  # a learned softmax-weighted sum of every hidden state instead of one layer
    encoder_finetune: bool = False  # train the encoder inside the model (else frozen features cached by prepare)

    def check(self, where: str) -> None:
        if self.fmin >= self.fmax:
            raise VocaganError(f"{where}.fmin={self.fmin} must be below {where}.fmax={self.fmax}")
        if self.kind == "encoder" and not self.encoder_path:
            raise VocaganError(
                f"{where}.kind=encoder needs {where}.encoder_path=DIR (a local Hugging Face folder: "
                "config.json + model.safetensors, as save_pretrained writes)"
            )
        if self.encoder_mix and self.encoder_layer != -1:
            raise VocaganError(
                f"{where}.encoder_mix=true (a learned sum of every layer) and "
                f"{where}.encoder_layer={self.encoder_layer} (one layer) exclude each other"
            )


@dataclass
class PrepConfig:
    """Preprocessing: region crop, PCA, normalisation, cache."""

    region: str = option("mouth", choices=("mouth", "face"))  # cropped Δmesh of the mouth, or all vertices
    pca_variance: float = option(0.999, lo=0.0, hi=1.0, lo_open=True)  # keep the fewest components explaining this...
    pca_max_components: int = option(64, lo=1, hi=100000)  # ...but never more than this
    pca_components: int = option(0, lo=0, hi=100000)  # >0 forces an exact count (overrides the two above)
    normalize: bool = True  # z-score PCA coefficients with train-split stats
    cache_dir: str | None = None  # default: $VOCAGAN_CACHE or ~/.cache/vocagan


@dataclass
class TrainConfig:
    epochs: int = option(100, lo=1, hi=1000000)
    batch_size: int = option(32, lo=1, hi=100000)
    lr: float = option(1e-3, lo=0.0, hi=10.0, lo_open=True)
    weight_decay: float = option(1e-2, lo=0.0, hi=10.0)
    warmup_steps: int = option(100, lo=0)
    grad_clip: float = option(1.0, lo=0.0)  # 0: no clipping
    patience: int = option(30, lo=0)  # early stopping on validation LVE (epochs without improvement; 0: off)
    crop_frames: int = option(120, lo=0)  # random training crops (frames at cfg.data.fps); 0 = whole sequences
    vtlp: float = option(0.0, lo=0.0, hi=0.5, hi_open=True)  # vocal-tract-length perturbation: warp in [1-vtlp, 1+vtlp]
    seed: int = option(0, lo=0, hi=2**32 - 1)
    device: str = "auto"
    bf16: bool = True  # bf16 autocast on CUDA only
    num_workers: int = option(0, lo=0, hi=256)
    checkpoint_every: int = option(1, lo=1)  # epochs between last.pt checkpoints (for --resume)
    encoder_lr: float = option(3e-5, lo=0.0, hi=10.0)  # peak learning rate of a fine-tuned speech encoder
    encoder_freeze_steps: int = option(200, lo=0)  # training steps before a fine-tuned encoder starts to move
    # initial weights: a checkpoint trained on the same prepared data, of this model or of one it can
    # start from (a GAN's generator from a Transformer); None: random initialisation
    init_from: str | None = None


@dataclass
class Config:
    """The whole configuration; `model` is the model's own Config dataclass (see vocagan.models)."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    prep: PrepConfig = field(default_factory=PrepConfig)
    model: Any = field(default_factory=lambda: model_config(DEFAULT_MODEL))
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def model_name(self) -> str:
        from vocagan.models import model_name

        return model_name(self.model)

    def to_dict(self) -> dict:
        """Every field of every section; the model section starts with its `name`."""
        d = asdict(self)
        d["model"] = {"name": self.model_name, **d["model"]}
        return d


SECTIONS = [f.name for f in fields(Config)]


def model_config(name: str, values: dict | None = None):
    """The Config dataclass of model `name` (the registry in vocagan.models), built and checked from
    `values` (its hyper-parameters, without "name")."""
    from vocagan.models import model_class

    return build_section(model_class(name).Config, dict(values or {}), "model")


def _build_config(raw: dict) -> Config:
    if not isinstance(raw, dict):
        raise VocaganError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in set(raw) - set(SECTIONS))
    if unknown:
        raise VocaganError(f"unknown config section(s) {', '.join(unknown)}; valid sections: {', '.join(SECTIONS)}")
    kwargs = {}
    for name, value in raw.items():
        if name == "model":
            if not isinstance(value, dict):
                raise VocaganError(f"config section 'model' must be a mapping, got {type(value).__name__}")
            values = dict(value)
            kwargs["model"] = model_config(str(values.pop("name", DEFAULT_MODEL)), values)
        else:
            kwargs[name] = build_section(typing.get_type_hints(Config)[name], value, name)
    return Config(**kwargs)


# ----------------------------------------------------------------------------- YAML and overrides
def parse_value(text: str) -> Any:
    """Parse an override value: 5 -> int, 1e-3 -> float, true -> bool, [1,2] -> list (YAML rules)."""
    value = number_or_text(text.strip())
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
    if path.is_dir():
        raise VocaganError("expected a config file, got a folder", path)
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


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    defaults: dict | None = None,
    given: dict | None = None,
) -> Config:
    """Library defaults <- `defaults` (a command's own starting values) <- the YAML file <- `given`
    (values from command-line flags) <- dotted overrides (`--set`): each layer wins over the ones before."""
    raw: dict = {}
    for layer in (defaults or {}, load_yaml(path) if path else {}):
        _merge(raw, layer)
    if path:
        _build_or_error(raw, path)  # a bad file is named in the error; a bad override is not the file's fault
    _merge(raw, given or {})
    apply_overrides(raw, overrides or [])
    return _build_or_error(raw, None)


def _build_or_error(raw: dict, path) -> Config:
    try:
        return _build_config(raw)
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
    """Rebuild a Config saved by `Config.to_dict()` (config.yaml, a checkpoint)."""
    return _build_config(d)


def config_differences(saved: dict, cfg: Config, ignore=frozenset()) -> list[str]:
    """Dotted keys ("train.lr") whose value differs between a config dict saved by an earlier run
    (`Config.to_dict()`, e.g. in last.pt) and `cfg`, except those in `ignore`. A key the saved dict
    does not hold counts as a difference: the run was made before that setting was recorded (or
    existed), so nothing says it ran with today's value."""
    old, new = _flatten(saved), _flatten(cfg.to_dict())
    return sorted(k for k in set(old) | set(new) if k not in ignore and (k not in old or old.get(k) != new.get(k)))


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out
