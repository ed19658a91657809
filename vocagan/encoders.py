"""Pretrained speech encoders (wav2vec 2.0, XLSR, HuBERT, WavLM) from a local Hugging Face folder.

The one place that reads an encoder folder and runs it. `prep` computes frozen features through it
(`encode`), models hold a `SpeechEncoder` when the encoder is fine-tuned, checkpoints record
`EncoderInfo`. Nothing here ever reaches the network: folders are read with `local_files_only`
and `HF_HUB_OFFLINE=1`; `transformers` (the optional extra `vocagan[encoders]`) is imported only
when an encoder is used.

    info = inspect_encoder("~/models/wav2vec2-base")   # config.json + weights; one clear error otherwise
    states = encode(samples_16k, info, layer=-1)       # (T50, H) float32: frame j at time j / 50 s

Frame timing: the convolutional feature extractor turns the waveform into frames every `stride`
samples (320 at 16 kHz: 50 fps), each seeing `receptive` samples (400). The waveform is padded by
half the receptive field at the start, so encoder frame j is centred on sample j * stride, the
rule log-mel frames follow (frame j at time j * hop / sr); `frames_at_fps` then moves frames to the
model's rate exactly as `vocagan.frames.resample_frames` does for log-mel.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.utils import log

SUPPORTED = {"wav2vec2": "wav2vec 2.0 / XLSR", "hubert": "HuBERT", "wavlm": "WavLM"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INSTALL_HINT = "pip install 'vocagan[encoders]' (the pinned transformers of requirements-encoders.txt)"
CHUNK_SECONDS = 20.0  # frozen features: encoder input per pass (attention cost grows with length)
CONTEXT_SECONDS = 2.0  # ... plus this much audio on each side, whose frames are dropped


@dataclass(frozen=True)
class EncoderInfo:
    """What identifies an encoder: where it was, its architecture, a hash of its weights."""

    path: str  # the folder as given (resolved)
    model_type: str  # wav2vec2 | hubert | wavlm
    config: str  # config.json text (rebuilds the architecture without the folder)
    weights_sha256: str
    hidden_size: int
    n_layers: int  # transformer layers; hidden states are n_layers + 1 (0 = input embedding)
    sample_rate: int
    stride: int  # samples between encoder frames
    receptive: int  # samples one encoder frame sees
    normalize: bool  # zero-mean, unit-variance waveform (the folder's preprocessor_config.json)

    @property
    def fps(self) -> float:
        return self.sample_rate / self.stride

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderInfo:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def transformers_module():
    """`transformers`, offline, quiet; VocaganError with the install line when absent."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise VocaganError(
            f"pretrained speech encoders need the optional package 'transformers': {INSTALL_HINT}"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _weights_hash(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(Path(path))


def inspect_encoder(folder: str | Path | None) -> EncoderInfo:
    """Read DIR/config.json (architecture) and hash the weights; one VocaganError naming the folder
    when it is missing, not an encoder folder, or an unsupported architecture."""
    if folder is None or str(folder).strip() == "":
        raise VocaganError(
            "features.kind=encoder needs features.encoder_path=DIR (a folder written by "
            "save_pretrained: config.json + model.safetensors)"
        )
    path = Path(folder).expanduser()
    if not path.exists():
        raise VocaganError("speech encoder folder not found", path)
    if not path.is_dir():
        raise VocaganError("speech encoder must be a folder (config.json + weights), got a file", path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise VocaganError("not a Hugging Face model folder: no config.json", path)
    try:
        text = cfg_file.read_text(encoding="utf-8")
        cfg = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VocaganError(f"unreadable config.json ({type(e).__name__}: {str(e)[:80]})", cfg_file) from None
    if not isinstance(cfg, dict):
        raise VocaganError("config.json does not hold a mapping", cfg_file)
    model_type = str(cfg.get("model_type", ""))
    if model_type not in SUPPORTED:
        raise VocaganError(
            f"config.json names model_type '{model_type}'; supported speech encoders: "
            f"{', '.join(SUPPORTED)} (XLSR checkpoints are wav2vec2)",
            cfg_file,
        )
    weights = next((path / w for w in WEIGHT_FILES if (path / w).is_file()), None)
    if weights is None:
        raise VocaganError(
            f"no weights in the encoder folder (expected {' or '.join(WEIGHT_FILES)}; "
            "sharded checkpoints are not supported)",
            path,
        )
    st = weights.stat()
    digest = _weights_hash(str(weights.resolve()), st.st_size, st.st_mtime_ns)
    try:
        strides = [int(s) for s in cfg.get("conv_stride", (5, 2, 2, 2, 2, 2, 2))]
        kernels = [int(k) for k in cfg.get("conv_kernel", (10, 3, 3, 3, 3, 2, 2))]
        hidden, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
    except (KeyError, TypeError, ValueError) as e:
        raise VocaganError(f"config.json lacks a valid {e} for a {model_type} encoder", cfg_file) from None
    receptive, jump = 1, 1
    for k, s in zip(kernels, strides, strict=False):
        receptive += (k - 1) * jump
        jump *= s
    normalize = True
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        try:
            normalize = bool(json.loads(pre.read_text(encoding="utf-8")).get("do_normalize", True))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise VocaganError("unreadable preprocessor_config.json", pre) from None
    return EncoderInfo(
        path=str(path.resolve()),
        model_type=model_type,
        config=text,
        weights_sha256=digest,
        hidden_size=hidden,
        n_layers=layers,
        sample_rate=16000,
        stride=math.prod(strides),
        receptive=receptive,
        normalize=normalize,
    )


def check_layer(layer: int, info: EncoderInfo, where: str = "features.encoder_layer") -> None:
    if not -1 <= layer <= info.n_layers:
        raise VocaganError(
            f"{where}={layer} is out of range for this encoder: -1 (last) or 0..{info.n_layers} "
            f"({info.n_layers} transformer layers; 0 is the input embedding)",
            info.path,
        )


# ----------------------------------------------------------------------------- building the network
def build_network(info: EncoderInfo, pretrained: bool = True):
    """The transformers model (eval mode): pretrained weights from the folder, or the architecture
    alone from the stored config (a checkpoint's fine-tuned weights are loaded over it)."""
    tr = transformers_module()
    if pretrained:
        path = Path(info.path)
        if not path.is_dir():
            raise VocaganError("speech encoder folder not found", path)
        try:
            model = tr.AutoModel.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - transformers raises OSError/ValueError/KeyError/... for broken folders
            raise VocaganError(
                f"cannot load the speech encoder ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                path,
            ) from None
    else:
        cfg = dict(json.loads(info.config))
        model_type = cfg.pop("model_type")
        model = tr.AutoModel.from_config(tr.AutoConfig.for_model(model_type, **cfg))
    model.eval()
    return model


_LOADING = threading.Lock()  # prepare's two reader threads must not both load the network


def _frozen_network(path: str, sha: str):
    with _LOADING:
        return _load_frozen(path, sha)


@functools.lru_cache(maxsize=2)
def _load_frozen(path: str, sha: str):
    import torch

    net = build_network(inspect_encoder(path))
    for p in net.parameters():
        p.requires_grad_(False)
    log(
        f"[encoder] {SUPPORTED[net.config.model_type]} from {path}: {sum(p.numel() for p in net.parameters()):,} "
        "parameters, frozen"
    )
    return net, torch


def hidden_states(net, wave, info: EncoderInfo, attention_mask=None):
    """wave (B, N) float at info.sample_rate -> (L + 1, B, T50, H): every layer's hidden states, frame
    j centred on sample j * stride (the waveform is padded by half the receptive field)."""
    import torch

    half = info.receptive // 2
    wave = torch.nn.functional.pad(wave, (half, info.receptive - half))
    if attention_mask is not None:
        attention_mask = torch.nn.functional.pad(attention_mask, (half, info.receptive - half), value=1)
    kwargs = (
        {"attention_mask": attention_mask}
        if attention_mask is not None and getattr(net.config, "feat_extract_norm", "group") == "layer"
        else {}
    )
    out = net(wave, output_hidden_states=True, **kwargs)
    return torch.stack(out.hidden_states)  # (L+1, B, T50, H)


def normalise_wave(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def encode(x: np.ndarray, info: EncoderInfo, layer: int = -1, all_layers: bool = False) -> np.ndarray:
    """Frozen features of mono audio already at info.sample_rate: (T50, H) for one layer (-1: last),
    or (T50, (L + 1) * H) with every layer side by side (all_layers, for a learned weighted sum).
    Long audio runs in CHUNK_SECONDS pieces with CONTEXT_SECONDS of audio on each side."""
    net, torch = _frozen_network(info.path, info.weights_sha256)
    x = np.asarray(x, np.float32).reshape(-1)
    if info.normalize:
        x = normalise_wave(x)
    n_frames = max(1, int(math.ceil(len(x) / info.stride)))
    chunk = int(CHUNK_SECONDS * info.fps)
    context = int(CONTEXT_SECONDS * info.fps)
    pieces = []
    with torch.no_grad():
        for f0 in range(0, n_frames, chunk):
            f1 = min(n_frames, f0 + chunk)
            a, b = max(0, f0 - context), min(n_frames, f1 + context)
            wave = torch.from_numpy(np.ascontiguousarray(x[a * info.stride : b * info.stride])).unsqueeze(0)
            h = hidden_states(net, wave, info)[:, 0]  # (L+1, T, H)
            h = h[:, f0 - a : f0 - a + (f1 - f0)]
            if h.shape[1] < f1 - f0:  # pad by the last frame
                h = torch.cat([h, h[:, -1:].expand(-1, f1 - f0 - h.shape[1], -1)], 1)
            pieces.append(h.permute(1, 0, 2).reshape(f1 - f0, -1) if all_layers else h[layer])
    return torch.cat(pieces).numpy().astype(np.float32)
