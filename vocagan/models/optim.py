"""How a model is optimised: the optimisation steps of a training iteration (`OptimStep`: parameters,
optimizer, schedule, clipping; a GAN has two), parameter groups at their own rates (a fine-tuned
speech encoder), and the learning-rate schedule (linear warm-up, then cosine)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from vocagan.config import TrainConfig

MIN_LR_RATIO = 0.05  # the cosine schedule decays to 5% of the peak learning rate


@dataclass
class OptimStep:
    """One optimisation step of every training iteration: `MotionModel.step_loss(batch, name)` gives
    its losses (key "loss" is minimised), which update `params` through `optimizer` and `scheduler`.
    Logged loss parts are prefixed with `log_prefix`."""

    name: str
    log_prefix: str
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    grad_clip: float = 0.0  # max gradient norm over `params` (0: no clipping)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from 1 to MIN_LR_RATIO at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress_))


@dataclass
class ParamGroup:
    """Parameters that train in a step at their own peak learning rate and schedule (step -> factor)."""

    params: list
    lr: float
    schedule: Callable[[int], float]


def optim_step(
    name: str,
    log_prefix: str,
    params,
    tc: TrainConfig,
    total_steps: int,
    lr_scale: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    extra: Sequence[ParamGroup] = (),
) -> OptimStep:
    """AdamW (no weight decay on biases, norms and other 1-D parameters) at tc.lr * lr_scale, with the
    warm-up + cosine schedule over `total_steps` and gradient clipping at tc.grad_clip; `extra` groups
    (a fine-tuned encoder) join the same step with their own learning rate and schedule."""
    main = ParamGroup(
        list(params), tc.lr * lr_scale, functools.partial(lr_factor, warmup=tc.warmup_steps, total=total_steps)
    )
    groups: list[dict] = []
    schedules: list[Callable[[int], float]] = []
    every: list[nn.Parameter] = []
    for group in (main, *extra):
        ps, lr, schedule = [p for p in group.params if p.requires_grad], group.lr, group.schedule
        groups += [
            {"params": [p for p in ps if p.dim() >= 2], "weight_decay": tc.weight_decay, "lr": lr},
            {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0, "lr": lr},
        ]
        schedules += [schedule, schedule]
        every += ps
    opt = torch.optim.AdamW(groups, lr=tc.lr * lr_scale, betas=betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules)
    return OptimStep(name, log_prefix, every, opt, sched, tc.grad_clip)


def frozen_then(freeze_steps: int, warmup: int, total: int) -> Callable[[int], float]:
    """0 for the first `freeze_steps` steps, then warm-up + cosine over the rest (`lr_factor`)."""

    def factor(step: int) -> float:
        return 0.0 if step < freeze_steps else lr_factor(step - freeze_steps, warmup, max(1, total - freeze_steps))

    return factor
