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

    .venv/bin/python benchmarks/bench_prepare.py --compare OLD.npz NEW.npz

compares two prepared caches of the same corpus and config (e.g. before and after a change to
preprocess.py): same sequences, audio, crop and component count; components equal up to sign;
explained variance, PCA mean, normalisation stats and the (sign-aligned) coefficients within the
tolerances below; mouth offsets decoded from the coefficients within 1e-6 of their scale. Exit
status 1 when a tolerance is exceeded.
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
        block = np.array(verts[start : start + chunk_frames])  # (chunk, V, 3) copied out of the map
        total += float(block[:, 0, 0].sum())  # touch the copy
    return time.perf_counter() - t0, verts.nbytes


def run_prepare(corpus: Path, cache: Path, extra: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(corpus), str(cache), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "VOCAGAN_PROGRESS": "0"},
    )
    lines = proc.stderr.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        sys.exit(f"prepare failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if result["rc"] != 0:
        sys.exit(f"prepare failed:\n{proc.stderr[-3000:]}")
    result["summary"], result["log"] = proc.stdout.strip(), "\n".join(lines[:-1])
    return result


# --compare: name -> (measured difference, tolerance). Relative unless the name says otherwise.
TOLERANCES = {
    "components: max 1 - |cos| (same index)": 1e-5,
    "explained variance ratio: max rel diff": 1e-5,
    "pca_mean: max abs diff / max |mean|": 1e-6,
    "coef_mean (sign-aligned): max abs diff / coef_std": 1e-4,
    "coef_std: max rel diff": 1e-5,
    "motion coefficients (sign-aligned): max abs diff (normalised units)": 1e-3,
    "decoded mouth offsets: max abs diff / max |offset|": 1e-5,
    "audio features: max abs diff": 0.0,
    "val true offsets: max abs diff (m)": 0.0,
}


def compare_prepared(old_path: Path, new_path: Path) -> tuple[dict[str, float], list[str]]:
    """Differences between two prepared caches of the same data (see TOLERANCES) and a list of
    structural mismatches (sequences, crop, component count, regions, templates)."""
    sys.path.insert(0, str(REPO))
    from vocagan.prep.prepared import Prepared

    a, b = Prepared.load(old_path), Prepared.load(new_path)
    problems = []
    for split in ("train", "val", "test"):
        if [vars(q) for q in a.seqs[split]] != [vars(q) for q in b.seqs[split]]:
            problems.append(f"{split}: different sequences or lengths")
    for name in ("crop", "faces", "templates"):
        if not np.array_equal(getattr(a, name), getattr(b, name)):
            problems.append(f"{name} differ")
    for name in ("mouth", "lips", "upper_face"):
        if not np.array_equal(getattr(a.regions, name), getattr(b.regions, name)):
            problems.append(f"regions.{name} differ")
    if a.motion_dim != b.motion_dim:
        problems.append(f"component count {a.motion_dim} != {b.motion_dim}")
        return {}, problems
    if problems:
        return {}, problems
    sign = np.sign((a.pca_components * b.pca_components).sum(1))  # (K,)
    ca, cb = a.pca_components.astype(np.float64), b.pca_components.astype(np.float64)
    cos = np.abs((ca * cb).sum(1)) / (np.linalg.norm(ca, axis=1) * np.linalg.norm(cb, axis=1))
    d = {
        "components: max 1 - |cos| (same index)": float(np.max(1 - cos)),
        "explained variance ratio: max rel diff": float(
            np.max(np.abs(a.explained_variance_ratio - b.explained_variance_ratio) / a.explained_variance_ratio)
        ),
        "pca_mean: max abs diff / max |mean|": float(np.abs(a.pca_mean - b.pca_mean).max() / np.abs(a.pca_mean).max()),
        "coef_mean (sign-aligned): max abs diff / coef_std": float(
            np.max(np.abs(a.coef_mean - sign * b.coef_mean) / a.coef_std)
        ),
        "coef_std: max rel diff": float(np.max(np.abs(a.coef_std - b.coef_std) / a.coef_std)),
        "motion coefficients (sign-aligned): max abs diff (normalised units)": max(
            float(np.abs(a.motion[s] - sign * b.motion[s]).max()) for s in ("train", "val", "test")
        ),
        "decoded mouth offsets: max abs diff / max |offset|": max(
            float(np.abs(a.decode(a.motion[s]) - b.decode(b.motion[s])).max() / np.abs(a.decode(a.motion[s])).max())
            for s in ("train", "val", "test")
        ),
        "audio features: max abs diff": max(
            float(np.abs(a.audio[s] - b.audio[s]).max()) for s in ("train", "val", "test")
        ),
        "val true offsets: max abs diff (m)": (
            float(np.abs(a.true_offsets["val"] - b.true_offsets["val"]).max())
            if "val" in a.true_offsets and "val" in b.true_offsets
            else 0.0
        ),
    }
    return d, problems


def compare_main(old_path: Path, new_path: Path) -> int:
    diffs, problems = compare_prepared(old_path, new_path)
    print(f"old: {old_path}\nnew: {new_path}")
    for p in problems:
        print(f"MISMATCH: {p}")
    failed = bool(problems)
    for name, value in diffs.items():
        ok = value <= TOLERANCES[name]
        failed |= not ok
        print(f"  {name}: {value:.3g} (tolerance {TOLERANCES[name]:g}) {'ok' if ok else 'EXCEEDED'}")
    print("equivalent" if not failed else "NOT equivalent")
    return int(failed)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--compare"]:
        if len(argv) != 3:
            sys.exit("usage: bench_prepare.py --compare OLD.npz NEW.npz")
        return compare_main(Path(argv[1]), Path(argv[2]))
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
        subprocess.run(
            [sys.executable, "-m", "vocagan", "synth", "--scale", args.scale, "--out", str(args.corpus)],
            cwd=REPO,
            check=True,
        )
        print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)

    cold_read, nbytes = read_once(data_verts)
    warm_read, _ = read_once(data_verts)
    extra = [a for o in args.overrides for a in ("--set", o)]
    with tempfile.TemporaryDirectory(prefix="bench-prepare-cache-") as cache:
        first = run_prepare(args.corpus, Path(cache), extra)
        second = run_prepare(args.corpus, Path(cache), extra)
    shape = np.load(data_verts, mmap_mode="r").shape
    ratio = first["seconds"] / warm_read
    rss_gb = first["max_rss_kb"] / 2**20
    print(f"corpus: {args.corpus}  data_verts {shape}, {nbytes / 2**30:.2f} GiB")
    print(f"(a) read data_verts.npy once: {cold_read:.2f} s (first pass), {warm_read:.2f} s (second pass)")
    print(
        f"(b) prepare, empty cache:     {first['seconds']:.2f} s wall (child process, incl. imports), "
        f"peak RSS {rss_gb:.2f} GiB"
    )
    hit_gb = second["max_rss_kb"] / 2**20
    print(f"    prepare, cache hit:       {second['seconds']:.2f} s wall, peak RSS {hit_gb:.2f} GiB")
    ratio_ok, rss_ok = ("met" if ok else "NOT met" for ok in (ratio <= GOAL_RATIO, rss_gb < GOAL_RSS_GB))
    print(
        f"ratio prepare / read: {ratio:.2f}x (goal <= {GOAL_RATIO:g}x: {ratio_ok}); "
        f"peak RSS goal < {GOAL_RSS_GB:g} GB: {rss_ok}"
    )
    print("\n" + first["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
