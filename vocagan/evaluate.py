"""Test-set evaluation of a checkpoint under the published VOCASET protocol: load the test
sequences, predict each under every condition, compute the metrics with 95 % intervals, write the
report.

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
- naturalness: spread ratios of lip and mouth-opening velocity/acceleration, the Wasserstein
  distance of lip speeds, the opening reached at the true opening peaks (`vocagan.metrics`);
- learned lip sync: a SyncNet-style expert (`vocagan.sync_expert`) trained once on the training
  split of the prepared data (cached by its fingerprint; a copy is kept with the report) gives
  LSE-D / LSE-C for the predictions and for the ground truth, and the Fréchet distance between the
  embeddings of predicted and true motion windows;
- generative models (samples differ): diversity over N_SAMPLES samples under the fixed style;
- uncertainty: every figure carries a 95 % percentile bootstrap interval over the test sequences
  (`vocagan.stats`: STATS_RESAMPLES resamples, fixed seed; a resample keeps all conditions of a
  sequence together). The replicates are saved (bootstrap.npz): two evaluations of the same test
  set drew the same resamples, so `compare` pairs models by test sequence and condition.

How each metric pools over sequences is written once, in `vocagan.eval_pool.pool_metrics`: the
point estimate is `pool_metrics` with every sequence weighted 1, a bootstrap replicate the same with
the resample's counts as weights. The report (result object, table, files, plots) is `vocagan.eval_report`; the
baselines compare runs through the same `run_protocol` are `vocagan.baselines`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vocagan import metrics as M
from vocagan.config import Config, DataConfig
from vocagan.errors import VocaganError
from vocagan.eval_pool import (
    curve_offset,
    gaussians,
    opening_keys,
    pool_metrics,
    sequence_metrics,
    sequence_row,
    stack,
    sync_metrics,
    weighted_curve,
    weighted_mean,
)
from vocagan.eval_report import EvalResult, write_outputs
from vocagan.frames import fps_step, resample_frames
from vocagan.prep.regions import CLOSED_MM, mouth_opening_vertices, resolve_regions
from vocagan.stats import LEVEL, N_RESAMPLES, SEED, bootstrap_counts, interval
from vocagan.sync_expert import FPS as SYNC_FPS
from vocagan.sync_expert import MAX_OFFSET, LoadedExpert, expert_for, load_expert
from vocagan.utils import atomic_path, log, output_dir, progress

DEFAULT_FPS = 30  # evaluation rate of the papers
N_SAMPLES = 3  # samples per input for the diversity of generative models
STATS_RESAMPLES = N_RESAMPLES  # bootstrap resamples of the test sequences

# predictor: (audio (T, F) at the model fps, style indices (C,)) -> mouth offsets (C, T, M, 3) metres
Predictor = Callable[[np.ndarray, list[int]], np.ndarray]
NAN = float("nan")


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
    expert: LoadedExpert | None = None,
) -> EvalResult:
    """Predict every test sequence under every condition (label, style index), compute the metrics,
    aggregate (`pool_metrics`), bootstrap the test sequences for the intervals, write the outputs.
    `expert` (optional) adds the learned lip-sync scores."""
    out_dir = Path(out_dir)
    lips, upper = regions.lips, regions.upper_face
    up_idx, low_idx, opening_note = _opening_vertices(tests[0].template, lips)
    per_cond: dict[str, list[dict]] = {label: [] for label, _ in conditions}
    shared: dict[str, list] = {"alag_gt": [], "accel_gt": [], "diversity": []}
    gt_sync: list[dict] = []
    per_seq = []
    heat_sum, heat_n, curve = np.zeros(len(tests[0].template)), 0, None  # sum of n * per-vertex error (V,)
    for seq in progress(tests, desc=f"evaluate {name}", unit="seq"):
        offsets = predict(seq.audio, [s for _, s in conditions])  # (C, T, M, 3)
        open_gt = np.full(len(seq.gt), NAN)
        audio_emb = None
        if expert is not None:
            audio_emb = expert.expert.embed_audio(seq.audio, model_fps)
            gt_sync.append(
                sync_metrics(expert.expert.embed_motion(seq.gt[:, crop] - seq.template[crop], fps), audio_emb)
            )
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
                open_pred = open_gt = np.full(n, NAN)
                open_rest = NAN
            energy = None if seq.energy is None else seq.energy[:n]
            m = sequence_metrics(pred, gt, seq.template, regions, open_pred, open_gt, energy, open_rest)
            if audio_emb is not None and expert is not None:
                m.update(sync_metrics(expert.expert.embed_motion(pred[:, crop] - seq.template[crop], fps), audio_emb))
            per_cond[label].append(m)
            per_seq.append(sequence_row(seq.subject, seq.sentence, label, m, up_idx is not None))
            err = M.per_vertex_error_mm(pred, gt) * n
            heat_sum, heat_n = heat_sum + err, heat_n + n
            if curve is None:
                curve = (f"{seq.subject} {seq.sentence}, style {label}", open_pred, open_gt)
        shared["alag_gt"].append(
            M.lag_correlations(open_gt, seq.energy[: len(open_gt)])
            if seq.energy is not None
            else np.full(2 * M.MAX_LAG + 1, NAN)
        )
        shared["accel_gt"].append(M.acceleration_mm(seq.gt, lips))
        if sampler is not None:
            samples = sampler(seq.audio, conditions[0][1])  # (S, T, M, 3)
            shared["diversity"].append(M.diversity_mm(samples))

    # point estimate (row 0: every sequence once) and bootstrap replicates (rows 1..R) in one pass
    counts = bootstrap_counts(len(tests), STATS_RESAMPLES, SEED)
    w = np.vstack([np.ones((1, len(tests))), counts]).astype(np.float64)
    gt_stack = stack(gt_sync) if gt_sync else None
    gt_gauss = None
    if gt_stack is not None:
        mu, cov, count = gaussians(w, gt_stack)
        gt_gauss = (mu, cov, count, M.sqrtm_psd(cov))
    pooled = {label: pool_metrics(stack(rows), w, gt_gauss) for label, rows in per_cond.items()}
    if up_idx is None:
        for p in pooled.values():
            p.update({k: np.full(len(w), NAN) for k in opening_keys()})
    common = {
        "audio_lag_gt": M.lag_of(weighted_curve(w, np.array(shared["alag_gt"])))
        if up_idx is not None
        else np.full(len(w), NAN),
        "accel_gt_mm": weighted_mean(w, np.array(shared["accel_gt"])),
        "diversity_mm": weighted_mean(w, np.array(shared["diversity"]))
        if shared["diversity"]
        else np.full(len(w), NAN),
    }
    if gt_stack is not None:
        common.update(
            lse_d_gt=weighted_mean(w, gt_stack["lse_d"]),
            lse_c_gt=weighted_mean(w, gt_stack["lse_c"]),
            sync_offset_gt=curve_offset(weighted_curve(w, gt_stack["sync_curve"])),
        )
    fixed_rows = {**pooled[conditions[0][0]], **common}
    head_rows = {k: np.mean([p[k] for p in pooled.values()], axis=0) for k in pooled[conditions[0][0]]}
    head_rows.update(common)

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
        "dynamics": (
            "spread ratio = root-mean-square of the per-frame velocity (first difference) or acceleration "
            "(second difference), prediction over ground truth, pooled over all frames (lips: all lip vertices, "
            "3-D); 1 = the true dynamics, < 1 = over-smoothed. W1 = 1-D Wasserstein distance between the "
            "predicted and the true lip-vertex speeds (mm/frame) of a sequence, averaged over sequences"
        ),
        "peaks": (
            "opening at peaks = the prediction's maximum opening above the template's over each true opening "
            f"peak +-1 frame (local maxima of the true opening with prominence >= {M.PEAK_PROMINENCE_MM:g} mm), "
            "summed over all peaks, over the true peak openings' sum; < 1 = under-articulated"
        ),
        "diversity": f"{N_SAMPLES} samples, fixed style, mouth crop" if sampler else "deterministic model",
        "uncertainty": (
            f"{100 * LEVEL:.0f} % percentile bootstrap intervals over the {len(tests)} test sequences "
            f"({STATS_RESAMPLES} resamples, seed {SEED}; a resample keeps all conditions of a sequence "
            "together, and every evaluation of this test set draws the same resamples, so differences "
            "between evaluations are paired by sequence and condition). They show how much the figures "
            "depend on which sentences were tested, not on training randomness (compare adds seeds)."
        ),
        "bootstrap": {
            "n_resamples": STATS_RESAMPLES,
            "seed": SEED,
            "level": LEVEL,
            "unit": "test sequence",
            "sequences": [f"{s.subject}/{s.sentence}" for s in tests],
        },
    }
    sync_curves = None
    if expert is not None:
        protocol["sync_expert"] = expert.describe()
        protocol["sync_expert_info"] = {**expert.info, "file": expert.path.name, "sha256": expert.sha256}
        protocol["sync"] = (
            f"learned lip sync: per sequence, the expert's distance between each motion window ({SYNC_FPS} fps) "
            f"and the audio window shifted by -{MAX_OFFSET}..{MAX_OFFSET} frames, averaged over windows per shift; "
            "LSE-D = the smallest average distance, LSE-C = median over shifts minus that minimum (higher = more "
            "confidently in sync), sync offset = frames the motion lags the audio at the minimum of the mean "
            "curve (> 0: motion late); "
            "averaged over sequences (SyncNet's LSE-D / LSE-C on 3-D motion). Fréchet distance = between Gaussians "
            "fitted to the expert's motion-window embeddings of the predictions and of the ground truth"
        )
        offsets_axis = np.arange(-MAX_OFFSET, MAX_OFFSET + 1)
        pred_curve = np.mean(
            [weighted_curve(w[:1], stack(rows)["sync_curve"])[0] for rows in per_cond.values()], axis=0
        )
        gt_curve = weighted_curve(w[:1], gt_stack["sync_curve"])[0] if gt_stack is not None else None
        sync_curves = (offsets_axis, pred_curve, gt_curve)
    else:
        protocol["sync"] = (
            "learned lip sync not measured (no sync expert: the training split's sequences are too short)"
        )
    result = EvalResult(
        name,
        out_dir,
        {k: float(v[0]) for k, v in head_rows.items()},
        {k: float(v[0]) for k, v in fixed_rows.items()},
        protocol,
        per_seq,
        ci={k: interval(v[1:]) for k, v in head_rows.items()},
        fixed_ci={k: interval(v[1:]) for k, v in fixed_rows.items()},
        replicates={k: v[1:] for k, v in head_rows.items()},
        fixed_replicates={k: v[1:] for k, v in fixed_rows.items()},
    )
    result.files = write_outputs(
        result, heat_sum / max(heat_n, 1), tests[0].template, faces, curve, fps, sync_curves, expert
    )
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
    note = (
        f"mouth opening = distance between the mean of {len(up_idx)} upper-lip and {len(low_idx)} lower-lip "
        f"inner vertices (central lips, template geometry); lag = shift in [-{M.MAX_LAG}, {M.MAX_LAG}] frames "
        "maximising the mean correlation (k > 0: prediction late)"
    )
    return up_idx, low_idx, note


# ----------------------------------------------------------------------------- checkpoint
def _data_config(ckpt_cfg: Config, data_cfg: DataConfig | None) -> Config:
    """The checkpoint's config; a given DataConfig replaces only WHERE the files are (root, paths,
    masks), never the split, the fps or the crop the model was trained with."""
    if data_cfg is None:
        return ckpt_cfg
    where = {k: getattr(data_cfg, k) for k in vars(data_cfg) if k == "root" or k.endswith("_path")}
    return replace(ckpt_cfg, data=replace(ckpt_cfg.data, **where))


def sync_expert_for(prepared, path: Path | None = None) -> LoadedExpert | None:
    """The sync expert an evaluation on `prepared` uses: the file at `path` when given (e.g. the copy
    kept with an earlier report; a bad file is an error), else the one trained on prepared's training
    split (cached); None, with the reason logged, when that split cannot train one (sequences too
    short): the learned sync scores are then n/a and the report says so."""
    if path is None:
        try:
            loaded = expert_for(prepared)
        except VocaganError as e:
            log(f"[evaluate] learned lip sync not measured: {e}")
            return None
    else:
        loaded = load_expert(path)
    if loaded.expert.audio_dim != prepared.audio_dim or loaded.expert.motion_dim != 3 * len(prepared.crop):
        raise VocaganError(
            f"the sync expert expects {loaded.expert.audio_dim} audio features and {loaded.expert.motion_dim // 3} "
            f"mouth vertices, the prepared data has {prepared.audio_dim} and {len(prepared.crop)}",
            loaded.path,
        )
    return loaded


def sync_expert_of(cfg: Config, path: Path | None = None) -> LoadedExpert | None:
    """The sync expert of the data cfg prepares (prepared first when not cached): for `compare`, which
    scores every run with one expert."""
    from vocagan.prep.prepare import prepare

    return sync_expert_for(prepare(cfg), path)


def evaluate(
    checkpoint: Path,
    data_cfg: DataConfig | None,
    out_dir: Path,
    fps: int | None = None,
    save_predictions: Path | None = None,
    style: str = "all",
    sync_expert: Path | None = None,
    encoder: str | None = None,
) -> EvalResult:
    """Test-set metrics of a checkpoint (see the module doc). style: "all" or a training subject;
    sync_expert: a saved expert to score lip sync with (default: the one of this prepared data);
    encoder: where the frozen speech encoder the model was trained with is now, when its recorded
    folder is gone."""
    import torch

    from vocagan.checkpoint import load_checkpoint
    from vocagan.prep.prepare import prepare
    from vocagan.prep.prepared import Prepared

    model, ckpt = load_checkpoint(checkpoint)
    cfg = _data_config(ckpt.config, data_cfg)
    if cfg.features.kind == "encoder" and not cfg.features.encoder_finetune:
        from vocagan.prep.features import encoder_for, with_encoder

        cfg = replace(cfg, features=with_encoder(cfg.features, encoder))
        encoder_for(cfg.features, recorded=ckpt.encoder or {})  # there, and the weights the model knows
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
    expert = sync_expert_for(prepared, sync_expert)
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
        expert,
    )
