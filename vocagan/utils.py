"""Small shared helpers: atomic writes, progress bars, file fingerprints, seeding, device and thread choice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from vocagan.errors import VocaganError

T = TypeVar("T")


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it onto `final` only if the block succeeds.

    Nothing half-written ever appears under the final name: on error (or kill -9) only a
    `.tmp-*` file can remain, never a corrupt `final`. `suffix` keeps an extension that a writer
    library insists on (np.save appends `.npy`, ffmpeg picks the container from it).
    """
    final = output_file(final)
    try:
        fd, name = tempfile.mkstemp(prefix=f".tmp-{final.name}.", suffix=suffix or final.suffix, dir=final.parent)
    except OSError as e:
        raise VocaganError(f"cannot write here ({e.strerror or e})", final) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def existing_file(path: str | Path, what: str = "file") -> Path:
    """`path` as a Path when it is an existing file; else one VocaganError: "<what> not found", or that a
    folder was given where a file is expected."""
    path = Path(path)
    if path.is_dir():
        raise VocaganError(f"expected a {what}, got a folder", path)
    if not path.is_file():
        raise VocaganError(f"{what} not found", path)
    return path


def existing_dir(path: str | Path, what: str = "folder") -> Path:
    """`path` as a Path when it is an existing folder; else one VocaganError saying what it is instead."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VocaganError(f"expected a {what}, got a file", path)
    if not path.is_dir():
        raise VocaganError(f"{what} not found", path)
    return path


def output_file(path: str | Path) -> Path:
    """Check that a file can be written at `path` (not a folder; its folder created) before any work;
    one VocaganError saying why not otherwise."""
    path = Path(path)
    if path.is_dir():
        raise VocaganError("cannot write this file: a folder has that name", path)
    if path.parent.exists() and not path.parent.is_dir():
        raise VocaganError(f"cannot write this file: {path.parent.name} is a file, not a folder", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VocaganError(f"cannot create the folder for this file ({e.strerror or e})", path) from None
    return path


def output_dir(path: str | Path) -> Path:
    """Create the output folder `path` (with its parents) before any work, or raise one VocaganError
    saying why not (an existing file of that name, a read-only or virtual file system, ...)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VocaganError("the output folder is an existing file", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VocaganError(f"cannot create the output folder ({e.strerror or e})", path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise VocaganError("the output folder is not writable", path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(final: str | Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: str | Path, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | Path, obj) -> None:
    atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def progress(
    iterable: Iterable[T] | None = None,
    desc: str = "",
    total: int | None = None,
    unit: str = "it",
    leave: bool = False,
    **kw,
):
    """A tqdm progress bar on stderr, drawn only when stderr is a terminal: in a log file its
    carriage-return frames would bury the log lines (training still logs one line per epoch).
    VOCAGAN_PROGRESS=1 forces bars on, VOCAGAN_PROGRESS=0 off (tests keep logs short)."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        leave=leave,
        disable=not progress_enabled(),
        file=sys.stderr,
        dynamic_ncols=True,
        **kw,
    )


def progress_enabled() -> bool:
    """Whether `progress` draws bars: VOCAGAN_PROGRESS=1 / 0 force it, otherwise only on a terminal."""
    setting = os.environ.get("VOCAGAN_PROGRESS", "")
    if setting in ("0", "1"):
        return setting == "1"
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def log(msg: str) -> None:
    """Status lines go to stderr so stdout stays for summaries/results."""
    print(msg, file=sys.stderr, flush=True)


def file_fingerprint(path: str | Path) -> str:
    """Cheap identity of a (possibly multi-GB) file: size + mtime + hash of its first and last MiB."""
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto"):
    """ "auto" -> cuda if available else cpu; anything else is passed to torch.device."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def one_torch_thread():
    """Run small tensor work (the STFT, the sync expert) single-threaded, then restore torch's thread
    count. On a busy CPU torch's thread pool made 10 s of audio take ~0.24 s instead of ~3 ms (measured)."""
    import torch

    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)
