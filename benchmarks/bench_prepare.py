"""Benchmark `prepare` against simply reading data_verts.npy once.

    .venv/bin/python benchmarks/bench_prepare.py /path/outside/repo/corpus [--scale full]

If CORPUS has no data_verts.npy, it is first generated with `vocagan synth --scale SCALE`
(default full: VOCASET-sized, ~7 GB; keep it outside the repository). Then:
  (a) read time: one sequential pass over the whole data_verts.npy memory map, in chunks;
  (b) `prepare` (a fresh, empty prepared-data cache) in a child process: wall time and peak RSS
      (that child's resource.getrusage ru_maxrss); then a second `prepare` (cache hit).
Goals: prepare <= 3x the read time, peak RSS < 3 GB. The OS page cache is not dropped: (a) runs
twice right before (b) so both see the same (warm, when the file fits in RAM) cache; the warm
read is the reference for the ratio, which makes the ratio conservative.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOAL_RATIO, GOAL_RSS_GB = 3.0, 3.0

# Runs in the child: prepare, then report its own wall time and peak RSS as one JSON line.
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from vocagan.cli import main
rc = main(["prepare", "--data", sys.argv[1], "--cache-dir", sys.argv[2]] + sys.argv[3:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)
"""


def read_once(path: Path, chunk_frames: int = 2048) -> tuple[float, int]:
    """Seconds to read every byte of data_verts.npy sequentially through its memory map."""
    verts = np.load(path, mmap_mode="r")
    t0 = time.perf_counter()
    total = 0.0
    for start in range(0, len(verts), chunk_frames):
        block = np.array(verts[start:start + chunk_frames])     # (chunk, V, 3) copied out of the map
        total += float(block[:, 0, 0].sum())                      # touch the copy
    return time.perf_counter() - t0, verts.nbytes


def run_prepare(corpus: Path, cache: Path, extra: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(cache), *extra], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "VOCAGAN_PROGRESS": "0"})
    lines = proc.stderr.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        sys.exit(f"prepare failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if result["rc"] != 0:
        sys.exit(f"prepare failed:\n{proc.stderr[-3000:]}")
    result["summary"], result["log"] = proc.stdout.strip(), "\n".join(lines[:-1])
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="VOCASET folder (generated here when it has no data_verts.npy)")
    ap.add_argument("--scale", default="full", choices=["tiny", "small", "full"], help="synth scale if generating")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override for prepare")
    args = ap.parse_args(argv)
    data_verts = args.corpus / "data_verts.npy"
    if not data_verts.is_file():
        if args.corpus.resolve().is_relative_to(REPO):
            sys.exit("refusing to generate a corpus inside the repository; pass a folder outside it")
        print(f"generating the {args.scale} synthetic corpus in {args.corpus} ...", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vocagan", "synth", "--scale", args.scale, "--out", str(args.corpus)],
                       cwd=REPO, check=True)
        print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)

    cold_read, nbytes = read_once(data_verts)
    warm_read, _ = read_once(data_verts)
    extra = [a for o in args.overrides for a in ("--set", o)]
    with tempfile.TemporaryDirectory(prefix="bench-prepare-cache-") as cache:
        first = run_prepare(args.corpus, Path(cache), extra)
        second = run_prepare(args.corpus, Path(cache), extra)
    shape = np.load(data_verts, mmap_mode="r").shape
    ratio = first["seconds"] / warm_read
    rss_gb = first["max_rss_kb"] / 2 ** 20
    print(f"corpus: {args.corpus}  data_verts {shape}, {nbytes / 2 ** 30:.2f} GiB")
    print(f"(a) read data_verts.npy once: {cold_read:.2f} s (first pass), {warm_read:.2f} s (second pass)")
    print(f"(b) prepare, empty cache:     {first['seconds']:.2f} s wall (child process, incl. imports), "
          f"peak RSS {rss_gb:.2f} GiB")
    hit_gb = second["max_rss_kb"] / 2 ** 20
    print(f"    prepare, cache hit:       {second['seconds']:.2f} s wall, peak RSS {hit_gb:.2f} GiB")
    ratio_ok, rss_ok = ("met" if ok else "NOT met" for ok in (ratio <= GOAL_RATIO, rss_gb < GOAL_RSS_GB))
    print(f"ratio prepare / read: {ratio:.2f}x (goal <= {GOAL_RATIO:g}x: {ratio_ok}); "
          f"peak RSS goal < {GOAL_RSS_GB:g} GB: {rss_ok}")
    print("\n" + first["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
