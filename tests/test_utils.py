"""vocagan.utils: atomic writes (nothing half-written, usual permissions), JSON of numpy values,
file fingerprints, seeding, device choice, the progress switch and the one-thread context."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vocagan import utils


@pytest.fixture()
def umask():
    """Factory: umask(mask) sets the process umask; the one before the test is restored after it."""
    before = os.umask(0o022)
    os.umask(before)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(before)


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_path_renames_on_success_with_usual_permissions(tmp_path, umask):
    final = tmp_path / "sub" / "dir" / "out.txt"  # parents are created
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        umask(mask)
        with utils.atomic_path(final) as tmp:
            assert tmp.parent == final.parent and tmp != final
            assert tmp.name.startswith(".tmp-out.txt.") and tmp.suffix == ".txt"
            assert not final.exists() or final.read_text() == "first"  # the old file until the rename
            tmp.write_text("first")
        assert final.read_text() == "first"
        assert final.stat().st_mode & 0o777 == mode  # not mkstemp's 0600
        assert [p.name for p in final.parent.iterdir()] == ["out.txt"]  # no temporary file left


def test_atomic_path_leaves_nothing_on_error_and_keeps_the_old_file(tmp_path):
    final = tmp_path / "data.bin"
    with pytest.raises(RuntimeError, match="disk full"):
        with utils.atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []  # neither final nor temporary
    final.write_bytes(b"old")
    os.chmod(final, 0o640)
    with pytest.raises(KeyboardInterrupt):
        with utils.atomic_path(final) as tmp:
            tmp.write_bytes(b"new but interrupted")
            raise KeyboardInterrupt
    assert final.read_bytes() == b"old" and final.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_atomic_path_suffix_for_writers_that_append_one(tmp_path):
    """np.save appends .npy unless the name ends with it: the temporary keeps the final suffix, or
    the one asked for."""
    with utils.atomic_path(tmp_path / "a.npy") as tmp:
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), [0, 1, 2])
    with utils.atomic_path(tmp_path / "clip", suffix=".mp4") as tmp:
        assert tmp.suffix == ".mp4"
        tmp.write_bytes(b"x")
    assert (tmp_path / "clip").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "clip"]


def test_atomic_write_json_text_and_bytes(tmp_path):
    obj = {"b": np.int64(3), "a": np.float32(0.5), "arr": np.arange(2), "p": Path("/x/y"), "s": "é"}
    utils.atomic_write_json(tmp_path / "m.json", obj)
    text = (tmp_path / "m.json").read_text(encoding="utf-8")
    assert text == '{\n  "a": 0.5,\n  "arr": [\n    0,\n    1\n  ],\n  "b": 3,\n  "p": "/x/y",\n  "s": "\\u00e9"\n}\n'
    assert json.loads(text) == {"a": 0.5, "arr": [0, 1], "b": 3, "p": "/x/y", "s": "é"}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        utils.atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
    utils.atomic_write_text(tmp_path / "t.txt", "é\n")
    assert (tmp_path / "t.txt").read_bytes() == b"\xc3\xa9\n"
    utils.atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# ----------------------------------------------------------------------------- fingerprints
def test_file_fingerprint_follows_content_size_and_mtime(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 1000)
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    first = utils.file_fingerprint(f)
    assert len(first) == 16 and int(first, 16) >= 0
    assert utils.file_fingerprint(str(f)) == first  # same file, same answer
    f.write_bytes(b"b" + b"a" * 999)  # same size, other content
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))  # ... and the same mtime
    changed = utils.file_fingerprint(f)
    assert changed != first
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))  # touched: another identity
    assert utils.file_fingerprint(f) != changed
    g = tmp_path / "g.bin"  # a copy with the same mtime: equal
    g.write_bytes(f.read_bytes())
    os.utime(g, ns=(2_000_000_000, 2_000_000_000))
    assert utils.file_fingerprint(g) == utils.file_fingerprint(f)


def test_file_fingerprint_of_a_large_file_reads_its_first_and_last_mib(tmp_path):
    """Above 2 MiB only the first and the last MiB are hashed (with size and mtime): a change there
    is seen, a same-size change in between with the mtime put back is not (the documented cost)."""
    mib = 1 << 20
    data = bytearray(3 * mib)
    big = tmp_path / "big.bin"

    def fingerprint_of(edit_at: int | None) -> str:
        content = bytearray(data)
        if edit_at is not None:
            content[edit_at] = 1
        big.write_bytes(bytes(content))
        os.utime(big, ns=(5_000_000_000, 5_000_000_000))
        return utils.file_fingerprint(big)

    base = fingerprint_of(None)
    assert fingerprint_of(10) != base  # first MiB
    assert fingerprint_of(3 * mib - 10) != base  # last MiB
    assert fingerprint_of(mib + mib // 2) == base  # the middle MiB is not read


# ----------------------------------------------------------------------------- seeding, device, threads
def test_seed_everything_makes_python_numpy_and_torch_repeat():
    def draw():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    utils.seed_everything(123)
    a = draw()
    utils.seed_everything(123)
    assert draw() == a
    utils.seed_everything(124)
    b = draw()
    assert b[0] != a[0] and b[1] != a[1] and b[2] != a[2]


def test_resolve_device(monkeypatch):
    assert utils.resolve_device("cpu") == torch.device("cpu")
    assert utils.resolve_device("cuda:1") == torch.device("cuda", 1)  # passed through, not checked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert utils.resolve_device() == torch.device("cpu") and utils.resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert utils.resolve_device("auto") == torch.device("cuda")
    with pytest.raises(RuntimeError):
        utils.resolve_device("no-such-device")


def test_progress_is_silenced_by_vocagan_progress_0(monkeypatch, capsys):
    monkeypatch.setenv("VOCAGAN_PROGRESS", "0")
    bar = utils.progress(range(5), desc="quiet-bar")
    assert bar.disable and list(bar) == [0, 1, 2, 3, 4]
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    monkeypatch.setenv("VOCAGAN_PROGRESS", "1")
    bar = utils.progress(range(5), desc="loud-bar", total=5)
    assert not bar.disable and list(bar) == [0, 1, 2, 3, 4]
    bar.close()
    captured = capsys.readouterr()
    assert "loud-bar" in captured.err and captured.out == ""  # stderr only: stdout is for results


def test_progress_draws_bars_only_on_a_terminal(monkeypatch):
    """Redirected to a file, a bar's carriage-return frames would flood the log: no bar unless stderr is a
    terminal (or VOCAGAN_PROGRESS=1 asks for one)."""
    import io

    monkeypatch.delenv("VOCAGAN_PROGRESS", raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not utils.progress_enabled()
    monkeypatch.setattr("sys.stderr", Terminal())
    assert utils.progress_enabled()
    monkeypatch.setenv("VOCAGAN_PROGRESS", "0")
    assert not utils.progress_enabled()
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.setenv("VOCAGAN_PROGRESS", "1")
    assert utils.progress_enabled()


def test_input_and_output_paths_are_checked_before_any_work(tmp_path):
    from vocagan.errors import VocaganError

    (tmp_path / "f").write_text("x")
    with pytest.raises(VocaganError, match="expected a checkpoint, got a folder"):
        utils.existing_file(tmp_path, "checkpoint")
    with pytest.raises(VocaganError, match="audio file not found"):
        utils.existing_file(tmp_path / "nope.wav", "audio file")
    with pytest.raises(VocaganError, match="expected a data folder, got a file"):
        utils.existing_dir(tmp_path / "f", "data folder")
    with pytest.raises(VocaganError, match="the output folder is an existing file"):
        utils.output_dir(tmp_path / "f")
    with pytest.raises(VocaganError, match="cannot create the output folder"):
        utils.output_dir(tmp_path / "f" / "sub")
    with pytest.raises(VocaganError, match="a folder has that name"):
        utils.output_file(tmp_path)
    with pytest.raises(VocaganError, match="cannot write this file"):
        utils.atomic_write_text(tmp_path / "f" / "x.txt", "y")
    assert utils.output_dir(tmp_path / "new" / "deep").is_dir()


def test_log_writes_a_line_to_stderr(capsys):
    utils.log("status line")
    captured = capsys.readouterr()
    assert captured.err == "status line\n" and captured.out == ""


def test_one_torch_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with utils.one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            with utils.one_torch_thread():
                assert torch.get_num_threads() == 1
                raise ValueError("inside")
        assert torch.get_num_threads() == 2  # restored on error too
        torch.set_num_threads(1)
        with utils.one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
