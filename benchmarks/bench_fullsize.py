"""Full-size run: synth -> read data_verts.npy once -> prepare -> one training epoch -> animate
10 minutes of audio, each step in its own child process, with wall time and peak memory.

    .venv/bin/python benchmarks/bench_fullsize.py --work /data/vocagan-bench --template-ply FLAME_sample.ply
                                                     # VOCASET-sized: 1.2e5 frames x 5023 FLAME vertices
    .venv/bin/python benchmarks/bench_fullsize.py --work /tmp/vocagan-bench --scale small
    .venv/bin/python benchmarks/bench_fullsize.py --work /data/vocagan-bench --only-prepare --repeat 3

--only-prepare stops after read-once + prepare; --repeat N alternates read-once and prepare N times
(on a shared machine, judge by the ratio of the two measured back to back, not by either alone).

The built-in face has 2313 vertices at every scale but tiny, so `--scale full` alone writes 1.2e5
frames x 2313 vertices (3.2 GB); with `--template-ply FLAME_sample.ply` the corpus animates the FLAME
template and is VOCASET's size (5023 vertices, ~7 GB), as the figures in RESULTS.md before issue 13.

--work must be outside the repository; the corpus goes to WORK/corpus-<scale> (generated with
`vocagan synth --scale SCALE` when absent, kept for later runs: the full one is ~7 GB) and each run's
cache, checkpoint and animation to a new WORK/run-<scale>-<time>/ (nothing is deleted).

Time, per step: wall seconds, and CPU seconds (user + system of the child and its children, from
wait4): on a shared machine the wall time depends on the load, the CPU time much less.
Memory, per step (the `python -m vocagan ...` child):
  peak RSS   ru_maxrss of the child from wait4 (the largest of it and its own children, e.g. ffmpeg);
             it counts pages of data_verts.npy mapped and touched through the memory map, which are
             file-backed page cache (reclaimable), not allocations;
  peak anon  the largest RssAnon (/proc/PID/status, sampled every 50 ms, summed over the child and
             its descendants): the memory the step actually allocates;
  verts map  the largest resident part of data_verts.npy's memory map in the child (/proc/PID/smaps,
             sampled): how much of the raw vertices the step has touched.
Goals checked: prepare peak RSS < 3 GB; training reads the prepared cache, not the raw vertices
(its data_verts.npy map stays ~0 resident); animate's memory stays bounded for
10 minutes of audio (real-time factor = wall seconds / audio seconds, video included unless
--no-video). A markdown table is printed and written to RUN/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, not whatever vocagan is installed
GOAL_PREPARE_RSS_GB = 3.0
GOAL_RATIO = 3.0  # prepare wall <= 3x the read-once wall
SAMPLE_S = 0.05

# Runs in a child: read every byte of data_verts.npy once through its memory map, in chunks.
READ_ONCE = """
import sys, numpy as np
verts = np.load(sys.argv[1], mmap_mode="r")
total = 0.0
for start in range(0, len(verts), 2048):
    total += float(np.array(verts[start:start + 2048])[:, 0, 0].sum())   # copy out, touch
print(f"read {verts.shape} {verts.nbytes / 2**30:.2f} GiB")
"""


@dataclass
class Step:
    name: str
    command: str
    seconds: float
    cpu_seconds: float
    max_rss_gb: float
    max_anon_gb: float
    verts_map_gb: float
    output: str


# ----------------------------------------------------------------------------- measuring a child
def _descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _anon_kb(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _mapped_kb(pid: int, path: str) -> int:
    """Resident kB of `path`'s mappings in process `pid` (from /proc/PID/smaps)."""
    total, inside = 0, False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if not line[0].isupper():  # a mapping header: "start-end perms offset dev inode path"
                    inside = line.rstrip("\n").endswith(path)
                elif inside and line.startswith("Rss:"):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def measure(
    name: str, argv: list[str], log_dir: Path, mapped: Path, label: str | None = None, repo: Path = REPO
) -> Step:
    """Run argv as a child (in and importing vocagan from `repo`); wall time, ru_maxrss (wait4),
    sampled peak RssAnon and peak resident size of the `mapped` file's memory map. Exits on failure.
    `label` replaces the command in the report."""
    log = log_dir / f"{name.replace(' ', '_')}.log"
    env = {**os.environ, "VOCAGAN_PROGRESS": "0", "PYTHONPATH": str(repo)}
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak_anon = peak_map = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_anon = max(peak_anon, _anon_kb(_descendants(proc.pid)))
            peak_map = max(peak_map, _mapped_kb(proc.pid, str(mapped)))
            time.sleep(SAMPLE_S)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{name} failed (exit {proc.returncode}); log {log}:\n{text[-3000:]}")
    command = label or " ".join(a if a != sys.executable else "python" for a in argv)
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"  {name}: {seconds:.1f} s wall, {cpu:.1f} s CPU, peak RSS {usage.ru_maxrss / 2**20:.2f} GiB, "
        f"peak anon {peak_anon / 2**20:.2f} GiB, data_verts map {peak_map / 2**20:.2f} GiB",
        flush=True,
    )
    return Step(name, command, seconds, cpu, usage.ru_maxrss / 2**20, peak_anon / 2**20, peak_map / 2**20, text)


def vocagan(*args: str) -> list[str]:
    return [sys.executable, "-m", "vocagan", *args]


# ----------------------------------------------------------------------------- inputs
def long_audio(corpus: Path, out: Path, minutes: float, sr: int = 16000) -> float:
    """Concatenate the corpus's wavs (resampled to `sr`) into one `minutes`-long wav; returns seconds."""
    from vocagan.formats.audio import load_audio, resample, save_wav

    need = int(minutes * 60 * sr)
    pieces, have = [], 0
    wavs = sorted((corpus / "wav").glob("*.wav"))
    if not wavs:
        sys.exit(f"no wav files in {corpus / 'wav'}")
    while have < need:
        for wav in wavs:
            x, rate = load_audio(wav)
            pieces.append(resample(x, rate, sr))
            have += len(pieces[-1])
            if have >= need:
                break
    save_wav(out, np.concatenate(pieces)[:need], sr)
    return need / sr


# ----------------------------------------------------------------------------- report
def table(steps: list[Step], facts: dict[str, str]) -> str:
    lines = [
        "| step | wall (s) | CPU (s) | peak RSS (GiB) | peak anon RSS (GiB) | data_verts map resident (GiB) "
        "| command |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s.name} | {s.seconds:.1f} | {s.cpu_seconds:.1f} | {s.max_rss_gb:.2f} | {s.max_anon_gb:.2f} "
            f"| {s.verts_map_gb:.2f} "
            f"| `{s.command}` |"
        )
    return "\n".join([*(f"- {k}: {v}" for k, v in facts.items()), "", *lines])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder outside the repository (corpus + runs)")
    ap.add_argument("--scale", default="full", choices=["tiny", "small", "full"])
    ap.add_argument(
        "--template-ply", type=Path, help="animate this mesh (e.g. FLAME_sample.ply) instead of the built-in face"
    )
    ap.add_argument("--model", default="transformer_gan", help="model trained for one epoch (default: %(default)s)")
    ap.add_argument("--audio-minutes", type=float, default=10.0, help="length of the animate input")
    ap.add_argument("--video-size", type=int, default=256, help="animate video size (pixels)")
    ap.add_argument("--no-video", action="store_true", help="animate without the mp4")
    ap.add_argument(
        "--only-prepare", action="store_true", help="stop after read-once and prepare (no training, no animate)"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="measure read-once + prepare (empty cache) N times, alternating (noisy shared machines)",
    )
    ap.add_argument(
        "--baseline-repo",
        type=Path,
        metavar="DIR",
        help="another checkout of vocagan (e.g. `git archive <commit>` unpacked): its prepare is "
        "measured right after this one's in every repeat, for a before/after at the same load",
    )
    args = ap.parse_args(argv)

    work = args.work.resolve()
    if work == REPO or work.is_relative_to(REPO):
        sys.exit("--work must be outside the repository (the full corpus is ~7 GB)")
    corpus = work / (f"corpus-{args.scale}" + (f"-{args.template_ply.stem}" if args.template_ply else ""))
    run = work / f"run-{args.scale}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run.mkdir(parents=True)
    print(f"bench_fullsize: scale {args.scale}, corpus {corpus}, run {run}", flush=True)
    steps = []
    data_verts = corpus / "data_verts.npy"
    if not data_verts.is_file():
        template = ["--template-ply", str(args.template_ply)] if args.template_ply else []
        steps.append(
            measure("synth", vocagan("synth", "--scale", args.scale, "--out", str(corpus), *template), run, data_verts)
        )
    shape = np.load(data_verts, mmap_mode="r").shape
    size_gb = data_verts.stat().st_size / 2**30
    cache, train_dir = run / "cache", run / "train"
    reads, prepares, baselines = [], [], []
    for i in range(args.repeat):  # read-once and prepare back to back, so both see the same load
        suffix = f" #{i + 1}" if args.repeat > 1 else ""
        reads.append(
            measure(
                "read data_verts.npy once" + suffix,
                [sys.executable, "-c", READ_ONCE, str(data_verts)],
                run,
                data_verts,
                label="python -c <np.load(mmap_mode='r'), copy out 2048 frames at a time>",
            )
        )
        prepare = vocagan("prepare", "--data", str(corpus), "--cache-dir", str(cache / str(i)))
        prepares.append(measure("prepare (empty cache)" + suffix, prepare, run, data_verts))
        steps += [reads[-1], prepares[-1]]
        if args.baseline_repo:
            base = measure(
                f"baseline prepare (empty cache){suffix}",
                vocagan("prepare", "--data", str(corpus), "--cache-dir", str(cache / f"baseline-{i}")),
                run,
                data_verts,
                repo=args.baseline_repo.resolve(),
            )
            base.command = f"{base.command} (in {args.baseline_repo})"
            baselines.append(base)
            steps.append(base)
    steps.append(measure("prepare (cache hit)", prepare, run, data_verts))
    ratios = [p.seconds / r.seconds for r, p in zip(reads, prepares, strict=True)]
    prepare_rss = max(p.max_rss_gb for p in prepares)
    facts = {
        "date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} CPUs, "
        f"{platform.python_version()}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min, at the end)",
        "corpus": f"`vocagan synth --scale {args.scale}`: data_verts {shape}, {size_gb:.2f} GiB",
        "prepare peak RSS": f"{prepare_rss:.2f} GiB (goal < {GOAL_PREPARE_RSS_GB:g} GB: "
        f"{'met' if prepare_rss * 2**30 / 1e9 < GOAL_PREPARE_RSS_GB else 'NOT met'})",
        "prepare / read-once wall": ", ".join(
            f"{p.seconds:.1f} s / {r.seconds:.1f} s = {x:.2f}x" for r, p, x in zip(reads, prepares, ratios, strict=True)
        )
        + f" (goal <= {GOAL_RATIO:g}x in every repeat, a cold first read "
        f"flatters its ratio: " + ("met" if max(ratios) <= GOAL_RATIO else "NOT met") + ")",
    }
    if baselines:
        facts["baseline prepare / read-once wall"] = ", ".join(
            f"{b.seconds:.1f} s / {r.seconds:.1f} s = {b.seconds / r.seconds:.2f}x"
            for r, b in zip(reads, baselines, strict=True)
        )
        facts["prepare CPU seconds, this checkout vs baseline"] = ", ".join(
            f"{p.cpu_seconds:.1f} vs {b.cpu_seconds:.1f}" for p, b in zip(prepares, baselines, strict=True)
        )
    if not args.only_prepare:
        train = measure(
            f"train {args.model}, 1 epoch",
            vocagan(
                "train",
                "--data",
                str(corpus),
                "--cache-dir",
                str(cache / "0"),
                "--model",
                args.model,
                "--epochs",
                "1",
                "--out",
                str(train_dir),
            ),
            run,
            data_verts,
        )
        wav = run / "long.wav"
        seconds = long_audio(corpus, wav, args.audio_minutes)
        animate = vocagan(
            "animate",
            "--checkpoint",
            str(train_dir / "best.pt"),
            "--audio",
            str(wav),
            "--out",
            str(run / "animate"),
            "--size",
            str(args.video_size),
        )
        anim = measure(
            f"animate {seconds / 60:g} min" + (" (no video)" if args.no_video else " + video"),
            animate + (["--no-video"] if args.no_video else []),
            run,
            data_verts,
        )
        steps += [train, anim]
        compute_rtf = re.search(r"real-time factor ([0-9.]+)", anim.output)
        facts["training"] = (
            f"peak RSS {train.max_rss_gb:.2f} GiB; data_verts.npy ({size_gb:.2f} GiB) resident in "
            f"its map at most {train.verts_map_gb * 1024:.1f} MiB: it trains from the prepared cache"
        )
        facts["animate"] = (
            f"{seconds:.0f} s of audio in {anim.seconds:.1f} s wall (real-time factor "
            f"{anim.seconds / seconds:.3f} with process start-up"
            + ("" if args.no_video else " and video")
            + "; features + model alone: "
            + (compute_rtf.group(1) if compute_rtf else "n/a")
            + ")"
        )
    report = table(steps, facts)
    (run / "RESULTS.md").write_text(f"## bench_fullsize, scale {args.scale}\n\n{report}\n")
    print("\n" + report)
    print(f"\nwritten to {run / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
