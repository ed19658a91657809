"""Typed config fields and the one validator every config section goes through, the models' included.

    @dataclass
    class TrainConfig:
        lr: float = option(1e-3, lo=0.0, lo_open=True)    # the range is written once, next to the default

`build_section(cls, values, where)` builds a section from a dict: unknown keys fail with the valid
ones, values are coerced to the field's type (YAML reads "3e-4" as text; 5 may stand for 5.0),
non-finite numbers are refused, each `option` range or choice list is enforced, and a section's own
`check(where)` method (constraints between fields) runs last. Errors are one line naming the key.

Command-line flags that are not config keys (a video's size, animate's samples, compare's seed count)
are fields of the small dataclasses in `vocagan.options`, declared the same way (with their `help`),
and checked one value at a time with `check_field` (the CLI turns each into a flag).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field, fields
from typing import Any

from vocagan.errors import VocaganError


def option(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    choices: tuple | None = None,
    factory=None,
    help: str | None = None,
):
    """A config field with its admissible values: lo <= value <= hi (open bounds exclude the end),
    or one of `choices`. The one place a range is written; `build_section` and `check_field` enforce
    it. `help`: what the value means (the CLI's flag help, for fields that are flags)."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices, "help": help}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def build_section(cls, values: dict, where: str):
    """Instantiate dataclass `cls` from a dict: unknown keys fail with the valid ones; every field is
    coerced to its type and checked against its `option` range/choices; then `cls.check(where)` for
    constraints between fields, when defined."""
    if not isinstance(values, dict):
        raise VocaganError(f"config section '{where}' must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(str(k) for k in set(values) - set(known))  # YAML keys may be None/int
    if unknown:
        raise VocaganError(
            f"unknown config key(s) {', '.join(where + '.' + k if where else k for k in unknown)}; "
            f"valid keys in '{where or 'top level'}': {', '.join(known)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _checked(known[name], hints[name], value, f"config key {where}.{name}" if where else f"config key {name}")
        for name, value in values.items()
    }
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        obj.check(where)
    return obj


def check_field(cls, name: str, value, key: str):
    """One value of field `name` of dataclass `cls`, coerced to its type (text such as "3" from a
    command line included) and checked against its declared range; errors name it as `key` (a flag
    such as "--size")."""
    f = next(x for x in fields(cls) if x.name == name)
    return _checked(f, typing.get_type_hints(cls)[name], value, key)


def describe_range(cls, name: str) -> str:
    """The admissible values of a field in words ("in [1, 1000]", "one of a, b"), "" when unrestricted."""
    meta = next(x for x in fields(cls) if x.name == name).metadata
    if meta.get("choices") is not None:
        return "one of " + ", ".join(map(str, meta["choices"]))
    if meta.get("lo") is None and meta.get("hi") is None:
        return ""
    return "in " + _span(meta)


def _checked(f: dataclasses.Field, hint, value, key: str):
    """One field's value, coerced to its type and checked against its declared range."""
    if value is None:
        if not _admits(hint, type(None)):
            raise VocaganError(f"{key} needs a value")
        return None
    if typing.get_origin(hint) is list:  # list[str] / list[int]: flat lists of that type only
        item = typing.get_args(hint)[0]
        if not isinstance(value, list) or not all(type(v) is item for v in value):
            raise VocaganError(
                f"{key} must be a list of {item.__name__}, got "
                f"{type(value).__name__} {str(value)[:60] if not isinstance(value, list) else ''}"
            )
        return value
    target = next((t for t in (bool, int, float, str) if _admits(hint, t)), None)
    if target in (int, float) and isinstance(value, str):
        value = number_or_text(value)  # YAML 1.1 reads "3e-4" as a string
    if target is bool and not isinstance(value, bool):
        raise VocaganError(f"{key} must be true/false, got {value!r}")
    if target in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VocaganError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise VocaganError(f"{key} must be finite, got {value!r}")
        if target is int:
            if isinstance(value, float) and not value.is_integer():
                raise VocaganError(f"{key} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
    if target is str and not isinstance(value, str):
        raise VocaganError(f"{key} must be text, got {value!r}")
    _check_range(f.metadata, value, key)
    return value


def _check_range(meta, value, key: str) -> None:
    if not meta:
        return
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise VocaganError(f"{key} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    too_low = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
    too_high = hi is not None and (value >= hi if meta.get("hi_open") else value > hi)
    if too_low or too_high:
        raise VocaganError(f"{key} must be in {_span(meta)}, got {value!r}")


def _span(meta) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    left = "(" if meta.get("lo_open") else "["
    right = ")" if meta.get("hi_open") else "]"
    return f"{left}{'-inf' if lo is None else _num(lo)}, {'inf' if hi is None else _num(hi)}{right}"


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _admits(hint, t) -> bool:
    if typing.get_origin(hint) in (list, dict):
        return False
    return hint is t or t in typing.get_args(hint)


def number_or_text(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
