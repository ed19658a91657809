"""Inference speed of `animate`, and like for like against FaceFormer's `predict`.

    .venv/bin/python benchmarks/bench_infer.py [--faceformer DIR] [--checkpoint RUN/best.pt ...]
                                               [--lengths 4 10 600] [--threads 1]

For each model and audio length, three parts are timed separately (median over --repeats):
- features: log-mel of the raw 16 kHz audio at the model's frame rate (`infer.audio_features`);
- model: prediction of the normalised coefficients (`infer.predict_motion`); the benchmark builds the
  frozen TorchScript graph once per model first (`MotionModel.compiled`, time reported), as a
  long-running caller does, so clips up to 20 s take one pass of that graph; longer clips run eagerly
  in overlapping chunks, cross-faded. (`vocagan animate` on one clip does not build it: building takes
  0.2-1 s, more than it saves there);
- decode: coefficients -> full meshes (T, 5023, 3) float32 (`Prepared.to_vertices`, what `animate`
  writes), on the FLAME template with the FLAME_masks mouth crop when ../shared/data has them (else a
  synthetic 5023-vertex template; the figure depends only on the sizes), 64 PCA components.
The real-time factor (RTF) is compute seconds / audio seconds.

With --faceformer DIR (a runnable FaceFormer, e.g. /work/faceformer_ref: see its README; not part of
vocagan) the same audio goes through FaceFormer's `predict` (wav2vec 2.0 base + autoregressive decoder,
output (1, T, 15069) full meshes, 30 fps) in DIR's own Python (DIR/.venv, DIR/worker.py), alternating
with ours in the same run, on the same number of threads. Two ratios are printed:
  model-only  = FaceFormer predict / (features + model)          (our output: coefficients)
  like-for-like = FaceFormer predict / (features + model + decode) (both: full (T, 5023, 3) meshes)
The last column is the like-for-like ratio of CPU times (each side's thread CPU time: features + model +
decode against predict), which other jobs sharing the cores distort much less than wall times.
Goal: like-for-like >= 100x at 4 s and 10 s. FaceFormer's biased mask stops at 600 frames (20 s), so
it runs only for lengths <= 20 s. Without --faceformer this is said plainly and only our figures print.

Without --checkpoint each registered model is built with its default hyper-parameters (random weights:
speed does not depend on the weight values) and the default feature spec.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, not whatever vocagan is installed

FACEFORMER_MAX_SECONDS = 20.0  # its biased mask covers 600 frames at 30 fps


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
            out.append((f"{ckpt.model_name} ({path.name})", model, _Spec(ckpt.features, ckpt.audio_dim, ckpt.fps)))
        return out
    spec = FeatureConfig()
    for name in MODELS:
        yaml_path = REPO / "configs" / f"{name}.yaml"
        cfg = load_config(yaml_path if yaml_path.is_file() else None, overrides=[f"model.name={name}"])
        torch.manual_seed(0)
        model = build(cfg.model, feature_dim(spec), 64, 8).eval()
        n_params = sum(p.numel() for p in model.parameters())
        out.append((f"{name} ({n_params / 1e6:.2f} M)", model, _Spec(spec, feature_dim(spec), cfg.data.fps)))
    return out


def flame_decoder(n_components: int = 64):
    """A Prepared that decodes to FLAME-sized meshes: (its label, Prepared, template (5023, 3))."""
    from vocagan.prep.prepared import Prepared
    from vocagan.prep.regions import Regions, geometric_regions, resolve_regions

    shared = Path(os.environ.get("VOCAGAN_SHARED_DATA", REPO.parent / "shared" / "data"))
    ply, masks = shared / "flame" / "FLAME_sample.ply", shared / "regions" / "FLAME_masks.pkl"
    if ply.is_file():
        from vocagan.formats.mesh import read_mesh

        template, faces = read_mesh(ply)
        regions = resolve_regions(template, masks=masks) if masks.is_file() else geometric_regions(template, faces)
        label = f"FLAME template, {regions.source}"
    else:
        rng = np.random.default_rng(0)
        template = rng.standard_normal((5023, 3)).astype(np.float32) * 0.05
        faces = np.zeros((0, 3), np.int32)
        mouth = np.nonzero(template[:, 1] < np.quantile(template[:, 1], 0.12))[0]
        regions = Regions(mouth=mouth, lips=mouth[:50], upper_face=mouth[:1], source="synthetic")
        label = "synthetic 5023-vertex template (../shared/data absent)"
    crop = regions.mouth
    rng = np.random.default_rng(1)
    comps = np.linalg.qr(rng.standard_normal((3 * len(crop), n_components)))[0].T.astype(np.float32)
    meta = {"n_vertices": len(template), "template_names": ["t"], "styles": ["t"], "fps": 30, "feature_dim": 80}
    prepared = Prepared(
        meta=meta,
        faces=faces.astype(np.int32),
        templates=template[None].astype(np.float32),
        regions=regions,
        crop=crop,
        pca_components=comps,
        pca_mean=np.zeros(3 * len(crop), np.float32),
        explained_variance_ratio=np.full(n_components, 1.0 / n_components, np.float32),
        coef_mean=np.zeros(n_components, np.float32),
        coef_std=rng.random(n_components).astype(np.float32) * 1e-3,
    )
    return f"{label}: crop {len(crop)} of {len(template)} vertices, {n_components} components", prepared, template


class FaceFormerWorker:
    """FaceFormer's predict, timed in its own environment (DIR/.venv/bin/python DIR/worker.py)."""

    def __init__(self, folder: Path, threads: int):
        python, worker = folder / ".venv" / "bin" / "python", folder / "worker.py"
        for f in (python, worker):
            if not f.exists():
                sys.exit(f"error: {f}: not found (--faceformer DIR needs DIR/.venv and DIR/worker.py; see its README)")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [str(python), str(worker), "--threads", str(threads)],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.hello = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("error: the FaceFormer worker exited; run it by hand to see why")
        return json.loads(line)

    def predict(self, seconds: float) -> tuple[float, float]:
        """-> (wall seconds, CPU seconds of the worker's thread) of one predict."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"predict {seconds}\n")
        self.proc.stdin.flush()
        answer = self._read()
        return float(answer["seconds"]), float(answer.get("cpu_seconds", float("nan")))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> None:
    import torch

    from vocagan.infer import CHUNK_SECONDS, OVERLAP_SECONDS, audio_features, predict_motion

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, nargs="*", default=[])
    ap.add_argument("--faceformer", type=Path, metavar="DIR", help="a runnable FaceFormer (see module docstring)")
    ap.add_argument("--lengths", type=float, nargs="+", default=[4.0, 10.0, 600.0], help="audio seconds")
    ap.add_argument("--repeats", type=int, default=7, help="runs per length <= 60 s (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both sides (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    decoder_label, prepared, template = flame_decoder()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; chunks of {CHUNK_SECONDS:g} s "
        f"with {OVERLAP_SECONDS:g} s overlap; 1 style, 1 sample; decode: {decoder_label}"
    )
    ff = FaceFormerWorker(args.faceformer, args.threads) if args.faceformer else None
    if ff is None:
        print("FaceFormer reference: not given (--faceformer DIR); like-for-like ratios are not measured")
    else:
        print(f"FaceFormer reference: {args.faceformer} ({ff.hello.get('torch')}, {ff.hello.get('threads')} thread(s))")
    audio = {s: speech_like(s) for s in args.lengths}
    header = f"{'model':30s} {'audio':>6s} {'features':>9s} {'model':>9s} {'decode':>9s} {'RTF':>8s}"
    if ff:
        header += f" {'FaceFormer':>11s} {'model-only':>11s} {'like-for-like':>14s} {'(CPU time)':>11s}"
    print(header)
    for label, model, spec in models(args.checkpoint):
        t0 = time.perf_counter()
        ready = model.compiled() is not None  # once per model, as a long-running caller does
        print(
            f"  {label}: {'TorchScript graph built' if ready else 'eager'} in {time.perf_counter() - t0:.2f} s (once)"
        )
        for seconds, x in audio.items():
            chunk = int(round(CHUNK_SECONDS * spec.fps))
            overlap = min(int(round(OVERLAP_SECONDS * spec.fps)), chunk // 2)
            parts: dict[str, list[float]] = {
                k: [] for k in ("features", "model", "decode", "faceformer", "cpu", "ff_cpu")
            }
            with_ff = ff is not None and seconds <= FACEFORMER_MAX_SECONDS
            for _ in range(args.repeats if seconds <= 60 else 1):
                c0 = time.thread_time()
                t0 = time.perf_counter()
                feats = audio_features(spec, x, 16000, spec.fps)
                t1 = time.perf_counter()
                coefs = predict_motion(model, feats, 0, 1, 0, chunk, overlap, "cpu")[0]
                t2 = time.perf_counter()
                if seconds <= 60:  # 10 min of meshes is 11 GB: animate decodes those in blocks to disk
                    prepared.to_vertices(coefs[:, : prepared.motion_dim], template)
                t3 = time.perf_counter()
                parts["cpu"].append(time.thread_time() - c0)
                parts["features"].append(t1 - t0)
                parts["model"].append(t2 - t1)
                parts["decode"].append(t3 - t2 if seconds <= 60 else float("nan"))
                if with_ff:
                    assert ff is not None
                    wall, cpu = ff.predict(seconds)
                    parts["faceformer"].append(wall)
                    parts["ff_cpu"].append(cpu)
            med = {k: statistics.median(v) if v else float("nan") for k, v in parts.items()}
            ours = med["features"] + med["model"]
            line = (
                f"{label:30s} {seconds:5g}s {1000 * med['features']:8.2f}ms {1000 * med['model']:8.2f}ms "
                f"{1000 * med['decode']:8.2f}ms {ours / seconds:8.5f}"
            )
            if ff:
                if with_ff:
                    line += (
                        f" {1000 * med['faceformer']:9.1f}ms {med['faceformer'] / ours:10.1f}x "
                        f"{med['faceformer'] / (ours + med['decode']):13.1f}x {med['ff_cpu'] / med['cpu']:10.1f}x"
                    )
                else:
                    line += f" {'(> 20 s)':>11s}"
            print(line, flush=True)
    if ff:
        ff.close()


if __name__ == "__main__":
    os.environ.setdefault("VOCAGAN_PROGRESS", "0")
    main()
