"""Train several models over several seeds, evaluate them and three baselines under one protocol,
and write one report: every metric as mean ± std over seeds, bar charts, validation curves side by
side, and a verdict generated from the numbers (never written by hand).

    out_dir/runs/<model>/seed<k>/      training run folders (finished runs are reused, partial ones resumed)
    out_dir/eval/<model>/seed<k>/      evaluate() outputs per run
    out_dir/eval/baselines/<name>/     zero motion, mean motion, ridge
    out_dir/report.md, out_dir/compare.json, out_dir/*.png
    out_dir/corpus/                    the built-in small corpus, written once when no data is given
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vocagan.baselines import BASELINES
from vocagan.config import DEFAULT_MODEL, Config, config_differences, model_config
from vocagan.errors import VocaganError
from vocagan.eval_report import TABLE, EvalResult, finite_or_none, format_mean_std, format_value, md_escape
from vocagan.models import MODELS, label
from vocagan.options import CompareOptions, check
from vocagan.runs import REUSE_MAY_DIFFER
from vocagan.utils import atomic_write_json, atomic_write_text, log, output_dir

# The training settings `vocagan compare` starts from (a layer under the user's config file and
# flags, which override any of them): the demo's budget (configs/demo.yaml), so the models are
# compared trained, not half-way. Measured on the built-in small corpus, 3 seeds: at 6 epochs
# (batch 8) every model was still far from converged (test LVE 0.42-0.48; Transformer 0.354,
# Transformer+GAN 0.346 at 40) and the ranking changed with the budget. 4 models x 3 seeds x 40
# epochs must stay under 30 minutes on 2 idle CPU cores. At ~6 steps per epoch (96 sequences,
# batch 16) the library's 100 warm-up steps would be 40% of it.
COMPARE_TRAIN = {"epochs": 40, "batch_size": 16, "warmup_steps": 20}
SETTINGS = ("epochs", "batch_size", "warmup_steps")  # reported in the report's header
# (key, higher is better); "accel_mm" is judged by its distance to the ground truth's acceleration
KEY_METRICS = [
    ("lve", False),
    ("lve_mm", False),
    ("mve_mm", False),
    ("fdd_abs", False),
    ("mouth_corr", True),
    ("mouth_diff_mm", False),
    ("closure_rate", True),
    ("lag", None),
    ("accel_mm", None),
]
# judged among the models only: a still mouth (zero / mean motion) "reaches" every closure
MODELS_ONLY = {"closure_rate"}
LABELS = {k: (label, scale) for k, label, scale in TABLE}
# the selection criterion of each run (val subjects, best epoch): shown so that val and test can be compared
VAL_ROW = ("val_lve", "val LVE, best epoch (x1e-5 m², val subjects)", 1e5)


@dataclass
class CompareResult:
    out_dir: Path
    report: Path
    epochs: int
    seconds: float
    table: str
    verdict: list[str] = field(default_factory=list)
    runs: dict = field(default_factory=dict)  # model -> [metrics dict per seed]

    def summary(self) -> str:
        return "\n".join(
            [
                self.table,
                "",
                *[f"- {v}" for v in self.verdict],
                "",
                f"compare: {self.epochs} epochs per run, wall time {self.seconds / 60:.1f} min",
                f"report: {self.report}",
            ]
        )


def run_config(cfg: Config, model: str, seed: int) -> Config:
    """The config of one run: cfg.model when it is this model's, else the model's defaults; this seed."""
    model_cfg = cfg.model if cfg.model_name == model else model_config(model)
    return replace(cfg, model=model_cfg, train=replace(cfg.train, seed=seed))


def run_state(run_dir: Path, cfg: Config) -> str:
    """ "finished" (reuse), "partial" (resume), "new" (train); a folder holding a different run -> error."""
    from vocagan.checkpoint import read_checkpoint

    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if not last.is_file() or not best.is_file():
        return "new"
    state = read_checkpoint(last)
    differ = config_differences(json.loads(state["config"]), cfg, REUSE_MAY_DIFFER | {"train.epochs"})
    if differ:
        raise VocaganError(f"holds a run with a different config ({', '.join(differ[:5])}); use another --out", run_dir)
    loop = state.get("extra", {}).get("loop", {})
    done = bool(loop.get("finished")) or int(loop.get("next_epoch", 0)) >= cfg.train.epochs
    return "finished" if done else "partial"


def _mean_std(values: list[float]) -> tuple[float, float]:
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def _score(key: str, metrics: dict) -> float:
    """Lower is better for every key after this transform."""
    v = metrics.get(key)
    v = float("nan") if v is None else v
    if key in ("mouth_corr", "closure_rate"):
        return -v
    if key == "lag":
        return abs(v)
    if key == "accel_mm":
        gt = metrics.get("accel_gt_mm")
        return abs(v - (float("nan") if gt is None else gt))
    return v


def verdict(results: dict[str, list[dict]], models: list[str], focus: str = DEFAULT_MODEL) -> list[str]:
    """Sentences generated from the numbers: the winner of each key metric (models and baselines), whether
    the margin exceeds the seed spread, how each model compares with the mean-motion baseline, and
    whether `focus` (the model whose claim is tested; Transformer+GAN by default) wins on LVE and lip sync."""
    lines = []
    winners: dict[str, tuple[str | None, bool]] = {}
    for key, _ in KEY_METRICS:
        scores = {n: _mean_std([_score(key, m) for m in runs]) for n, runs in results.items()}
        scores = {n: v for n, v in scores.items() if np.isfinite(v[0]) and (key not in MODELS_ONLY or n in models)}
        if not scores:
            continue
        ranked = sorted(scores, key=lambda n: scores[n][0])
        best = ranked[0]
        winners[key] = (best, True)  # (winner, clear: margin above the seed spread)
        what = LABELS[key][0] + (" (among the models)" if key in MODELS_ONLY else "")
        text = f"{what}: best is {label(best)}"
        tied = [n for n in ranked if scores[n][0] - scores[best][0] <= 1e-9 * max(1.0, abs(scores[best][0]))]
        if len(tied) > 1 and len(tied) == len(ranked) and "zero motion" in tied:
            # the template-only baseline scores the same as every model: nobody moves what this metric reads
            text = (
                f"{what}: the same for every entry, zero motion included: no model moves the region this "
                f"metric reads (with prep.region 'mouth' the models animate the mouth crop only and the "
                f"upper face stays the template), so it does not separate them"
            )
            winners[key] = (None, False)
        elif len(tied) > 1:
            text = f"{what}: {', '.join(label(n) for n in tied)} tie"
            winners[key] = (None, False)
        elif len(ranked) > 1:
            second = ranked[1]
            gap = scores[second][0] - scores[best][0]
            spread = max(scores[best][1], scores[second][1])
            clear = not (spread > 0 and gap <= spread)
            winners[key] = (best, clear)
            text += f", ahead of {label(second)}" + ("" if clear else " (within the seed spread)")
        lines.append(text + ".")
    if "mean motion" in results:
        ref = _mean_std([m["lve"] for m in results["mean motion"]])[0]
        for name in models:
            lve = _mean_std([m["lve"] for m in results[name]])[0]
            if np.isfinite(lve) and np.isfinite(ref):
                rel = 100 * (ref - lve) / ref
                word = "beats" if lve < ref else "does NOT beat"
                lines.append(
                    f"{label(name)} {word} the mean-motion baseline on LVE "
                    f"({lve * 1e5:.3f} vs {ref * 1e5:.3f} x1e-5 m², {rel:+.1f}%)."
                )
    name = label(focus)
    if focus not in models:
        lines.append(f"{name} was not part of this comparison.")
        return lines
    for key, what in (
        ("lve", "LVE"),
        ("mouth_corr", "lip sync (mouth-opening correlation)"),
        ("closure_rate", "lip closures reached"),
    ):
        if key not in winners:
            lines.append(f"{name} on {what}: not measured (no finite values).")
            continue
        model_best = min(
            (n for n in models if n in results), key=lambda n: _mean_std([_score(key, m) for m in results[n]])[0]
        )
        winner, clear = winners[key]
        if winner is None:
            lines.append(f"{name} does NOT win on {what}: it ties with other entries.")
        elif winner == focus:
            lines.append(
                f"{name} wins on {what}."
                if clear
                else f"{name} is best on {what}, but by less than the seed spread: not a clear win."
            )
        elif model_best == focus:
            lines.append(f"{name} is the best model on {what} but does not beat the baseline {winner}.")
        else:
            lines.append(
                f"{name} does NOT win on {what}: {label(model_best)} is better among the models"
                + ("" if winner == model_best else f", and the baseline {winner} is best overall")
                + "."
            )
    return lines


def compare(cfg: Config, out_dir: Path, models: list[str], seeds: int, focus: str = DEFAULT_MODEL) -> CompareResult:
    """Train `models` x `seeds` (seeds cfg.train.seed + 0..seeds-1) with cfg.train's settings (the CLI
    starts them from COMPARE_TRAIN), evaluate each and the baselines, write report.md; the verdict
    tests `focus`'s claim."""
    from vocagan.baselines import evaluate_baselines
    from vocagan.evaluate import evaluate
    from vocagan.plotting import plot_bars, plot_curves_side_by_side, read_metrics
    from vocagan.train import train

    seeds = check(CompareOptions, seeds=seeds)
    if not models:
        raise VocaganError("compare needs at least one model")
    unknown = [m for m in [*models, focus] if m not in MODELS]
    if unknown:
        raise VocaganError(f"unknown model(s) {', '.join(unknown)}; valid models: {', '.join(MODELS)}")
    t0 = time.perf_counter()
    out_dir = output_dir(out_dir)
    if not (cfg.data.root or cfg.data.data_verts_path or cfg.data.template_path):
        from vocagan.synth.corpus import builtin_corpus  # no data given: the built-in small corpus

        cfg = replace(cfg, data=replace(cfg.data, root=str(builtin_corpus(out_dir / "corpus"))))
    settings = {k: getattr(cfg.train, k) for k in SETTINGS}
    fps = cfg.data.fps
    results: dict[str, list[dict]] = {}
    curves: dict[str, list] = {}
    run_rows: list[dict] = []
    protocol: dict = {}
    total, i = len(models) * seeds, 0
    for model in models:
        results[model], curves[label(model)] = [], []
        for k in range(seeds):
            i += 1
            seed = cfg.train.seed + k
            run_dir = out_dir / "runs" / model / f"seed{seed}"
            rcfg = run_config(cfg, model, seed)
            state = run_state(run_dir, rcfg)
            t = time.perf_counter()
            log(
                f"[compare] run {i}/{total}: {model} seed {seed} -- "
                + {"finished": "reusing the finished run", "partial": "resuming", "new": "training"}[state]
            )
            if state != "finished":
                train(rcfg, run_dir, resume=state == "partial")
            t_train = time.perf_counter() - t
            result = _evaluate_run(evaluate, run_dir / "best.pt", out_dir / "eval" / model / f"seed{seed}", fps)
            protocol = protocol or result.protocol
            rows = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
            val = [(int(r["epoch"]), float(r["val_lve"])) for r in rows if r.get("val_lve") is not None]
            # the validation LVE that picked best.pt (logged in units of 1e-5 m^2), beside the test metrics
            results[model].append({**result.metrics, "val_lve": min(v for _, v in val) * 1e-5 if val else None})
            curves[label(model)].append(([e for e, _ in val], [v for _, v in val]))
            run_rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "state": state,
                    "epochs": len(rows),
                    "train_s": round(t_train, 1),
                    "epochs_s": round(sum(r.get("time_s", 0) for r in rows), 1),
                    "lve": result.metrics["lve"],
                }
            )
            log(
                f"[compare] run {i}/{total}: {model} seed {seed} done: test LVE "
                f"{format_value('lve', result.metrics['lve'], 1e5)} x1e-5 m^2 ({time.perf_counter() - t:.0f} s)"
            )
    log("[compare] baselines: zero motion, mean motion, ridge")
    base_cfg = run_config(cfg, models[0], cfg.train.seed)
    for name, res in evaluate_baselines(base_cfg, out_dir / "eval" / "baselines", fps).items():
        results[name] = [res.metrics]
    seconds = time.perf_counter() - t0
    return _report(
        out_dir,
        results,
        models,
        seeds,
        settings,
        curves,
        run_rows,
        protocol,
        seconds,
        focus,
        plot_bars,
        plot_curves_side_by_side,
    )


def _evaluate_run(evaluate, checkpoint: Path, eval_dir: Path, fps: int) -> EvalResult:
    """evaluate(), or its saved metrics.json when that is newer than the checkpoint."""
    saved = eval_dir / "metrics.json"
    if saved.is_file() and saved.stat().st_mtime > checkpoint.stat().st_mtime:
        previous = EvalResult.read(eval_dir)
        if previous.protocol.get("fps") == fps:
            return previous
    return evaluate(checkpoint, None, eval_dir, fps=fps)


def _report(
    out_dir,
    results,
    models,
    seeds,
    settings,
    curves,
    run_rows,
    protocol,
    seconds,
    focus,
    plot_bars,
    plot_curves_side_by_side,
) -> CompareResult:
    epochs = settings["epochs"]
    names = list(models) + [b for b in BASELINES if b in results]
    header = "| metric | " + " | ".join(label(n) for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for key, row_label, scale in [VAL_ROW, *TABLE]:
        if any(key in m for runs in results.values() for m in runs):
            cells = [format_mean_std(key, [m.get(key) for m in results[n]], scale) for n in names]
            lines.append(f"| {md_escape(row_label)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    sentences = verdict(results, models, focus)
    figures = []
    for key, _ in KEY_METRICS:
        what, scale = LABELS[key]
        stats = [_mean_std([m.get(key) for m in results[n]]) for n in names]
        if all(np.isfinite(s[0]) for s in stats):
            path = plot_bars(
                [label(n) for n in names],
                [s[0] * scale for s in stats],
                out_dir / f"bar_{key}.png",
                f"{what}: mean ± std over {seeds} seed(s)",
                what,
                errors=[s[1] * scale for s in stats],
            )
            figures.append(path)
    curve_png = plot_curves_side_by_side(
        curves, out_dir / "val_curves.png", "validation LVE per epoch", "val LVE (x1e-5 m^2)"
    )
    report = out_dir / "report.md"
    runs_table = [
        "| model | seed | run | epochs | epochs' time s | train call s | test LVE (x1e-5 m²) |",
        "|---|---|---|---|---|---|---|",
    ]
    runs_table += [
        f"| {r['model']} | {r['seed']} | {r['state']} | {r['epochs']} | {r['epochs_s']} | {r['train_s']} | "
        f"{format_value('lve', r['lve'], 1e5)} |"
        for r in run_rows
    ]
    reused = sum(r["state"] == "finished" for r in run_rows)
    p = protocol
    text = [
        "# Model comparison",
        "",
        f"- models: {', '.join(label(m) for m in models)}; {seeds} seed(s) each; {epochs} epochs per run "
        f"(early stopping may end a run sooner), batch size {settings['batch_size']}, "
        f"{settings['warmup_steps']} warm-up steps; wall time of this call {seconds / 60:.1f} min"
        + (f" ({reused} of {len(run_rows)} finished runs reused, not retrained)" if reused else ""),
        "- baselines: zero motion (template only), mean motion (mean train mouth offset), ridge regression "
        "(audio features ± 2 frames -> PCA coefficients, fitted on train, λ chosen on val)",
        f"- evaluation fps {p.get('fps')}; {p.get('n_sequences')} test sequences, {p.get('n_frames')} frames; "
        f"subjects {', '.join(p.get('subjects', []))}",
        f"- conditions: {p.get('conditions')} (baselines are style-independent)",
        f"- lip region: {p.get('region_source')}",
        "- LVE frame-pooled over all test frames unless labelled sequence-averaged; every cell is mean ± std "
        "(sample std) over seeds; baselines are deterministic (one run)",
        "",
        "## Results",
        "",
        table,
        "",
        "## Verdict",
        "",
        *[f"- {s}" for s in sentences],
        "",
        "## Figures",
        "",
    ]
    text += [f"![{f.stem}]({f.name})" for f in figures]
    if curve_png:
        text += ["", f"![validation curves]({curve_png.name})"]
    text += ["", "## Runs", "", *runs_table, ""]
    atomic_write_text(report, "\n".join(text))
    summary = {
        "models": models,
        "seeds": seeds,
        "train": settings,
        "seconds": seconds,
        "results": results,
        "runs": run_rows,
        "protocol": protocol,
        "verdict": sentences,
    }
    atomic_write_json(out_dir / "compare.json", finite_or_none(summary))
    return CompareResult(out_dir, report, epochs, seconds, table, sentences, {m: results[m] for m in models})
