"""Pickles from untrusted files, loaded safely: a restricted unpickler that admits numpy arrays,
dicts, lists, strings and numbers only (VOCASET's pickles were written by Python 2 / numpy 1; a
pickle can otherwise run code when loaded). Every pickle the project reads goes through
`safe_load_pickle`."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.utils import existing_file


def _numpy_attr(submodule: str, name: str):
    """numpy._core.<submodule>.<name> (numpy 2), else numpy.core.<submodule>.<name> (numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text, encoding="latin1", *rest):
    """`_codecs.encode` as Python 3 writes bytes in protocol-2 pickles; only latin1 is needed."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict:
    import collections

    allowed: dict[tuple[str, str], object] = {}  # (module, name) -> class or function
    for mod in ("builtins", "__builtin__"):  # __builtin__: Python 2 pickles
        for cls in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool):
            allowed[(mod, cls.__name__)] = cls
    allowed[("__builtin__", "unicode")], allowed[("__builtin__", "long")] = str, int
    for package in ("numpy._core", "numpy.core"):  # both map to the installed numpy
        allowed[(f"{package}.multiarray", "_reconstruct")] = _numpy_attr("multiarray", "_reconstruct")
        allowed[(f"{package}.multiarray", "scalar")] = _numpy_attr("multiarray", "scalar")
        allowed[(f"{package}.numeric", "_frombuffer")] = _numpy_attr("numeric", "_frombuffer")  # protocol 5
    allowed[("numpy", "ndarray")], allowed[("numpy", "dtype")] = np.ndarray, np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays/scalars/dtypes and builtin containers, strings and numbers only."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # Python 2 `str` -> str (arrays accept latin1 str)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise VocaganError(
                f"refusing to unpickle {module}.{name} (only numpy arrays, dicts, lists, "
                "strings and numbers are allowed)",
                self._path,
            ) from None


def safe_load_pickle(path: str | Path) -> object:
    """Load a pickle with the restricted unpickler (Python 2 / numpy 1 pickles included)."""
    path = Path(path)
    path = existing_file(path)
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            return _RestrictedUnpickler(f, path).load()
    except VocaganError:
        raise
    except MemoryError as e:  # a few corrupt/hostile bytes can ask for a 400 GB array
        raise VocaganError(
            f"unpickling needs more memory than is available ({str(e) or 'MemoryError'}); corrupt or hostile file?",
            path,
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure while decoding untrusted bytes means a bad file
        raise VocaganError(f"corrupt or truncated pickle ({type(e).__name__}: {e})", path) from None


def _key(k) -> str:
    """Pickle keys as str: Python 2 byte strings may arrive as bytes."""
    return k.decode("latin1") if isinstance(k, (bytes, bytearray)) else str(k)


def nested_dict(obj, path: Path, what: str, depth: int) -> dict:
    """Check `obj` is a dict nested `depth` levels deep (e.g. subject -> sentence -> x); str keys."""
    if not isinstance(obj, dict):
        raise VocaganError(f"wrong structure: expected {what}, got {type(obj).__name__}", path)
    if depth == 1:
        return {_key(k): v for k, v in obj.items()}
    return {_key(k): nested_dict(v, path, what, depth - 1) for k, v in obj.items()}
