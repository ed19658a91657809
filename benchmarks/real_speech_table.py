#!/usr/bin/env python3
"""The real-speech table in one command: the README's main job over several seeds, checked on every
labelled real recording under every training style.

    .venv/bin/python benchmarks/real_speech_table.py --out runs/real_speech            # seeds 0 1 2
    .venv/bin/python benchmarks/real_speech_table.py --out runs/rs_phonetic --set features.kind=phonetic

1. the built-in corpus (`vocagan synth`, scale small: the demo's) in OUT/corpus (reused when current);
2. per seed S: `vocagan train --config configs/demo.yaml --set train.seed=S [--set ...]` into
   OUT/seed<S>/train (reused when its best.pt was trained with the same config) and `vocagan evaluate`
   on the test split (OUT/seed<S>/eval: LVE, lip closures);
3. every recording of tests/data/real_speech/recordings.json (benchmarks/real_speech.py fetches it),
   animated by each seed's model under each training style (`vocagan animate`'s path, no video) and
   judged by benchmarks/accept_real_speech.py's criterion: every m/b/p closes to <= 0.5 mm above the
   neutral face and the vowel mean is >= 1 mm above the bilabial mean;
4. OUT/table.md (+ table.json): per recording, styles passing per seed and bilabials closed; the test
   LVE per seed; OUT/plots/<recording>.png: the mouth opening over time per seed (mean over styles,
   the band spans the styles) with the phones shaded.

Exit status 0 when every recording passes under every style and seed (the goal), 3 otherwise, 1 on
an error. Torch threads: --threads (default 2, the README's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accept_real_speech as accept
import real_speech

REPO = real_speech.REPO
CLOSED_MM, MARGIN_MM = 0.5, 1.0


def train_seed(out: Path, corpus: Path, config: Path, seed: int, sets: list[str]) -> tuple[Path, dict]:
    """best.pt of the demo recipe with this seed (reused when the saved config matches) and its
    test-split metrics."""
    from vocagan.checkpoint import read_checkpoint
    from vocagan.config import DataConfig, config_differences, load_config
    from vocagan.evaluate import evaluate
    from vocagan.train import train

    cfg = load_config(config, overrides=[f"data.root={corpus}", f"train.seed={seed}", *sets])
    run = out / f"seed{seed}"
    best = run / "train" / "best.pt"
    fresh = True
    if best.is_file() and (run / "train" / "last.pt").is_file():
        saved = json.loads(read_checkpoint(run / "train" / "last.pt")["config"])
        fresh = bool(config_differences(saved, cfg, {"train.device", "train.num_workers", "prep.cache_dir"}))
    if fresh:
        print(f"[table] training seed {seed} -> {run / 'train'}", flush=True)
        train(cfg, run / "train")
    metrics_file = run / "eval" / "metrics.json"
    if fresh or not metrics_file.is_file():
        evaluate(best, DataConfig(root=str(corpus)), run / "eval")
    return best, json.loads(metrics_file.read_text())["metrics"]


def openings(checkpoint: Path, audio: Path) -> tuple[dict[str, np.ndarray], float]:
    """Mouth opening above neutral (T,) mm per training style, as `vocagan animate` moves the face."""
    from vocagan import metrics
    from vocagan.checkpoint import load_checkpoint
    from vocagan.infer import animate
    from vocagan.prep.regions import mouth_opening_vertices

    _, ckpt = load_checkpoint(checkpoint)
    with tempfile.TemporaryDirectory(prefix="rs-table-") as work:
        result = animate(checkpoint, audio, Path(work), style="all", video=False)
        template = ckpt.prepared.template(result.template)
        upper, lower = mouth_opening_vertices(template, ckpt.prepared.regions.lips)
        rest = metrics.mouth_opening(template[None], upper, lower)[0]
        out = {o.style: metrics.mouth_opening(np.load(o.vertices), upper, lower) - rest for o in result.outputs}
    return out, result.fps


def plot_recording(path: Path, curves: dict[int, np.ndarray], fps: float, rows, title: str) -> Path:
    """Opening over time per seed: mean over styles, band = min..max over styles; phones shaded."""
    from matplotlib.figure import Figure

    from vocagan.plotting import save_figure

    colours = {"vowel": "tab:orange", "bilabial": "tab:blue", "silence": "0.6"}
    duration = max(len(c[0]) for c in curves.values()) / fps
    fig = Figure(figsize=(max(10, 2.6 * duration), 4.8), dpi=90)
    ax = fig.add_subplot(1, 1, 1)
    top = max(float(c.max()) for c in curves.values()) * 1.1 + 0.3
    for r in rows:
        if r.kind in colours:
            ax.axvspan(r.start, r.end, color=colours[r.kind], alpha=0.22, lw=0)
        ax.text(0.5 * (r.start + r.end), top, r.phone, ha="center", va="bottom", fontsize=7, rotation=90)
    for k, (seed, c) in enumerate(sorted(curves.items())):
        t = np.arange(c.shape[1]) / fps
        colour = f"C{k + 3}"
        ax.fill_between(t, c.min(0), c.max(0), color=colour, alpha=0.18, lw=0)
        ax.plot(t, c.mean(0), color=colour, lw=1.2, label=f"seed {seed} (mean of {len(c)} styles; band: min-max)")
    ax.axhline(CLOSED_MM, color="tab:blue", ls="--", lw=0.8, label=f"closed: <= {CLOSED_MM:g} mm")
    ax.axhline(0.0, color="0.3", lw=0.5)
    for kind, c in colours.items():
        ax.axvspan(0, 0, color=c, alpha=0.22, label=kind)
    ax.set_xlim(0, duration)
    ax.set_ylim(min(0.0, min(float(c.min()) for c in curves.values())) - 0.2, top * 1.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening above neutral (mm)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, ncol=6, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def markdown(report: dict) -> str:
    seeds = report["seeds"]
    head = (
        "| recording | bilabials | "
        + " | ".join(f"seed {s}: styles passing" for s in seeds)
        + " | styles x seeds | bilabial closures reached |"
    )
    lines = [head, "|" + "---|" * (len(seeds) + 4)]
    for rec in report["recordings"]:
        if "error" in rec:
            lines.append(f"| {rec['id']} | - | " + " | ".join("n/a" for _ in seeds) + f" | n/a ({rec['error']}) | - |")
            continue
        cells = [f"{rec['per_seed'][str(s)]['passed']}/{rec['per_seed'][str(s)]['styles']}" for s in seeds]
        lines.append(
            f"| {rec['id']} | {rec['n_bilabials']} | "
            + " | ".join(cells)
            + f" | **{rec['passed']}/{rec['runs']}** | {rec['closed']}/{rec['closures']} "
            f"({100 * rec['closed'] / max(rec['closures'], 1):.0f} %) |"
        )
    lve = [report["test"][str(s)]["lve"] for s in seeds]
    closures = [report["test"][str(s)]["closure_rate"] for s in seeds]
    lines += [
        "",
        f"Test split (built-in corpus), per seed {', '.join(map(str, seeds))}: LVE "
        + " / ".join(f"{v:.4f}" for v in lve)
        + f" x1e-5 m^2 (mean {np.mean(lve):.4f} +- {np.std(lve):.4f}); "
        "lip closures reached " + " / ".join(f"{v:.1f}" for v in closures) + " %.",
        f"Goal (every recording, every style and seed): {'MET' if report['goal_met'] else 'not met'}; "
        f"{report['passed']}/{report['runs']} recording x style x seed runs pass.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    from vocagan.errors import VocaganError
    from vocagan.synth.corpus import builtin_corpus
    from vocagan.utils import atomic_write_json, atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "real_speech")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    ap.add_argument("--corpus", type=Path, help="a VOCASET folder (default: the built-in corpus in OUT/corpus)")
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for training (repeatable), e.g. features.kind=phonetic",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        corpus = args.corpus or builtin_corpus(args.out / "corpus")
        runs = {s: train_seed(args.out, corpus, args.config, s, args.sets) for s in args.seeds}
        report = {
            "seeds": args.seeds,
            "config": str(args.config),
            "sets": args.sets,
            "threads": args.threads,
            "criterion": f"every m/b/p min <= {CLOSED_MM} mm above neutral and vowel mean - bilabial mean "
            f">= {MARGIN_MM} mm",
            "test": {str(s): {"lve": m["lve"] * 1e5, "closure_rate": m["closure_rate"]} for s, (_, m) in runs.items()},
            "recordings": [],
        }
        for rec, audio, why in real_speech.available():
            if audio is None:
                print(f"[table] {rec.id}: unavailable ({why})", flush=True)
                report["recordings"].append({"id": rec.id, "error": why})
                continue
            labels = accept.read_lab(rec.lab)
            entry = {
                "id": rec.id,
                "audio": str(audio),
                "per_seed": {},
                "passed": 0,
                "runs": 0,
                "closed": 0,
                "closures": 0,
            }
            curves = {}
            for seed, (best, _) in runs.items():
                per_style, fps = openings(best, audio)
                curves[seed] = np.stack(list(per_style.values()))
                results = {}
                for style, opening in per_style.items():
                    rows = accept.phone_rows(opening, labels, fps)
                    v = accept.verdict(rows, CLOSED_MM, MARGIN_MM)
                    results[style] = {
                        "passed": v["passed"],
                        "bilabial_mins_mm": v["bilabial_mins_mm"],
                        "vowel_mean_mm": v["vowel_mean_mm"],
                        "bilabial_mean_mm": v["bilabial_mean_mm"],
                    }
                    entry["closed"] += sum(m <= CLOSED_MM for m in v["bilabial_mins_mm"])
                    entry["closures"] += len(v["bilabial_mins_mm"])
                    entry["n_bilabials"] = v["n_bilabials"]
                n_pass = sum(r["passed"] for r in results.values())
                entry["per_seed"][str(seed)] = {"passed": n_pass, "styles": len(results), "styles_detail": results}
                entry["passed"] += n_pass
                entry["runs"] += len(results)
            entry["plot"] = str(
                plot_recording(
                    args.out / "plots" / f"{rec.id}.png",
                    curves,
                    fps,
                    rows,
                    f"{rec.id}: {rec.text[:90]} | {entry['passed']}/{entry['runs']} pass",
                )
            )
            print(
                f"[table] {rec.id}: {entry['passed']}/{entry['runs']} style x seed runs pass, "
                f"{entry['closed']}/{entry['closures']} bilabial closures",
                flush=True,
            )
            report["recordings"].append(entry)
        done = [r for r in report["recordings"] if "error" not in r]
        report["passed"], report["runs"] = sum(r["passed"] for r in done), sum(r["runs"] for r in done)
        report["goal_met"] = (
            bool(done) and len(done) == len(report["recordings"]) and report["passed"] == report["runs"]
        )
        report["seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(args.out / "table.json", report)
        table = markdown(report)
        atomic_write_text(args.out / "table.md", table + "\n")
    except VocaganError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table)
    print(
        f"wrote {args.out / 'table.md'}, {args.out / 'table.json'} and {args.out / 'plots'}/ "
        f"({report['seconds']:.0f} s)"
    )
    return 0 if report["goal_met"] else 3


if __name__ == "__main__":
    sys.exit(main())
