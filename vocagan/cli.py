"""The one command line: `vocagan <command> ...`. Each command parses flags and calls one plain,
typed library function (tests call those functions directly). User errors (VocaganError) are
printed as one line `error: ...` with exit status 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vocagan.config import DEFAULT_MODEL
from vocagan.errors import VocaganError
from vocagan.flags import (
    ENCODER_HELP,
    SYNC_EXPERT_HELP,
    HelpFormatter,
    Parser,
    add_config_flags,
    add_data_flags,
    add_train_flags,
    add_view_flags,
    command,
    config_from_args,
    has_data_flags,
    option_flag,
    train_overrides,
)
from vocagan.models import MODELS


# ----------------------------------------------------------------------------- commands
def cmd_synth(args) -> None:
    from vocagan.synth.corpus import builtin_corpus, generate

    if args.reuse:
        template = Path(args.template_ply) if args.template_ply else None
        builtin_corpus(Path(args.out), args.scale, args.seed, template, voices=args.voices, channel=args.channel)
        return
    result = generate(
        Path(args.out),
        scale=args.scale,
        seed=args.seed,
        template_ply=Path(args.template_ply) if args.template_ply else None,
        voices=args.voices,
        channel=args.channel,
    )
    print(result.summary())


def cmd_convert(args) -> None:
    from vocagan.formats.convert import convert

    result = convert(
        Path(args.input),
        Path(args.out),
        input_fps=args.input_fps,
        template_ply=Path(args.template_ply) if args.template_ply else None,
    )
    print(result.summary())


def cmd_prepare(args) -> None:
    from vocagan.prep.prepare import prepare

    prepared = prepare(config_from_args(args))
    print(prepared.summary())


def cmd_train(args) -> None:
    from vocagan.train import train

    cfg = config_from_args(args, train_overrides(args))
    result = train(cfg, Path(args.out), resume=args.resume)
    print(result.summary())


def cmd_evaluate(args) -> None:
    from vocagan.evaluate import evaluate

    cfg = config_from_args(args)
    result = evaluate(
        Path(args.checkpoint),
        cfg.data if has_data_flags(args) else None,
        Path(args.out),
        fps=args.fps,
        save_predictions=Path(args.save_predictions) if args.save_predictions else None,
        style=args.style,
        sync_expert=Path(args.sync_expert) if args.sync_expert else None,
        encoder=args.encoder,
    )
    print(result.summary())


def cmd_compare(args) -> None:
    from vocagan.compare import COMPARE_TRAIN, compare

    cfg = config_from_args(args, train_overrides(args), defaults={"train": dict(COMPARE_TRAIN)})
    result = compare(
        cfg,
        Path(args.out),
        models=args.models,
        seeds=args.seeds,
        focus=args.focus,
        sync_expert=Path(args.sync_expert) if args.sync_expert else None,
        jobs=args.jobs,
    )
    print(result.summary())


def cmd_animate(args) -> None:
    from vocagan.infer import animate

    result = animate(
        Path(args.checkpoint),
        Path(args.audio),
        Path(args.out),
        template=args.template,
        style=args.style,
        samples=args.samples,
        fps=args.fps,
        video=not args.no_video,
        ply=args.ply,
        obj=args.obj,
        size=args.size,
        formats=_formats(args.format),
        encoder=args.encoder,
    )
    print(result.summary())


def _formats(values: list[str] | None) -> list[str]:
    """--format glb --format csv, or --format glb,csv -> ["glb", "csv"] (default: npy)."""
    return [f.strip().lower() for v in (values or ["npy"]) for f in v.split(",") if f.strip()]


def cmd_render(args) -> None:
    from vocagan.video import render_files

    out = render_files(
        Path(args.vertices),
        Path(args.faces) if args.faces else None,
        Path(args.out),
        fps=args.fps,
        audio=Path(args.audio) if args.audio else None,
        gt=Path(args.gt) if args.gt else None,
        size=args.size,
        backend=args.backend,
    )
    print(f"wrote {out}")


def cmd_export_html(args) -> None:
    from vocagan.viewer import export_html_files

    out = export_html_files(
        Path(args.out),
        vertices=Path(args.vertices) if args.vertices else None,
        faces=Path(args.faces) if args.faces else None,
        glb=Path(args.glb) if args.glb else None,
        fps=args.fps,
        audio=Path(args.audio) if args.audio else None,
    )
    print(f"wrote {out}")


def cmd_export(args) -> None:
    from vocagan.export import export_vertices

    a = args
    ckpt, audio = (Path(x) if x else None for x in (a.checkpoint, a.audio))
    formats = _formats(a.format or ["glb"])
    result = export_vertices(Path(a.vertices), Path(a.out), formats, a.template, ckpt, a.fps, audio, a.tolerance_mm)
    print(result.summary())


def cmd_serve(args) -> None:
    from vocagan.serve import serve

    serve(Path(args.checkpoint), host=args.host, port=args.port, style=args.style, template=args.template)


def cmd_pipeline(args) -> None:
    from vocagan.pipeline import run_pipeline

    cfg = config_from_args(args, train_overrides(args))
    out = Path(args.out) if args.out else Path("runs") / cfg.model_name
    result = run_pipeline(
        cfg,
        out,
        data_given=has_data_flags(args, files_only=True),
        output_model=Path(args.output_model) if args.output_model else None,
    )
    print(result.summary())


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from vocagan.compare import COMPARE_TRAIN
    from vocagan.options import (
        AnimateOptions,
        CompareOptions,
        ConvertOptions,
        ExportOptions,
        ServeOptions,
        SynthOptions,
        VideoOptions,
    )
    from vocagan.synth.corpus import SCALES

    parser = Parser(
        prog="vocagan",
        description="Speech-driven 3D facial animation: train, evaluate and use models that turn speech into a "
        "moving face mesh (VOCASET format; a built-in synthetic corpus when you have none).",
        epilog="Every command documents itself: vocagan COMMAND --help. Errors are one line `error: ...` "
        "(exit status 1; 2 for a bad flag).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = command(sub, "synth")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; files in it are replaced)")
    p.add_argument(
        "--scale",
        default="small",
        choices=list(SCALES),
        help="tiny: tests, seconds; small: the demo, 6 minutes of speech; bench: the benchmark corpus (VOCASET's "
        "8 x 40 training sequences, 12 val and 48 test speakers x 10 sentences; with configs/bench.yaml); full: "
        "VOCASET-sized, 1.2e5 frames",
    )
    option_flag(p, "--seed", SynthOptions, "seed")
    p.add_argument(
        "--template-ply",
        metavar="FILE",
        help="animate this face mesh (PLY/OBJ, +y up, +z forward, e.g. FLAME_sample.ply) instead of the built-in "
        "MediaPipe face",
    )
    option_flag(p, "--voices", SynthOptions, "voices")
    p.add_argument(
        "--channel",
        action="store_true",
        help="pass 70%% of the training sentences through a random recording channel (room, noise, "
        "microphone, codec, level). Off by default: it did not help (docs/experiments.md)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep OUT when it already holds what these flags write (current synthesiser), else write it",
    )
    p.set_defaults(func=cmd_synth)

    p = command(sub, "convert")
    p.add_argument("--input", required=True, metavar="DIR", help="folder of sequences in one of the layouts below")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the VOCASET files (created)")
    option_flag(p, "--input-fps", ConvertOptions, "input_fps")
    p.add_argument("--template-ply", metavar="FILE", help="mesh whose faces go into FLAME_sample.ply")
    p.set_defaults(func=cmd_convert)

    p = command(sub, "prepare")
    add_data_flags(p)
    add_config_flags(p)
    p.set_defaults(func=cmd_prepare)

    p = command(sub, "train")
    add_data_flags(p)
    add_config_flags(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="run folder: best.pt, last.pt, config.yaml, metrics.csv/jsonl, curves (created)",
    )
    add_train_flags(p)
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt")
    p.set_defaults(func=cmd_train)

    p = command(sub, "evaluate")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint written by train (best.pt)")
    add_data_flags(p, data_default="the dataset the checkpoint was trained on")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder: metrics.json/md, CSV, plots (created)")
    p.add_argument(
        "--style",
        default="all",
        help="'all' (average over the training styles, the protocol) or one training subject",
    )
    p.add_argument(
        "--save-predictions",
        metavar="DIR",
        help="also write each prediction as <subject>_<sentenceNN>_<style>.npy, (T, V, 3) metres",
    )
    p.add_argument("--sync-expert", metavar="PATH", help=SYNC_EXPERT_HELP)
    p.add_argument("--encoder", metavar="DIR", help=ENCODER_HELP)
    p.set_defaults(func=cmd_evaluate, config=None, overrides=[], cache_dir=None)

    p = command(sub, "compare")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to compare")
    option_flag(p, "--seeds", CompareOptions, "seeds")
    p.add_argument(
        "--focus",
        default=DEFAULT_MODEL,
        choices=list(MODELS),
        help="the model whose claim the verdict tests",
    )
    add_train_flags(p, model=False, seed=False, epochs=COMPARE_TRAIN["epochs"], batch=COMPARE_TRAIN["batch_size"])
    add_data_flags(p, data_default="the built-in small corpus, written to OUT/corpus")
    add_config_flags(p)
    option_flag(p, "--jobs", CompareOptions, "jobs")
    p.add_argument("--sync-expert", metavar="PATH", help=SYNC_EXPERT_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="report folder: report.md, runs, plots (created)")
    p.set_defaults(func=cmd_compare)

    p = command(sub, "animate")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint written by train (best.pt)")
    p.add_argument("--audio", required=True, metavar="FILE", help="speech recording: wav, flac, ogg or mp3")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created): <audio>_<style>.npy + .json, <audio>_mesh.ply, .mp4",
    )
    p.add_argument(
        "--template",
        metavar="SUBJECT_OR_MESH",
        help="the face to animate: a subject stored in the checkpoint or a PLY/OBJ mesh with the training "
        "topology (default: the first training subject)",
    )
    p.add_argument(
        "--style", default=None, help="speaking style: a training subject, or 'all' (default: the first one)"
    )
    option_flag(p, "--samples", AnimateOptions, "samples")
    option_flag(p, "--fps", AnimateOptions, "fps")
    option_flag(p, "--size", VideoOptions, "size")
    p.add_argument("--no-video", action="store_true", help="skip the mp4")
    p.add_argument("--ply", action="store_true", help="also write a PLY per frame (with vertex colours)")
    p.add_argument("--obj", action="store_true", help="also write an OBJ per frame (with vertex colours)")
    p.add_argument(
        "--format",
        action="append",
        metavar="FMT",
        help="output formats, repeatable or comma-separated: npy (the default: vertices, .json, face mesh), glb "
        "(glTF: template, morph targets, weights over time; audio beside), csv/json (the weights)",
    )
    p.add_argument("--encoder", metavar="DIR", help=ENCODER_HELP)
    p.set_defaults(func=cmd_animate)

    p = command(sub, "render")
    add_view_flags(p, "MP4", "the mp4 to write")
    p.add_argument(
        "--gt",
        metavar="NPY",
        help="ground-truth vertices of the same topology: side by side ground truth | prediction | error heat map",
    )
    option_flag(p, "--size", VideoOptions, "size")
    option_flag(p, "--backend", VideoOptions, "backend")
    p.set_defaults(func=cmd_render)

    p = command(sub, "export")
    p.add_argument("--vertices", required=True, metavar="NPY", help="(T, V, 3) vertices in metres (.npy)")
    p.add_argument(
        "--template",
        required=True,
        metavar="MESH",
        help="the rest mesh PLY/OBJ (faces, rest shape); with --checkpoint also a subject it holds",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--format", action="append", metavar="FMT", help="glb (the default), csv, json; repeatable or comma-separated"
    )
    p.add_argument(
        "--checkpoint", metavar="PATH", help="project onto this model's motion basis instead of fitting a PCA"
    )
    p.add_argument("--audio", metavar="FILE", help="sound copied beside the .glb (glTF holds no audio)")
    option_flag(p, "--fps", VideoOptions, "fps", default=30.0, help="frames per second of the sequence")
    option_flag(p, "--tolerance-mm", ExportOptions, "tolerance_mm")
    p.set_defaults(func=cmd_export)

    p = command(sub, "export-html")
    add_view_flags(p, "HTML", "the page to write", vertices_required=False)
    p.add_argument("--glb", metavar="GLB", help="a .glb from animate --format glb or export (instead of --vertices)")
    p.set_defaults(func=cmd_export_html)

    p = command(sub, "serve")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a streaming model (model.lookahead >= 0)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1: this machine only)")
    option_flag(p, "--port", ServeOptions, "port")
    p.add_argument("--style", help="speaking style: a training subject (default: the first)")
    p.add_argument("--template", metavar="SUBJECT_OR_MESH", help="the face shown (default: the first training subject)")
    p.set_defaults(func=cmd_serve)

    p = command(sub, "pipeline")
    add_data_flags(p, data_default="the built-in corpus, written to OUT/corpus")
    add_config_flags(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<model>)")
    add_train_flags(p)
    p.add_argument(
        "--output_model",
        "--output-model",
        dest="output_model",
        metavar="PATH",
        help="also copy the best checkpoint here (the seed's flag)",
    )
    p.set_defaults(func=cmd_pipeline)
    return parser


def _version() -> str:
    from vocagan import __version__

    return f"vocagan {__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 1 error, 2 bad flag, 130 interrupted). Every
    failure a user can cause is one line `error: ...` on stderr, never a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 0
    try:
        args.func(args)
    except VocaganError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the file system said no (disk full, read-only, ...): say what and where
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{' '.join(str(e.strerror or e).split())}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory (try a smaller batch, scale or file)", file=sys.stderr)
        return 1
    return 0


def seed_script(path: str, argv: list[str]) -> int:
    """The seed's entry points `main_<model>.py`: `vocagan pipeline --model <model>` with the seed's flags.
    The model is the script's name, so the four scripts are the same two lines (and a test checks that
    every one names a registered model)."""
    name = Path(path).stem.removeprefix("main_")
    if name not in MODELS:
        print(f"error: {path}: names no model; valid models: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    return main(["pipeline", "--model", name, *argv])


if __name__ == "__main__":
    raise SystemExit(main())
