"""Teacher-forced FaceFormer training steps, timed: the reference side of `bench_train.py --faceformer DIR`.

Runs in the reference's own environment (it needs `transformers`; vocagan does not), started by
bench_train.py as `DIR/.venv/bin/python benchmarks/faceformer_step.py DIR --threads N --frames T`.
DIR holds a FaceFormer checkout built to run offline (its `ref.py`: `build`, `speech`, `template`,
`one_hot`; see benchmarks/RESULTS.md). Not part of vocagan and never imports it.

One step is upstream FaceFormer's training step with `teacher_forcing=True` (the decoder runs once
over the ground-truth motion shifted by one frame, not frame by frame): wav2vec 2.0 over the audio,
the transformer decoder, the 15069-wide output layer, MSE against the full meshes, backward, Adam
(lr 1e-4, upstream's), batch 1 (upstream's). Audio: T / 30 seconds at 16 kHz; meshes: T frames.

Protocol, one JSON object per line on stdout: {"ready": ...} once built, then for each stdin line
"steps N": {"wall": [seconds per step], "cpu": [thread CPU seconds per step]}; "quit" ends it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=120)
    args = ap.parse_args()
    sys.path.insert(0, args.dir)
    import torch
    from ref import build, one_hot, speech, template

    torch.set_num_threads(args.threads)
    model, margs = build()
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=margs.lr)
    criterion = torch.nn.MSELoss()
    audio, tpl, oh = speech(args.frames / 30.0), template(), one_hot()
    vertice = tpl.unsqueeze(1) + 0.001 * torch.randn(
        1, args.frames, tpl.shape[-1], generator=torch.Generator().manual_seed(0)
    )

    def step() -> None:
        loss = model(audio, tpl, vertice, oh, criterion, teacher_forcing=True)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(2):  # first calls: allocations, lazy initialisation
        step()
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"ready": True, "threads": torch.get_num_threads(), "params": params}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        wall, cpu = [], []
        for _ in range(int(words[1])):
            t, c = time.perf_counter(), time.thread_time()
            step()
            wall.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
