"""Training throughput per model: sequences/s and ms per optimisation step, and (with --faceformer)
the ratio to FaceFormer's teacher-forced training step measured side by side.

    .venv/bin/python benchmarks/bench_train.py                 # all models, CPU (and CUDA if present)
    .venv/bin/python benchmarks/bench_train.py --models transformer_gan --steps 20 --device cpu
    .venv/bin/python benchmarks/bench_train.py --threads 1 --faceformer /path/to/faceformer_ref

Each step is exactly what `vocagan train` runs per batch (`vocagan.train.train_step`: the model's
optimisation steps -- a GAN's critic update, then the generator's -- with AdamW, warm-up/cosine LR and
gradient clipping) on random tensors: batch 32 x 120 frames (4 s at 30 fps) x 80 log-mel features,
32 PCA coefficients, 8 styles, with the lip-vertex and mouth-opening losses on (250 lip vertices).
Model sizes come from configs/<model>.yaml when it exists (else the code defaults). Timings include
the backward pass and optimiser update; the first `--warmup` steps are not timed. Numbers depend
on what else runs on the machine: each row gives the median over `--rounds` rounds, wall clock and
the process's CPU time.

--faceformer DIR: a FaceFormer checkout that runs offline, with its own `.venv` (it needs
`transformers`) and a `ref.py` that builds the model (see benchmarks/RESULTS.md for the one used
here). `benchmarks/faceformer_step.py` runs it in a child process: upstream's training step with
teacher forcing, batch 1, on T / 30 s of audio and T frames of full meshes. The rounds alternate: a
model's steps, then FaceFormer's, so both see the same machine load; the ratio is per-sequence
throughput (ours / FaceFormer's), its median and range over the rounds. Same thread count on both
sides. Without --faceformer no ratio is printed, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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


class Bench:
    """One model on one device, set up once; `run(n)` times n training steps."""

    def __init__(self, name: str, args, device: torch.device):
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
        total = args.warmup + args.steps * args.rounds
        self.steps = model.configure_optimizers(cfg.train, total)
        self.runner = wrap_for_ddp(model, Distributed(1, 0, device), several_steps=len(self.steps) > 1)
        self.autocast = make_autocast(device, cfg.train.bf16)
        self.batch = fake_batch(args.batch, args.frames, args.audio_dim, args.motion_dim, args.styles, device)
        self.name, self.device = name, device
        self.label = str(device) + (" bf16" if device.type == "cuda" and cfg.train.bf16 else "")
        counts = [sum(p.numel() for p in step.params) for step in self.steps]  # the model's own step is last
        self.params, self.d_params = counts[-1], sum(counts[:-1])
        self.run(args.warmup)

    def run(self, n: int) -> tuple[list[float], list[float]]:
        """Wall and process-CPU seconds of each of n steps."""
        wall, cpu = [], []
        for _ in range(n):
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.thread_time()
            train_step(self.runner, self.batch, self.steps, self.autocast)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            wall.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        return wall, cpu


class FaceFormer:
    """FaceFormer's teacher-forced training step in a child process (its own environment)."""

    def __init__(self, folder: Path, threads: int, frames: int):
        python = folder / ".venv" / "bin" / "python"
        if not (folder / "ref.py").is_file() or not python.is_file():
            raise SystemExit(
                f"--faceformer {folder}: expected a FaceFormer checkout with ref.py and .venv/bin/python "
                "(see benchmarks/RESULTS.md)"
            )
        self.proc = subprocess.Popen(
            [
                str(python),
                str(REPO / "benchmarks" / "faceformer_step.py"),
                str(folder),
                "--threads",
                str(threads),
                "--frames",
                str(frames),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()
        if not self.info.get("ready"):
            raise SystemExit(f"--faceformer {folder}: the FaceFormer process did not start ({self.info})")

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the FaceFormer process ended (exit status {self.proc.wait()})")
        return json.loads(line)

    def run(self, n: int) -> tuple[list[float], list[float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"steps {n}\n")
        self.proc.stdin.flush()
        out = self._read()
        return out["wall"], out["cpu"]

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--device", nargs="+", default=None, help="devices (default: cpu, and cuda when available)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=120, help="frames per sequence (120 = 4 s at 30 fps)")
    p.add_argument("--audio-dim", type=int, default=80)
    p.add_argument("--motion-dim", type=int, default=32)
    p.add_argument("--styles", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--config-dir", type=Path, default=REPO / "configs")
    p.add_argument("--faceformer", type=Path, default=None, metavar="DIR", help="FaceFormer reference (see above)")
    p.add_argument("--ff-steps", type=int, default=2, help="FaceFormer steps per model per round")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"training throughput: batch {args.batch} x {args.frames} frames x {args.audio_dim} features, "
        f"{args.motion_dim} coefficients; {args.rounds} rounds of {args.steps} timed steps after {args.warmup} "
        f"warm-up; torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    ff = None
    if args.faceformer is not None:
        ff = FaceFormer(args.faceformer, torch.get_num_threads(), args.frames)
        print(
            f"FaceFormer reference: {args.faceformer} ({ff.info['params']:,} parameters, "
            f"{ff.info['threads']} threads): teacher-forced step, batch 1, {args.frames} frames "
            f"({args.frames / 30:.1f} s of audio), alternating with each model"
        )
    else:
        print("FaceFormer reference: not measured (no --faceformer DIR given), so no ratio below")
    benches = [Bench(name, args, torch.device(dev)) for dev in devices for name in args.models]
    times: dict[int, dict[str, list[float]]] = {
        i: {"wall": [], "cpu": [], "ratio_wall": [], "ratio_cpu": []} for i in range(len(benches))
    }
    ff_times: dict[str, list[float]] = {"wall": [], "cpu": []}
    for _ in range(args.rounds):
        for i, b in enumerate(benches):
            wall, cpu = b.run(args.steps)
            w, c = statistics.median(wall), statistics.median(cpu)
            times[i]["wall"].append(w)
            times[i]["cpu"].append(c)
            if ff is not None and b.device.type == "cpu":
                fw, fc = (statistics.median(x) for x in ff.run(args.ff_steps))
                ff_times["wall"].append(fw)
                ff_times["cpu"].append(fc)
                # per-sequence throughput ratio: (batch / our step) / (1 / FaceFormer's step)
                times[i]["ratio_wall"].append(args.batch * fw / w)
                times[i]["ratio_cpu"].append(args.batch * fc / c)
    if ff is not None:
        ff.close()
        print(
            f"FaceFormer teacher-forced step: {statistics.median(ff_times['wall']) * 1e3:.0f} ms wall, "
            f"{statistics.median(ff_times['cpu']) * 1e3:.0f} ms CPU per sequence (median of "
            f"{len(ff_times['wall'])} x {args.ff_steps} steps)"
        )
    head = f"{'model':<16} {'device':<10} {'params':>10} {'D params':>10} {'ms/step':>8} {'CPU ms':>8} {'seq/s':>7}"
    print(head + ("   x FaceFormer (wall) [range]   x FaceFormer (CPU) [range]" if ff is not None else ""))
    for i, b in enumerate(benches):
        t = times[i]
        w, c = statistics.median(t["wall"]), statistics.median(t["cpu"])
        line = (
            f"{b.name:<16} {b.label:<10} {b.params:>10,} {b.d_params:>10,} {w * 1e3:>8.1f} {c * 1e3:>8.1f} "
            f"{args.batch / w:>7.1f}"
        )
        if t["ratio_wall"]:
            rw, rc = t["ratio_wall"], t["ratio_cpu"]
            line += (
                f"   {statistics.median(rw):>6.1f} [{min(rw):.1f}-{max(rw):.1f}]"
                f"          {statistics.median(rc):>6.1f} [{min(rc):.1f}-{max(rc):.1f}]"
            )
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
