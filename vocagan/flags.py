"""Command-line building blocks for `vocagan.cli` (the one CLI): flags typed by the config's and the
commands' declared fields (`fields.option`: type, range, choices and help written once), one-line
usage errors, help that shows every default, the shared flag groups, and the Config a command's flags
describe (library defaults <- --config <- flags <- --set)."""

from __future__ import annotations

import argparse
import dataclasses

from vocagan.config import DEFAULT_MODEL
from vocagan.errors import VocaganError
from vocagan.models import MODELS


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; a flag's default after its help, unless the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = not (action.default is None or action.default is False or action.default is argparse.SUPPRESS)
        if action.option_strings and shown and action.default != []:  # (0 is a default worth showing)
            if "default" not in text:
                text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """Usage errors are one line `error: ...` on stderr (exit status 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def typed(cls, name: str, flag: str):
    """argparse `type=`: the value checked against field `name` of `cls` (its declared type and range)."""
    from vocagan.fields import check_field

    def convert(text: str):
        try:
            return check_field(cls, name, text, flag)
        except VocaganError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{flag} ")) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def option_flag(p, flags: str | tuple[str, ...], cls, name: str, **kw) -> None:
    """A flag for field `name` of dataclass `cls` (a config section or `vocagan.options`): type and range
    check, choices and help come from the field; `kw` may override the default and the help. A config
    field's flag passes default=None: the config (file, then library) supplies the value."""
    from vocagan.fields import describe_range

    flags = (flags,) if isinstance(flags, str) else flags
    flag = flags[0]
    f = next(x for x in dataclasses.fields(cls) if x.name == name)
    choices = f.metadata.get("choices")
    text = kw.pop("help", None) or f.metadata.get("help") or ""
    if choices is None and (span := describe_range(cls, name)):
        text += f"; {span}"
    if "default" not in kw:
        kw["default"] = None if f.default is dataclasses.MISSING else f.default
    p.add_argument(*flags, type=typed(cls, name, flag), choices=choices, help=text, **kw)


# what each command says about itself: (one-line description, examples, more text before the examples)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": (
        "Write the built-in synthetic corpus (12 speakers, real face shape) in the exact VOCASET file format.",
        """\
vocagan synth --out data/small
vocagan synth --out data/tiny --scale tiny --seed 1
vocagan synth --out data/flame --template-ply ~/FLAME_sample.ply   # animate your FLAME template instead""",
        "",
    ),
    "convert": (
        "Turn your own per-sequence meshes and wavs into the five VOCASET files.",
        """\
vocagan convert --input my_capture --out my_vocaset
vocagan convert --input my_capture --out my_vocaset --input-fps 30 --template-ply my_template.ply""",
        "@LAYOUTS@",  # formats.convert.LAYOUTS
    ),
    "prepare": (
        "Align, crop the mouth region, fit PCA and normalise a dataset; cached (a second run is instant).",
        """\
vocagan prepare --data ~/vocaset --masks ~/FLAME_masks.pkl
vocagan prepare --data data/small --set data.fps=60""",
        "",
    ),
    "train": (
        "Train one model; writes RUN_DIR/best.pt, last.pt (for --resume), metrics.csv and curve plots.",
        """\
vocagan train --data data/small --out runs/gan --config configs/demo.yaml
vocagan train --model rnn --data ~/vocaset --out runs/rnn --epochs 50 --set train.lr=3e-4
vocagan train --data ~/vocaset --out runs/gan --resume   # continue an interrupted run""",
        "",
    ),
    "evaluate": (
        "Test-set metrics of a checkpoint (LVE, MVE, FDD, lip sync, lip closures, smoothness) with plots.",
        """\
vocagan evaluate --checkpoint runs/gan/best.pt --out runs/gan/eval
vocagan evaluate --checkpoint runs/gan/best.pt --data ~/vocaset --masks ~/FLAME_masks.pkl --out runs/gan/eval \
                 --save-predictions runs/gan/eval/pred""",
        "",
    ),
    "compare": (
        "Train several models over several seeds, evaluate them and three baselines, write one report.",
        """\
vocagan compare --out runs/compare                       # the built-in corpus, 4 models x 3 seeds
vocagan compare --data ~/vocaset --out runs/cmp --models rnn transformer_gan --seeds 5""",
        "",
    ),
    "animate": (
        "Animate a face from any speech recording (wav/flac/ogg/mp3, any rate) with a trained checkpoint.",
        """\
vocagan animate --checkpoint runs/demo/train/best.pt --audio speech.wav --out anim
vocagan animate --checkpoint runs/gan/best.pt --audio talk.mp3 --out anim --style all --no-video --ply""",
        "",
    ),
    "render": (
        "Render a vertex sequence (.npy) to an mp4 with sound; --gt for ground truth | prediction | error.",
        """\
vocagan render --vertices anim/speech_FaceTalk_170728_03272_TA.npy --out speech.mp4
vocagan render --vertices pred.npy --faces face.ply --gt gt.npy --audio speech.wav --out side_by_side.mp4""",
        "",
    ),
    "export": (
        "Turn a vertex sequence (.npy) into glTF morph targets (.glb) and/or morph-weight tables.",
        """\
vocagan export --vertices pred.npy --template face.ply --out export
vocagan export --vertices pred.npy --template FaceTalk_170728_03272_TA --checkpoint best.pt --out export \
               --format glb,csv""",
        "",
    ),
    "export-html": (
        "Write one self-contained web page (no network needed) that plays a vertex sequence or a .glb with its sound.",
        """\
vocagan export-html --vertices anim/speech_FaceTalk_170728_03272_TA.npy --out speech.html
vocagan export-html --glb anim/speech_FaceTalk_170728_03272_TA.glb --audio speech.wav --out speech.html
vocagan export-html --vertices pred.npy --faces face.ply --audio speech.wav --fps 30 --out pred.html""",
        "",
    ),
    "serve": (
        "Live animation: a WebSocket server (16 kHz PCM in, morph weights out) with a page that plays them.",
        """\
vocagan serve --checkpoint runs/stream/best.pt            # then open http://127.0.0.1:8765/
vocagan serve --checkpoint best.pt --host 0.0.0.0 --port 9000 --style FaceTalk_170728_03272_TA""",
        "Needs a streaming model (trained with model.lookahead >= 0). Runs until Ctrl-C.",
    ),
    "pipeline": (
        "The whole process: [built-in corpus] -> prepare -> train -> evaluate -> plots -> video "
        "(what scripts/demo.sh and main_*.py run).",
        """\
vocagan pipeline --config configs/demo.yaml --out runs/demo        # the built-in corpus
vocagan pipeline --template_ply_path ~/FLAME_sample.ply --masks ~/FLAME_masks.pkl --out runs/flame
vocagan pipeline --data ~/vocaset --model rnn --epochs 100 --out runs/rnn""",
        "Without --data (or the seed's file flags) it writes the built-in corpus to OUT/corpus, on your "
        "--template_ply_path mesh when given. A second run with unchanged inputs reuses the corpus, the "
        "prepared data, the finished training run, the evaluation and the video.",
    ),
}


def command(sub, name: str) -> argparse.ArgumentParser:
    """A subcommand with its one-line description (in `vocagan --help` too) and examples (COMMANDS)."""
    summary, examples, extra = COMMANDS[name]
    if extra == "@LAYOUTS@":
        from vocagan.formats.convert import LAYOUTS

        extra = LAYOUTS
    epilog = (
        (extra + "\n\n" if extra else "")
        + "examples:\n"
        + "\n".join(f"  {line}" for line in examples.strip().splitlines())
    )
    return sub.add_parser(name, help=summary, description=summary, epilog=epilog, formatter_class=HelpFormatter)


def add_train_flags(
    p: argparse.ArgumentParser, model: bool = True, seed: bool = True, epochs: int = 100, batch: int = 32
) -> None:
    """--model, --epochs, --batch-size, --seed: checked against the training config's own fields."""
    from vocagan.config import TrainConfig

    if model:
        p.add_argument(
            "--model", choices=list(MODELS), help=f"model family (default: from --config, else {DEFAULT_MODEL})"
        )
    else:
        p.set_defaults(model=None)
    option_flag(
        p,
        "--epochs",
        TrainConfig,
        "epochs",
        default=None,
        help=f"training epochs (default: from --config, else {epochs})",
    )
    option_flag(
        p,
        ("--batch-size", "--batch_size"),  # the second: the seed's spelling
        TrainConfig,
        "batch_size",
        help=f"sequences per batch (default: from --config, else {batch})",
        dest="batch_size",
        default=None,
    )
    if seed:
        option_flag(
            p,
            "--seed",
            TrainConfig,
            "seed",
            default=None,
            help="random seed of the run (default: from --config, else 0)",
        )


# ----------------------------------------------------------------------------- shared flag groups
def add_data_flags(p: argparse.ArgumentParser, data_default: str = "") -> None:
    from vocagan.config import DataConfig

    g = p.add_argument_group("data (a VOCASET folder, or the seed's explicit file flags)")
    g.add_argument(
        "--data",
        metavar="DIR",
        help="folder holding the standard VOCASET file names "
        "(data_verts.npy, subj_seq_to_idx.pkl, templates.pkl, processed_audio_deepspeech.pkl, "
        "raw_audio_fixed.pkl, FLAME_sample.ply)" + (f"; default: {data_default}" if data_default else ""),
    )
    for flag, what in [
        ("data_verts_path", "data_verts.npy"),
        ("audio_pkl_path", "processed_audio_deepspeech.pkl"),
        ("raw_audio_path", "raw_audio_fixed.pkl"),
        ("idx_map_path", "subj_seq_to_idx.pkl"),
        ("template_path", "templates.pkl"),
        ("template_ply_path", "template mesh PLY (faces; mouth region geometry)"),
    ]:
        g.add_argument(f"--{flag}", f"--{flag.replace('_', '-')}", dest=flag, metavar="FILE", help=what)
    g.add_argument("--masks", metavar="FILE", help="FLAME_masks.pkl: lip/upper-face regions for crop and metrics")
    g.add_argument("--mouth-indices", metavar="FILE", help=".npy/.txt of mouth vertex indices (overrides geometry)")
    option_flag(
        g,
        "--fps",
        DataConfig,
        "fps",
        default=None,
        help="training/evaluation frame rate, must divide the capture rate 60 (default: from --config, else 30)",
    )


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config (sections: data, features, prep, model, train)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, repeatable (e.g. --set train.lr=3e-4 --set model.d_model=128)",
    )
    p.add_argument(
        "--cache-dir", metavar="DIR", help="where prepared data is cached (default $VOCAGAN_CACHE or ~/.cache/vocagan)"
    )


def config_from_args(args: argparse.Namespace, extra: list[str] | None = None, defaults: dict | None = None):
    """Build a Config: library defaults <- `defaults` <- --config <- the data flags <- --set overrides
    (flags such as --epochs come as `extra` overrides, before --set)."""
    from vocagan.config import load_config

    base: dict = {"data": {}, "prep": {}}
    data = base["data"]
    if getattr(args, "data", None):
        data["root"] = args.data
    for key in (
        "data_verts_path",
        "audio_pkl_path",
        "raw_audio_path",
        "idx_map_path",
        "template_path",
        "template_ply_path",
    ):
        if getattr(args, key, None):
            data[key] = getattr(args, key)
    if getattr(args, "masks", None):
        data["masks_path"] = args.masks
    if getattr(args, "mouth_indices", None):
        data["mouth_indices_path"] = args.mouth_indices
    if getattr(args, "fps", None):
        data["fps"] = args.fps
    if getattr(args, "cache_dir", None):
        base["prep"]["cache_dir"] = args.cache_dir
    return load_config(
        getattr(args, "config", None),
        overrides=list(extra or []) + list(args.overrides or []),
        defaults=defaults,
        given={k: v for k, v in base.items() if v},
    )


def train_overrides(args) -> list[str]:
    extra = []
    if args.model:
        extra.append(f"model.name={args.model}")
    if args.epochs is not None:
        extra.append(f"train.epochs={args.epochs}")
    if args.batch_size is not None:
        extra.append(f"train.batch_size={args.batch_size}")
    if getattr(args, "seed", None) is not None:
        extra.append(f"train.seed={args.seed}")
    return extra


DATA_FILE_FLAGS = ("data", "data_verts_path", "idx_map_path", "template_path", "audio_pkl_path", "raw_audio_path")


def has_data_flags(args, files_only: bool = False) -> bool:
    """Whether a dataset was named (files_only: its data files, not just a template mesh or masks)."""
    keys = DATA_FILE_FLAGS + (() if files_only else ("template_ply_path", "masks"))
    return any(getattr(args, k, None) for k in keys)


def add_view_flags(p: argparse.ArgumentParser, out_kind: str, out_help: str, vertices_required: bool = True) -> None:
    """--vertices/--faces/--out/--audio/--fps of render and export-html."""
    from vocagan.options import VideoOptions

    p.add_argument("--vertices", required=vertices_required, metavar="NPY", help="(T, V, 3) vertices in metres (.npy)")
    p.add_argument(
        "--faces",
        metavar="MESH",
        help="PLY/OBJ mesh with exactly the animation's vertices (faces, colours); default: the mesh named in the "
        "<vertices>.json that animate writes beside its .npy",
    )
    p.add_argument("--out", required=True, metavar=out_kind, help=out_help)
    p.add_argument("--audio", metavar="FILE", help="sound to play along (default: the one named in <vertices>.json)")
    option_flag(p, "--fps", VideoOptions, "fps", help="frames per second (default: from <vertices>.json, else 30)")


ENCODER_HELP = (
    "where the frozen speech encoder the model was trained with lies now (when the folder its checkpoint "
    "records has moved; the weights must be the same)"
)
SYNC_EXPERT_HELP = (
    "lip-sync expert to score with (e.g. the sync_expert.pt kept with an earlier report); default: the one "
    "trained once on the training split of this prepared data (cached)"
)
