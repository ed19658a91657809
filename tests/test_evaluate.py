"""Evaluation: pure pieces by hand (context stacking, ridge, frame resampling, config merge), then the
whole protocol on a checkpoint trained for 1 epoch on the tiny corpus (outputs, saved predictions whose
recomputed LVE matches the report, baselines, CLI)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from vocagan import metrics as M
from vocagan.baselines import context_features, evaluate_baselines, fit_ridge
from vocagan.config import Config, DataConfig, model_config
from vocagan.errors import VocaganError
from vocagan.eval_pool import gaussians, pool_metrics, sequence_metrics, stack, sync_metrics
from vocagan.evaluate import _data_config, evaluate
from vocagan.prep.regions import Regions


# ----------------------------------------------------------------------------- pure pieces
def test_context_features_by_hand():
    audio = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(context_features(audio, context=1), [[1, 1, 2], [1, 2, 3], [2, 3, 3]])
    assert context_features(np.zeros((5, 4)), context=2).shape == (5, 20)


def test_fit_ridge_recovers_a_linear_map_and_picks_lambda_on_val():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    w = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]])
    y = x @ w + [1.0, -1.0]
    x_val = rng.normal(size=(100, 3))
    model = fit_ridge(x, y, x_val, x_val @ w + [1.0, -1.0], lambdas=(1e-3, 1e4))
    assert model.lam == 1e-3  # the nearly unregularised fit is the better one on noise-free val data
    np.testing.assert_allclose(model(x_val), x_val @ w + [1.0, -1.0], atol=1e-3)


def test_data_config_replaces_only_file_locations():
    ckpt = Config()
    ckpt.data.root, ckpt.data.fps, ckpt.data.test_sentences = "/old", 60, [21]
    given = DataConfig(root="/new", masks_path="/m.pkl")
    merged = _data_config(ckpt, given)
    assert merged.data.root == "/new" and merged.data.masks_path == "/m.pkl"
    assert merged.data.fps == 60 and merged.data.test_sentences == [21]
    assert _data_config(ckpt, None) is ckpt


def _toy_rows(n_seq: int = 3, seed: int = 0) -> list[dict]:
    """Per-sequence metric dicts of random predictions on a 6-vertex face (lips 0-3, upper face 4-5)."""
    rng = np.random.default_rng(seed)
    regions = Regions(mouth=np.arange(4), lips=np.arange(4), upper_face=np.array([4, 5]), source="toy")
    template = rng.normal(size=(6, 3)) * 0.01
    rows = []
    for i in range(n_seq):
        t = 40 + 5 * i  # > 2 * MAX_OFFSET frames: the sync distances exist
        gt = template + rng.normal(size=(t, 6, 3)) * 1e-3
        pred = template + rng.normal(size=(t, 6, 3)) * 7e-4
        open_gt = 2 + np.sin(np.arange(t) / (1.5 + i)) * 3 + rng.normal(size=t) * 0.1
        open_pred = open_gt * 0.8 + rng.normal(size=t) * 0.2
        m = sequence_metrics(pred, gt, template, regions, open_pred, open_gt, np.abs(open_gt) + 0.1, 2.0)
        m.update(sync_metrics(rng.normal(size=(t, 4)), rng.normal(size=(t + 2, 4))))
        rows.append(m)
    return rows


def test_bootstrap_weights_are_resampled_sequences():
    """Every metric pooled with weights (2, 0, 1) equals the same metric on the sequences (0, 0, 2)
    each weighted once: a bootstrap replicate is the metric of a resampled test set."""
    rows = _toy_rows()
    gt = _toy_rows(seed=1)  # stands in for the ground truth's sync embeddings

    def gt_ref(w, stacked):
        mu, cov, n = gaussians(w, stacked)
        return mu, cov, n, M.sqrtm_psd(cov)

    weighted = pool_metrics(stack(rows), np.array([[2.0, 0.0, 1.0]]), gt_ref(np.array([[2.0, 0.0, 1.0]]), stack(gt)))
    resampled = [rows[0], rows[0], rows[2]]
    plain = pool_metrics(stack(resampled), np.ones((1, 3)), gt_ref(np.ones((1, 3)), stack([gt[0], gt[0], gt[2]])))
    assert set(weighted) == set(plain) and len(weighted) > 20
    for key in weighted:
        np.testing.assert_allclose(weighted[key], plain[key], rtol=1e-9, err_msg=key)
    # and with unit weights the pooled numbers are the pure metric functions' own
    unit = pool_metrics(stack(rows), np.ones((1, 3)), gt_ref(np.ones((1, 3)), stack(gt)))
    assert unit["lve"][0] == pytest.approx(sum(r["lve_sum"] for r in rows) / sum(r["frames"] for r in rows))
    assert unit["peak_open_ratio"][0] == pytest.approx(M.pool_peaks([r["peaks"] for r in rows]))
    assert unit["lse_d"][0] == pytest.approx(np.mean([r["lse_d"] for r in rows]))


# ----------------------------------------------------------------------------- on the tiny corpus
SMALL_RNN = {"hidden": 32, "n_layers": 1}


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory):
    """A 1-epoch RNN checkpoint on the tiny corpus, its config, and its evaluation with saved predictions."""
    pytest.importorskip("vocagan.synth.corpus")
    from vocagan.train import train

    root = tmp_path_factory.mktemp("eval")
    cfg = Config()
    cfg.data.root = str(request.getfixturevalue("tiny_corpus"))
    cfg.prep.cache_dir = str(root / "cache")
    cfg.model = model_config("rnn", SMALL_RNN)
    cfg.train.epochs, cfg.train.batch_size = 1, 8
    result = train(cfg, root / "run")
    preds = root / "preds"
    ev = evaluate(result.best_checkpoint, None, root / "eval", save_predictions=preds)
    return cfg, result.best_checkpoint, ev, preds, root


def _gt(cfg: Config, subject: str, sentence: str, n: int) -> np.ndarray:
    from vocagan.formats.vocaset import open_vocaset

    return open_vocaset(cfg.data).load_verts(subject, sentence)[:: cfg.data.source_fps // 30][:n]


def test_evaluate_writes_outputs_with_finite_metrics(trained):
    cfg, _, ev, _, _ = trained
    for name in (
        "metrics.json",
        "per_sequence.csv",
        "metrics.md",
        "lve_per_sequence.png",
        "mouth_opening.png",
        "error_heatmap.png",
        "naturalness_sync.png",
        "sync_offsets.png",
        "bootstrap.npz",
        "sync_expert.pt",
    ):
        assert (ev.out_dir / name).is_file() and (ev.out_dir / name).stat().st_size > 0, name
    for key in (
        "lve",
        "lve_seq",
        "lve_mm",
        "mve_mm",
        "mve_lips_mm",
        "fdd",
        "fdd_abs",
        "mouth_corr",
        "mouth_diff_mm",
        "lag",
        "accel_mm",
        "jitter_mm",
        "lip_vel_ratio",
        "lip_acc_ratio",
        "open_vel_ratio",
        "open_acc_ratio",
        "lip_speed_w1",
        "peak_open_ratio",
        "lse_d",
        "lse_c",
        "lse_d_gt",
        "lse_c_gt",
        "sync_fd",
    ):
        assert math.isfinite(ev.metrics[key]) and math.isfinite(ev.fixed[key]), key
    assert ev.metrics["lve"] > 0 and -M.MAX_LAG <= ev.metrics["lag"] <= M.MAX_LAG
    saved = json.loads((ev.out_dir / "metrics.json").read_text())
    assert saved["metrics"]["lve"] == pytest.approx(ev.metrics["lve"])
    p = saved["protocol"]
    assert p["fps"] == 30 and p["region_source"] and "8 training styles" in p["conditions"]
    table = (ev.out_dir / "metrics.md").read_text()
    assert "frame-pooled" in table and "sequence-averaged" in table and "evaluation fps: 30" in table
    assert "lip region:" in table
    # deterministic model: no diversity; the test split's subjects are the two unseen ones
    assert math.isnan(ev.metrics["diversity_mm"])
    assert p["subjects"] == sorted(cfg.data.test_subjects)


def test_every_figure_has_a_95_interval(trained):
    _, _, ev, _, _ = trained
    saved = json.loads((ev.out_dir / "metrics.json").read_text())
    for part in ("metrics", "fixed_style"):
        values = {k: v for k, v in saved[part].items() if not k.endswith("_ci95")}
        assert values and all(f"{k}_ci95" in saved[part] for k in values), part
        for key in ("lve", "mve_mm", "lse_d", "lip_vel_ratio"):
            lo, hi = saved[part][f"{key}_ci95"]
            assert lo <= values[key] <= hi and lo < hi, (part, key)
    b = saved["protocol"]["bootstrap"]
    assert b["n_resamples"] == 1000 and b["seed"] == 0 and len(b["sequences"]) == ev.protocol["n_sequences"]
    with np.load(ev.out_dir / "bootstrap.npz") as z:
        assert z["metrics/lve"].shape == (1000,) and "fixed/lse_c" in z.files
        np.testing.assert_allclose(np.quantile(z["metrics/lve"], [0.025, 0.975]), saved["metrics"]["lve_ci95"])
    table = (ev.out_dir / "metrics.md").read_text()
    assert "[95 % CI]" in table and "percentile bootstrap" in table and "sync expert" in table
    assert "validation offset retrieval" in saved["protocol"]["sync_expert"]


def test_the_kept_sync_expert_reproduces_the_sync_scores(trained, tmp_path):
    cfg, ckpt, ev, _, _ = trained
    again = evaluate(ckpt, None, tmp_path / "again", sync_expert=ev.out_dir / "sync_expert.pt")
    for key in ("lse_d", "lse_c", "sync_fd", "lse_d_gt"):
        assert again.metrics[key] == pytest.approx(ev.metrics[key], rel=1e-6), key
    assert again.protocol["sync_expert_info"]["sha256"] == ev.protocol["sync_expert_info"]["sha256"]
    with pytest.raises(VocaganError, match="sync expert not found"):
        evaluate(ckpt, None, tmp_path / "bad", sync_expert=tmp_path / "nope.pt")


def test_saved_predictions_reproduce_the_reported_lve(trained):
    cfg, _, ev, preds, _ = trained
    from vocagan.checkpoint import load_checkpoint

    _, ckpt = load_checkpoint(trained[1])
    files = sorted(preds.glob("*.npy"))
    rows = ev.per_sequence
    assert len(files) == len(rows) == ev.protocol["n_sequences"] * len(ckpt.styles)
    lips = np.asarray(ckpt.stats["region_lips"])
    per_frame: dict[str, list] = {s: [] for s in ckpt.styles}
    for row in rows:
        path = preds / f"{row['subject']}_{row['sentence']}_{row['style']}.npy"
        pred = np.load(path)
        assert pred.dtype == np.float32 and pred.shape == (row["frames"], ckpt.stats["templates"].shape[1], 3)
        per_frame[row["style"]].append(
            M.lip_max_sq_error(pred, _gt(cfg, row["subject"], row["sentence"], len(pred)), lips)
        )
    fixed = M.pool_frames(per_frame[ckpt.styles[0]])
    assert fixed == pytest.approx(ev.fixed["lve"], rel=1e-6)
    assert np.mean([M.pool_frames(v) for v in per_frame.values()]) == pytest.approx(ev.metrics["lve"], rel=1e-6)
    # every vertex outside the mouth crop is the template (zero motion there)
    crop = np.asarray(ckpt.stats["crop"])
    outside = np.setdiff1d(np.arange(pred.shape[1]), crop)
    from vocagan.formats.vocaset import open_vocaset

    template = open_vocaset(cfg.data).templates[row["subject"]]
    np.testing.assert_array_equal(pred[:, outside], np.broadcast_to(template[outside], pred[:, outside].shape))


def test_one_style_and_bad_style(trained, tmp_path):
    cfg, ckpt, ev, _, _ = trained
    style = cfg.data.train_subjects[1]
    one = evaluate(ckpt, None, tmp_path / "one", style=style, fps=60)  # 30 fps model, 60 fps ground truth
    assert {r["style"] for r in one.per_sequence} == {style}
    assert one.metrics["lve"] == pytest.approx(one.fixed["lve"]) and math.isfinite(one.metrics["lve"])
    assert one.protocol["fps"] == 60 and one.protocol["model_fps"] == 30
    assert abs(one.protocol["n_frames"] - 2 * ev.protocol["n_frames"]) <= 2 * ev.protocol["n_sequences"]
    with pytest.raises(VocaganError, match="not a training subject"):
        evaluate(ckpt, None, tmp_path / "bad", style="nobody")


def test_baselines(trained, tmp_path):
    cfg, _, ev, _, _ = trained
    results = evaluate_baselines(cfg, tmp_path / "base")
    assert set(results) == {"zero motion", "mean motion", "ridge"}
    for r in results.values():
        assert math.isfinite(r.metrics["lve"]) and (r.out_dir / "metrics.json").is_file()
    # zero motion is the template itself: recompute its LVE from the ground truth alone
    from vocagan.formats.vocaset import open_vocaset

    vs = open_vocaset(cfg.data)
    lips = _lips(trained[1])  # the baselines' regions come from the same prepared data as the model's
    per_frame = []
    for row in results["zero motion"].per_sequence:
        gt = _gt(cfg, row["subject"], row["sentence"], row["frames"])
        per_frame.append(M.lip_max_sq_error(np.broadcast_to(vs.templates[row["subject"]], gt.shape), gt, lips))
    assert M.pool_frames(per_frame) == pytest.approx(results["zero motion"].metrics["lve"], rel=1e-6)
    assert results["zero motion"].metrics["accel_mm"] == 0.0
    # a still mouth has none of the true dynamics or amplitude; its sync confidence is near zero
    for key in ("lip_vel_ratio", "lip_acc_ratio", "open_vel_ratio", "peak_open_ratio"):
        assert results["zero motion"].metrics[key] == 0.0, key
    assert results["zero motion"].metrics["lse_c"] < 0.5 * results["zero motion"].metrics["lse_c_gt"]


def _lips(checkpoint: Path) -> np.ndarray:
    from vocagan.checkpoint import load_checkpoint

    return np.asarray(load_checkpoint(checkpoint)[1].stats["region_lips"])


def test_cli_evaluate(trained, tmp_path, capsys):
    from vocagan.cli import main

    cfg, ckpt, _, _, _ = trained
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--out",
                str(tmp_path / "cli"),
                "--style",
                cfg.data.train_subjects[0],
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "LVE (x1e-5 m², frame-pooled)" in out and (tmp_path / "cli" / "metrics.json").is_file()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_text("not an expert")
    args = ["evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "y"), "--sync-expert", str(junk)]
    assert main(args) == 1
    assert "unreadable sync expert" in capsys.readouterr().err


def test_bad_fps_fails_early(trained, tmp_path):
    with pytest.raises(VocaganError, match="must be a positive divisor"):
        evaluate(trained[1], None, tmp_path / "x", fps=25)
    assert not (tmp_path / "x").exists()


def test_masks_given_at_evaluation_define_the_metric_regions(trained, tmp_path):
    """A masks file passed at evaluation is what LVE/FDD use (here the corpus' own masks, which the
    training also used, so the numbers are the same) and the report names it."""
    cfg, ckpt, ev, _, _ = trained
    data = DataConfig(root=cfg.data.root, masks_path=str(Path(cfg.data.root) / "region_masks.pkl"))
    again = evaluate(ckpt, data, tmp_path / "masks", style=cfg.data.train_subjects[0])
    assert "given at evaluation" in again.protocol["region_source"]
    assert again.metrics["lve"] == pytest.approx(ev.fixed["lve"], rel=1e-6)


def test_report_tables_are_valid_markdown_with_sensible_numbers(trained):
    """Every row of metrics.md's table has the header's cell count (a literal | is escaped, as in
    \\|FDD\\|); percentages have one decimal, lags are whole frames, LVE four decimals."""
    result = trained[2]
    text = (result.out_dir / "metrics.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [len(re.split(r"(?<!\\)\|", row)) for row in rows]
    assert len(set(cells)) == 1, rows
    assert "\\|FDD\\|" in text and "| |FDD|" not in text
    by_label = {re.split(r"(?<!\\)\|", r)[1].strip(): re.split(r"(?<!\\)\|", r)[2].strip() for r in rows[2:]}

    def value_and_interval(number: str) -> str:  # "v [lo, hi]": the figure and its 95 % interval, same format
        return rf"{number} \[{number}, {number}\]"

    assert re.fullmatch(value_and_interval(r"\d+\.\d"), by_label["lip closures reached (%)"])
    assert re.fullmatch(value_and_interval(r"-?\d+(\.\d)?"), by_label["lag pred vs gt (frames)"])
    assert re.fullmatch(value_and_interval(r"\d+\.\d{4}"), by_label["LVE (x1e-5 m², frame-pooled)"])


def test_a_checkpoint_of_another_topology_is_refused(tmp_path, toy_checkpoint, tiny_corpus):
    """The toy checkpoint (a 162-vertex sphere) on the tiny corpus: one line, not an IndexError."""
    from vocagan.config import DataConfig

    ckpt = toy_checkpoint(tmp_path / "toy.pt", name="rnn")
    with pytest.raises(VocaganError, match="meshes have .* vertices, the model was trained on 162"):
        evaluate(ckpt, DataConfig(root=str(tiny_corpus)), tmp_path / "eval")
