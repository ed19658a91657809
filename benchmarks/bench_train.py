"""Training throughput per model: sequences/s and ms per optimisation step.

    .venv/bin/python benchmarks/bench_train.py                 # all models, CPU (and CUDA if present)
    .venv/bin/python benchmarks/bench_train.py --models transformer_gan --steps 20 --device cpu

Each step is exactly what `vocagan train` runs per batch (`vocagan.train.train_step`: the model's
optimisation steps -- a GAN's critic update, then the generator's -- with AdamW, warm-up/cosine LR and
gradient clipping) on
random tensors: batch 32 x 120 frames (4 s at 30 fps) x 80 log-mel features, 32 PCA coefficients,
8 styles, with the lip-vertex and mouth-opening losses on (250 lip vertices). Model sizes come from configs/<model>.yaml
when it exists (else the code defaults). Timings include the backward pass and optimiser update;
the first `--warmup` steps are not timed. Numbers depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vocagan.config import load_config
from vocagan.distributed import Distributed, wrap_for_ddp
from vocagan.models import MODELS, build
from vocagan.models.layers import LipDecoder
from vocagan.train import make_autocast, train_step


def model_config(name: str, config_dir: Path):
    path = config_dir / f"{name}.yaml"
    cfg = load_config(path if path.is_file() else None, overrides=[f"model.name={name}"])
    return cfg


def fake_batch(B: int, T: int, F: int, K: int, n_styles: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": torch.randn(B, T, F, generator=g),
        "motion": torch.randn(B, T, K, generator=g),
        "mask": torch.ones(B, T, dtype=torch.bool),
        "style": torch.randint(0, n_styles, (B,), generator=g),
    }
    return {k: v.to(device) for k, v in batch.items()}


def bench(name: str, args, device: torch.device) -> dict:
    cfg = model_config(name, args.config_dir)
    torch.manual_seed(0)
    model = build(cfg.model, args.audio_dim, args.motion_dim, args.styles)
    rng = np.random.default_rng(0)
    n_crop = 400  # mouth crop vertices; the first 250 play the lips
    decoder = LipDecoder(
        rng.normal(size=(args.motion_dim, 3 * n_crop)).astype(np.float32) * 1e-3,
        np.zeros(3 * n_crop, np.float32),
        np.zeros(args.motion_dim, np.float32),
        np.ones(args.motion_dim, np.float32),
        np.arange(250),
        opening=rng.normal(size=3 * n_crop).astype(np.float32) * 1e-2,
    )  # the opening loss too
    model.set_decoder(decoder)
    model.to(device).train()
    model.set_epoch(10**6)  # schedules at their final value: the GAN's adversarial terms are on
    steps = model.configure_optimizers(cfg.train, args.warmup + args.steps)
    runner = wrap_for_ddp(model, Distributed(1, 0, device), several_steps=len(steps) > 1)
    autocast = make_autocast(device, cfg.train.bf16)
    batch = fake_batch(args.batch, args.frames, args.audio_dim, args.motion_dim, args.styles, device)
    for _ in range(args.warmup):
        train_step(runner, batch, steps, autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step(runner, batch, steps, autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.steps
    counts = [sum(p.numel() for p in step.params) for step in steps]  # the model's own step is the last
    return {
        "model": name,
        "device": str(device) + (" bf16" if device.type == "cuda" and cfg.train.bf16 else ""),
        "params": counts[-1],
        "d_params": sum(counts[:-1]),
        "ms_per_step": dt * 1e3,
        "seq_per_s": args.batch / dt,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--device", nargs="+", default=None, help="devices (default: cpu, and cuda when available)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=120, help="frames per sequence (120 = 4 s at 30 fps)")
    p.add_argument("--audio-dim", type=int, default=80)
    p.add_argument("--motion-dim", type=int, default=32)
    p.add_argument("--styles", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--config-dir", type=Path, default=REPO / "configs")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"training throughput: batch {args.batch} x {args.frames} frames x {args.audio_dim} features, "
        f"{args.motion_dim} coefficients; {args.steps} timed steps after {args.warmup} warm-up; "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print(f"{'model':<16} {'device':<10} {'params':>10} {'D params':>10} {'ms/step':>9} {'seq/s':>8}")
    for dev in devices:
        for name in args.models:
            r = bench(name, args, torch.device(dev))
            print(
                f"{r['model']:<16} {r['device']:<10} {r['params']:>10,} {r['d_params']:>10,} "
                f"{r['ms_per_step']:>9.1f} {r['seq_per_s']:>8.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
