"""Streaming latency of `vocagan serve`: algorithmic look-ahead and compute per 100 ms chunk, one core.

    .venv/bin/python benchmarks/bench_stream.py [--checkpoint RUN/best.pt] [--seconds 30] [--threads 1]

- algorithmic latency: the audio a frame waits for after its own time (`Streamer.info.lookahead_ms`):
  the model's look-ahead frames + half an STFT window + the log-mel -> frame-rate interpolation step.
  Goal <= 100 ms.
- compute per chunk: wall time (and the thread's CPU time, which other jobs on shared cores distort
  less) of `Streamer.push` (streaming log-mel, the model's cached step, weights out) for each 100 ms
  chunk of 16 kHz audio, median / 95th percentile / max after the first second, on `--threads` torch
  threads (default 1: one core). Goal <= 10 ms.
- end to end through the WebSocket server on localhost (`--server`): the time from sending a chunk to
  receiving its frames (JSON encode/decode and the socket included), median / p95.
Without --checkpoint the streaming recipe (configs/streaming.yaml: Transformer+GAN, lookahead 2
frames at 30 fps) is built with random weights (speed does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, not whatever vocagan is installed

CHUNK = 1600  # 100 ms at 16 kHz


def speech_like(seconds: float, sr: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.2 * env * (np.sin(2 * np.pi * 150 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


def random_checkpoint(folder: Path) -> Path:
    """configs/streaming.yaml's model with random weights on a 468-vertex stand-in face."""
    import torch

    from vocagan.checkpoint import save_checkpoint
    from vocagan.config import load_config
    from vocagan.models import build
    from vocagan.prep.features import feature_dim
    from vocagan.prep.prepared import Prepared
    from vocagan.prep.regions import Regions

    cfg = load_config(REPO / "configs" / "streaming.yaml")
    k, n_vertices = 64, 468
    rng = np.random.default_rng(0)
    crop = np.arange(120)
    faces = np.stack([np.arange(n_vertices - 2), np.arange(1, n_vertices - 1), np.arange(2, n_vertices)], 1)
    prepared = Prepared(
        meta={
            "fps": cfg.data.fps,
            "styles": ["a"],
            "template_names": ["a"],
            "region_source": "bench",
            "n_vertices": n_vertices,
            "features": cfg.features.__dict__,
            "feature_dim": feature_dim(cfg.features),
        },
        faces=faces.astype(np.int32),
        templates=rng.standard_normal((1, n_vertices, 3)).astype(np.float32),
        regions=Regions(mouth=crop, lips=crop[:20], upper_face=crop[-10:], source="bench"),
        crop=crop,
        pca_components=np.linalg.qr(rng.standard_normal((3 * len(crop), k)))[0].T.astype(np.float32),
        pca_mean=np.zeros(3 * len(crop), np.float32),
        explained_variance_ratio=np.full(k, 1 / k, np.float32),
        coef_mean=np.zeros(k, np.float32),
        coef_std=np.ones(k, np.float32),
    )
    torch.manual_seed(0)
    model = build(cfg.model, feature_dim(cfg.features), k, 1).eval()
    return save_checkpoint(folder / "streaming_random.pt", model, cfg, prepared.stats_dict())


def stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"median {np.median(a):.2f} ms, p95 {np.percentile(a, 95):.2f} ms, max {a.max():.2f} ms"


def main() -> None:
    import torch

    from vocagan.checkpoint import load_checkpoint
    from vocagan.stream import Streamer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, help="a streaming checkpoint (default: random-weight recipe)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--server", action="store_true", help="also time chunks through the WebSocket server")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or random_checkpoint(Path(tmp))
        model, ckpt = load_checkpoint(path)
        x = speech_like(args.seconds)
        streamer = Streamer(model, ckpt)
        info = streamer.info
        times, cpu, frames = [], [], 0
        for a in range(0, len(x), CHUNK):
            t0, c0 = time.perf_counter(), time.thread_time()
            frames += len(streamer.push(x[a : a + CHUNK]))
            times.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.thread_time() - c0))
        frames += len(streamer.end())
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; {ckpt.model_name} "
            f"({n_params / 1e6:.2f} M parameters, {'random weights' if args.checkpoint is None else path}); "
            f"{args.seconds:g} s of audio in {len(times)} chunks of 100 ms -> {frames} frames at {info.fps:g} fps"
        )
        print(
            f"algorithmic latency (look-ahead): {info.lookahead_ms:.1f} ms = {info.lookahead_frames} frame(s) "
            f"{1000 * info.lookahead_frames / info.fps:.1f} ms + features "
            f"{info.lookahead_ms - 1000 * info.lookahead_frames / info.fps:.1f} ms   (goal <= 100 ms)"
        )
        steady = times[len(times) // 10 :]  # after the first second: steady state
        print(f"compute per 100 ms chunk, wall: {stats(steady)} (all chunks: {stats(times)})   (goal <= 10 ms)")
        print(f"compute per 100 ms chunk, CPU time of the thread: {stats(cpu[len(cpu) // 10 :])}")
        if args.server:
            print(f"through the WebSocket server on localhost: {server_round_trips(path, x)}")


def server_round_trips(path: Path, x: np.ndarray) -> str:
    import asyncio
    import json
    import threading

    from websockets.sync.client import connect

    from vocagan.serve import FaceServer, run_server

    face = FaceServer(path)
    loop = asyncio.new_event_loop()
    ready, stop, port = threading.Event(), asyncio.Event(), []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(run_server(face, "127.0.0.1", 0, lambda p: (port.append(p), ready.set()), stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    times = []
    with connect(f"ws://127.0.0.1:{port[0]}/stream") as ws:
        json.loads(ws.recv())
        for a in range(0, len(x), CHUNK):
            t0 = time.perf_counter()
            ws.send((np.clip(x[a : a + CHUNK], -1, 1) * 32767).astype("<i2").tobytes())
            if a >= 2 * CHUNK:  # every later chunk completes frames
                json.loads(ws.recv(timeout=10))
                times.append(1000 * (time.perf_counter() - t0))
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    return f"send -> frames {stats(times[len(times) // 10 :])}"


if __name__ == "__main__":
    os.environ.setdefault("VOCAGAN_PROGRESS", "0")
    main()
