"""Interrupted and concurrent work, for real: `python -m vocagan prepare/train/render` subprocesses
are killed with SIGKILL (kill -9, whole process group, so ffmpeg dies too) while they write.

After each kill: the final file is absent or complete and loadable (never half-written; an older
complete file under the final name survives intact); a rerun succeeds; `train --resume` continues
from last.pt and loses at most the epochs since that checkpoint. Two concurrent `prepare` runs on
the same inputs and cache folder both succeed and leave one loadable cache.

Kill points come from polling for the writer's temporary file (`.tmp-<final name>.*`, see
`vocagan.utils.atomic_path`) so the kill lands while the file is being written, plus fixed delays.
Leftover `.tmp-*` files after a kill -9 are expected (nothing can clean up after SIGKILL); they
never carry the final name and never disturb a rerun.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SMALL_RNN = ["--model", "rnn", "--set", "model.hidden=16", "--set", "model.n_layers=1"]
pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------- process helpers
@pytest.fixture(scope="session")
def spawn(repo):
    """Factory: spawn(args, log) -> Popen of `python -m vocagan ARGS` in its own process group (so
    kill -9 reaches ffmpeg children too), output appended to `log`."""

    def spawn(args: list[str], log: Path) -> subprocess.Popen:
        tmpdir = log.parent / "tmpdir"  # the child's tempfile dirs (a killed render leaves one): inside tmp_path
        tmpdir.mkdir(exist_ok=True)
        env = {**os.environ, "VOCAGAN_PROGRESS": "0", "PYTHONPATH": str(repo), "TMPDIR": str(tmpdir)}
        out = open(log, "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "vocagan", *args],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return proc

    return spawn


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the process group started by `spawn` (by its id) and reap the leader."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def run_ok(spawn):
    """Factory: run_ok(args, log, timeout=300) -> the log text of a `spawn`ed run that must exit 0."""

    def run_ok(args: list[str], log: Path, timeout: float = 300) -> str:
        proc = spawn(args, log)
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                kill9(proc)
        assert rc == 0, log.read_text()[-3000:]
        return log.read_text()

    return run_ok


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 120, poll: float = 0.001) -> bool:
    """Poll `predicate()` until true (-> True) or the process ends / time runs out (-> False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return bool(predicate())
        time.sleep(poll)
    return False


def temp_files(folder: Path, final_name: str) -> list[Path]:
    return sorted(folder.glob(f".tmp-{final_name}.*")) if folder.is_dir() else []


# ----------------------------------------------------------------------------- prepare
def _assert_cache_sound(cache: Path) -> list[Path]:
    """Every final-named cache file loads; returns them."""
    from vocagan.prep.prepared import Prepared

    finals = sorted(p for p in cache.glob("*.npz") if not p.name.startswith(".tmp-")) if cache.is_dir() else []
    for path in finals:
        prepared = Prepared.load(path)
        assert len(prepared.seqs["train"]) > 0 and prepared.motion["train"].shape[0] > 0
    return finals


def test_kill_prepare_while_writing_then_rerun(tiny_corpus, tmp_path, spawn, run_ok):
    cache = tmp_path / "cache"
    args = ["prepare", "--data", str(tiny_corpus), "--cache-dir", str(cache)]
    kills = mid_write = 0
    # 1) kill the moment the cache's temporary file appears (mid-write), 2) at fixed delays
    for attempt, delay in enumerate([None, None, 1.0, 2.5]):
        proc = spawn(args, tmp_path / f"prepare{attempt}.log")
        if delay is None:
            wait_until(lambda: bool(list(cache.glob(".tmp-*"))), proc)
        else:
            time.sleep(delay)
        kill9(proc)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            mid_write += bool(list(cache.glob(".tmp-*")))  # the writer died with its temp file open
        _assert_cache_sound(cache)
        for path in cache.glob("*.npz"):  # a completed run may have finished first: start clean again
            if not path.name.startswith(".tmp-"):
                path.unlink()
    assert kills >= 2 and mid_write >= 1, f"{kills} kills, {mid_write} while writing: nothing was interrupted"
    out = run_ok(args, tmp_path / "rerun.log")
    (final,) = _assert_cache_sound(cache)
    assert f"prepared data: {final}" in out
    # a second rerun uses the cache rather than rebuilding it
    assert "using cached prepared data" in run_ok(args, tmp_path / "rerun2.log")


def test_two_concurrent_prepares_share_one_sound_cache(tiny_corpus, tmp_path, spawn, run_ok):
    cache = tmp_path / "cache"
    args = ["prepare", "--data", str(tiny_corpus), "--cache-dir", str(cache)]
    procs = [spawn(args, tmp_path / f"p{i}.log") for i in range(2)]
    try:
        rcs = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                kill9(p)
    assert rcs == [0, 0], [(tmp_path / f"p{i}.log").read_text()[-2000:] for i in range(2)]
    (final,) = _assert_cache_sound(cache)
    assert not list(cache.glob(".tmp-*"))  # both writers cleaned up after themselves
    assert "using cached prepared data" in run_ok(args, tmp_path / "after.log")


# ----------------------------------------------------------------------------- train
def _epoch_of(path: Path) -> int:
    from vocagan.checkpoint import read_checkpoint

    return int(read_checkpoint(path)["epoch"])


def _assert_run_sound(run: Path) -> None:
    """Whatever exists under its final name in the run folder is complete and loadable."""
    from vocagan.checkpoint import load_checkpoint

    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            load_checkpoint(run / name)
    if (run / "metrics.jsonl").exists():
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))


def test_kill_train_while_checkpointing_then_resume(tiny_corpus, tmp_path, spawn, run_ok):
    from vocagan.checkpoint import read_checkpoint

    run, cache = tmp_path / "run", tmp_path / "cache"
    epochs = 4
    args = [
        "train",
        "--data",
        str(tiny_corpus),
        "--cache-dir",
        str(cache),
        *SMALL_RNN,
        "--epochs",
        str(epochs),
        "--out",
        str(run),
    ]
    run_ok(["prepare", "--data", str(tiny_corpus), "--cache-dir", str(cache)], tmp_path / "prepare.log")

    # a) kill while the very first last.pt is being written: nothing (or a complete file) under the name
    proc = spawn(args, tmp_path / "train_a.log")
    wait_until(lambda: bool(temp_files(run, "last.pt")), proc)
    kill9(proc)
    _assert_run_sound(run)

    # b) a fresh run (new folder), killed while it writes a checkpoint AFTER a complete last.pt exists
    run = tmp_path / "run_b"
    args[args.index("--out") + 1] = str(run)
    proc = spawn(args, tmp_path / "train_b.log")
    assert wait_until(lambda: bool(temp_files(run, "last.pt")) and (run / "last.pt").exists(), proc), (
        tmp_path / "train_b.log"
    ).read_text()[-2000:]
    kill9(proc)
    assert proc.returncode == -signal.SIGKILL
    _assert_run_sound(run)
    saved = read_checkpoint(run / "last.pt")
    done = int(saved["epoch"])
    assert 1 <= done < epochs
    rows_before = saved["extra"]["loop"]["rows"]

    # resume: continues at the saved epoch, keeps the saved rows, finishes the remaining epochs
    log = run_ok(args + ["--resume"], tmp_path / "resume.log")
    assert f"resuming {run} at epoch {done}" in log
    assert f"[train] epoch {done}:" not in log.split("resuming")[1]  # finished epochs are not redone
    assert f"[train] epoch {done + 1}:" in log
    _assert_run_sound(run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    for old, new in zip(rows_before, rows, strict=False):  # the saved rows are a prefix of the final ones
        assert old["epoch"] == new["epoch"] and old["train_loss"] == pytest.approx(new["train_loss"])
    assert _epoch_of(run / "last.pt") == epochs


# ----------------------------------------------------------------------------- render
def _frame_count(path: Path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def test_kill_render_keeps_the_old_video_and_rerun_recovers(tiny_corpus, tmp_path, spawn, run_ok):
    from vocagan.config import DataConfig
    from vocagan.formats.vocaset import open_vocaset

    vs = open_vocaset(DataConfig(root=str(tiny_corpus)))
    subject, sentence = vs.split("train")[0]
    verts = vs.load_verts(subject, sentence)  # (T60, V, 3)
    short, long = tmp_path / "short.npy", tmp_path / "long.npy"
    np.save(short, verts[:12])
    np.save(long, np.concatenate([verts] * max(1, 600 // len(verts) + 1))[:600])  # 20 s of video at 30 fps
    faces, out = tiny_corpus / "FLAME_sample.ply", tmp_path / "out.mp4"

    def render(vertices: Path) -> list[str]:
        return ["render", "--vertices", str(vertices), "--faces", str(faces), "--out", str(out), "--size", "96"]

    run_ok(render(short), tmp_path / "first.log")
    assert _frame_count(out) == 12
    before = out.read_bytes()
    kills = 0
    for attempt, delay in enumerate([0.0, 0.3, 1.0]):
        proc = spawn(render(long), tmp_path / f"render{attempt}.log")
        wait_until(lambda: bool(temp_files(tmp_path, "out.mp4")), proc)
        time.sleep(delay)
        kill9(proc)
        if proc.returncode == 0:  # it finished just before the kill
            assert _frame_count(out) == 600
            run_ok(render(short), tmp_path / f"again{attempt}.log")
            before = out.read_bytes()
            continue
        kills += 1
        assert out.read_bytes() == before  # the earlier complete video is untouched
        assert _frame_count(out) == 12
    assert kills >= 2, "render finished before the kills: the test did not interrupt anything"
    run_ok(render(long), tmp_path / "rerun.log")
    assert _frame_count(out) == 600
