"""The one command line: `vocagan <command> ...`. Each command parses flags and calls one plain,
typed library function (tests call those functions directly). User errors (VocaganError) are
printed as one line `error: ...` with exit status 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vocagan.config import DEFAULT_MODEL
from vocagan.errors import VocaganError
from vocagan.models import MODELS


# ----------------------------------------------------------------------------- shared flag groups
def _add_data_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (a VOCASET folder, or the seed's explicit file flags)")
    g.add_argument(
        "--data",
        metavar="DIR",
        help="folder holding the standard VOCASET file names "
        "(data_verts.npy, subj_seq_to_idx.pkl, templates.pkl, processed_audio_deepspeech.pkl, "
        "raw_audio_fixed.pkl, FLAME_sample.ply)",
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
    g.add_argument("--fps", type=int, help="training/evaluation frame rate (must divide 60; default 30)")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
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


def _config_from_args(args: argparse.Namespace, extra: list[str] | None = None, defaults: dict | None = None):
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


# ----------------------------------------------------------------------------- commands
def cmd_synth(args) -> None:
    from vocagan.synth.corpus import generate

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

    prepared = prepare(_config_from_args(args))
    print(prepared.summary())


def _train_overrides(args) -> list[str]:
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


def cmd_train(args) -> None:
    from vocagan.train import train

    cfg = _config_from_args(args, _train_overrides(args))
    result = train(cfg, Path(args.out), resume=args.resume)
    print(result.summary())


def cmd_evaluate(args) -> None:
    from vocagan.evaluate import evaluate

    cfg = _config_from_args(args)
    result = evaluate(
        Path(args.checkpoint),
        cfg.data if _has_data_flags(args) else None,
        Path(args.out),
        fps=args.fps,
        save_predictions=Path(args.save_predictions) if args.save_predictions else None,
        style=args.style,
        sync_expert=Path(args.sync_expert) if args.sync_expert else None,
        encoder=args.encoder,
    )
    print(result.summary())


def _has_data_flags(args) -> bool:
    return any(
        getattr(args, k, None)
        for k in (
            "data",
            "data_verts_path",
            "idx_map_path",
            "template_path",
            "audio_pkl_path",
            "raw_audio_path",
            "template_ply_path",
            "masks",
        )
    )


ENCODER_HELP = (
    "where the frozen speech encoder the model was trained with lies now (when the folder its checkpoint "
    "records has moved; the weights must be the same)"
)
SYNC_EXPERT_HELP = (
    "lip-sync expert to score with (e.g. the sync_expert.pt kept with an earlier report); default: the one "
    "trained once on the training split of this prepared data (cached)"
)


def cmd_compare(args) -> None:
    from vocagan.compare import COMPARE_TRAIN, compare

    cfg = _config_from_args(args, _train_overrides(args), defaults={"train": dict(COMPARE_TRAIN)})
    result = compare(
        cfg,
        Path(args.out),
        models=args.models,
        seeds=args.seeds,
        focus=args.focus,
        sync_expert=Path(args.sync_expert) if args.sync_expert else None,
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
        Path(args.faces),
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

    cfg = _config_from_args(args, _train_overrides(args))
    out = Path(args.out) if args.out else Path("runs") / cfg.model_name
    result = run_pipeline(
        cfg, out, data_given=_has_data_flags(args), output_model=Path(args.output_model) if args.output_model else None
    )
    print(result.summary())


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vocagan", description="Speech-driven 3D facial animation on VOCASET.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synth", help="write the built-in synthetic corpus in VOCASET format")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--scale",
        default="small",
        choices=["tiny", "small", "full"],
        help="tiny: tests; small (default): the demo, a few minutes of speech; "
        "full: VOCASET-sized (~1.2e5 frames x 5023 vertices, ~7 GB)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--template-ply", metavar="FILE", help="deform this mesh (e.g. FLAME_sample.ply) instead of the procedural head"
    )
    p.add_argument(
        "--voices",
        default="formant",
        choices=["formant", "festival"],
        help="festival: half of the training sentences spoken by Debian's Festival voices (recorded "
        "speakers; formant only when none is installed). Off by default: it did not help (docs/experiments.md)",
    )
    p.add_argument(
        "--channel",
        action="store_true",
        help="pass 70%% of the training sentences through a random recording channel (room, noise, "
        "microphone, codec, level). Off by default: it did not help (docs/experiments.md)",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("convert", help="turn your own per-sequence meshes + wavs into the VOCASET files")
    p.add_argument("--input", required=True, metavar="DIR", help="folder of sequences (see README: convert)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--input-fps", type=int, default=60, help="frame rate of the input meshes (resampled to 60)")
    p.add_argument("--template-ply", metavar="FILE", help="mesh whose faces to copy into FLAME_sample.ply")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("prepare", help="align, crop the mouth region, PCA + normalise; cached")
    _add_data_flags(p)
    _add_config_flags(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one model; best checkpoint at OUT/best.pt")
    p.add_argument("--model", choices=list(MODELS), help="model family (default: from config, transformer_gan)")
    _add_data_flags(p)
    _add_config_flags(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test-set metrics (LVE, FDD, MVE, lip sync) of a checkpoint")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    _add_data_flags(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--style", default="all", help="'all' (average over training styles, the protocol) or one training subject"
    )
    p.add_argument("--save-predictions", metavar="DIR", help="write <subject>_<sentenceNN>_<style>.npy (T,V,3) m")
    p.add_argument("--sync-expert", metavar="PATH", help=SYNC_EXPERT_HELP)
    p.add_argument("--encoder", metavar="DIR", help=ENCODER_HELP)
    p.set_defaults(func=cmd_evaluate, config=None, overrides=[], cache_dir=None)

    p = sub.add_parser("compare", help="train the four models + baselines over seeds; one report")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--focus",
        default=DEFAULT_MODEL,
        choices=list(MODELS),
        help=f"the model whose claim the verdict tests (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, help="epochs per run (default 40, the demo's budget)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="default 16")
    _add_data_flags(p)
    _add_config_flags(p)
    p.add_argument("--sync-expert", metavar="PATH", help=SYNC_EXPERT_HELP)
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("animate", help="animate a face from any speech file (wav/flac/ogg/mp3)")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    p.add_argument("--audio", required=True, metavar="FILE")
    p.add_argument(
        "--template",
        metavar="SUBJECT_OR_PLY",
        help="a subject in the checkpoint or a PLY/OBJ mesh "
        "with the training topology (default: first training subject)",
    )
    p.add_argument("--style", default=None, help="a training subject, or 'all' (default: first training style)")
    p.add_argument("--samples", type=int, default=1, help="samples per style (VAE/GAN)")
    p.add_argument("--fps", type=int, help="output frame rate (default: the model's)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--no-video", action="store_true", help="skip the mp4")
    p.add_argument("--ply", action="store_true", help="also write a PLY per frame")
    p.add_argument("--obj", action="store_true", help="also write an OBJ per frame")
    p.add_argument("--size", type=int, default=800, help="video size in pixels (square)")
    fmt = "npy (default), glb (glTF: template, morph targets, weights over time; audio beside), csv/json (weights)"
    p.add_argument("--format", action="append", metavar="FMT", help=f"repeatable or comma-separated: {fmt}")
    p.add_argument("--encoder", metavar="DIR", help=ENCODER_HELP)
    p.set_defaults(func=cmd_animate)

    p = sub.add_parser("render", help="render a vertex sequence (.npy) to an mp4 with sound")
    p.add_argument("--vertices", required=True, metavar="NPY", help="(T, V, 3) vertices in metres")
    p.add_argument("--faces", required=True, metavar="PLY", help="mesh with the same topology (faces)")
    p.add_argument("--out", required=True, metavar="MP4")
    p.add_argument("--audio", metavar="WAV")
    p.add_argument("--gt", metavar="NPY", help="ground truth: side-by-side gt | prediction | error heat map")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--size", type=int, default=800)
    p.add_argument("--backend", default="auto", choices=["auto", "egl", "numpy"])
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("export", help="a vertex sequence (.npy) -> glTF morph targets (.glb) and/or weight tables")
    p.add_argument("--vertices", required=True, metavar="NPY", help="(T, V, 3) vertices in metres")
    p.add_argument("--template", required=True, metavar="MESH", help="rest mesh PLY/OBJ (--checkpoint: or a subject)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--format", action="append", metavar="FMT", help="glb (default), csv, json; repeatable")
    p.add_argument("--checkpoint", metavar="PATH", help="project onto this model's motion basis instead of a PCA")
    p.add_argument("--audio", metavar="FILE", help="copied beside the .glb (glTF has no audio)")
    p.add_argument("--fps", type=float, default=30)
    p.add_argument("--tolerance-mm", type=float, default=0.01, help="PCA: max vertex error (mm)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("export-html", help="one self-contained HTML page that plays the animation with sound")
    p.add_argument("--glb", metavar="GLB", help="a .glb from animate/export (instead of --vertices/--faces)")
    p.add_argument("--vertices", metavar="NPY")
    p.add_argument("--faces", metavar="PLY")
    p.add_argument("--out", required=True, metavar="HTML")
    p.add_argument("--audio", metavar="WAV")
    p.add_argument("--fps", type=int, default=30)
    p.set_defaults(func=cmd_export_html)

    p = sub.add_parser("serve", help="live animation: a WebSocket server (16 kHz PCM in, morph weights out) + page")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a streaming model (model.lookahead >= 0)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--style", help="a training subject (default: the first)")
    p.add_argument("--template", metavar="SUBJECT_OR_PLY", help="the face shown (default: first training subject)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "pipeline",
        help="the seed's whole process: [synth] -> prepare -> train -> evaluate -> "
        "plots -> video (the main_*.py scripts run this)",
    )
    p.add_argument("--model", choices=list(MODELS))
    _add_data_flags(p)
    _add_config_flags(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<model>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int)
    p.add_argument("--seed", type=int)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except VocaganError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
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
