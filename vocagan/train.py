"""The one training loop, for every model: `train(cfg, out_dir, resume=False) -> TrainResult`.

prepare(cfg) -> loaders -> AdamW (warmup + cosine LR, gradient clipping) -> per epoch: train steps
(plus ONE optional discriminator step per batch when the model has a `discriminator`), validation
(loss, and lip vertex error in vertex space), best.pt on the best validation LVE, last.pt for
--resume, early stopping. The loop never names a model: models return their losses as dicts.

Validation LVE: predicted normalised coefficients are decoded through the PCA basis to lip offsets
and compared with the true val lip offsets (the un-PCA'd offsets the prepared data keeps for val;
the decoded true coefficients when it does not); per frame the max over lip vertices of the squared
L2 error; mean over all frames pooled across sequences; reported x1e-5 m^2. The zero-motion
(template only) and mean-motion (train-mean offsets) baselines are measured on the same frames.
Val subjects are unseen identities, so they are animated with a fixed training style: the first
training subject (style index 0).

Run folder: config.yaml, metrics.jsonl + metrics.csv (one row per epoch), loss/val_lve/gan/kl PNGs,
best.pt, last.pt (weights + optimiser/scheduler/RNG/data-order state: a resumed CPU run ends
bit-identical to an uninterrupted one). Under torchrun (WORLD_SIZE > 1) the loop runs DDP (gloo on
CPU, nccl on GPU) with a DistributedSampler; train.batch_size is the global batch; rank 0 writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from vocagan.checkpoint import from_storable, read_checkpoint, rng_state, save_checkpoint, set_rng_state
from vocagan.config import Config, config_differences
from vocagan.errors import VocaganError
from vocagan.models import build
from vocagan.models.layers import LipDecoder, lip_positions
from vocagan.utils import atomic_write_text, log, progress, resolve_device, seed_everything

MIN_LR_RATIO = 0.05          # cosine decays to 5% of the peak learning rate
PLOT_EVERY = 10              # epochs between curve refreshes (and always at the end)
VAL_STYLE = 0                # unseen val subjects are animated with the first training style
RESUME_MAY_DIFFER = {"train.epochs", "train.patience", "train.device", "train.num_workers",
                     "train.checkpoint_every", "prep.cache_dir"}


@dataclass
class TrainResult:
    out_dir: Path
    model_name: str
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_lve: float | None            # x1e-5 m^2
    epochs_run: int
    stopped_early: bool
    seconds: float
    val_style: str = ""
    baselines: dict = field(default_factory=dict)   # {"zero motion": LVE, "mean motion": LVE}
    rows: list = field(default_factory=list)
    rank: int = 0                                    # DDP rank; only rank 0 validates and writes

    def summary(self) -> str:
        if self.rank:
            return f"[rank {self.rank}] training finished; rank 0 prints the results"
        lve = "n/a (no validation sequences)" if self.best_val_lve is None else f"{self.best_val_lve:.4f}"
        lines = [f"trained {self.model_name}: {self.epochs_run} epochs in {self.seconds:.0f} s"
                 + (" (early stop)" if self.stopped_early else ""),
                 f"  best val LVE {lve} x1e-5 m^2 at epoch {self.best_epoch} "
                 f"(val subjects animated with training style {self.val_style})"]
        for name, value in self.baselines.items():
            lines.append(f"  {name} baseline val LVE {value:.4f} x1e-5 m^2")
        lines += [f"  best checkpoint: {self.best_checkpoint}", f"  run folder:      {self.out_dir}"]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- small pieces
def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from 1 to MIN_LR_RATIO at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress_))


def make_optimizer(params, lr: float, weight_decay: float, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and embeddings' 1-D params (dim < 2)."""
    params = [p for p in params if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


class Optimisers:
    """AdamW + warm-up/cosine schedule for the model, and a second pair for a discriminator if any."""

    def __init__(self, model, tc, total_steps: int):
        self.grad_clip = tc.grad_clip
        self.gen_params = model.generator_parameters()
        self.opt = make_optimizer(self.gen_params, tc.lr, tc.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, tc.warmup_steps, total_steps))
        self.d_params = list(model.discriminator.parameters()) if hasattr(model, "discriminator") else []
        self.d_opt = self.d_sched = None
        if self.d_params:  # GAN practice: Adam betas (0.5, 0.9) for the critic
            d_lr = tc.lr * float(getattr(model.cfg, "d_lr_scale", 1.0))
            self.d_opt = make_optimizer(self.d_params, d_lr, tc.weight_decay, betas=(0.5, 0.9))
            self.d_sched = torch.optim.lr_scheduler.LambdaLR(self.d_opt,
                                                             lambda s: lr_factor(s, tc.warmup_steps, total_steps))

    def state_dict(self) -> dict:
        out = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict()}
        if self.d_opt is not None:
            out.update(d_optimizer=self.d_opt.state_dict(), d_scheduler=self.d_sched.state_dict())
        return out

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.d_opt is not None:
            self.d_opt.load_state_dict(state["d_optimizer"])
            self.d_sched.load_state_dict(state["d_scheduler"])

    def update(self, loss, opt, sched, params) -> None:
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()
        sched.step()


class _Step(nn.Module):
    """Routes DDP's forward to the model's losses so gradient all-reduce hooks fire for both steps."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, which: str):
        return self.model.loss(batch) if which == "generator" else self.model.discriminator_loss(batch)


def train_step(step_module: nn.Module, batch: dict, optim: Optimisers, autocast) -> dict[str, torch.Tensor]:
    """One optimisation step: the optional discriminator update (one branch), then the model's.
    Returns the detached loss parts, prefixed "d_" (discriminator) and "train_" (model)."""
    logged = {}
    if optim.d_opt is not None:
        optim.d_opt.zero_grad(set_to_none=True)
        with autocast():
            d_parts = step_module(batch, "discriminator")
        optim.update(d_parts["loss"], optim.d_opt, optim.d_sched, optim.d_params)
        logged.update({f"d_{k}": v.detach() for k, v in d_parts.items()})
    optim.opt.zero_grad(set_to_none=True)
    with autocast():
        parts = step_module(batch, "generator")
    optim.update(parts["loss"], optim.opt, optim.sched, optim.gen_params)
    logged.update({f"train_{k}": v.detach() for k, v in parts.items()})
    return logged


def make_autocast(device: torch.device, bf16: bool):
    """A context factory: bf16 autocast on CUDA when asked, a no-op elsewhere (CPU stays float32)."""
    enabled = bool(bf16 and device.type == "cuda")
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _to(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


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


def _epoch_end_hook(epoch: int) -> None:
    """Called after each epoch's files are written (tests replace it to simulate an interruption)."""


# ----------------------------------------------------------------------------- validation
def validation_batches(prepared, val_ds, collate, batch_size: int) -> list[dict]:
    """Whole val sequences sorted by length (little padding), with the style set to the fixed training
    style and "true_lips" (B,T,L,3) mm: the true lip offsets when the prepared data keeps them
    (`true_offsets["val"]`), else the decoded true coefficients (PCA-projected ground truth)."""
    true = getattr(prepared, "true_offsets", {}).get("val")
    lips = lip_positions(prepared.crop, prepared.regions.lips)
    where = {(q.subject, q.sentence): q for q in prepared.seqs["val"]}
    items = sorted((val_ds[i] for i in range(len(val_ds))), key=lambda it: len(it["motion"]))
    batches = []
    for i in range(0, len(items), max(1, batch_size)):
        chunk = items[i:i + batch_size]
        batch = collate(chunk)
        batch["style"] = torch.full_like(batch["style"], VAL_STYLE)
        if true is not None:
            B, T = batch["mask"].shape
            true_lips = torch.zeros(B, T, len(lips), 3)
            for b, it in enumerate(chunk):
                q = where[(it["subject"], it["sentence"])]
                n = min(q.length, len(it["motion"]))
                true_lips[b, :n] = torch.from_numpy(np.asarray(true[q.start:q.start + n][:, lips] * 1000.0,
                                                               dtype=np.float32))
            batch["true_lips"] = true_lips
        batches.append(batch)
    return batches


@torch.no_grad()
def validate(model, batches: list[dict], decoder: LipDecoder, device, autocast) -> dict:
    """Validation loss parts and LVE (x1e-5 m^2, frame-pooled) plus the zero-motion (template only)
    and mean-motion (train-mean offsets) baselines' LVE on the same frames."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    sq_err = {"model": 0.0, "zero motion": 0.0, "mean motion": 0.0}
    err_mm, frames, n_seq = 0.0, 0, 0
    for batch in batches:
        batch = _to(batch, device)
        with autocast():
            parts = model.loss({k: v for k, v in batch.items() if k != "true_lips"})
            pred = model.predict(batch["audio"], batch["style"], 1, batch["mask"])[0]
        n = int(batch["mask"].shape[0])
        n_seq += n
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        mask = batch["mask"]
        true_lips = batch.get("true_lips")
        if true_lips is None:
            true_lips = decoder(batch["motion"])                                  # (B,T,L,3) mm
        for name, lips in (("model", decoder(pred.float())), ("zero motion", torch.zeros_like(true_lips)),
                           ("mean motion", decoder(torch.zeros_like(batch["motion"])))):
            per_frame = (lips.double() - true_lips.double()).pow(2).sum(-1).amax(-1)   # (B,T) mm^2
            sq_err[name] += float(per_frame[mask].sum())
            if name == "model":
                err_mm += float(per_frame[mask].sqrt().sum())
        frames += int(mask.sum())
    model.train(was_training)
    out = {f"val_{k}": v / n_seq for k, v in sums.items()}
    out["val_lve"] = sq_err["model"] / frames * 0.1      # mm^2 -> x1e-5 m^2 (1 mm^2 = 1e-6 m^2)
    out["val_lve_mm"] = err_mm / frames
    out["baselines"] = {k: v / frames * 0.1 for k, v in sq_err.items() if k != "model"}
    return out


# ----------------------------------------------------------------------------- the loop
def train(cfg: Config, out_dir: Path, resume: bool = False) -> TrainResult:
    from vocagan.dataset import SequenceDataset, collate
    from vocagan.prep.prepare import prepare

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    tc = cfg.train
    world, rank, local_rank = (int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)))
    distributed = world > 1
    device = resolve_device(tc.device)
    if distributed:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0
    autocast = make_autocast(device, tc.bf16)

    # -- data (rank 0 prepares/caches first; the others then read the cache)
    if distributed and not main:
        dist.barrier()
    prepared = prepare(cfg)
    if distributed and main:
        dist.barrier()
    styles = list(prepared.styles)
    train_ds = SequenceDataset(prepared, "train", crop_frames=tc.crop_frames, seed=tc.seed, vtlp=tc.vtlp)
    val_ds = SequenceDataset(prepared, "val", crop_frames=0, seed=tc.seed)
    if len(train_ds) == 0:
        raise VocaganError("the train split is empty: check data.train_subjects / train_sentences", cfg.data.root)
    audio_dim, motion_dim = prepared.audio["train"].shape[1], prepared.motion["train"].shape[1]

    seed_everything(tc.seed)
    loader_gen = torch.Generator().manual_seed(tc.seed)
    local_batch = max(1, tc.batch_size // world)
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=tc.seed)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=local_batch, shuffle=sampler is None, sampler=sampler,
                                         collate_fn=collate, generator=loader_gen, num_workers=tc.num_workers,
                                         drop_last=False, persistent_workers=False)
    val_batches = validation_batches(prepared, val_ds, collate, tc.batch_size) if len(val_ds) else []

    # -- model, optimisers, schedules
    model = build(cfg.model, audio_dim, motion_dim, len(styles))
    decoder = LipDecoder.from_prepared(prepared)
    model.set_decoder(decoder)
    model.to(device)
    has_d = hasattr(model, "discriminator")
    optim = Optimisers(model, tc, tc.epochs * len(loader))
    step_module: nn.Module = _Step(model)
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        step_module = DDP(step_module, device_ids=[device.index] if device.type == "cuda" else None,
                          find_unused_parameters=has_d)  # G step may skip D (warm-up); D step skips G

    # -- fresh run or resume
    start_epoch, best_lve, best_epoch, since_best, rows = 0, math.inf, -1, 0, []
    baselines: dict = {}
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if resume:
        state = _load_resume(last_path, cfg)
        model.load_state_dict(state["state_dict"])
        extra = from_storable(state["extra"])
        optim.load_state_dict(extra)
        set_rng_state(extra["rng"], loader_gen)
        if "dataset_draws" in extra:
            train_ds._draws = np.asarray(extra["dataset_draws"]).copy()
        loop = extra["loop"]
        start_epoch, best_lve, best_epoch, since_best = (loop["next_epoch"], loop["best_lve"], loop["best_epoch"],
                                                         loop["since_best"])
        rows, baselines = loop["rows"], loop["baselines"]
        if main:
            log(f"[train] resuming {out_dir} at epoch {start_epoch} (best val LVE {best_lve:.4f} at epoch {best_epoch})")
    elif main and (last_path.exists() or best_path.exists()):
        log(f"[train] {out_dir} already holds a run; starting a new one over it (use --resume to continue it)")
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if start_epoch == 0:
            log(f"[train] {model.name}: {sum(p.numel() for p in optim.gen_params):,} parameters"
                + (f" + discriminator {sum(p.numel() for p in optim.d_params):,}" if has_d else "")
                + f"; {len(train_ds)} train / {len(val_ds)} val sequences; device {device}"
                + (f" x{world} (DDP)" if distributed else "")
                + f"; val subjects use training style {styles[VAL_STYLE]}")

    stats = prepared.stats_dict()
    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, tc.epochs):
        t_epoch = time.perf_counter()
        model.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        step_module.train()
        sums: dict[str, float] = {}
        n_batches = 0
        bar = progress(loader, desc=f"{model.name} epoch {epoch + 1}/{tc.epochs}", unit="batch") if main else loader
        for batch in bar:
            logged = train_step(step_module, _to(batch, device), optim, autocast)
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n_batches += 1
            if main and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(logged['train_loss']):.4f}")
        train_means = _reduce_means(sums, n_batches, distributed, device)

        # -- validation (rank 0), decisions broadcast so every rank stops together
        row = {"epoch": epoch + 1, **train_means}
        improved = False
        if main:
            if val_batches:
                val = validate(model, val_batches, decoder, device, autocast)
                baselines = val.pop("baselines")
                row.update(val)
                improved = val["val_lve"] < best_lve
                score = val["val_lve"]
            else:
                score = train_means["train_loss"]
                improved = score < best_lve
            if improved:
                best_lve, best_epoch, since_best = score, epoch + 1, 0
            else:
                since_best += 1
            row["lr"] = optim.opt.param_groups[0]["lr"]
            row["time_s"] = round(time.perf_counter() - t_epoch, 3)
            rows.append(row)
            log(f"[train] epoch {epoch + 1}: loss {row['train_loss']:.4f}"
                + (f", val LVE {row['val_lve']:.4f} x1e-5 m^2" if "val_lve" in row else "")
                + (" *" if improved else "") + f" ({row['time_s']:.1f} s)")
        stop = (tc.patience > 0 and since_best >= tc.patience) or epoch + 1 == tc.epochs
        if distributed:
            flag = torch.tensor([float(stop), float(since_best)], device=device)
            dist.broadcast(flag, 0)
            stop, since_best = bool(flag[0]), int(flag[1])
        if main:
            metrics = {k: row.get(k) for k in ("val_lve", "val_lve_mm", "val_loss")}
            if improved:
                save_checkpoint(best_path, model, cfg, stats, epoch=epoch + 1, metrics={**metrics, "val_style":
                                                                                         styles[VAL_STYLE]})
            if stop or (epoch + 1) % max(1, tc.checkpoint_every) == 0:
                loop = {"next_epoch": epoch + 1, "best_lve": best_lve, "best_epoch": best_epoch,
                        "since_best": since_best, "rows": rows, "baselines": baselines}
                extra = {**optim.state_dict(), "loop": loop, "rng": rng_state(loader_gen)}
                if hasattr(train_ds, "_draws"):  # the crop generator's per-sequence draw counters
                    extra["dataset_draws"] = np.asarray(train_ds._draws).copy()
                save_checkpoint(last_path, model, cfg, stats, extra=extra, epoch=epoch + 1, metrics=metrics)
            _write_metrics(out_dir, rows)
            if stop or (epoch + 1) % PLOT_EVERY == 0:
                _plot(rows, out_dir, baselines)
        _epoch_end_hook(epoch)
        if stop:
            stopped_early = epoch + 1 < tc.epochs
            if main and stopped_early:
                log(f"[train] early stop: no val LVE improvement for {tc.patience} epochs")
            break
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(out_dir=out_dir, model_name=model.name, best_checkpoint=best_path, last_checkpoint=last_path,
                       best_epoch=best_epoch, best_val_lve=best_lve if val_batches else None,
                       epochs_run=epoch + 1, stopped_early=stopped_early, seconds=time.perf_counter() - t_start,
                       val_style=styles[VAL_STYLE], baselines=baselines, rows=rows, rank=rank)


def _reduce_means(sums: dict, n: int, distributed: bool, device) -> dict:
    """Per-epoch means of the logged parts, averaged over all ranks' batches."""
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys] + [float(n)], dtype=torch.float64)
    if distributed:
        import torch.distributed as dist

        values = values.to(device)
        dist.all_reduce(values)  # sum over ranks
        values = values.cpu()
    return {k: float(v) / max(1.0, float(values[-1])) for k, v in zip(keys, values[:-1])}


def _load_resume(path: Path, cfg: Config) -> dict:
    if not path.is_file():
        raise VocaganError("nothing to resume: no last.pt in the run folder", path.parent)
    state = read_checkpoint(path)
    if "loop" not in state.get("extra", {}):
        raise VocaganError("not a resumable checkpoint (no optimiser/loop state)", path)
    differ = config_differences(json.loads(state["config"]), cfg, RESUME_MAY_DIFFER)
    if differ:
        raise VocaganError(f"config differs from the run being resumed in {', '.join(differ)}", path)
    return state


def _plot(rows: list[dict], out_dir: Path, baselines: dict) -> None:
    from vocagan.plotting import plot_training_curves

    plot_training_curves(rows, out_dir, baselines)
