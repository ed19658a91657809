"""Test-set evaluation of a checkpoint under the published VOCASET protocol: load the test
sequences, predict each under every condition, compute the metrics, write the report.

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

The report (result object, table, files, plots) is `vocagan.eval_report`; the baselines compare
runs through the same `run_protocol` are `vocagan.baselines`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vocagan import metrics as M
from vocagan.config import Config, DataConfig
from vocagan.errors import VocaganError
from vocagan.eval_report import EvalResult, write_outputs
from vocagan.frames import fps_step, resample_frames
from vocagan.prep.regions import CLOSED_MM, mouth_opening_vertices, resolve_regions
from vocagan.utils import atomic_path, log, output_dir, progress

DEFAULT_FPS = 30  # evaluation rate of the papers
N_SAMPLES = 3  # samples per input for the diversity of generative models

# predictor: (audio (T, F) at the model fps, style indices (C,)) -> mouth offsets (C, T, M, 3) metres
Predictor = Callable[[np.ndarray, list[int]], np.ndarray]


# ----------------------------------------------------------------------------- test data
@dataclass
class EvalSequence:
    subject: str
    sentence: str
    audio: np.ndarray  # (T, F) features at the model fps
    gt: np.ndarray  # (T_eval, V, 3) metres at the evaluation fps
    template: np.ndarray  # (V, 3)
    energy: np.ndarray | None  # (T_eval,) audio RMS at the evaluation fps


def load_test_sequences(cfg: Config, prepared, fps: int) -> list[EvalSequence]:
    """The test split of `prepared` (features at cfg.data.fps) with ground truth at `fps`."""
    from vocagan.formats.vocaset import open_vocaset

    vs = open_vocaset(cfg.data, deepspeech=False)  # ground truth + raw audio (energy) only
    fps_step(vs.source_fps, fps, vs.paths.data_verts)  # fps must divide the capture rate
    out = []
    for i, info in enumerate(progress(prepared.seqs["test"], desc="load test", unit="seq")):
        audio, _ = prepared.sequence("test", i)
        gt = resample_frames(vs.load_verts(info.subject, info.sentence), vs.source_fps, fps)
        raw = vs.raw_audio(info.subject, info.sentence)
        energy = None if raw is None else M.audio_energy(raw[0], raw[1], fps, len(gt))
        out.append(EvalSequence(info.subject, info.sentence, np.asarray(audio), gt, vs.templates[info.subject], energy))
    if not out:
        raise VocaganError("the test split has no sequences", cfg.data.root)
    return out


def sequence_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    template: np.ndarray,
    regions,
    open_pred: np.ndarray,
    open_gt: np.ndarray,
    energy: np.ndarray | None,
    open_rest: float = float("nan"),
) -> dict:
    """Every metric of one predicted sequence (T, V, 3) against its ground truth: per-frame arrays
    (lve, lve_mm, mve, mve_lips, diff) for pooling, per-sequence values (fdd, corr, accel, jitter),
    lag-correlation curves (lag, alag) and (E, 2) closure minima; mouth-opening series (T,) in mm,
    open_rest the template's opening (closures are judged above it)."""
    lips = regions.lips
    out = {
        "lve": M.lip_max_sq_error(pred, gt, lips),
        "lve_mm": M.lip_max_error_mm(pred, gt, lips),
        "mve": M.vertex_error_mm(pred, gt),
        "mve_lips": M.vertex_error_mm(pred, gt, lips),
        "fdd": M.fdd_sequence(pred, gt, template, regions.upper_face),
        "corr": M.pearson(open_pred, open_gt),
        "diff": np.abs(open_pred - open_gt),
        "lag": M.lag_correlations(open_pred, open_gt),
        "accel": M.acceleration_mm(pred, lips),
        "jitter": M.jitter_mm(pred, lips),
        "closures": M.closure_minima(open_pred - open_rest, open_gt - open_rest),
    }
    if energy is not None:
        out["alag"] = M.lag_correlations(open_pred, energy)
    return out


# ----------------------------------------------------------------------------- the protocol
def run_protocol(
    name: str,
    predict: Predictor,
    tests: list[EvalSequence],
    crop: np.ndarray,
    regions,
    conditions: list[tuple[str, int]],
    model_fps: int,
    fps: int,
    out_dir: Path,
    save_predictions: Path | None = None,
    sampler: Callable | None = None,
    condition_policy: str = "",
    faces: np.ndarray | None = None,
) -> EvalResult:
    """Predict every test sequence under every condition (label, style index), compute the metrics,
    aggregate (frame-pooled where the protocol says so), write the outputs."""
    out_dir = Path(out_dir)
    lips, upper = regions.lips, regions.upper_face
    up_idx, low_idx, opening_note = _opening_vertices(tests[0].template, lips)
    per_cond: dict[str, dict[str, list]] = {
        label: {
            "lve": [],
            "lve_mm": [],
            "mve": [],
            "mve_lips": [],
            "fdd": [],
            "corr": [],
            "diff": [],
            "lag": [],
            "alag": [],
            "accel": [],
            "jitter": [],
            "closures": [],
        }
        for label, _ in conditions
    }
    per_seq, gt_lag, gt_accel, diversity = [], [], [], []
    heat_sum, heat_n, curve = np.zeros(len(tests[0].template)), 0, None  # sum of n * per-vertex error (V,)
    for seq in progress(tests, desc=f"evaluate {name}", unit="seq"):
        offsets = predict(seq.audio, [s for _, s in conditions])  # (C, T, M, 3)
        for c, (label, _) in enumerate(conditions):
            # the full mesh: template + decoded mouth offsets in the crop, at the evaluation fps
            pred = np.broadcast_to(seq.template, (offsets.shape[1], *seq.template.shape)).copy()
            pred[:, crop] += offsets[c]
            pred = resample_frames(pred, model_fps, fps)
            n = min(len(pred), len(seq.gt))
            pred, gt = pred[:n].astype(np.float32), seq.gt[:n]
            if save_predictions is not None:
                with atomic_path(Path(save_predictions) / f"{seq.subject}_{seq.sentence}_{label}.npy") as tmp:
                    np.save(tmp, pred)
            if up_idx is not None and low_idx is not None:
                open_pred, open_gt = M.mouth_opening(pred, up_idx, low_idx), M.mouth_opening(gt, up_idx, low_idx)
                open_rest = float(M.mouth_opening(seq.template[None], up_idx, low_idx)[0])
            else:
                open_pred = open_gt = np.full(n, np.nan)
                open_rest = float("nan")
            m = sequence_metrics(
                pred,
                gt,
                seq.template,
                regions,
                open_pred,
                open_gt,
                None if seq.energy is None else seq.energy[:n],
                open_rest,
            )
            for key, value in m.items():
                per_cond[label][key].append(value)
            per_seq.append(_sequence_row(seq, label, n, m, up_idx is not None))
            err = M.per_vertex_error_mm(pred, gt) * n
            heat_sum, heat_n = heat_sum + err, heat_n + n
            if curve is None:
                curve = (f"{seq.subject} {seq.sentence}, style {label}", open_pred, open_gt)
        if seq.energy is not None:
            gt_lag.append(M.lag_correlations(open_gt, seq.energy[: len(open_gt)]))
        gt_accel.append(M.acceleration_mm(seq.gt, lips))
        if sampler is not None:
            samples = sampler(seq.audio, conditions[0][1])  # (S, T, M, 3)
            diversity.append(M.diversity_mm(samples))

    per_label = {label: _aggregate(a, up_idx is not None) for label, a in per_cond.items()}
    fixed = dict(per_label[conditions[0][0]])
    headline = {k: float(np.mean([m[k] for m in per_label.values()])) for k in fixed}
    shared = {
        "audio_lag_gt": M.lag_of(_nanmean(gt_lag)) if gt_lag and up_idx is not None else float("nan"),
        "accel_gt_mm": float(np.nanmean(gt_accel)),
        "diversity_mm": float(np.mean(diversity)) if diversity else float("nan"),
    }
    headline.update(shared)
    fixed.update(shared)
    frames = sum(r["frames"] for r in per_seq if r["style"] == conditions[0][0])
    protocol = {
        "fps": fps,
        "model_fps": model_fps,
        "region_source": regions.source,
        "n_lips": int(len(lips)),
        "n_upper_face": int(len(upper)),
        "n_mouth_crop": int(len(crop)),
        "n_sequences": len(tests),
        "n_frames": frames,
        "subjects": sorted({s.subject for s in tests}),
        "conditions": condition_policy,
        "fixed_style": conditions[0][0],
        "lve_pooling": "frame-pooled over all test frames (headline); sequence-averaged as lve_seq",
        "mouth_opening": opening_note,
        "closures": (
            f"ground-truth lip closures = runs of frames with opening <= {CLOSED_MM:g} mm above "
            "the template's, not touching the first or last frame; reached when the prediction's "
            "minimum over the run +-1 frame is <= the same threshold"
        ),
        "diversity": f"{N_SAMPLES} samples, fixed style, mouth crop" if sampler else "deterministic model",
    }
    result = EvalResult(name, out_dir, headline, fixed, protocol, per_seq)
    result.files = write_outputs(result, heat_sum / max(heat_n, 1), tests[0].template, faces, curve, fps)
    return result


def _opening_vertices(template: np.ndarray, lips: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(upper, lower) mouth-opening vertices of `template` and the report's note on them; (None, None,
    why) for a degenerate lips region: the lip-sync metrics are then n/a, as the report says."""
    try:
        up_idx, low_idx = mouth_opening_vertices(template, lips)
    except ValueError as e:
        note = f"mouth opening not measured: {e}"
        log(f"[evaluate] {note}")
        return None, None, note
    return (
        up_idx,
        low_idx,
        (
            f"mouth opening = distance between the mean of {len(up_idx)} upper-lip and "
            f"{len(low_idx)} lower-lip inner vertices (central lips, template geometry); lag = "
            f"shift in [-{M.MAX_LAG}, {M.MAX_LAG}] frames maximising the mean correlation "
            "(k > 0: prediction late)"
        ),
    )


def _sequence_row(seq: EvalSequence, label: str, n: int, m: dict, opening: bool) -> dict:
    """One row of per_sequence.csv: the `sequence_metrics` `m` of `seq` under style `label`, n frames."""
    return {
        "subject": seq.subject,
        "sentence": seq.sentence,
        "style": label,
        "frames": n,
        "lve_e5": float(m["lve"].mean() * 1e5),
        "lve_mm": float(m["lve_mm"].mean()),
        "mve_mm": float(m["mve"].mean()),
        "fdd_e7": m["fdd"] * 1e7,
        "mouth_corr": m["corr"],
        "mouth_diff_mm": float(m["diff"].mean()),
        "lag": M.lag_of(m["lag"]) if opening else float("nan"),
        "accel_mm": m["accel"],
        "closures": len(m["closures"]),
        "closures_reached": int(np.sum(m["closures"][:, 0] <= CLOSED_MM)),
    }


def _aggregate(a: dict, opening: bool) -> dict:
    """The metrics of one condition from its per-sequence lists `a` (pooled as the protocol says);
    the lip-sync ones are nan when the mouth opening is not measured."""
    fdd, fdd_abs = M.pool_fdd(a["fdd"])
    out = {
        "lve": M.pool_frames(a["lve"]),
        "lve_seq": M.pool_sequences(a["lve"]),
        "lve_mm": M.pool_frames(a["lve_mm"]),
        "mve_mm": M.pool_frames(a["mve"]),
        "mve_lips_mm": M.pool_frames(a["mve_lips"]),
        "fdd": fdd,
        "fdd_abs": fdd_abs,
        "mouth_corr": float(np.nanmean(a["corr"])) if np.isfinite(a["corr"]).any() else float("nan"),
        "mouth_diff_mm": M.pool_frames(a["diff"]),
        "lag": M.lag_of(_nanmean(a["lag"])),
        "audio_lag": M.lag_of(_nanmean(a["alag"])) if a["alag"] else float("nan"),
        "accel_mm": float(np.nanmean(a["accel"])),
        "jitter_mm": float(np.nanmean(a["jitter"])),
        **dict(zip(("closure_rate", "closure_gap_mm"), M.pool_closures(a["closures"]), strict=True)),
    }
    if not opening:
        out.update(
            mouth_corr=float("nan"),
            mouth_diff_mm=float("nan"),
            lag=float("nan"),
            audio_lag=float("nan"),
            closure_rate=float("nan"),
            closure_gap_mm=float("nan"),
        )
    return out


def _nanmean(curves: list[np.ndarray]) -> np.ndarray:
    stacked = np.array(curves, dtype=np.float64)
    finite = np.isfinite(stacked).any(0)
    out = np.full(stacked.shape[1], np.nan)
    out[finite] = np.nanmean(stacked[:, finite], axis=0)
    return out


# ----------------------------------------------------------------------------- checkpoint
def _data_config(ckpt_cfg: Config, data_cfg: DataConfig | None) -> Config:
    """The checkpoint's config; a given DataConfig replaces only WHERE the files are (root, paths,
    masks), never the split, the fps or the crop the model was trained with."""
    if data_cfg is None:
        return ckpt_cfg
    where = {k: getattr(data_cfg, k) for k in vars(data_cfg) if k == "root" or k.endswith("_path")}
    return replace(ckpt_cfg, data=replace(ckpt_cfg.data, **where))


def evaluate(
    checkpoint: Path,
    data_cfg: DataConfig | None,
    out_dir: Path,
    fps: int | None = None,
    save_predictions: Path | None = None,
    style: str = "all",
) -> EvalResult:
    """Test-set metrics of a checkpoint (see the module doc). style: "all" or a training subject."""
    import torch

    from vocagan.checkpoint import load_checkpoint
    from vocagan.prep.prepare import prepare
    from vocagan.prep.prepared import Prepared

    model, ckpt = load_checkpoint(checkpoint)
    cfg = _data_config(ckpt.config, data_cfg)
    fps = int(fps or DEFAULT_FPS)
    fps_step(cfg.data.source_fps, fps)  # a bad --fps fails before any work
    for folder in (out_dir, save_predictions):  # and a bad output folder
        if folder is not None:
            output_dir(folder)
    styles = ckpt.styles
    if style == "all":
        conditions = [(s, i) for i, s in enumerate(styles)]
        policy = f"unseen test subjects animated under each of the {len(styles)} training styles, metrics averaged"
    else:
        conditions = [(style, ckpt.style_index(style))]
        policy = f"one training style: {style}"
    stats = Prepared.from_stats_dict(ckpt.stats)  # the model's own PCA basis and regions
    regions = stats.regions
    if data_cfg is not None and data_cfg.masks_path and data_cfg.masks_path != ckpt.config.data.masks_path:
        # official lips given now: measure on them (the crop stays the model's own)
        given = resolve_regions(stats.templates[0], data_cfg.masks_path)
        regions = replace(
            given,
            mouth=stats.regions.mouth,
            source=f"{given.source} (given at evaluation; the model's own: {stats.regions.source})",
        )
    prepared = prepare(cfg)  # test features, training spec, cached
    if int(prepared.meta["n_vertices"]) != int(stats.meta["n_vertices"]):
        raise VocaganError(
            f"the dataset's meshes have {prepared.meta['n_vertices']} vertices, the model was trained on "
            f"{stats.meta['n_vertices']}: evaluate it on data of its own topology",
            cfg.data.root or cfg.data.data_verts_path or checkpoint,
        )
    if prepared.audio_dim != ckpt.audio_dim:
        raise VocaganError(
            f"the prepared features have {prepared.audio_dim} dims, the model expects {ckpt.audio_dim}", checkpoint
        )
    tests = load_test_sequences(cfg, prepared, fps)

    def predict(audio: np.ndarray, style_idx: list[int]) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio))[None].expand(len(style_idx), -1, -1)
        coefs = model.predict(x, torch.tensor(style_idx), 1)[0].float().numpy()  # (C, T, K)
        return stats.decode(coefs)  # (C, T, M, 3)

    def sample(audio: np.ndarray, style_idx: int) -> np.ndarray:
        torch.manual_seed(0)  # reproducible samples
        x = torch.from_numpy(np.ascontiguousarray(audio))[None]
        coefs = model.predict(x, torch.tensor([style_idx]), N_SAMPLES)[:, 0].float().numpy()  # (S, T, K)
        return stats.decode(coefs)

    probe = sample(tests[0].audio[:50], conditions[0][1])
    generative = bool(np.abs(probe - probe[:1]).max() > 0)
    log(
        f"[evaluate] {ckpt.model_name} ({'generative' if generative else 'deterministic'}), "
        f"{len(tests)} test sequences x {len(conditions)} style(s), at {fps} fps"
    )
    return run_protocol(
        ckpt.model_name,
        predict,
        tests,
        stats.crop,
        regions,
        conditions,
        ckpt.fps,
        fps,
        out_dir,
        save_predictions,
        sample if generative else None,
        policy,
        stats.faces if len(stats.faces) else None,
    )


# ----------------------------------------------------------------------------- moved to vocagan.baselines
