"""Typed options of the commands that are not training config: what each accepts, declared once.

Every field is a `fields.option(default, lo=, hi=, choices=, help=)`, like the config sections' fields.
The CLI builds its flags from them (type check, default, range and help text), and the library
functions that take these values check them with the same declarations (`check`), so `vocagan
render --size 0` and `render_files(..., size=0)` fail alike, with one line naming the value.
Config values (epochs, batch size, fps, learning rate, ...) live in `vocagan.config` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from vocagan.fields import check_field, option


@dataclass
class SynthOptions:
    seed: int = option(
        0, lo=0, hi=2**32 - 1, help="seed of the corpus: faces, voices and speaking styles, sentences, noise"
    )
    voices: str = option(
        "formant",
        choices=("formant", "festival"),
        help="festival: half of the training sentences spoken by Debian's Festival voices (recorded speakers; "
        "formant only when none is installed). Off by default: it did not help (docs/experiments.md)",
    )


@dataclass
class ConvertOptions:
    input_fps: int = option(60, lo=1, hi=1000, help="frame rate of the input meshes (resampled to 60 fps)")


@dataclass
class VideoOptions:
    size: int = option(800, lo=16, hi=4096, help="video width and height in pixels (square)")
    fps: float | None = option(None, lo=0.0, hi=1000.0, lo_open=True, help="frames per second")
    backend: str = option(
        "auto",
        choices=("auto", "egl", "numpy"),
        help="rasteriser: egl (OpenGL through EGL, fast), numpy (no graphics libraries), auto (egl, else numpy)",
    )


@dataclass
class AnimateOptions:
    samples: int = option(
        1, lo=1, hi=1000, help="samples per style (VAE/GAN draw a different performance each; others repeat)"
    )
    fps: float | None = option(
        None, lo=0.0, hi=1000.0, lo_open=True, help="output frame rate (default: the model's, e.g. 30)"
    )


@dataclass
class ExportOptions:
    tolerance_mm: float = option(
        0.01, lo=0.0, hi=100.0, lo_open=True, help="largest vertex error the fitted morph targets may make (mm)"
    )


@dataclass
class ServeOptions:
    port: int = option(8765, lo=0, hi=65535, help="TCP port to listen on (0: any free port)")


@dataclass
class CompareOptions:
    seeds: int = option(
        3, lo=1, hi=1000, help="how many seeds per model (a count: the runs use train.seed, train.seed + 1, ...)"
    )
    jobs: int = option(
        1,
        lo=1,
        hi=256,
        help="train and evaluate this many runs at once, each in its own process with torch's threads shared out "
        "(on a 2-core CPU, --jobs 2 runs two one-thread trainings: faster than one after the other with two "
        "threads each; results depend on the thread count)",
    )


def check(cls, where: str = "", **values):
    """Check each value against field `name` of options dataclass `cls`; returns the coerced values
    in order (one VocaganError naming the first bad value otherwise)."""
    out = [check_field(cls, name, value, f"{where}{name}") for name, value in values.items()]
    return out[0] if len(out) == 1 else out
