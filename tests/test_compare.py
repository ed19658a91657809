"""compare: the verdict generated from numbers (hand-made results), run configs and reuse rules, and
the whole thing on the tiny corpus (2 models x 2 seeds x 1 epoch) including reuse of finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vocagan.compare as compare_module
from vocagan import cli
from vocagan.checkpoint import FORMAT
from vocagan.compare import COMPARE_TRAIN, _cell, compare, run_config, run_state
from vocagan.config import Config, model_config
from vocagan.errors import VocaganError
from vocagan.eval_report import finite_or_none, metric_fmt
from vocagan.stats import N_RESAMPLES
from vocagan.verdict import estimate, verdict


def _m(lve, corr, lag=0, accel=1.0, **kw) -> dict:
    base = {
        "lve": lve,
        "lve_mm": lve * 1e5,
        "mve_mm": 1.0,
        "fdd_abs": 1e-7,
        "mouth_corr": corr,
        "mouth_diff_mm": 1.0,
        "lag": lag,
        "accel_mm": accel,
        "accel_gt_mm": 1.0,
    }
    base.update(kw)
    return base


def _est(results: dict, spread: float = 0.0):
    """Estimates of hand-made per-seed results whose bootstrap replicates over test sequences are the
    value times (1 + e), e spread evenly over +-spread (the same e for every entry: paired sequences)."""
    e = np.linspace(-spread, spread, N_RESAMPLES)
    reps = {n: [{k: v * (1 + e) for k, v in m.items() if v is not None} for m in runs] for n, runs in results.items()}
    return estimate(results, reps)


def test_verdict_names_a_winner_only_where_the_interval_excludes_zero():
    results = {
        "rnn": [_m(3e-5, 0.5), _m(3.2e-5, 0.4), _m(3.1e-5, 0.45)],
        "transformer_gan": [_m(2e-5, 0.8), _m(2.1e-5, 0.7), _m(2.05e-5, 0.75)],
        "mean motion": [_m(4e-5, float("nan"))],
    }
    text = "\n".join(verdict(_est(results), ["rnn", "transformer_gan"]))
    assert "Transformer+GAN wins on LVE: better than every other entry" in text
    assert "LVE (x1e-5 m², frame-pooled) [lower is better]: best is Transformer+GAN, better than every other" in text
    assert "Transformer+GAN wins on lip sync (mouth-opening correlation)" in text
    assert "RNN beats the mean-motion baseline on LVE (3.100 vs 4.000" in text
    # seeds that overlap: the lead is not resolved, and the verdict says "no difference"
    results["transformer_gan"] = [_m(2.8e-5, 0.8), _m(3.2e-5, 0.7), _m(3.0e-5, 0.75)]
    lines = verdict(_est(results), ["rnn", "transformer_gan"])
    text = "\n".join(lines)
    assert "no difference between Transformer+GAN and RNN" in text
    assert "Transformer+GAN does NOT win on LVE: no difference from RNN" in text
    assert not any("wins on LVE" in line for line in lines)


def test_differences_are_paired_by_test_sequence():
    """Two entries whose values move together over the test-sequence resamples: each interval is wide
    (they overlap), but the paired difference is resolved."""
    results = {"rnn": [_m(3.0e-5, 0.5)], "transformer": [_m(2.9e-5, 0.5)]}
    est = _est(results, spread=0.5)
    lo_rnn, _ = est.ci("rnn", "lve")
    _, hi_tr = est.ci("transformer", "lve")
    assert hi_tr > lo_rnn  # the two intervals overlap
    d, lo, hi = est.shown_difference("transformer", "rnn", "lve", "lower")
    assert d == pytest.approx(-0.1e-5) and hi < 0  # yet the paired difference excludes 0
    assert est.judge("transformer", "rnn", "lve", "lower") == "better"
    assert est.judge("rnn", "transformer", "lve", "lower") == "worse"


def test_seed_level_interval_without_sequence_replicates():
    results = {"rnn": [_m(1e-5, 0.5), _m(2e-5, 0.5), _m(3e-5, 0.5)]}
    est = estimate(results)  # no replicates: the seeds alone
    lo, hi = est.ci("rnn", "lve")
    assert est.value("rnn", "lve") == pytest.approx(2e-5)
    half = 4.302653 / np.sqrt(3) * 1e-5  # the t-interval of 3 seeds: t(0.975, 2) * s / sqrt(3), s = 1e-5
    assert lo == pytest.approx(2e-5 - half, rel=0.05) and hi == pytest.approx(2e-5 + half, rel=0.05)
    # two seeds that disagree leave a difference unresolved (t with 1 degree of freedom)
    two = estimate({"rnn": [_m(1e-5, 0.5), _m(2e-5, 0.5)], "transformer": [_m(3e-5, 0.5), _m(4e-5, 0.5)]})
    assert two.judge("rnn", "transformer", "lve", "lower") == "no difference"
    assert est.ci("rnn", "mve_mm") == (pytest.approx(1.0), pytest.approx(1.0))  # no spread at all


def test_verdict_says_plainly_when_the_gan_does_not_win():
    results = {
        "rnn": [_m(2e-5, 0.9)],
        "transformer_gan": [_m(3e-5, 0.2)],
        "zero motion": [_m(1e-5, float("nan"), mve_mm=2.0)],
        "mean motion": [_m(2.5e-5, float("nan"))],
    }
    lines = verdict(_est(results), ["rnn", "transformer_gan"])
    text = "\n".join(lines)
    assert "Transformer+GAN does NOT win on LVE: RNN, zero motion, mean motion are better (vs zero motion:" in text
    assert "Transformer+GAN does NOT win on lip sync" in text
    assert "Transformer+GAN is WORSE than the mean-motion baseline on LVE" in text
    assert "Transformer+GAN vs RNN: worse on LVE, lip sync (mouth-opening correlation)" in text
    # equal values show no difference; lag is judged by |lag|, acceleration by its distance to the gt's
    assert any(line.startswith("MVE (mm, all vertices) [lower is better]: no difference between") for line in lines)
    # a metric on which every entry scores the same as the template-only baseline is named as such
    assert any(line.startswith("|FDD| (x1e-7 m²) [lower is better]: the same for every entry") for line in lines)


def test_verdict_is_about_the_model_it_is_given():
    results = {"rnn": [_m(2e-5, 0.9)], "transformer": [_m(3e-5, 0.2)]}
    text = "\n".join(verdict(_est(results), ["rnn", "transformer"], focus="rnn"))
    assert "RNN wins on LVE" in text and "Transformer+GAN" not in text
    assert "RNN vs Transformer: better on LVE" in text


def test_verdict_without_the_gan_and_metric_direction():
    results = {"rnn": [_m(2e-5, 0.5, lag=-3, accel=5.0)], "transformer": [_m(3e-5, 0.6, lag=1, accel=1.1)]}
    lines = verdict(_est(results), ["rnn", "transformer"])
    assert "Transformer+GAN was not part of this comparison." in lines
    assert any(
        line.startswith("lag pred vs gt (frames) [closer to 0 is better]: best is Transformer,") for line in lines
    )
    assert any(
        line.startswith("acceleration lips (mm/frame²) [closer to the ground truth's is better]: best is Transformer,")
        for line in lines
    )
    assert any(
        line.startswith("mouth-opening corr. (pred vs gt) [higher is better]: best is Transformer,") for line in lines
    )


def test_cell_mean_and_sample_std():
    assert _cell([1e-5, 3e-5], 1e5) == "2.000 ± 1.414"  # sample std of (1, 3) = sqrt(2)
    assert _cell([2e-5], 1e5) == "2.000"
    assert _cell([float("nan")], 1.0) == "n/a"


def test_each_metric_prints_with_its_own_precision():
    """The report's formatter per metric kind (`format_ci`'s fmt): LVE four decimals, mm three, closures
    one (they are percentages), lags whole frames unless a mean or bound falls between frames."""
    assert metric_fmt("lve")(3.291e-6, 1e5) == "0.3291"
    assert metric_fmt("mve_mm")(0.35512) == "0.355"
    assert metric_fmt("closure_rate")(86.2068) == "86.2"
    assert metric_fmt("lag")(0.0) == "0" and metric_fmt("lag")(-0.125) == "-0.1"
    assert metric_fmt("lve")(float("nan")) == "n/a" and metric_fmt("lve")(None) == "n/a"


def test_run_config_keeps_hyperparameters_only_for_their_model():
    cfg = Config(model=model_config("rnn", {"hidden": 16}))
    a, b = run_config(cfg, "rnn", 3), run_config(cfg, "transformer", 1)
    assert a.model_name == "rnn" and a.model.hidden == 16 and a.train.seed == 3
    assert b.model == model_config("transformer") and b.train.seed == 1
    assert cfg.train.seed == 0  # the input is not modified


# ----------------------------------------------------------------------------- run reuse (no training)
def _fake_run(run_dir: Path, cfg: Config, loop: dict, edit=None) -> Path:
    """A run folder whose last.pt/best.pt hold `cfg` (as saved, optionally edited) and loop state."""
    saved = cfg.to_dict()
    if edit:
        edit(saved)
    payload = {
        "format": FORMAT,
        "version": 1,
        "model": "{}",
        "state_dict": {},
        "config": json.dumps(saved),
        "stats": {},
        "extra": {"loop": loop},
    }
    run_dir.mkdir(parents=True)
    for name in ("last.pt", "best.pt"):
        torch.save(payload, run_dir / name)
    return run_dir


def test_a_finished_run_is_reused_and_a_partial_one_resumed(tmp_path):
    cfg = run_config(Config(), "transformer_gan", 0)
    cfg.train.epochs = 10
    assert run_state(tmp_path / "none", cfg) == "new"
    assert run_state(_fake_run(tmp_path / "a", cfg, {"next_epoch": 10}), cfg) == "finished"
    assert run_state(_fake_run(tmp_path / "b", cfg, {"next_epoch": 4, "since_best": 0}), cfg) == "partial"
    assert run_state(_fake_run(tmp_path / "c", cfg, {"next_epoch": 4, "finished": True}), cfg) == "finished"


def test_a_partial_run_is_not_taken_as_finished_when_early_stopping_is_off(tmp_path):
    """train.patience=0 switches early stopping off; a run cut at epoch 3 of 10 is unfinished."""
    cfg = run_config(Config(), "rnn", 0)
    cfg.train.epochs, cfg.train.patience = 10, 0
    assert run_state(_fake_run(tmp_path / "run", cfg, {"next_epoch": 3, "since_best": 2}), cfg) == "partial"


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["model"].pop("adv_weight"),  # saved before it was recorded
        lambda d: d["model"].update(adv_weight=0.5),  # trained under the old default
        lambda d: d["model"].pop("opening_weight"),
    ],
)  # before the opening loss existed
def test_a_run_made_under_other_model_defaults_is_never_reused(tmp_path, edit):
    cfg = run_config(Config(), "transformer_gan", 0)
    cfg.train.epochs = 10
    run = _fake_run(tmp_path / "run", cfg, {"next_epoch": 10}, edit)
    with pytest.raises(VocaganError, match="different config .*model\\.(adv_weight|opening_weight)"):
        run_state(run, cfg)


def test_cli_compare_starts_from_the_compare_budget_and_keeps_every_value_given(monkeypatch, tmp_path):
    """`--batch-size 32` trains at 32 even though 32 is the library default (it used to give 16)."""
    seen = {}

    def fake_compare(cfg, out_dir, models, seeds, focus, sync_expert=None, jobs=1):
        seen.update(cfg=cfg, models=models, seeds=seeds, focus=focus, sync_expert=sync_expert, jobs=jobs)
        return type("R", (), {"summary": lambda self: "ok"})()

    monkeypatch.setattr(compare_module, "compare", fake_compare)
    assert cli.main(["compare", "--out", str(tmp_path), "--batch-size", "32", "--models", "rnn"]) == 0
    train = seen["cfg"].train
    assert train.batch_size == 32 and train.epochs == COMPARE_TRAIN["epochs"]
    assert train.warmup_steps == COMPARE_TRAIN["warmup_steps"]
    assert cli.main(["compare", "--out", str(tmp_path), "--set", "train.warmup_steps=100", "--epochs", "100"]) == 0
    assert seen["cfg"].train.warmup_steps == 100 and seen["cfg"].train.epochs == 100
    assert seen["cfg"].train.batch_size == COMPARE_TRAIN["batch_size"] and seen["focus"] == "transformer_gan"
    assert seen["jobs"] == 1
    assert cli.main(["compare", "--out", str(tmp_path), "--jobs", "2"]) == 0 and seen["jobs"] == 2
    with pytest.raises(VocaganError, match=r"jobs must be in \[1, 256\], got 0"):
        compare(Config(), tmp_path, ["rnn"], seeds=1, jobs=0)


# ----------------------------------------------------------------------------- on the tiny corpus
@pytest.mark.slow
def test_compare_on_tiny_corpus_and_reuse(request, tmp_path):
    pytest.importorskip("vocagan.synth.corpus")
    cfg = Config()
    cfg.data.root = str(request.getfixturevalue("tiny_corpus"))
    cfg.prep.cache_dir = str(tmp_path / "cache")
    cfg.train.batch_size, cfg.train.epochs = 8, 1
    out = tmp_path / "cmp"
    result = compare(cfg, out, ["rnn", "transformer_gan"], seeds=2)
    report = (out / "report.md").read_text()
    for name in ("RNN", "Transformer+GAN", "zero motion", "mean motion", "ridge"):
        assert name in report
    assert "[" in result.table and "## Verdict" in report and "evaluation fps 30" in report
    assert "## Paired differences" in report and "Transformer+GAN − RNN" in report and "sync expert" in report
    assert any("Transformer+GAN" in v and "LVE" in v for v in result.verdict)
    for model in ("rnn", "transformer_gan"):
        for seed in (0, 1):
            assert (out / "runs" / model / f"seed{seed}" / "best.pt").is_file()
            assert (out / "eval" / model / f"seed{seed}" / "metrics.json").is_file()
    assert (out / "bar_lve.png").is_file() and (out / "val_curves.png").is_file()
    assert (out / "differences.png").is_file() and (out / "sync_expert.pt").is_file()
    saved = json.loads((out / "compare.json").read_text())
    # every entry's figures with intervals; every pair's paired differences
    assert "lve_ci95" in saved["estimates"]["rnn"] and "lse_d_ci95" in saved["estimates"]["ridge"]
    assert "lve" in saved["differences"]["rnn - transformer_gan"] and "uncertainty" in saved
    # every run was scored by the one sync expert of this corpus
    shas = {
        json.loads((out / "eval" / m / f"seed{k}" / "metrics.json").read_text())["protocol"]["sync_expert_info"][
            "sha256"
        ]
        for m in ("rnn", "transformer_gan")
        for k in (0, 1)
    }
    assert len(shas) == 1
    # each run's selection criterion (best val LVE) sits beside the test metrics, as in its metrics.jsonl
    val_row = next(line for line in report.splitlines() if line.startswith("| val LVE, best epoch"))
    assert val_row.count("n/a") == 3  # the three baselines are not trained
    jsonl = (out / "runs" / "rnn" / "seed0" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(x)["val_lve"] for x in jsonl]
    assert saved["results"]["rnn"][0]["val_lve"] == pytest.approx(min(logged) * 1e-5)
    assert len(saved["results"]["rnn"]) == 2 and saved["train"] == {
        "epochs": 1,
        "batch_size": 8,
        "warmup_steps": cfg.train.warmup_steps,
    }
    # a second call reuses the finished runs (no training) and gives the same numbers
    again = compare(cfg, out, ["rnn", "transformer_gan"], seeds=2)
    assert [r["state"] for r in json.loads((out / "compare.json").read_text())["runs"]] == ["finished"] * 4
    assert again.runs["rnn"][0]["lve"] == pytest.approx(result.runs["rnn"][0]["lve"])
    # a folder holding a run with another config is never trained over
    other = run_config(cfg, "rnn", 0)
    other.train.lr = 0.5
    with pytest.raises(VocaganError, match="different config"):
        run_state(out / "runs" / "rnn" / "seed0", other)


@pytest.mark.slow
def test_compare_runs_in_parallel_with_the_same_numbers(request, tmp_path, one_thread):
    """--jobs 2 trains and evaluates two runs at once in processes of their own; at the same thread
    count (one per run) every number equals the one-after-the-other compare's."""
    cfg = Config()
    cfg.data.root = str(request.getfixturevalue("tiny_corpus"))
    cfg.prep.cache_dir = str(tmp_path / "cache")
    cfg.train.batch_size, cfg.train.epochs = 8, 1
    one = compare(cfg, tmp_path / "one", ["transformer"], seeds=2)
    two = compare(cfg, tmp_path / "two", ["transformer"], seeds=2, jobs=2)
    assert finite_or_none(one.runs) == finite_or_none(two.runs)  # (nan -> None: the saved metrics.json's)
    assert (tmp_path / "two" / "runs" / "transformer" / "seed1.log").is_file()
    saved = json.loads((tmp_path / "two" / "compare.json").read_text())
    assert saved["parallel"] == {"jobs": 2, "torch_threads_per_run": 1}
    assert "2 run(s) at a time with 1 torch thread(s) each" in (tmp_path / "two" / "report.md").read_text()


def test_closures_are_judged_among_the_models_only():
    results = {
        "transformer": [_m(2e-5, 0.9, closure_rate=r) for r in (80.0, 84.0, 82.0)],
        "transformer_gan": [_m(3e-5, 0.8, closure_rate=r) for r in (95.0, 93.0, 94.0)],
        "zero motion": [_m(5e-5, float("nan"), closure_rate=100.0)],
    }
    lines = verdict(_est(results), ["transformer", "transformer_gan"])
    assert any(
        line.startswith(
            "lip closures reached (%) (among the models) [higher is better]: best is Transformer+GAN, better than"
        )
        for line in lines
    )
    assert (
        "Transformer+GAN wins on lip closures reached: better than every other entry (95 % intervals exclude 0)."
        in lines
    )
    assert any(line.startswith("Transformer+GAN does NOT win on LVE: Transformer is better") for line in lines)
