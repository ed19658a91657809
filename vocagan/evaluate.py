"""Test-set evaluation under the published VOCASET protocol, for a checkpoint and for baselines.

Protocol (DESIGN.md §2), stated in every report:
- the test subjects and sentences of the checkpoint's split; ground truth read from the dataset
  (`load_verts`, 60 fps) and subsampled to the evaluation fps (30 by default, as the papers);
- audio features = the training feature spec (the checkpoint's config through `prepare`, whose
  test split holds them; nothing is fitted on test data);
- prediction = template + decoded mouth offsets in the mouth crop, every other vertex = template;
  prediction and ground truth truncated to their common length;
- unseen test identities are animated under EVERY training style and the metrics averaged over
  styles (the headline); the first training style alone is reported too ("fixed style");
- LVE frame-pooled (the published number) and sequence-averaged (labelled so); lips, upper face
  and mouth crop come from the checkpoint's regions (their source is printed);
- generative models (samples differ): diversity over N_SAMPLES samples under the fixed style.

Baselines (`evaluate_baselines`, used by compare): zero motion (template only), mean motion (mean
train-split mouth offset on each test template) and ridge regression from audio features with
±RIDGE_CONTEXT frames of context to PCA coefficients, fitted on the train split (λ chosen on val).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from vocagan import metrics as M
from vocagan.config import Config, DataConfig
from vocagan.errors import VocaganError
from vocagan.frames import fps_step, resample_frames
from vocagan.utils import atomic_path, atomic_write_json, atomic_write_text, log, progress

DEFAULT_FPS = 30          # evaluation rate of the papers
N_SAMPLES = 3             # samples per input for the diversity of generative models
RIDGE_CONTEXT = 2         # frames of audio context each side for the ridge baseline
RIDGE_LAMBDAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
BASELINES = ("zero motion", "mean motion", "ridge")
# (key, label, scale) of the headline metrics, in table order
TABLE = [("lve", "LVE (x1e-5 m², frame-pooled)", 1e5), ("lve_seq", "LVE (x1e-5 m², sequence-averaged)", 1e5),
         ("lve_mm", "LVE (mm, frame-pooled)", 1), ("mve_mm", "MVE (mm, all vertices)", 1),
         ("mve_lips_mm", "MVE lips (mm)", 1), ("fdd", "FDD (x1e-7 m², signed)", 1e7),
         ("fdd_abs", "|FDD| (x1e-7 m²)", 1e7), ("mouth_corr", "mouth-opening corr. (pred vs gt)", 1),
         ("mouth_diff_mm", "mouth-opening |diff| (mm)", 1), ("closure_rate", "lip closures reached (%)", 1),
         ("closure_gap_mm", "opening at gt closures, pred - gt (mm)", 1), ("lag", "lag pred vs gt (frames)", 1),
         ("audio_lag", "lag pred vs audio energy (frames)", 1), ("audio_lag_gt", "lag gt vs audio energy (frames)", 1),
         ("accel_mm", "acceleration lips (mm/frame²)", 1), ("accel_gt_mm", "acceleration lips, gt (mm/frame²)", 1),
         ("jitter_mm", "jitter lips (mm/frame³)", 1), ("diversity_mm", "diversity (mm, mouth crop)", 1)]

# predictor: (audio (T, F) at the model fps, style indices (C,)) -> mouth offsets (C, T, M, 3) metres
Predictor = Callable[[np.ndarray, list[int]], np.ndarray]


@dataclass
class EvalResult:
    name: str
    out_dir: Path
    metrics: dict                 # headline (averaged over conditions), keys of TABLE
    fixed: dict                   # the same for the fixed (first) style
    protocol: dict                # fps, regions, condition policy, pooling, counts
    per_sequence: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def table(self) -> str:
        rows = ["| metric | all styles (mean) | fixed style |", "|---|---|---|"]
        for key, label, scale in TABLE:
            if key in self.metrics:
                rows.append(f"| {label} | {_fmt(self.metrics[key], scale)} | {_fmt(self.fixed.get(key), scale)} |")
        return "\n".join(rows)

    def summary(self) -> str:
        p = self.protocol
        return "\n".join([f"## Evaluation: {self.name}", "", self.table(), "",
                          f"- evaluation fps: {p['fps']} (model fps {p['model_fps']}); {p['n_sequences']} test "
                          f"sequences, {p['n_frames']} frames; subjects {', '.join(p['subjects'])}",
                          f"- conditions: {p['conditions']}", f"- fixed style: {p['fixed_style']}",
                          f"- lip region: {p['region_source']}",
                          "- LVE: per frame the max over lip vertices of the squared error; 'frame-pooled' = mean "
                          "over all frames of all sequences (published), 'sequence-averaged' = mean of "
                          "per-sequence means", f"- {p['mouth_opening']}",
                          *([f"- {p['closures']}"] if p.get("closures") else []), f"- outputs: {self.out_dir}"])


def _fmt(x, scale: float = 1.0) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    v = x * scale
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"


# ----------------------------------------------------------------------------- test data
@dataclass
class EvalSequence:
    subject: str
    sentence: str
    audio: np.ndarray               # (T, F) features at the model fps
    gt: np.ndarray                  # (T_eval, V, 3) metres at the evaluation fps
    template: np.ndarray            # (V, 3)
    energy: np.ndarray | None       # (T_eval,) audio RMS at the evaluation fps


def load_test_sequences(cfg: Config, prepared, fps: int) -> list[EvalSequence]:
    """The test split of `prepared` (features at cfg.data.fps) with ground truth at `fps`."""
    from vocagan.formats.vocaset import open_vocaset

    vs = open_vocaset(cfg.data, deepspeech=False)           # ground truth + raw audio (energy) only
    fps_step(vs.source_fps, fps, vs.paths.data_verts)                 # fps must divide the capture rate
    out = []
    for i, info in enumerate(progress(prepared.seqs["test"], desc="load test", unit="seq")):
        audio, _ = prepared.sequence("test", i)
        gt = resample_frames(vs.load_verts(info.subject, info.sentence), vs.source_fps, fps)
        raw = vs.raw_audio(info.subject, info.sentence)
        energy = None if raw is None else M.audio_energy(raw[0], raw[1], fps, len(gt))
        out.append(EvalSequence(info.subject, info.sentence, np.asarray(audio), gt,
                                vs.templates[info.subject], energy))
    if not out:
        raise VocaganError("the test split has no sequences", cfg.data.root)
    return out


def sequence_metrics(pred: np.ndarray, gt: np.ndarray, template: np.ndarray, regions, open_pred: np.ndarray,
                     open_gt: np.ndarray, energy: np.ndarray | None, open_rest: float = float("nan")) -> dict:
    """Every metric of one predicted sequence (T, V, 3) against its ground truth: per-frame arrays
    (lve, lve_mm, mve, mve_lips, diff) for pooling, per-sequence values (fdd, corr, accel, jitter),
    lag-correlation curves (lag, alag) and (E, 2) closure minima; mouth-opening series (T,) in mm,
    open_rest the template's opening (closures are judged above it)."""
    lips = regions.lips
    out = {"lve": M.lip_max_sq_error(pred, gt, lips), "lve_mm": M.lip_max_error_mm(pred, gt, lips),
           "mve": M.vertex_error_mm(pred, gt), "mve_lips": M.vertex_error_mm(pred, gt, lips),
           "fdd": M.fdd_sequence(pred, gt, template, regions.upper_face),
           "corr": M.pearson(open_pred, open_gt), "diff": np.abs(open_pred - open_gt),
           "lag": M.lag_correlations(open_pred, open_gt),
           "accel": M.acceleration_mm(pred, lips), "jitter": M.jitter_mm(pred, lips),
           "closures": M.closure_minima(open_pred - open_rest, open_gt - open_rest)}
    if energy is not None:
        out["alag"] = M.lag_correlations(open_pred, energy)
    return out


# ----------------------------------------------------------------------------- the protocol
def run_protocol(name: str, predict: Predictor, tests: list[EvalSequence], crop: np.ndarray, regions,
                 conditions: list[tuple[str, int]], model_fps: int, fps: int, out_dir: Path,
                 save_predictions: Path | None = None, sampler: Callable | None = None,
                 condition_policy: str = "", faces: np.ndarray | None = None) -> EvalResult:
    """Predict every test sequence under every condition (label, style index), compute the metrics,
    aggregate (frame-pooled where the protocol says so), write the outputs."""
    from vocagan import plotting

    out_dir = Path(out_dir)
    lips, upper = regions.lips, regions.upper_face
    try:
        up_idx, low_idx = M.mouth_opening_vertices(tests[0].template, lips)
        opening_note = (f"mouth opening = distance between the mean of {len(up_idx)} upper-lip and {len(low_idx)} "
                        "lower-lip inner vertices (central lips, template geometry); lag = shift in "
                        f"[-{M.MAX_LAG}, {M.MAX_LAG}] frames maximising the mean correlation (k > 0: prediction late)")
    except ValueError as e:  # a degenerate lips region: the lip-sync metrics are n/a, said in the report
        up_idx = low_idx = None
        opening_note = f"mouth opening not measured: {e}"
        log(f"[evaluate] {opening_note}")
    per_cond = {label: {"lve": [], "lve_mm": [], "mve": [], "mve_lips": [], "fdd": [], "corr": [], "diff": [],
                        "lag": [], "alag": [], "accel": [], "jitter": [], "closures": []} for label, _ in conditions}
    per_seq, gt_lag, gt_accel, diversity = [], [], [], []
    heat_sum, heat_n, curve = None, 0, None
    for seq in progress(tests, desc=f"evaluate {name}", unit="seq"):
        offsets = predict(seq.audio, [s for _, s in conditions])            # (C, T, M, 3)
        open_gt = None
        for c, (label, _) in enumerate(conditions):
            pred = np.broadcast_to(seq.template, (offsets.shape[1], *seq.template.shape)).copy()
            pred[:, crop] += offsets[c]
            pred = resample_frames(pred, model_fps, fps)
            n = min(len(pred), len(seq.gt))
            pred, gt = pred[:n].astype(np.float32), seq.gt[:n]
            if save_predictions is not None:
                with atomic_path(Path(save_predictions) / f"{seq.subject}_{seq.sentence}_{label}.npy") as tmp:
                    np.save(tmp, pred)
            if up_idx is not None:
                open_pred, open_gt = M.mouth_opening(pred, up_idx, low_idx), M.mouth_opening(gt, up_idx, low_idx)
                open_rest = float(M.mouth_opening(seq.template[None], up_idx, low_idx)[0])
            else:
                open_pred = open_gt = np.full(n, np.nan)
                open_rest = float("nan")
            acc = per_cond[label]
            for key, value in sequence_metrics(pred, gt, seq.template, regions, open_pred, open_gt,
                                               None if seq.energy is None else seq.energy[:n], open_rest).items():
                acc[key].append(value)
            per_seq.append({"subject": seq.subject, "sentence": seq.sentence, "style": label, "frames": n,
                            "lve_e5": float(acc["lve"][-1].mean() * 1e5), "lve_mm": float(acc["lve_mm"][-1].mean()),
                            "mve_mm": float(acc["mve"][-1].mean()), "fdd_e7": acc["fdd"][-1] * 1e7,
                            "mouth_corr": acc["corr"][-1], "mouth_diff_mm": float(acc["diff"][-1].mean()),
                            "lag": M.lag_of(acc["lag"][-1]) if up_idx is not None else float("nan"),
                            "accel_mm": acc["accel"][-1], "closures": len(acc["closures"][-1]),
                            "closures_reached": int(np.sum(acc["closures"][-1][:, 0] <= M.CLOSED_MM))})
            err = M.per_vertex_error_mm(pred, gt) * n
            heat_sum, heat_n = (err if heat_sum is None else heat_sum + err), heat_n + n
            if curve is None:
                curve = (f"{seq.subject} {seq.sentence}, style {label}", open_pred, open_gt)
        if seq.energy is not None:
            gt_lag.append(M.lag_correlations(open_gt, seq.energy[:len(open_gt)]))
        gt_accel.append(M.acceleration_mm(seq.gt, lips))
        if sampler is not None:
            samples = sampler(seq.audio, conditions[0][1])                   # (S, T, M, 3)
            diversity.append(M.diversity_mm(samples))

    def aggregate(a: dict) -> dict:
        fdd, fdd_abs = M.pool_fdd(a["fdd"])
        return {"lve": M.pool_frames(a["lve"]), "lve_seq": M.pool_sequences(a["lve"]),
                "lve_mm": M.pool_frames(a["lve_mm"]), "mve_mm": M.pool_frames(a["mve"]),
                "mve_lips_mm": M.pool_frames(a["mve_lips"]), "fdd": fdd, "fdd_abs": fdd_abs,
                "mouth_corr": float(np.nanmean(a["corr"])) if np.isfinite(a["corr"]).any() else float("nan"),
                "mouth_diff_mm": M.pool_frames(a["diff"]), "lag": M.lag_of(_nanmean(a["lag"])),
                "audio_lag": M.lag_of(_nanmean(a["alag"])) if a["alag"] else float("nan"),
                "accel_mm": float(np.nanmean(a["accel"])), "jitter_mm": float(np.nanmean(a["jitter"])),
                **dict(zip(("closure_rate", "closure_gap_mm"), M.pool_closures(a["closures"])))}

    per_label = {label: aggregate(a) for label, a in per_cond.items()}
    if up_idx is None:
        for m in per_label.values():
            m.update(mouth_corr=float("nan"), mouth_diff_mm=float("nan"), lag=float("nan"), audio_lag=float("nan"),
                     closure_rate=float("nan"), closure_gap_mm=float("nan"))
    fixed = dict(per_label[conditions[0][0]])
    headline = {k: float(np.mean([m[k] for m in per_label.values()])) for k in fixed}
    shared = {"audio_lag_gt": M.lag_of(_nanmean(gt_lag)) if gt_lag and up_idx is not None else float("nan"),
              "accel_gt_mm": float(np.nanmean(gt_accel)),
              "diversity_mm": float(np.mean(diversity)) if diversity else float("nan")}
    headline.update(shared)
    fixed.update(shared)
    frames = sum(r["frames"] for r in per_seq if r["style"] == conditions[0][0])
    protocol = {"fps": fps, "model_fps": model_fps, "region_source": regions.source, "n_lips": int(len(lips)),
                "n_upper_face": int(len(upper)), "n_mouth_crop": int(len(crop)), "n_sequences": len(tests),
                "n_frames": frames, "subjects": sorted({s.subject for s in tests}),
                "conditions": condition_policy, "fixed_style": conditions[0][0],
                "lve_pooling": "frame-pooled over all test frames (headline); sequence-averaged as lve_seq",
                "mouth_opening": opening_note,
                "closures": (f"ground-truth lip closures = runs of frames with opening <= {M.CLOSED_MM:g} mm above "
                             "the template's, not touching the first or last frame; reached when the prediction's "
                             "minimum over the run +-1 frame is <= the same threshold"),
                "diversity": f"{N_SAMPLES} samples, fixed style, mouth crop" if sampler else "deterministic model"}
    result = EvalResult(name, out_dir, headline, fixed, protocol, per_seq)
    result.files = _write_outputs(result, heat_sum / max(heat_n, 1), tests[0].template, faces, curve, fps, plotting)
    return result


def _nanmean(curves: list[np.ndarray]) -> np.ndarray:
    stacked = np.array(curves, dtype=np.float64)
    finite = np.isfinite(stacked).any(0)
    out = np.full(stacked.shape[1], np.nan)
    out[finite] = np.nanmean(stacked[:, finite], axis=0)
    return out


def finite_or_none(obj):
    """nan/inf -> None, recursively, so metrics.json is strict JSON (NaN is not JSON)."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _short(subject: str) -> str:
    """FaceTalk_170809_00138_TA -> 00138 (plot labels)."""
    parts = subject.split("_")
    return parts[2] if len(parts) == 4 and parts[0] == "FaceTalk" else subject


def _write_outputs(result: EvalResult, heat: np.ndarray, template, faces, curve, fps, plotting) -> list[Path]:
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", finite_or_none({"name": result.name, "metrics": result.metrics,
                                                            "fixed_style": result.fixed, "protocol": result.protocol}))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(result.per_sequence[0]))
    writer.writeheader()
    writer.writerows(result.per_sequence)
    atomic_write_text(out / "per_sequence.csv", buf.getvalue())
    atomic_write_text(out / "metrics.md", result.summary() + "\n")
    files = [out / "metrics.json", out / "per_sequence.csv", out / "metrics.md"]
    fixed_rows = [r for r in result.per_sequence if r["style"] == result.protocol["fixed_style"]]
    files.append(plotting.plot_bars([f"{_short(r['subject'])} {r['sentence'].replace('sentence', 's')}"
                                     for r in fixed_rows],
                                    [r["lve_e5"] for r in fixed_rows], out / "lve_per_sequence.png",
                                    f"{result.name}: LVE per test sequence (style {result.protocol['fixed_style']})",
                                    "LVE (x1e-5 m^2)"))
    title, pred, gt = curve
    files.append(plotting.plot_mouth_opening(pred, gt, fps, out / "mouth_opening.png", f"mouth opening: {title}"))
    files.append(plotting.plot_vertex_heatmap(template, faces, heat, out / "error_heatmap.png",
                                              f"{result.name}: mean per-vertex error (mm)"))
    return [f for f in files if f is not None]


# ----------------------------------------------------------------------------- checkpoint
def _data_config(ckpt_cfg: Config, data_cfg: DataConfig | None) -> Config:
    """The checkpoint's config; a given DataConfig replaces only WHERE the files are (root, paths,
    masks), never the split, the fps or the crop the model was trained with."""
    if data_cfg is None:
        return ckpt_cfg
    where = {k: getattr(data_cfg, k) for k in vars(data_cfg) if k == "root" or k.endswith("_path")}
    return replace(ckpt_cfg, data=replace(ckpt_cfg.data, **where))


def evaluate(checkpoint: Path, data_cfg: DataConfig | None, out_dir: Path, fps: int | None = None,
             save_predictions: Path | None = None, style: str = "all") -> EvalResult:
    """Test-set metrics of a checkpoint (see the module doc). style: "all" or a training subject."""
    import torch

    from vocagan.checkpoint import load_checkpoint
    from vocagan.prep.prepared import Prepared
    from vocagan.prep.prepare import prepare

    model, ckpt = load_checkpoint(checkpoint)
    cfg = _data_config(ckpt.config, data_cfg)
    fps = int(fps or DEFAULT_FPS)
    fps_step(cfg.data.source_fps, fps)                               # a bad --fps fails before any work
    styles = ckpt.styles
    if style == "all":
        conditions = list(zip(styles, range(len(styles))))
        policy = f"unseen test subjects animated under each of the {len(styles)} training styles, metrics averaged"
    else:
        conditions = [(style, ckpt.style_index(style))]
        policy = f"one training style: {style}"
    stats = Prepared.from_stats_dict(ckpt.stats)                    # the model's own PCA basis and regions
    regions = stats.regions
    if data_cfg is not None and data_cfg.masks_path and data_cfg.masks_path != ckpt.config.data.masks_path:
        from vocagan.prep.regions import resolve_regions                  # official lips given now: measure on them

        given = resolve_regions(stats.templates[0], data_cfg.masks_path)
        regions = replace(given, mouth=stats.regions.mouth,
                          source=f"{given.source} (given at evaluation; the model's own: {stats.regions.source})")
    prepared = prepare(cfg)                                          # test features, training spec, cached
    if prepared.audio_dim != ckpt.audio_dim:
        raise VocaganError(f"the prepared features have {prepared.audio_dim} dims, the model expects "
                           f"{ckpt.audio_dim}", checkpoint)
    tests = load_test_sequences(cfg, prepared, fps)

    def predict(audio: np.ndarray, style_idx: list[int]) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio))[None].expand(len(style_idx), -1, -1)
        coefs = model.predict(x, torch.tensor(style_idx), 1)[0].float().numpy()    # (C, T, K)
        return stats.decode(coefs)                                                  # (C, T, M, 3)

    def sample(audio: np.ndarray, style_idx: int) -> np.ndarray:
        torch.manual_seed(0)                                          # reproducible samples
        x = torch.from_numpy(np.ascontiguousarray(audio))[None]
        coefs = model.predict(x, torch.tensor([style_idx]), N_SAMPLES)[:, 0].float().numpy()   # (S, T, K)
        return stats.decode(coefs)

    probe = sample(tests[0].audio[:50], conditions[0][1])
    generative = bool(np.abs(probe - probe[:1]).max() > 0)
    log(f"[evaluate] {ckpt.model_name} ({'generative' if generative else 'deterministic'}), "
        f"{len(tests)} test sequences x {len(conditions)} style(s), at {fps} fps")
    return run_protocol(ckpt.model_name, predict, tests, stats.crop, regions, conditions, ckpt.fps, fps,
                        out_dir, save_predictions, sample if generative else None, policy,
                        stats.faces if len(stats.faces) else None)


# ----------------------------------------------------------------------------- baselines
def context_features(audio: np.ndarray, context: int = RIDGE_CONTEXT) -> np.ndarray:
    """(T, F) -> (T, (2*context+1)*F): frames t-context..t+context side by side (edge-padded)."""
    padded = np.concatenate([audio[:1].repeat(context, 0), audio, audio[-1:].repeat(context, 0)])
    return np.concatenate([padded[i:i + len(audio)] for i in range(2 * context + 1)], axis=1)


@dataclass
class Ridge:
    """Ridge regression x -> y with standardised inputs, fitted in closed form."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    weights: np.ndarray          # (D, K)
    lam: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) / self.x_std) @ self.weights + self.y_mean


def fit_ridge(x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
              lambdas=RIDGE_LAMBDAS) -> Ridge:
    """min_W ||x_s W - (y - ȳ)||² + λ||W||² (x_s = x standardised with its own stats) for each λ;
    keep the λ with the lowest MSE on (x_val, y_val) (without a val set: λ = 100)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    x_mean, x_std, y_mean = x.mean(0), x.std(0) + 1e-8, y.mean(0)
    xs = (x - x_mean) / x_std
    gram, rhs = xs.T @ xs, xs.T @ (y - y_mean)
    best = None
    for lam in (lambdas if x_val is not None else (100.0,)):
        w = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        model = Ridge(x_mean, x_std, y_mean, w, lam)
        err = float(((model(x_val) - y_val) ** 2).mean()) if x_val is not None else 0.0
        if best is None or err < best[0]:
            best = (err, model)
    return best[1]


def baseline_predictors(prepared) -> dict[str, Predictor]:
    """The three baselines as predictors (style-independent: the style index is ignored)."""
    mean_offsets = prepared.decode(prepared.motion["train"].mean(0, keepdims=True))[0]   # (M, 3)
    val = prepared.audio.get("val") is not None and len(prepared.audio["val"])
    ctx = {s: np.concatenate([context_features(prepared.sequence(s, i)[0]) for i in range(len(prepared.seqs[s]))])
           for s in (("train", "val") if val else ("train",))}
    ridge = fit_ridge(ctx["train"], prepared.motion["train"], ctx.get("val"), prepared.motion.get("val") if val else None)
    log(f"[evaluate] ridge baseline: {ctx['train'].shape[1]} inputs, λ = {ridge.lam:g} (chosen on val)")
    m = len(prepared.crop)
    return {"zero motion": lambda a, s: np.zeros((len(s), len(a), m, 3), np.float32),
            "mean motion": lambda a, s: np.broadcast_to(mean_offsets, (len(s), len(a), m, 3)).astype(np.float32),
            "ridge": lambda a, s: np.broadcast_to(prepared.decode(ridge(context_features(a)).astype(np.float32)),
                                                  (len(s), len(a), m, 3))}


def evaluate_baselines(cfg: Config, out_dir: Path, fps: int | None = None,
                       names: tuple[str, ...] = BASELINES) -> dict[str, EvalResult]:
    """Evaluate the baselines under the same protocol; outputs in out_dir/<name with _>/."""
    from vocagan.prep.prepare import prepare

    fps = int(fps or DEFAULT_FPS)
    prepared = prepare(cfg)
    tests = load_test_sequences(cfg, prepared, fps)
    predictors = baseline_predictors(prepared)
    faces = prepared.faces if len(prepared.faces) else None
    return {name: run_protocol(name, predictors[name], tests, prepared.crop, prepared.regions, [("none", 0)],
                               prepared.fps, fps, Path(out_dir) / name.replace(" ", "_"),
                               condition_policy="style-independent baseline (one prediction per sequence)",
                               faces=faces) for name in names}
