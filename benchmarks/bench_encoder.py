#!/usr/bin/env python3
"""What a pretrained speech encoder costs on CPU, next to log-mel: `prepare` time on the demo's
corpus and the `animate` real-time factor, with a wav2vec2-base-sized encoder.

    .venv/bin/python benchmarks/bench_encoder.py --threads 2 [--corpus DIR] [--seconds 10]

The encoder is wav2vec 2.0 base's architecture (12 layers, 768 wide, 95 M parameters) with random
weights, written by save_pretrained to a temporary folder: the same compute as the real checkpoint,
which cannot be downloaded here. Rows:
- prepare (features only, cache off): log-mel vs the frozen encoder's last layer, whole corpus;
- animate real-time factor (features + model, `--seconds` of speech-like audio, no video): a log-mel
  model, a frozen-encoder model and a fine-tuned-encoder model (the encoder inside the model), each a
  Transformer+GAN of the demo's size with untrained weights (speed does not depend on training).
Prints one line per row and a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def base_sized_encoder(folder: Path) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    transformers.Wav2Vec2Model(transformers.Wav2Vec2Config()).save_pretrained(folder)  # base: 12 x 768
    return folder


def time_prepare(corpus: Path, sets: list[str], cache: Path) -> tuple[float, int]:
    from vocagan.config import load_config
    from vocagan.prep.prepare import prepare

    cfg = load_config(
        REPO / "configs" / "demo.yaml", overrides=[f"data.root={corpus}", f"prep.cache_dir={cache}", *sets]
    )
    t = time.perf_counter()
    prepared = prepare(cfg)
    return time.perf_counter() - t, sum(len(a) for a in prepared.audio.values())


def model_checkpoint(corpus: Path, sets: list[str], out: Path, cache: Path) -> Path:
    """An untrained demo-sized Transformer+GAN checkpoint for these features (what animate loads)."""
    import torch

    from vocagan.checkpoint import save_checkpoint
    from vocagan.config import load_config
    from vocagan.prep.prepare import prepare
    from vocagan.train import make_model

    cfg = load_config(
        REPO / "configs" / "demo.yaml", overrides=[f"data.root={corpus}", f"prep.cache_dir={cache}", *sets]
    )
    prepared = prepare(cfg)
    model, _ = make_model(cfg, prepared, torch.device("cpu"))
    return save_checkpoint(out, model, cfg, prepared.stats_dict())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", type=Path, help="VOCASET folder (default: the built-in small corpus, written once)")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio length for the animate rows")
    ap.add_argument("--repeat", type=int, default=3, help="animate runs per row (the best is reported)")
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("VOCAGAN_PROGRESS", "0")
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from vocagan.formats.audio import save_wav
    from vocagan.infer import animate
    from vocagan.synth.corpus import builtin_corpus
    from vocagan.synth.speech import Voice, make_timeline, synthesize

    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as tmp:
        tmp = Path(tmp)
        corpus = args.corpus or builtin_corpus(tmp / "corpus")
        enc = base_sized_encoder(tmp / "wav2vec2-base-random")
        n_params = sum(p.numel() for p in __import__("transformers").AutoModel.from_pretrained(enc).parameters())
        kinds = {
            "log-mel": [],
            "frozen encoder": ["features.kind=encoder", f"features.encoder_path={enc}"],
            "fine-tuned encoder": [
                "features.kind=encoder",
                f"features.encoder_path={enc}",
                "features.encoder_finetune=true",
            ],
        }
        rows = []
        for name in ("log-mel", "frozen encoder"):
            seconds, frames = time_prepare(corpus, kinds[name], tmp / f"cache-{len(rows)}")
            rows.append(
                (f"prepare, {name}", f"{seconds:.1f} s for {frames} frames ({frames / 30 / 60:.1f} min of speech)")
            )
            print(rows[-1][0], rows[-1][1], flush=True)
        rng = np.random.default_rng(0)
        x = synthesize(make_timeline(rng, args.seconds, 1.0), Voice(sample_rate=16000), rng)
        wav = save_wav(tmp / "speech.wav", x, 16000)
        for name, sets in kinds.items():
            ckpt = model_checkpoint(corpus, sets, tmp / f"{name}.pt", tmp / "cache-ckpt")
            best = min(animate(ckpt, wav, tmp / "anim", video=False).compute_seconds for _ in range(args.repeat))
            rows.append(
                (f"animate RTF, {name}", f"{best / (len(x) / 16000):.4f} ({best:.2f} s for {len(x) / 16000:.1f} s)")
            )
            print(rows[-1][0], rows[-1][1], flush=True)
    print(
        f"\nencoder: wav2vec 2.0 base architecture, {n_params / 1e6:.1f} M parameters, random weights; "
        f"{args.threads} torch thread(s)\n"
    )
    print("| what | figure |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
