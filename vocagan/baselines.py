"""Baselines evaluated under the same protocol as a checkpoint (`vocagan.evaluate.run_protocol`),
for `compare`: zero motion (template only), mean motion (mean train-split mouth offset on each test
template) and ridge regression from audio features with ±RIDGE_CONTEXT frames of context to PCA
coefficients, fitted on the train split (λ chosen on val). All three ignore the style.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.config import Config
from vocagan.evaluate import (
    DEFAULT_FPS,
    EvalResult,
    Predictor,
    load_test_sequences,
    run_protocol,
    sync_expert_for,
)
from vocagan.utils import log

BASELINES = ("zero motion", "mean motion", "ridge")
RIDGE_CONTEXT = 2  # frames of audio context each side for the ridge baseline
RIDGE_LAMBDAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def context_features(audio: np.ndarray, context: int = RIDGE_CONTEXT) -> np.ndarray:
    """(T, F) -> (T, (2*context+1)*F): frames t-context..t+context side by side (edge-padded)."""
    padded = np.concatenate([audio[:1].repeat(context, 0), audio, audio[-1:].repeat(context, 0)])
    return np.concatenate([padded[i : i + len(audio)] for i in range(2 * context + 1)], axis=1)


@dataclass
class Ridge:
    """Ridge regression x -> y with standardised inputs, fitted in closed form."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    weights: np.ndarray  # (D, K)
    lam: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) / self.x_std) @ self.weights + self.y_mean


def fit_ridge(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    lambdas=RIDGE_LAMBDAS,
) -> Ridge:
    """min_W ||x_s W - (y - ȳ)||² + λ||W||² (x_s = x standardised with its own stats) for each λ;
    keep the λ with the lowest MSE on (x_val, y_val) (without a val set: λ = 100)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    x_mean, x_std, y_mean = x.mean(0), x.std(0) + 1e-8, y.mean(0)
    xs = (x - x_mean) / x_std
    gram, rhs = xs.T @ xs, xs.T @ (y - y_mean)
    best: tuple[float, Ridge] | None = None  # (val MSE, model)
    for lam in lambdas if x_val is not None else (100.0,):
        w = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        model = Ridge(x_mean, x_std, y_mean, w, lam)
        err = float(((model(x_val) - y_val) ** 2).mean()) if x_val is not None else 0.0
        if best is None or err < best[0]:
            best = (err, model)
    assert best is not None, "fit_ridge needs at least one lambda"
    return best[1]


def baseline_predictors(prepared) -> dict[str, Predictor]:
    """The baselines (names as in BASELINES) as predictors; the style index is ignored."""
    mean_offsets = prepared.decode(prepared.motion["train"].mean(0, keepdims=True))[0]  # (M, 3)
    val = prepared.audio.get("val") is not None and len(prepared.audio["val"])
    ctx = {
        s: np.concatenate([context_features(prepared.sequence(s, i)[0]) for i in range(len(prepared.seqs[s]))])
        for s in (("train", "val") if val else ("train",))
    }
    ridge = fit_ridge(
        ctx["train"], prepared.motion["train"], ctx.get("val"), prepared.motion.get("val") if val else None
    )
    log(f"[evaluate] ridge baseline: {ctx['train'].shape[1]} inputs, λ = {ridge.lam:g} (chosen on val)")
    m = len(prepared.crop)
    return {
        "zero motion": lambda a, s: np.zeros((len(s), len(a), m, 3), np.float32),
        "mean motion": lambda a, s: np.broadcast_to(mean_offsets, (len(s), len(a), m, 3)).astype(np.float32),
        "ridge": lambda a, s: np.broadcast_to(
            prepared.decode(ridge(context_features(a)).astype(np.float32)), (len(s), len(a), m, 3)
        ),
    }


def evaluate_baselines(
    cfg: Config,
    out_dir: Path,
    fps: int | None = None,
    names: tuple[str, ...] = BASELINES,
    sync_expert: Path | None = None,
) -> dict[str, EvalResult]:
    """Evaluate the baselines under the same protocol (the same sync expert as the models: the one of
    this prepared data, or the file `sync_expert`); outputs in out_dir/<name with _>/."""
    from vocagan.prep.prepare import prepare

    fps = int(fps or DEFAULT_FPS)
    prepared = prepare(cfg)
    expert = sync_expert_for(prepared, sync_expert)
    tests = load_test_sequences(cfg, prepared, fps)
    predictors = baseline_predictors(prepared)
    faces = prepared.faces if len(prepared.faces) else None
    return {
        name: run_protocol(
            name,
            predictors[name],
            tests,
            prepared.crop,
            prepared.regions,
            [("none", 0)],
            prepared.fps,
            fps,
            Path(out_dir) / name.replace(" ", "_"),
            condition_policy="style-independent baseline (one prediction per sequence)",
            faces=faces,
            expert=expert,
        )
        for name in names
    }
