"""Several training runs at once, for `compare --jobs N`: each run (train, then evaluate) in a process
of its own, torch's threads shared out between them. On a CPU, small models use one thread far
better than two (benchmarks/RESULTS.md): two one-thread runs side by side finish sooner than the
same two runs one after the other with two threads each. Results depend on the thread count (float
summation order), so the caller reports the count used (`threads_per_run`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from vocagan.config import Config
from vocagan.utils import log


def threads_per_run(jobs: int) -> int:
    """torch threads each of `jobs` parallel runs gets: this process's count shared out (at least 1)."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def run_parallel(plan: dict, states: dict, out_dir: Path, jobs: int, evaluate_run: Callable) -> dict:
    """Train (or resume) and evaluate every run of `plan` ({(model, seed): Config}, state in `states`:
    "new", "partial" or "finished"), `jobs` at a time, into compare's layout (out_dir/runs/<model>/
    seed<k>, out_dir/eval/<model>/seed<k>); each run's output goes to <run folder>.log.
    `evaluate_run(checkpoint, eval_dir)` (picklable: it runs in the workers) evaluates one run the way
    compare does. The prepared data is cached first, so the processes read it instead of preparing it
    side by side. Returns {(model, seed): (training seconds, evaluation seconds)}."""
    from vocagan.train import prepare_data

    prepare_data(next(iter(plan.values())))  # the same prepared data for every model and seed
    threads = threads_per_run(jobs)
    log(f"[compare] {len(plan)} runs, {jobs} at a time, {threads} torch thread(s) each; logs in <run folder>.log")
    out: dict = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {}
        for (model, seed), cfg in plan.items():
            run_dir = out_dir / "runs" / model / f"seed{seed}"
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            job = (cfg, run_dir, states[(model, seed)], out_dir / "eval" / model / f"seed{seed}", threads, evaluate_run)
            futures[pool.submit(train_and_evaluate, *job)] = (model, seed)
        for n, future in enumerate(as_completed(futures), 1):
            model, seed = futures[future]
            out[(model, seed)] = future.result()
            log(f"[compare] {n}/{len(plan)} runs done: {model} seed {seed} ({out[(model, seed)][0]:.0f} s of training)")
    return out


def train_and_evaluate(
    cfg: Config, run_dir: Path, state: str, eval_dir: Path, threads: int, evaluate_run: Callable
) -> tuple[float, float]:
    """One run in a worker process: train (unless finished; resume a partial one) and evaluate, all
    output to <run_dir>.log; returns the training and the evaluation seconds."""
    import torch

    from vocagan.train import train

    torch.set_num_threads(threads)
    with (
        open(run_dir.with_name(run_dir.name + ".log"), "a") as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        t = time.perf_counter()
        if state != "finished":
            train(cfg, run_dir, resume=state == "partial")
        seconds = time.perf_counter() - t
        evaluate_run(run_dir / "best.pt", eval_dir)
    return seconds, time.perf_counter() - t - seconds
