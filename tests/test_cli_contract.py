"""The CLI's contract as a property, for every command, through its real entry point (`cli.main`).

Hypothesis draws each flag's value from the ones that should work and the ones that should not
(numbers out of range, zero, negative, huge, not a number; existing files, folders, unwritable paths,
empty and corrupt files of each kind, a file of another kind). Every drawn command line must end in
one of exactly two ways:

- exit 0, no error line, and every output the command promises is there; or
- exit 1 (or 2 for a bad flag) with exactly one `error: ...` line on stderr, its last line, naming one
  of the bad values (its flag, file or config key); never a traceback.

And it must end the right way: exit 0 exactly when every drawn value is a good one. Valid values are
kept small (1 epoch, tiny corpus, 16-pixel videos) so the few hundred cases run in about a minute.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vocagan.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
TOY_STYLES = ["SubjA", "SubjB", "SubjC"]  # the styles of the `toy_checkpoint` fixture
SMALL_RNN = ["--set", "model.hidden=16", "--set", "model.n_layers=1"]


# ----------------------------------------------------------------------------- a world of files
@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_corpus, toy_checkpoint, speech_like, icosphere) -> dict[str, Path]:
    """Files of every kind, good and bad, shared by all cases (no case writes into them)."""
    from vocagan.formats.mesh import write_ply
    from vocagan.train import train

    d = tmp_path_factory.mktemp("world")
    w: dict[str, Path] = {"corpus": tiny_corpus, "dir": d / "a_folder", "missing": d / "missing" / "nothing"}
    w["dir"].mkdir()
    w["file"] = d / "a_file.txt"
    w["file"].write_text("not what you want\n")
    w["empty"] = d / "empty.bin"
    w["empty"].write_bytes(b"")
    w["junk"] = d / "junk.bin"
    w["junk"].write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    w["under_file"] = w["file"] / "sub"
    w["proc"] = Path("/proc/vocagan-cannot-write-here")
    for kind in ("wav", "npy", "ply", "pt", "yaml", "pkl", "txt"):  # empty and corrupt files of each kind
        (d / f"empty.{kind}").write_bytes(b"")
        (d / f"corrupt.{kind}").write_bytes(w["junk"].read_bytes())
        w[f"empty.{kind}"], w[f"corrupt.{kind}"] = d / f"empty.{kind}", d / f"corrupt.{kind}"
    # audio
    w["speech"] = d / "speech.wav"
    soundfile.write(w["speech"], speech_like(0.6, 16000), 16000)
    w["silence"] = d / "silence.wav"
    soundfile.write(w["silence"], np.zeros(8000, np.float32), 16000)
    w["too_short"] = d / "short.wav"
    soundfile.write(w["too_short"], np.zeros(10, np.float32), 16000)
    # checkpoints: a random-weight one on a 162-vertex sphere, one trained on the tiny corpus
    w["toy_ckpt"] = toy_checkpoint(d / "toy.pt", name="rnn")
    cfg_text = "model:\n  name: rnn\n  hidden: 16\n  n_layers: 1\ntrain:\n  batch_size: 8\n  warmup_steps: 2\n"
    w["config"] = d / "small.yaml"
    w["config"].write_text(cfg_text)
    w["config_list"] = d / "list.yaml"
    w["config_list"].write_text("- 1\n- 2\n")
    w["cache"] = d / "cache"
    from vocagan.config import load_config

    cfg = load_config(w["config"], [f"data.root={tiny_corpus}", "train.epochs=1", f"prep.cache_dir={w['cache']}"])
    w["trained_ckpt"] = train(cfg, d / "trained").best_checkpoint
    # meshes and vertex sequences (the toy checkpoint's topology: icosphere(2), 162 vertices)
    verts, faces = icosphere(2)
    w["mesh"] = d / "sphere.ply"
    write_ply(w["mesh"], verts, faces)
    small_v, small_f = icosphere(1)
    w["other_mesh"] = d / "other.ply"
    write_ply(w["other_mesh"], small_v, small_f)
    w["no_faces_mesh"] = d / "points.ply"
    write_ply(w["no_faces_mesh"], verts)
    seq = (verts[None] * (1 + 0.01 * np.arange(5))[:, None, None]).astype(np.float32)
    w["seq"] = d / "seq.npy"
    np.save(w["seq"], seq)
    w["seq_described"] = d / "described.npy"  # with the .json animate writes
    np.save(w["seq_described"], seq)
    from vocagan.video import write_animation_info

    write_animation_info(w["seq_described"], w["mesh"], 25, audio=w["speech"])
    w["seq_nan"] = d / "nan.npy"
    bad = seq.copy()
    bad[2, 5, 1] = np.nan
    np.save(w["seq_nan"], bad)
    w["seq_shape"] = d / "shape.npy"
    np.save(w["seq_shape"], np.zeros((5, 7), np.float32))
    w["seq_other"] = d / "other_seq.npy"  # 42 vertices: another topology
    np.save(w["seq_other"], np.repeat(small_v[None], 5, 0))
    # region files of the tiny corpus and bad ones
    w["masks"] = tiny_corpus / "region_masks.pkl"
    w["indices"] = d / "mouth.txt"
    w["indices"].write_text("1 2 3 4 5\n")
    w["indices_bad"] = d / "mouth_bad.txt"
    w["indices_bad"].write_text("1 2 999999\n")
    # a convert input (layout b: vertices_npy/ + wav/)
    conv = d / "capture"
    (conv / "vertices_npy").mkdir(parents=True)
    (conv / "wav").mkdir()
    for i in (1, 2):
        np.save(conv / "vertices_npy" / f"SubjA_sentence0{i}.npy", seq.reshape(5, -1))
        soundfile.write(conv / "wav" / f"SubjA_sentence0{i}.wav", speech_like(5 / 60, 16000, seed=i), 16000)
    w["capture"] = conv
    broken = d / "capture_broken"
    shutil.copytree(conv, broken)
    (broken / "vertices_npy" / "SubjA_sentence01.npy").write_bytes(w["junk"].read_bytes())
    w["capture_broken"] = broken
    w["capture_empty"] = d / "capture_empty"
    w["capture_empty"].mkdir()
    return w


# ----------------------------------------------------------------------------- cases
@dataclass
class Part:
    """Some arguments of a command line, whether they are good, and what an error about them names."""

    argv: list[str]
    valid: bool
    names: tuple[str, ...] = ()


@dataclass
class Case:
    command: str
    parts: list[Part]
    outputs: Callable[[], list[Path]] = lambda: []
    work: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        return [self.command] + [a for p in self.parts for a in p.argv]

    @property
    def valid(self) -> bool:
        return all(p.valid for p in self.parts)


def check(case: Case) -> str:
    """Run one case through `cli.main` and assert the contract; returns "ok" or "error"."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(case.argv)
    text = err.getvalue()
    where = f"\nargv: {case.argv}\nexit {rc}\nstderr:\n{text[-3000:]}"
    assert "Traceback" not in text, where
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if rc == 0:
        assert not errors, where
        missing = [p for p in case.outputs() if not p.exists()]
        assert not missing, f"promised outputs missing: {missing}{where}"
        assert case.valid, f"bad values were accepted: {[p.argv for p in case.parts if not p.valid]}{where}"
        return "ok"
    assert rc in (1, 2), where
    assert len(errors) == 1 and lines[-1] == errors[0], f"not exactly one final error line{where}"
    assert len(errors[0]) < 1000, where
    assert not case.valid, f"good values were refused{where}"
    bad = [p for p in case.parts if not p.valid]
    names = [n for p in bad for n in p.names]
    assert any(n in errors[0] for n in names), f"the error names none of {names}{where}"
    return "error"


def run_cases(strategy, examples: int, need_ok: bool = True) -> Counter:
    """Draw `examples` cases, check each, and make sure both outcomes were exercised."""
    seen: Counter = Counter()

    @settings(max_examples=examples, **SETTINGS)
    @given(case=strategy)
    def run(case: Case) -> None:
        try:
            seen[check(case)] += 1
        finally:
            if case.work is not None:
                shutil.rmtree(case.work, ignore_errors=True)

    run()
    print(f"contract cases: {dict(seen)}")
    assert seen["ok"] >= int(need_ok) and seen["error"] >= examples // 3, seen
    return seen


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vocagan-contract-"))


# ----------------------------------------------------------------------------- slots: one flag each
# A slot draws one Part: slot(draw, good) -> a good or a bad value of its flag. A case draws a mode
# first: every slot good (exit 0 expected), exactly one slot bad (the error must name it), or each slot
# bad with probability 1/2; so success, single faults and combinations all come up.
class Slot:
    def __init__(self, good: Callable | None, bad: Callable | None):
        self.good, self.bad = good, bad

    def __call__(self, draw, ok: bool) -> Part:
        good = ok and self.good is not None  # a slot with no good value is always bad
        return (self.good if good or self.bad is None else self.bad)(draw)


def fixed(*argv: str) -> Slot:
    return Slot(lambda draw: Part(list(argv), True), None)


def choice_slot(good: list[Part], bad: list[Part]) -> Slot:
    return Slot(
        (lambda draw: draw(st.sampled_from(good))) if good else None,
        (lambda draw: draw(st.sampled_from(bad))) if bad else None,
    )


def maybe(slot: Slot) -> Slot:
    """A slot whose flag may also be left out (a good choice)."""
    assert slot.bad is not None
    good = slot.good

    def draw_good(draw):
        if good is None or draw(st.booleans()):
            return Part([], True)
        return good(draw)

    return Slot(draw_good, slot.bad)


def number(flag: str, good: list, bad: list | None = None, key: str = "") -> Slot:
    """A numeric flag: one of `good`, or a bad one (zero, negative, huge, not a number; or `bad`)."""
    bad = bad if bad is not None else ["0", "-1", "-7", "10000000000000", "abc", "1.5", "nan", "inf", ""]
    names = (flag,) + ((key,) if key else ())
    return choice_slot([Part([flag, str(v)], True) for v in good], [Part([flag, v], False, names) for v in bad])


def in_file(world, flag: str, good: list[str], bad: list[str]) -> Slot:
    """An input-file flag: a good file of its kind; or missing, a folder, empty, corrupt, another kind."""
    return choice_slot(
        [Part([flag, str(world[k])], True) for k in good],
        [Part([flag, str(world[k])], False, (str(world[k]), flag)) for k in bad],
    )


def out_dir(world, flag: str, work: Path, name: str) -> Slot:
    """An output folder: new or existing (good); an existing file, under a file, unwritable (bad)."""
    bad = [world["file"], world["under_file"], world["proc"]]
    return choice_slot(
        [Part([flag, str(work / name)], True), Part([flag, str(work)], True)],
        [Part([flag, str(p)], False, (str(p), flag)) for p in bad],
    )


def out_file(world, flag: str, work: Path, name: str) -> Slot:
    """An output file: new, or an existing file it replaces (good); a folder, under a file, unwritable (bad)."""
    existing = work / f"old_{name}"
    existing.write_text("old")
    bad = [world["dir"], world["under_file"] / name, world["proc"] / name]
    return choice_slot(
        [Part([flag, str(work / "sub" / name)], True), Part([flag, str(existing)], True)],
        [Part([flag, str(p)], False, (str(p), flag)) for p in bad],
    )


SET_OVERRIDES = [  # (override, good?, the key an error names)
    ("train.batch_size=0", False, "train.batch_size"),
    ("train.lr=-1", False, "train.lr"),
    ("model.hidden=0", False, "model.hidden"),
    ("train.epochs=-3", False, "train.epochs"),
    ("prep.pca_variance=2", False, "prep.pca_variance"),
    ("data.fps=abc", False, "data.fps"),
    ("nosuch.key=1", False, "nosuch"),
    ("train.nope=1", False, "train.nope"),
    ("train.weight_decay=0.02", True, ""),
    ("train.grad_clip=0.5", True, ""),
]
OVERRIDES = maybe(
    choice_slot(
        [Part(["--set", o], True) for o, ok, _ in SET_OVERRIDES if ok],
        [Part(["--set", o], False, (k,)) for o, ok, k in SET_OVERRIDES if not ok],
    )
)


def draw_parts(draw, slots: list[Slot]) -> list[Part]:
    mode = draw(st.sampled_from(["all good", "all good", "one bad", "any"]))
    can_fail = [i for i, slot in enumerate(slots) if slot.bad is not None]
    if mode == "all good":
        bad = set()
    elif mode == "one bad":
        bad = {draw(st.sampled_from(can_fail))}
    else:
        bad = {i for i in can_fail if draw(st.booleans())}
    return [slot(draw, i not in bad) for i, slot in enumerate(slots)]


# ----------------------------------------------------------------------------- commands
@st.composite
def synth_cases(draw, world):
    work = _workdir()
    slots = [
        out_dir(world, "--out", work, "corpus"),
        choice_slot([Part(["--scale", "tiny"], True)], [Part(["--scale", "huge"], False, ("--scale",))]),
        maybe(number("--seed", [0, 3], ["-1", "4294967296", "abc", "2.5", ""])),
        maybe(in_file(world, "--template-ply", [], ["missing", "dir", "empty.ply", "corrupt.ply", "no_faces_mesh"])),
    ]
    parts = draw_parts(draw, slots)
    root = Path(parts[0].argv[1])
    return Case("synth", parts, lambda: [root / "data_verts.npy", root / "FLAME_sample.ply"], work)


@st.composite
def convert_cases(draw, world):
    work = _workdir()
    slots = [
        in_file(world, "--input", ["capture"], ["missing", "file", "capture_empty", "capture_broken"]),
        out_dir(world, "--out", work, "vocaset"),
        maybe(number("--input-fps", [60, 30])),
        maybe(in_file(world, "--template-ply", ["mesh"], ["missing", "corrupt.ply", "other_mesh"])),
    ]
    parts = draw_parts(draw, slots)
    root = Path(parts[1].argv[1])
    return Case("convert", parts, lambda: [root / "data_verts.npy", root / "templates.pkl"], work)


def data_slots(world, regions: bool = True) -> list[Slot]:
    slots = [
        in_file(world, "--data", ["corpus"], ["missing", "file", "dir"]),
        maybe(number("--fps", [30], ["0", "-1", "7", "100000", "abc", "2.5"], key="data.fps")),
        OVERRIDES,
        fixed("--cache-dir", str(world["cache"])),
    ]
    if regions:
        slots.append(maybe(in_file(world, "--masks", ["masks"], ["missing", "dir", "corrupt.pkl", "empty.pkl"])))
        slots.append(maybe(in_file(world, "--mouth-indices", ["indices"], ["indices_bad", "corrupt.txt", "dir"])))
    return slots


@st.composite
def prepare_cases(draw, world):
    config = maybe(in_file(world, "--config", ["config"], ["missing", "dir", "corrupt.yaml", "config_list", "speech"]))
    return Case("prepare", draw_parts(draw, [*data_slots(world), config]))


@st.composite
def train_cases(draw, world):
    work = _workdir()
    slots = [
        *data_slots(world, regions=False),
        fixed("--config", str(world["config"]), "--model", "rnn"),
        out_dir(world, "--out", work, "run"),
        number("--epochs", [1], ["0", "-1", "1000001", "abc", "1.5"], key="train.epochs"),
        maybe(number("--batch-size", [4], ["0", "-2", "abc"], key="train.batch_size")),
        maybe(number("--seed", [1], ["-1", "99999999999", "x"], key="train.seed")),
        maybe(choice_slot([], [Part(["--resume"], False, ("resume", "last.pt"))])),  # nothing to resume yet
    ]
    parts = draw_parts(draw, slots)
    run = Path(parts[5].argv[1])
    return Case("train", parts, lambda: [run / "best.pt", run / "last.pt", run / "metrics.csv"], work)


@st.composite
def evaluate_cases(draw, world):
    work = _workdir()
    foreign = Part(  # a checkpoint of another topology on the tiny corpus
        ["--checkpoint", str(world["toy_ckpt"]), "--data", str(world["corpus"])],
        False,
        (str(world["toy_ckpt"]), str(world["corpus"])),
    )
    bad_files = ["missing", "dir", "empty.pt", "corrupt.pt", "speech"]
    ckpt = choice_slot(
        [Part(["--checkpoint", str(world["trained_ckpt"])], True)],
        [Part(["--checkpoint", str(world[k])], False, (str(world[k]), "--checkpoint")) for k in bad_files] + [foreign],
    )
    slots = [
        ckpt,
        maybe(in_file(world, "--data", ["corpus"], ["missing", "file"])),
        out_dir(world, "--out", work, "eval"),
        maybe(
            choice_slot(
                [Part(["--style", "all"], True), Part(["--style", "FaceTalk_170728_03272_TA"], True)],
                [Part(["--style", "Nobody"], False, ("Nobody",))],
            )
        ),
        maybe(number("--fps", [30], ["0", "-3", "7", "abc"], key="data.fps")),
        maybe(out_dir(world, "--save-predictions", work, "preds")),
    ]
    parts = draw_parts(draw, slots)
    if parts[0] is foreign and parts[1].argv:
        parts[1] = Part([], parts[1].valid, parts[1].names)  # the foreign part names the data itself
    report = Path(parts[2].argv[1])
    return Case("evaluate", parts, lambda: [report / "metrics.json", report / "metrics.md"], work)


@st.composite
def compare_cases(draw, world):
    work = _workdir()
    slots = [
        fixed("--data", str(world["corpus"]), "--config", str(world["config"]), "--cache-dir", str(world["cache"])),
        out_dir(world, "--out", work, "cmp"),
        choice_slot([Part(["--models", "rnn"], True)], [Part(["--models", "gpt"], False, ("--models", "gpt"))]),
        number("--seeds", [1], ["0", "-2", "1.5", "abc", "1001"]),
        number("--epochs", [1], ["0", "-1", "abc"], key="train.epochs"),
        maybe(choice_slot([], [Part(["--focus", "nothing"], False, ("--focus", "nothing"))])),
        OVERRIDES,
    ]
    parts = draw_parts(draw, slots)
    report = Path(parts[1].argv[1])
    return Case("compare", parts, lambda: [report / "report.md", report / "compare.json"], work)


@st.composite
def animate_cases(draw, world):
    work = _workdir()
    slots = [
        in_file(world, "--checkpoint", ["toy_ckpt"], ["missing", "dir", "empty.pt", "corrupt.pt", "speech"]),
        in_file(
            world, "--audio", ["speech", "silence"], ["missing", "dir", "empty.wav", "corrupt.wav", "too_short", "seq"]
        ),
        out_dir(world, "--out", work, "anim"),
        maybe(
            choice_slot(
                [Part(["--template", "Unseen"], True), Part(["--template", str(world["mesh"])], True)],
                [
                    Part(["--template", str(world["other_mesh"])], False, (str(world["other_mesh"]),)),
                    Part(["--template", "Nobody"], False, ("Nobody",)),
                ],
            )
        ),
        maybe(
            choice_slot(
                [Part(["--style", "all"], True), Part(["--style", "SubjB"], True)],
                [Part(["--style", "Nobody"], False, ("Nobody",))],
            )
        ),
        maybe(number("--samples", [1, 2], ["0", "-1", "1001", "abc", "1.5"])),
        maybe(number("--fps", [30, 25, 12.5], ["0", "-5", "nan", "abc", "1e9"])),
        maybe(number("--size", [16, 24], ["0", "8", "100000", "abc"])),
    ]
    parts = draw_parts(draw, slots)
    flags = draw(st.lists(st.sampled_from(["--no-video", "--ply", "--obj"]), unique=True, max_size=3))
    parts.append(Part(flags, True))
    anim, stem = Path(parts[2].argv[1]), Path(parts[1].argv[1]).stem
    style, samples = parts[4].argv, parts[5].argv

    def promised() -> list[Path]:
        styles = TOY_STYLES if "all" in style else ["SubjB"] if style else TOY_STYLES[:1]
        n = int(samples[1]) if samples else 1
        files = [anim / f"{stem}_mesh.ply"]
        for name in (f"{stem}_{s}" + (f"_sample{k}" if n > 1 else "") for s in styles for k in range(n)):
            files += [anim / f"{name}.npy", anim / f"{name}.json"]
            files += [] if "--no-video" in flags else [anim / f"{name}.mp4"]
            files += [anim / f"{name}_{k}" for k in ("ply", "obj") if f"--{k}" in flags]
        return files

    return Case("animate", parts, promised, work)


# (vertices, faces or None) that go together; the other pairs do not
SHOWABLE = [("seq", "mesh"), ("seq_described", None), ("seq_described", "mesh"), ("seq_other", "other_mesh")]
VERTEX_FILES = [
    "seq",
    "seq_described",
    "seq_nan",
    "seq_shape",
    "seq_other",
    "missing",
    "dir",
    "corrupt.npy",
    "empty.npy",
]
MESH_FILES = [None, "mesh", "other_mesh", "no_faces_mesh", "corrupt.ply", "missing", "dir"]


def view_slots(world, work: Path, out_name: str) -> list[Slot]:
    """--vertices and --faces (one slot: they must fit together), --audio, --fps, --out."""

    def pair(v: str, f: str | None) -> Part:
        names = (str(world[v]),) + ((str(world[f]),) if f else ("--faces",))
        return Part(
            ["--vertices", str(world[v])] + (["--faces", str(world[f])] if f else []), (v, f) in SHOWABLE, names
        )

    shapes = choice_slot(
        [pair(v, f) for v, f in SHOWABLE],
        [pair(v, f) for v in VERTEX_FILES for f in MESH_FILES if (v, f) not in SHOWABLE],
    )
    return [
        shapes,
        maybe(in_file(world, "--audio", ["speech", "silence"], ["missing", "dir", "corrupt.wav"])),
        maybe(number("--fps", [30, 12.5], ["0", "-1", "nan", "abc", "1e9"])),
        out_file(world, "--out", work, out_name),
    ]


@st.composite
def render_cases(draw, world):
    work = _workdir()
    slots = [
        *view_slots(world, work, "video.mp4"),
        maybe(number("--size", [16, 20], ["0", "8", "100000", "abc"])),
        maybe(
            choice_slot([Part(["--backend", "numpy"], True)], [Part(["--backend", "vulkan"], False, ("--backend",))])
        ),
    ]
    parts = draw_parts(draw, slots)
    if draw(st.booleans()):  # side by side with a ground truth: of the animation's topology, or not
        gt = draw(st.sampled_from(["seq", "seq_other", "corrupt.npy"]))
        topology = "seq_other" if parts[0].argv[1] == str(world["seq_other"]) else "seq"
        parts.append(Part(["--gt", str(world[gt])], gt == topology, (str(world[gt]),)))
    out = Path(parts[3].argv[1])
    return Case("render", parts, lambda: [out], work)


@st.composite
def export_html_cases(draw, world):
    work = _workdir()
    parts = draw_parts(draw, view_slots(world, work, "page.html"))
    out = Path(parts[3].argv[1])
    return Case("export-html", parts, lambda: [out], work)


@st.composite
def export_cases(draw, world):
    work = _workdir()
    slots = [
        in_file(world, "--vertices", ["seq"], ["missing", "dir", "corrupt.npy", "empty.npy", "seq_shape"]),
        in_file(world, "--template", ["mesh"], ["other_mesh", "missing", "corrupt.ply", "no_faces_mesh"]),
        out_dir(world, "--out", work, "export"),
        maybe(
            choice_slot(
                [Part(["--format", f], True) for f in ("glb", "csv", "glb,json")],
                [Part(["--format", "fbx"], False, ("fbx",))],
            )
        ),
        maybe(number("--fps", [30, 12.5], ["0", "-1", "nan", "abc", "1e9"])),
        maybe(number("--tolerance-mm", [0.01, 1], ["0", "-1", "abc", "1000"])),
        maybe(in_file(world, "--audio", ["speech"], ["missing", "dir", "corrupt.wav"])),
    ]
    parts = draw_parts(draw, slots)
    root, formats = Path(parts[2].argv[1]), (parts[3].argv[1] if parts[3].argv else "glb").split(",")
    files = {"glb": "seq.glb", "csv": "seq_weights.csv", "json": "seq_weights.json"}
    return Case("export", parts, lambda: [root / files[f] for f in formats], work)


@st.composite
def serve_cases(draw, world):
    """Bad values only: a good command line starts a server that runs until Ctrl-C (tests/test_serve.py
    covers a live one). The checkpoints offered are all unusable: missing, a folder, corrupt, or a model
    that does not stream (the toy checkpoint)."""
    not_streaming = Part(["--checkpoint", str(world["toy_ckpt"])], False, (str(world["toy_ckpt"]), "stream"))
    ckpt = choice_slot([], [not_streaming, *[Part(["--checkpoint", str(world[k])], False, (str(world[k]),))
                                               for k in ("missing", "dir", "corrupt.pt")]])  # fmt: skip
    slots = [
        ckpt,
        maybe(number("--port", [8765, 0], ["-1", "70000", "abc"])),
        choice_slot([Part([], True), Part(["--host", "127.0.0.1"], True)], []),
        maybe(choice_slot([], [Part(["--style", "Nobody"], False, ("Nobody",))])),
    ]
    return Case("serve", draw_parts(draw, slots))


@st.composite
def pipeline_cases(draw, world):
    work = _workdir()
    slots = [
        fixed("--config", str(world["config"]), "--model", "rnn", "--cache-dir", str(world["cache"])),
        in_file(world, "--data", ["corpus"], ["missing", "file", "dir"]),
        out_dir(world, "--out", work, "run"),
        number("--epochs", [1], ["0", "-4", "abc"], key="train.epochs"),
        OVERRIDES,
    ]
    parts = draw_parts(draw, slots)
    run = Path(parts[2].argv[1])
    return Case("pipeline", parts, lambda: [run / "train" / "best.pt", run / "eval" / "metrics.md"], work)


# ----------------------------------------------------------------------------- the properties
def test_synth_contract(world):
    run_cases(synth_cases(world), 15)


def test_convert_contract(world):
    run_cases(convert_cases(world), 35)


def test_prepare_contract(world):
    run_cases(prepare_cases(world), 40)


def test_train_contract(world):
    run_cases(train_cases(world), 24)


def test_evaluate_contract(world):
    run_cases(evaluate_cases(world), 24)


@pytest.mark.slow
def test_compare_contract(world):
    run_cases(compare_cases(world), 15)


def test_animate_contract(world):
    run_cases(animate_cases(world), 60)


def test_render_contract(world):
    run_cases(render_cases(world), 60)


def test_export_html_contract(world):
    run_cases(export_html_cases(world), 50)


def test_export_contract(world):
    run_cases(export_cases(world), 30)


def test_serve_contract(world):
    run_cases(serve_cases(world), 15, need_ok=False)


@pytest.mark.slow
def test_pipeline_contract(world):
    run_cases(pipeline_cases(world), 12)
