"""Train several models over several seeds, evaluate them and three baselines under one protocol,
and write one report: every metric as the mean over seeds with a 95 % interval, paired differences
between the entries with their intervals, bar charts with error bars, validation curves side by
side, and a verdict generated from the intervals (never written by hand).

    out_dir/runs/<model>/seed<k>/      training run folders (finished runs are reused, partial ones resumed)
    out_dir/eval/<model>/seed<k>/      evaluate() outputs per run (with their bootstrap replicates)
    out_dir/eval/baselines/<name>/     zero motion, mean motion, ridge
    out_dir/report.md, out_dir/compare.json, out_dir/*.png, out_dir/sync_expert.pt
    out_dir/corpus/                    the built-in small corpus, written once when no data is given

Estimates, paired differences and the verdict: `vocagan.verdict` (its module doc says how the
intervals are made and what they mean).
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vocagan.baselines import BASELINES
from vocagan.config import DEFAULT_MODEL, Config, config_differences, model_config
from vocagan.errors import VocaganError
from vocagan.eval_report import TABLE, EvalResult, finite_or_none, format_ci, md_escape, metric_fmt, with_ci
from vocagan.models import MODELS, label
from vocagan.options import CompareOptions, check
from vocagan.runs import REUSE_MAY_DIFFER
from vocagan.stats import N_RESAMPLES, SEED
from vocagan.utils import atomic_path, atomic_write_json, atomic_write_text, log, output_dir
from vocagan.verdict import (
    CRITERIA,
    KEY_METRICS,
    LABELS,
    MODELS_ONLY,
    UNCERTAINTY,
    Estimates,
    all_differences,
    diff_text,
    estimate,
    verdict,
)

# The training settings `vocagan compare` starts from (a layer under the user's config file and
# flags, which override any of them): the demo's budget (configs/demo.yaml), so the models are
# compared trained, not half-way. Measured on the built-in small corpus, 3 seeds: at 6 epochs
# (batch 8) every model was still far from converged (test LVE 0.42-0.48; Transformer 0.354,
# Transformer+GAN 0.346 at 40) and the ranking changed with the budget. 4 models x 3 seeds x 40
# epochs must stay under 30 minutes on 2 idle CPU cores. At ~6 steps per epoch (96 sequences,
# batch 16) the library's 100 warm-up steps would be 40% of it.
COMPARE_TRAIN = {"epochs": 40, "batch_size": 16, "warmup_steps": 20}
SETTINGS = ("epochs", "batch_size", "warmup_steps")  # reported in the report's header
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


def _cell(values: list[float], scale: float) -> str:
    """mean ± sample std over seeds (the runs table and logs)."""
    m, s = _mean_std(values)
    if not np.isfinite(m):
        return "n/a"
    return f"{m * scale:.3f} ± {s * scale:.3f}" if len(values) > 1 else f"{m * scale:.3f}"


# ----------------------------------------------------------------------------- the command
def compare(
    cfg: Config,
    out_dir: Path,
    models: list[str],
    seeds: int,
    focus: str = DEFAULT_MODEL,
    sync_expert: Path | None = None,
    jobs: int = 1,
) -> CompareResult:
    """Train `models` x `seeds` (seeds cfg.train.seed + 0..seeds-1) with cfg.train's settings (the CLI
    starts them from COMPARE_TRAIN), evaluate each and the baselines, write report.md; the verdict
    tests `focus`'s claim. Every run is scored by one sync expert: `sync_expert` when given, else the
    one trained once on this corpus' prepared training split. jobs > 1: train and evaluate that many
    runs at once, each in a process of its own with torch's threads shared out (`vocagan.parallel`)."""
    from vocagan.baselines import evaluate_baselines
    from vocagan.evaluate import evaluate, sync_expert_of
    from vocagan.parallel import run_parallel, threads_per_run
    from vocagan.plotting import read_metrics
    from vocagan.train import train

    seeds, jobs = check(CompareOptions, seeds=seeds, jobs=jobs)
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
    # results depend on the thread count (float summation order): the report says what was used
    settings["jobs"], settings["threads"] = jobs, threads_per_run(jobs)
    fps = cfg.data.fps
    base_cfg = run_config(cfg, models[0], cfg.train.seed)
    expert = sync_expert_of(base_cfg, sync_expert)  # prepares the data (cached) and trains the expert once
    results: dict[str, list[dict]] = {}
    replicates: dict[str, list[dict]] = {}
    curves: dict[str, list] = {}
    run_rows: list[dict] = []
    protocol: dict = {}
    total, i = len(models) * seeds, 0
    plan = {
        (model, cfg.train.seed + k): run_config(cfg, model, cfg.train.seed + k)
        for model in models
        for k in range(seeds)
    }
    states = {key: run_state(out_dir / "runs" / key[0] / f"seed{key[1]}", rcfg) for key, rcfg in plan.items()}
    evaluate_run = functools.partial(_evaluate_run, evaluate, fps=fps, expert=expert)
    trained = run_parallel(plan, states, out_dir, jobs, evaluate_run) if jobs > 1 else {}
    for model in models:
        results[model], replicates[model], curves[label(model)] = [], [], []
        for k in range(seeds):
            i += 1
            seed = cfg.train.seed + k
            run_dir = out_dir / "runs" / model / f"seed{seed}"
            rcfg, state = plan[(model, seed)], states[(model, seed)]
            t = time.perf_counter()
            t_eval = None
            if (model, seed) in trained:  # trained and evaluated by run_parallel (read back below)
                t_train, t_eval = trained[(model, seed)]
            else:
                log(
                    f"[compare] run {i}/{total}: {model} seed {seed} -- "
                    + {"finished": "reusing the finished run", "partial": "resuming", "new": "training"}[state]
                )
                if state != "finished":
                    train(rcfg, run_dir, resume=state == "partial")
                t_train = time.perf_counter() - t
            result = evaluate_run(run_dir / "best.pt", out_dir / "eval" / model / f"seed{seed}")
            t_eval = time.perf_counter() - t - t_train if t_eval is None else t_eval
            protocol = protocol or result.protocol
            rows = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
            val = [(int(r["epoch"]), float(r["val_lve"])) for r in rows if r.get("val_lve") is not None]
            # the validation LVE that picked best.pt (logged in units of 1e-5 m^2), beside the test metrics
            results[model].append({**result.metrics, "val_lve": min(v for _, v in val) * 1e-5 if val else None})
            replicates[model].append(result.replicates)
            curves[label(model)].append(([e for e, _ in val], [v for _, v in val]))
            run_rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "state": state,
                    "epochs": len(rows),
                    "train_s": round(t_train, 1),
                    "epochs_s": round(sum(r.get("time_s", 0) for r in rows), 1),
                    "eval_s": round(t_eval, 1),
                    "lve": result.metrics["lve"],
                }
            )
            log(
                f"[compare] run {i}/{total}: {model} seed {seed} done: test LVE {_cell([result.metrics['lve']], 1e5)} "
                f"x1e-5 m^2 ({time.perf_counter() - t:.0f} s)"
            )
    log("[compare] baselines: zero motion, mean motion, ridge")
    baselines = evaluate_baselines(
        base_cfg, out_dir / "eval" / "baselines", fps, sync_expert=expert.path if expert is not None else None
    )
    for name, res in baselines.items():
        results[name] = [res.metrics]
        replicates[name] = [res.replicates]
    if expert is not None and expert.path.resolve() != (out_dir / "sync_expert.pt").resolve():
        with atomic_path(out_dir / "sync_expert.pt") as tmp:
            shutil.copyfile(expert.path, tmp)
    seconds = time.perf_counter() - t0
    return _report(out_dir, results, replicates, models, seeds, settings, curves, run_rows, protocol, seconds, focus)


def _evaluate_run(evaluate, checkpoint: Path, eval_dir: Path, fps: int, expert) -> EvalResult:
    """evaluate(), or the saved evaluation when it is newer than the checkpoint and was made the same
    way (fps, bootstrap resamples, sync expert)."""
    if (eval_dir / "metrics.json").is_file() and (
        eval_dir / "metrics.json"
    ).stat().st_mtime > checkpoint.stat().st_mtime:
        try:
            saved = EvalResult.from_saved(eval_dir)
        except (OSError, ValueError, KeyError) as e:
            log(f"[compare] re-evaluating {eval_dir}: unreadable saved evaluation ({e})")
        else:
            p = saved.protocol
            same = (
                p.get("fps") == fps
                and p.get("bootstrap", {}).get("n_resamples") == N_RESAMPLES
                and p.get("bootstrap", {}).get("seed") == SEED
                and p.get("sync_expert_info", {}).get("sha256") == (expert.sha256 if expert is not None else None)
                and bool(saved.replicates)
            )
            if same:
                return saved
    return evaluate(checkpoint, None, eval_dir, fps=fps, sync_expert=expert.path if expert is not None else None)


def _report(
    out_dir, results, replicates, models, seeds, settings, curves, run_rows, protocol, seconds, focus
) -> CompareResult:
    from vocagan.plotting import plot_bars, plot_curves_side_by_side, plot_interval_panels

    epochs = settings["epochs"]
    names = list(models) + [b for b in BASELINES if b in results]
    est = estimate(results, replicates)
    header = "| metric | " + " | ".join(label(n) for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for key, row_label, scale in [VAL_ROW, *TABLE]:
        if any(key in m for runs in results.values() for m in runs):
            cells = [format_ci(est.value(n, key), est.ci(n, key), scale, metric_fmt(key)) for n in names]
            lines.append(f"| {md_escape(row_label)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    sentences = verdict(est, models, focus)

    # paired differences: the focus model against every other entry, on the judged metrics
    others = [n for n in names if n != focus] if focus in names else []
    diff_lines = []
    diff_panels = []
    if others:
        diff_lines = [
            "| metric (criterion) | " + " | ".join(f"{label(focus)} − {label(n)}" for n in others) + " |",
            "|---" * (len(others) + 1) + "|",
        ]
        for key, crit in KEY_METRICS:
            if not np.isfinite(est.value(focus, key)):
                continue
            cells, rows = [], []
            for n in others:
                if key in MODELS_ONLY and n not in models or not np.isfinite(est.value(n, key)):
                    cells.append("n/a")
                    continue
                j = est.judge(focus, n, key, crit)
                cells.append(f"{diff_text(est, focus, n, key, crit)} {j}")
                d, lo, hi = est.shown_difference(focus, n, key, crit)
                scale = LABELS[key][1]
                rows.append((f"vs {label(n)}", d * scale, (lo * scale, hi * scale)))
            target = {"one": "|x - 1|", "zero": "|x|", "gt": "|x - gt|"}.get(crit)
            what = LABELS[key][0] + (f", as {target}" if target else "")
            diff_lines.append(f"| {what} ({CRITERIA[crit]}) | " + " | ".join(cells) + " |")
            values = [est.value(n, key) for n in [focus, *others] if np.isfinite(est.value(n, key))]
            if rows and not np.allclose(values, values[0], rtol=1e-9, atol=0):  # all equal (FDD): nothing to show
                diff_panels.append((f"{what}\n({CRITERIA[crit]})", rows, 0.0))

    figures = []
    for key, crit in KEY_METRICS:
        what, scale = LABELS[key]
        values = [est.value(n, key) for n in names]
        if all(np.isfinite(v) for v in values):
            figures.append(
                plot_bars(
                    [label(n) for n in names],
                    [v * scale for v in values],
                    out_dir / f"bar_{key}.png",
                    f"{what}: mean over {seeds} seed(s), 95 % interval",
                    what,
                    intervals=[tuple(c * scale for c in est.ci(n, key)) for n in names],
                    reference=_reference(est, names, key, crit, scale),
                )
            )
    if diff_panels:
        figures.insert(
            0,
            plot_interval_panels(
                diff_panels,
                out_dir / "differences.png",
                f"{label(focus)} minus each entry: paired differences, 95 % intervals (0 = no difference)",
                ncols=3,
            ),
        )
    curve_png = plot_curves_side_by_side(
        curves, out_dir / "val_curves.png", "validation LVE per epoch", "val LVE (x1e-5 m^2)"
    )
    report = out_dir / "report.md"
    runs_table = [
        "| model | seed | run | epochs | epochs' time s | train call s | evaluate s | test LVE (x1e-5 m²) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs_table += [
        f"| {r['model']} | {r['seed']} | {r['state']} | {r['epochs']} | {r['epochs_s']} | {r['train_s']} | "
        f"{r.get('eval_s', 'n/a')} | {_cell([r['lve']], 1e5)} |"
        for r in run_rows
    ]
    reused = sum(r["state"] == "finished" for r in run_rows)
    p = protocol
    text = [
        "# Model comparison",
        "",
        f"- models: {', '.join(label(m) for m in models)}; {seeds} seed(s) each; {epochs} epochs per run "
        f"(early stopping may end a run sooner), batch size {settings['batch_size']}, "
        f"{settings['warmup_steps']} warm-up steps; {settings['jobs']} run(s) at a time with "
        f"{settings['threads']} torch thread(s) each; wall time of this call {seconds / 60:.1f} min"
        + (f" ({reused} of {len(run_rows)} finished runs reused, not retrained)" if reused else ""),
        "- baselines: zero motion (template only), mean motion (mean train mouth offset), ridge regression "
        "(audio features ± 2 frames -> PCA coefficients, fitted on train, λ chosen on val)",
        f"- evaluation fps {p.get('fps')}; {p.get('n_sequences')} test sequences, {p.get('n_frames')} frames; "
        f"subjects {', '.join(p.get('subjects', []))}",
        f"- conditions: {p.get('conditions')} (baselines are style-independent)",
        f"- lip region: {p.get('region_source')}",
        "- LVE frame-pooled over all test frames unless labelled sequence-averaged",
        *[f"- {p[k]}" for k in ("dynamics", "peaks", "sync", "sync_expert") if p.get(k)],
        f"- intervals: {UNCERTAINTY}",
        "",
        "## Results",
        "",
        table,
        "",
        "## Paired differences",
        "",
        f"{label(focus)} minus each other entry, with the 95 % interval of the difference; 'better' / 'worse' "
        "only where the interval excludes 0. For ratios, lags and acceleration the difference is of the "
        "distance to the target (|x - 1|, |x|, |x - gt|), so a negative value means closer (a distance folds at 0: "
        "for a value within its noise of the target the point can sit at the edge of its interval)."
        if others
        else f"({label(focus)}, the model the verdict is about, was not part of this comparison or has no other entry)",
        "",
        *diff_lines,
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
        "train": {k: settings[k] for k in SETTINGS},
        "parallel": {"jobs": settings["jobs"], "torch_threads_per_run": settings["threads"]},
        "seconds": seconds,
        "results": results,
        "estimates": {n: with_ci(est.point[n], {k: est.ci(n, k) for k in est.reps[n]}) for n in names},
        "differences": all_differences(est, names, models),
        "uncertainty": UNCERTAINTY,
        "runs": run_rows,
        "protocol": protocol,
        "verdict": sentences,
    }
    atomic_write_json(out_dir / "compare.json", finite_or_none(summary))
    return CompareResult(out_dir, report, epochs, seconds, table, sentences, {m: results[m] for m in models})


def _reference(est: Estimates, names: list[str], key: str, crit: str, scale: float) -> tuple[str, float] | None:
    """The line a bar chart is read against: 1 for ratios, the ground truth's own value where there is one."""
    if crit == "one":
        return ("ground truth (1)", 1.0)
    gt_key = key.replace("_mm", "_gt_mm") if crit == "gt" else f"{key}_gt"
    gt = [est.value(n, gt_key) for n in names if np.isfinite(est.value(n, gt_key))]
    return ("ground truth", gt[0] * scale) if gt else None
