"""Inference speed of `animate`: real-time factor (compute seconds / audio seconds) per model.

    .venv/bin/python benchmarks/bench_infer.py [--checkpoint RUN/best.pt ...] [--lengths 10 600]

Compute = log-mel features of the raw 16 kHz audio + chunked model prediction (all chunks,
cross-fade), as `vocagan.infer` runs them; mesh decoding, file writing and video are excluded
(they do not depend on the model). Without --checkpoint each registered model is built with its
default hyper-parameters (random weights: speed does not depend on the weight values) and the
default feature spec. Goal: RTF <= 0.01 for the non-autoregressive models (all four here predict
every frame in one pass per chunk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, not whatever vocagan is installed


class _Spec:
    """The two facts `audio_features` needs from a checkpoint."""

    def __init__(self, features, audio_dim: int, fps: int):
        self.features, self.audio_dim, self.fps = features, audio_dim, fps


def speech_like(seconds: float, sr: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.2 * env * (np.sin(2 * np.pi * 150 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


def models(checkpoints: list[Path]):
    """-> [(label, model, spec)]."""
    import torch

    from vocagan.checkpoint import load_checkpoint
    from vocagan.config import FeatureConfig, load_config
    from vocagan.models import MODELS, build
    from vocagan.prep.features import feature_dim

    out = []
    if checkpoints:
        for path in checkpoints:
            model, ckpt = load_checkpoint(path)
            out.append((f"{ckpt.model_name} ({path})", model, _Spec(ckpt.features, ckpt.audio_dim, ckpt.fps)))
        return out
    spec = FeatureConfig()
    for name in MODELS:
        yaml_path = REPO / "configs" / f"{name}.yaml"
        cfg = load_config(yaml_path if yaml_path.is_file() else None, overrides=[f"model.name={name}"])
        torch.manual_seed(0)
        model = build(cfg.model, feature_dim(spec), 32, 8).eval()
        n_params = sum(p.numel() for p in model.parameters())
        out.append((f"{name} ({n_params / 1e6:.2f} M params)", model, _Spec(spec, feature_dim(spec), cfg.data.fps)))
    return out


def main() -> None:
    import torch

    from vocagan.infer import CHUNK_SECONDS, OVERLAP_SECONDS, audio_features, predict_motion

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, nargs="*", default=[])
    ap.add_argument("--lengths", type=float, nargs="+", default=[10.0, 600.0], help="audio seconds")
    ap.add_argument("--repeats", type=int, default=3, help="runs per length <= 60 s (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; chunks of {CHUNK_SECONDS:g} s "
        f"with {OVERLAP_SECONDS:g} s overlap; 1 style, 1 sample"
    )
    audio = {s: speech_like(s) for s in args.lengths}
    print(f"{'model':42s} " + " ".join(f"{f'RTF@{s:g}s':>12s}" for s in args.lengths))
    for label, model, spec in models(args.checkpoint):
        cells = []
        for seconds, x in audio.items():
            chunk = int(round(CHUNK_SECONDS * spec.fps))
            overlap = min(int(round(OVERLAP_SECONDS * spec.fps)), chunk // 2)
            times = []
            for _ in range(args.repeats if seconds <= 60 else 1):
                start = time.perf_counter()
                feats = audio_features(spec, x, 16000, spec.fps)
                predict_motion(model, feats, 0, 1, 0, chunk, overlap, "cpu")
                times.append(time.perf_counter() - start)
            cells.append(statistics.median(times) / seconds)
        print(f"{label:42s} " + " ".join(f"{c:12.5f}" for c in cells), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("VOCAGAN_PROGRESS", "0")
    main()
