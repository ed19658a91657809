"""compare: the verdict generated from numbers (hand-made results), run configs and reuse rules, and
the whole thing on the tiny corpus (2 models x 2 seeds x 1 epoch) including reuse of finished runs."""

from __future__ import annotations

import json

import pytest

from vocagan.compare import COMPARE_DEFAULTS, _cell, compare, run_config, run_state, train_settings, verdict
from vocagan.config import Config
from vocagan.errors import VocaganError


def _m(lve, corr, lag=0, accel=1.0, **kw) -> dict:
    base = {"lve": lve, "lve_mm": lve * 1e5, "mve_mm": 1.0, "fdd_abs": 1e-7, "mouth_corr": corr,
            "mouth_diff_mm": 1.0, "lag": lag, "accel_mm": accel, "accel_gt_mm": 1.0}
    base.update(kw)
    return base


def test_verdict_when_the_gan_wins():
    results = {"rnn": [_m(3e-5, 0.5), _m(3.2e-5, 0.4)], "transformer_gan": [_m(2e-5, 0.8), _m(2.1e-5, 0.7)],
               "mean motion": [_m(4e-5, float("nan"))]}
    text = "\n".join(verdict(results, ["rnn", "transformer_gan"]))
    assert "Transformer+GAN wins on LVE." in text
    assert "Transformer+GAN wins on lip sync" in text
    assert "RNN beats the mean-motion baseline on LVE (3.100 vs 4.000" in text
    # a lead smaller than the seed spread is not a clear win, and the verdict says so
    results["transformer_gan"] = [_m(2.9e-5, 0.8), _m(3.2e-5, 0.7)]
    text = "\n".join(verdict(results, ["rnn", "transformer_gan"]))
    assert "Transformer+GAN is best on LVE, but by less than the seed spread: not a clear win." in text


def test_verdict_says_plainly_when_the_gan_does_not_win():
    results = {"rnn": [_m(2e-5, 0.9)], "transformer_gan": [_m(3e-5, 0.2)],
               "zero motion": [_m(1e-5, float("nan"), mve_mm=2.0)],
               "mean motion": [_m(2.5e-5, float("nan"))]}
    lines = verdict(results, ["rnn", "transformer_gan"])
    text = "\n".join(lines)
    assert "Transformer+GAN does NOT win on LVE: RNN is better among the models, and the baseline zero motion " \
           "is best overall." in text
    assert "Transformer+GAN does NOT win on lip sync" in text
    assert "Transformer+GAN does NOT beat the mean-motion baseline on LVE" in text
    # equal values are a tie, not a win; lag is judged by |lag|, acceleration by its distance to the gt's
    assert any(line.startswith("MVE (mm, all vertices):") and "tie" in line for line in lines)
    # a metric on which every entry scores the same as the template-only baseline is named as such
    assert any(line.startswith("|FDD| (x1e-7 m²): the same for every entry, zero motion included") for line in lines)


def test_verdict_without_the_gan_and_metric_direction():
    results = {"rnn": [_m(2e-5, 0.5, lag=-3, accel=5.0)], "transformer": [_m(3e-5, 0.6, lag=1, accel=1.1)]}
    lines = verdict(results, ["rnn", "transformer"])
    assert "Transformer+GAN was not part of this comparison." in lines
    assert "lag pred vs gt (frames): best is Transformer, ahead of RNN." in lines
    assert "acceleration lips (mm/frame²): best is Transformer, ahead of RNN." in lines
    assert "mouth-opening corr. (pred vs gt): best is Transformer, ahead of RNN." in lines


def test_cell_mean_and_sample_std():
    assert _cell([1e-5, 3e-5], 1e5) == "2.000 ± 1.414"   # sample std of (1, 3) = sqrt(2)
    assert _cell([2e-5], 1e5) == "2.000"
    assert _cell([float("nan")], 1.0) == "n/a"


def test_run_config_keeps_hyperparameters_only_for_their_model():
    cfg = Config()
    cfg.model = {"name": "rnn", "hidden": 16}
    a, b = run_config(cfg, "rnn", 3, {"epochs": 7}), run_config(cfg, "transformer", 1, {"epochs": 7})
    assert a.model == {"name": "rnn", "hidden": 16} and a.train.seed == 3 and a.train.epochs == 7
    assert b.model == {"name": "transformer"} and b.train.seed == 1
    assert cfg.train.epochs == 100 and cfg.train.seed == 0  # the input is not modified


# ----------------------------------------------------------------------------- on the tiny corpus
@pytest.mark.slow
def test_compare_on_tiny_corpus_and_reuse(request, tmp_path):
    pytest.importorskip("vocagan.synth.corpus")
    cfg = Config()
    cfg.data.root = str(request.getfixturevalue("tiny_corpus"))
    cfg.prep.cache_dir = str(tmp_path / "cache")
    cfg.train.batch_size = 8
    out = tmp_path / "cmp"
    result = compare(cfg, out, ["rnn", "transformer_gan"], seeds=2, epochs=1)
    report = (out / "report.md").read_text()
    for name in ("RNN", "Transformer+GAN", "zero motion", "mean motion", "ridge"):
        assert name in report
    assert "±" in result.table and "## Verdict" in report and "evaluation fps 30" in report
    assert any("Transformer+GAN" in v and "LVE" in v for v in result.verdict)
    for model in ("rnn", "transformer_gan"):
        for seed in (0, 1):
            assert (out / "runs" / model / f"seed{seed}" / "best.pt").is_file()
            assert (out / "eval" / model / f"seed{seed}" / "metrics.json").is_file()
    assert (out / "bar_lve.png").is_file() and (out / "val_curves.png").is_file()
    saved = json.loads((out / "compare.json").read_text())
    # each run's selection criterion (best val LVE) sits beside the test metrics, as in its metrics.jsonl
    val_row = next(line for line in report.splitlines() if line.startswith("| val LVE, best epoch"))
    assert val_row.count("n/a") == 3                                   # the three baselines are not trained
    jsonl = (out / "runs" / "rnn" / "seed0" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(x)["val_lve"] for x in jsonl]
    assert saved["results"]["rnn"][0]["val_lve"] == pytest.approx(min(logged) * 1e-5)
    assert len(saved["results"]["rnn"]) == 2 and saved["train"] == {"epochs": 1, "batch_size": 8,
                                                                "warmup_steps": COMPARE_DEFAULTS["warmup_steps"]}
    # a second call reuses the finished runs (no training) and gives the same numbers
    again = compare(cfg, out, ["rnn", "transformer_gan"], seeds=2, epochs=1)
    assert [r["state"] for r in json.loads((out / "compare.json").read_text())["runs"]] == ["finished"] * 4
    assert again.runs["rnn"][0]["lve"] == pytest.approx(result.runs["rnn"][0]["lve"])
    # a folder holding a run with another config is never trained over
    other = run_config(cfg, "rnn", 0, train_settings(cfg, 1))
    other.train.lr = 0.5
    with pytest.raises(VocaganError, match="different config"):
        run_state(out / "runs" / "rnn" / "seed0", other)


def test_train_settings_keep_what_the_user_chose():
    cfg = Config()
    assert train_settings(cfg) == COMPARE_DEFAULTS
    cfg.train.batch_size = 4
    assert train_settings(cfg)["batch_size"] == 4 and train_settings(cfg)["warmup_steps"] == COMPARE_DEFAULTS["warmup_steps"]
    assert train_settings(cfg, epochs=2)["epochs"] == 2
    cfg.train.epochs = 3
    assert train_settings(cfg)["epochs"] == 3


def test_closures_are_judged_among_the_models_only():
    results = {"transformer": [_m(2e-5, 0.9, closure_rate=80.0), _m(2e-5, 0.9, closure_rate=84.0)],
               "transformer_gan": [_m(3e-5, 0.8, closure_rate=95.0), _m(3e-5, 0.8, closure_rate=93.0)],
               "zero motion": [_m(5e-5, float("nan"), closure_rate=100.0)]}
    lines = verdict(results, ["transformer", "transformer_gan"])
    assert "lip closures reached (%) (among the models): best is Transformer+GAN, ahead of Transformer." in lines
    assert "Transformer+GAN wins on lip closures reached." in lines
    assert "Transformer+GAN does NOT win on LVE: Transformer is better among the models." in lines
