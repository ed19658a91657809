"""The one training loop, for every model: `train(cfg, out_dir, resume=False) -> TrainResult`.

    distributed setup -> data (prepare, loaders, validation batches) -> model and its optimisation steps
    -> restore (--resume) -> per epoch: train steps, validation, decision, snapshot -> result

Every batch runs the model's optimisation steps in order (`MotionModel.configure_optimizers`: one
step for most models, a critic step before the generator's for a GAN), with warm-up + cosine
learning rates and gradient clipping. Each epoch ends with the validation LVE (`validation.py`);
best.pt follows the best one, last.pt holds everything --resume needs, training stops early after
`train.patience` epochs without improvement. The loop never names a model: models return their
losses as dicts.

Run folder: config.yaml (every resolved setting), metrics.jsonl + metrics.csv (one row per epoch),
loss/val_lve/gan/kl PNGs, best.pt, last.pt (weights + optimiser/scheduler/RNG/data-order state: a
resumed CPU run ends bit-identical to an uninterrupted one). Under torchrun (WORLD_SIZE > 1) the
loop runs DDP (gloo on CPU, nccl on GPU) with a DistributedSampler; train.batch_size is the global
batch; rank 0 validates and writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from torch import nn

from vocagan.checkpoint import from_storable, read_checkpoint, rng_state, save_checkpoint, set_rng_state, warm_start
from vocagan.config import Config, config_differences
from vocagan.distributed import (
    Distributed,
    broadcast_from_main,
    finish_distributed,
    main_first,
    reduce_means,
    setup_distributed,
    wrap_for_ddp,
)
from vocagan.errors import VocaganError
from vocagan.models import build
from vocagan.models.layers import LipDecoder
from vocagan.models.optim import OptimStep
from vocagan.utils import atomic_write_text, log, output_dir, progress, seed_everything
from vocagan.validation import VAL_STYLE, to_device, validate, validation_batches

if TYPE_CHECKING:
    from torch.utils.data.distributed import DistributedSampler

    from vocagan.dataset import SequenceDataset

PLOT_EVERY = 10  # epochs between curve refreshes (and always at the end)
RESUME_MAY_DIFFER = {
    "train.epochs",
    "train.patience",
    "train.device",
    "train.num_workers",
    "train.checkpoint_every",
    "prep.cache_dir",
}


@dataclass
class TrainResult:
    out_dir: Path
    model_name: str
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_lve: float | None  # x1e-5 m^2
    epochs_run: int
    stopped_early: bool
    seconds: float
    val_style: str = ""
    baselines: dict = field(default_factory=dict)  # {"zero motion": LVE, "mean motion": LVE}
    rows: list = field(default_factory=list)
    rank: int = 0  # DDP rank; only rank 0 validates and writes
    reused: bool = False  # a finished run with the same config and data, not trained again (`runs.finished_run`)

    def summary(self) -> str:
        if self.rank:
            return f"[rank {self.rank}] training finished; rank 0 prints the results"
        lve = "n/a (no validation sequences)" if self.best_val_lve is None else f"{self.best_val_lve:.4f}"
        lines = [
            f"{'reused the finished run of' if self.reused else 'trained'} {self.model_name}: {self.epochs_run} "
            f"epochs in {self.seconds:.0f} s"
            + (" (early stop)" if self.stopped_early else "")
            + (" (same config and data: not trained again)" if self.reused else ""),
            f"  best val LVE {lve} x1e-5 m^2 at epoch {self.best_epoch} "
            f"(val subjects animated with training style {self.val_style})",
        ]
        for name, value in self.baselines.items():
            lines.append(f"  {name} baseline val LVE {value:.4f} x1e-5 m^2")
        lines += [f"  best checkpoint: {self.best_checkpoint}", f"  run folder:      {self.out_dir}"]
        return "\n".join(lines)


@dataclass
class LoopState:
    """Where the epoch loop stands; saved in last.pt for --resume."""

    next_epoch: int = 0
    best_lve: float = math.inf  # the selection score: val LVE, or the train loss without val data
    best_epoch: int = -1
    since_best: int = 0
    finished: bool = False  # the run ended (all epochs, or early stop): nothing left to resume
    rows: list = field(default_factory=list)
    baselines: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- the loop
def train(cfg: Config, out_dir: Path, resume: bool = False) -> TrainResult:
    t_start = time.perf_counter()
    out_dir, tc = output_dir(out_dir), cfg.train
    env = setup_distributed(tc.device)
    prepared = prepare_data(cfg, env)
    data = make_data(prepared, cfg, env)
    model, decoder = make_model(cfg, prepared, env.device)
    if tc.init_from and not resume:
        n, source = warm_start(model, Path(tc.init_from), prepared)
        if env.main:
            log(f"[train] initial weights: {n} tensors from {source.path} ({source.model_name}, epoch {source.epoch})")
    steps = model.configure_optimizers(tc, tc.epochs * len(data.loader))
    # several steps, or a frozen encoder's parameters, leave parameters without gradients on some steps
    runner = wrap_for_ddp(model, env, several_steps=len(steps) > 1 or not model.hear.passthrough)
    autocast = make_autocast(env.device, tc.bf16)
    state = restore(out_dir, cfg, model, steps, data, env) if resume else LoopState()
    if env.main:
        start_run(out_dir, cfg, model, steps, data, env, fresh=not resume)
    stats = prepared.stats_dict()
    stopped_early, epoch = False, state.next_epoch - 1
    for epoch in range(state.next_epoch, tc.epochs):
        t_epoch = time.perf_counter()
        means = train_epoch(runner, model, steps, data, epoch, tc.epochs, env, autocast)
        row, improved = end_epoch(state, model, steps[-1], data, decoder, epoch, means, env, autocast)
        stop = decide(state, tc, epoch, env)
        if env.main:
            row["time_s"] = round(time.perf_counter() - t_epoch, 3)
            log_epoch(row, improved)
            snapshot(out_dir, cfg, model, steps, data, state, stats, epoch, improved, stop)
        _epoch_end_hook(epoch)
        if stop:
            stopped_early = epoch + 1 < tc.epochs
            if env.main and stopped_early:
                log(f"[train] early stop: no val LVE improvement for {tc.patience} epochs")
            break
    finish_distributed(env)
    styles = list(prepared.styles)
    return TrainResult(
        out_dir=out_dir,
        model_name=model.name,
        best_checkpoint=out_dir / "best.pt",
        last_checkpoint=out_dir / "last.pt",
        best_epoch=state.best_epoch,
        best_val_lve=state.best_lve if data.val_batches else None,
        epochs_run=epoch + 1,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - t_start,
        val_style=styles[VAL_STYLE],
        baselines=state.baselines,
        rows=state.rows,
        rank=env.rank,
    )


def _epoch_end_hook(epoch: int) -> None:
    """Called after each epoch's files are written (tests replace it to simulate an interruption)."""


# ----------------------------------------------------------------------------- setup
def prepare_data(cfg: Config, env: Distributed | None = None):
    """The prepared arrays; rank 0 prepares and caches first, the other ranks then read the cache."""
    from vocagan.prep.prepare import prepare

    if env is None:
        return prepare(cfg)
    with main_first(env):
        return prepare(cfg)


@dataclass
class Data:
    train_ds: SequenceDataset
    loader: torch.utils.data.DataLoader
    sampler: DistributedSampler | None
    generator: torch.Generator  # the loader's shuffling stream (saved for --resume)
    val_batches: list


def make_data(prepared, cfg: Config, env: Distributed) -> Data:
    """Training loader (random crops, shuffled; a DistributedSampler under DDP) and the validation
    batches. Seeds every RNG with train.seed first."""
    from vocagan.dataset import SequenceDataset, collate

    tc = cfg.train
    train_ds = SequenceDataset(prepared, "train", crop_frames=tc.crop_frames, seed=tc.seed, vtlp=tc.vtlp)
    val_ds = SequenceDataset(prepared, "val", crop_frames=0, seed=tc.seed)
    if len(train_ds) == 0:
        raise VocaganError("the train split is empty: check data.train_subjects / train_sentences", cfg.data.root)
    seed_everything(tc.seed)
    generator = torch.Generator().manual_seed(tc.seed)
    sampler: DistributedSampler | None = None
    if env.on:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, num_replicas=env.world, rank=env.rank, shuffle=True, seed=tc.seed)
    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=max(1, tc.batch_size // env.world),
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collate,
        generator=generator,
        num_workers=tc.num_workers,
        drop_last=False,
        persistent_workers=False,
    )
    val_batches = validation_batches(prepared, val_ds, collate, tc.batch_size) if len(val_ds) else []
    return Data(train_ds, loader, sampler, generator, val_batches)


def make_model(cfg: Config, prepared, device: torch.device):
    """The model (on `device`) with the lip decoder its vertex-space losses need; a speech encoder it
    fine-tunes starts from the pretrained weights of features.encoder_path."""
    import dataclasses

    from vocagan.prep.features import audio_input

    audio_dim = prepared.audio["train"].shape[1]
    audio = dataclasses.replace(audio_input(cfg, audio_dim), load_weights=True)
    model = build(cfg.model, audio_dim, prepared.motion["train"].shape[1], len(prepared.styles), audio)
    decoder = LipDecoder.from_prepared(prepared)
    model.set_decoder(decoder)
    model.to(device)
    return model, decoder


def make_autocast(device: torch.device, bf16: bool):
    """A context factory: bf16 autocast on CUDA when asked, a no-op elsewhere (CPU stays float32)."""
    enabled = bool(bf16 and device.type == "cuda")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# ----------------------------------------------------------------------------- restore / start
def restore(out_dir: Path, cfg: Config, model, steps: list[OptimStep], data: Data, env: Distributed) -> LoopState:
    """Weights, optimisers, schedules, RNG streams and the dataset's draw counters from last.pt."""
    path = out_dir / "last.pt"
    if not path.is_file():
        raise VocaganError("nothing to resume: no last.pt in the run folder", out_dir)
    saved = read_checkpoint(path)
    extra = from_storable(saved.get("extra", {}))
    if "loop" not in extra or "optimizers" not in extra:
        raise VocaganError("not a resumable checkpoint (no optimiser/loop state)", path)
    differ = config_differences(json.loads(saved["config"]), cfg, RESUME_MAY_DIFFER)
    if differ:
        raise VocaganError(
            f"config differs from the run being resumed in {', '.join(differ[:8])}"
            + (f" and {len(differ) - 8} more" if len(differ) > 8 else ""),
            path,
        )
    model.load_state_dict(saved["state_dict"])
    for step in steps:
        step.optimizer.load_state_dict(extra["optimizers"][step.name]["optimizer"])
        step.scheduler.load_state_dict(extra["optimizers"][step.name]["scheduler"])
    set_rng_state(extra["rng"], data.generator)
    data.train_ds.load_state_dict(extra["dataset"])
    state = LoopState(**extra["loop"])
    if env.main:
        log(
            f"[train] resuming {out_dir} at epoch {state.next_epoch} (best val LVE {state.best_lve:.4f} "
            f"at epoch {state.best_epoch})"
        )
    return state


def start_run(
    out_dir: Path, cfg: Config, model, steps: list[OptimStep], data: Data, env: Distributed, fresh: bool
) -> None:
    """config.yaml (every resolved setting) and the opening log line."""
    if fresh and ((out_dir / "last.pt").exists() or (out_dir / "best.pt").exists()):
        log(f"[train] {out_dir} already holds a run; starting a new one over it (use --resume to continue it)")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if fresh:
        counts = " + ".join(f"{step.name} {sum(p.numel() for p in step.params):,}" for step in steps)
        styles = data.train_ds.prepared.styles
        log(
            f"[train] {model.name}: {counts} parameters; {len(data.train_ds)} train / "
            f"{sum(len(b['mask']) for b in data.val_batches)} val sequences; device {env.device}"
            + (f" x{env.world} (DDP)" if env.on else "")
            + f"; val subjects use training style {styles[VAL_STYLE]}"
        )


# ----------------------------------------------------------------------------- one epoch
def train_epoch(
    runner: nn.Module, model, steps: list[OptimStep], data: Data, epoch: int, epochs: int, env: Distributed, autocast
) -> dict[str, float]:
    """One pass over the training data; every batch runs the model's steps in order. Returns the
    epoch means of the logged loss parts (over all ranks' batches)."""
    model.set_epoch(epoch)
    if data.sampler is not None:
        data.sampler.set_epoch(epoch)
    data.train_ds.set_epoch(epoch)
    runner.train()
    sums: dict[str, float] = {}
    n_batches = 0
    bar = (
        progress(data.loader, desc=f"{model.name} epoch {epoch + 1}/{epochs}", unit="batch")
        if env.main
        else data.loader
    )
    for batch in bar:
        logged = train_step(runner, to_device(batch, env.device), steps, autocast)
        for k, v in logged.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n_batches += 1
        if env.main and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{float(logged[steps[-1].log_prefix + 'loss']):.4f}")
    return reduce_means(sums, n_batches, env)


def train_step(runner: nn.Module, batch: dict, steps: list[OptimStep], autocast) -> dict[str, torch.Tensor]:
    """The model's optimisation steps on one batch, in order; returns every step's detached loss parts
    under its log prefix ("d_loss", "train_loss", ...)."""
    logged = {}
    for step in steps:
        step.optimizer.zero_grad(set_to_none=True)
        with autocast():
            parts = runner(batch, step.name)
        parts["loss"].backward()
        if step.grad_clip > 0:
            nn.utils.clip_grad_norm_(step.params, step.grad_clip)
        step.optimizer.step()
        step.scheduler.step()
        logged.update({f"{step.log_prefix}{k}": v.detach() for k, v in parts.items()})
    return logged


# ----------------------------------------------------------------------------- end of an epoch
def end_epoch(
    state: LoopState,
    model,
    main_step: OptimStep,
    data: Data,
    decoder,
    epoch: int,
    means: dict,
    env: Distributed,
    autocast,
) -> tuple[dict, bool]:
    """Rank 0 validates and updates the loop state (best score, epochs since); returns (row, improved)."""
    row = {"epoch": epoch + 1, **means}
    improved = False
    if env.main:
        if data.val_batches:
            val = validate(model, data.val_batches, decoder, env.device, autocast)
            state.baselines = val.pop("baselines")
            row.update(val)
            score = val["val_lve"]
        else:
            score = means[main_step.log_prefix + "loss"]
        improved = score < state.best_lve
        if improved:
            state.best_lve, state.best_epoch, state.since_best = score, epoch + 1, 0
        else:
            state.since_best += 1
        row["lr"] = main_step.optimizer.param_groups[0]["lr"]
        state.rows.append(row)
    state.next_epoch = epoch + 1
    return row, improved


def decide(state: LoopState, tc, epoch: int, env: Distributed) -> bool:
    """Stop after the last epoch or `patience` epochs without improvement (0: never early); rank 0's
    decision is broadcast so every rank stops together."""
    stop = (tc.patience > 0 and state.since_best >= tc.patience) or epoch + 1 == tc.epochs
    stop, state.since_best = broadcast_from_main(env, stop, state.since_best)
    state.finished = stop
    return stop


def log_epoch(row: dict, improved: bool) -> None:
    log(
        f"[train] epoch {row['epoch']}: loss {row.get('train_loss', float('nan')):.4f}"
        + (f", val LVE {row['val_lve']:.4f} x1e-5 m^2" if "val_lve" in row else "")
        + (" *" if improved else "")
        + f" ({row['time_s']:.1f} s)"
    )


def snapshot(
    out_dir: Path,
    cfg: Config,
    model,
    steps: list[OptimStep],
    data: Data,
    state: LoopState,
    stats: dict,
    epoch: int,
    improved: bool,
    stop: bool,
) -> None:
    """best.pt when the score improved; last.pt (everything --resume needs) every
    train.checkpoint_every epochs and at the end; metrics.jsonl/csv; curves every PLOT_EVERY epochs."""
    row = state.rows[-1]
    metrics = {k: row.get(k) for k in ("val_lve", "val_lve_mm", "val_loss")}
    if improved:
        save_checkpoint(
            out_dir / "best.pt",
            model,
            cfg,
            stats,
            epoch=epoch + 1,
            metrics={**metrics, "val_style": data.train_ds.prepared.styles[VAL_STYLE]},
        )
    if stop or (epoch + 1) % cfg.train.checkpoint_every == 0:
        extra = {
            "loop": asdict(state),
            "rng": rng_state(data.generator),
            "dataset": data.train_ds.state_dict(),
            "optimizers": {
                s.name: {"optimizer": s.optimizer.state_dict(), "scheduler": s.scheduler.state_dict()} for s in steps
            },
        }
        save_checkpoint(out_dir / "last.pt", model, cfg, stats, extra=extra, epoch=epoch + 1, metrics=metrics)
    _write_metrics(out_dir, state.rows)
    if stop or (epoch + 1) % PLOT_EVERY == 0:
        from vocagan.plotting import plot_training_curves

        plot_training_curves(state.rows, out_dir, state.baselines)


def _write_metrics(out_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())
