"""The seed's whole process as one function: [synthesise the built-in corpus] -> prepare -> train ->
plot curves -> evaluate on the test split -> render a result video with sound.

`vocagan pipeline` and the seed's scripts (`main_transformer_gan.py`, ...) call `run_pipeline`;
every step is the same library function the individual commands use.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vocagan.config import Config
from vocagan.eval_report import EvalResult
from vocagan.frames import resample_frames
from vocagan.synth.corpus import builtin_corpus
from vocagan.utils import atomic_path, atomic_write_json, file_fingerprint, log, output_dir


@dataclass
class PipelineResult:
    out_dir: Path
    checkpoint: Path
    report: Path
    video: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    eval_summary: str = ""
    reused: list[str] = field(default_factory=list)  # steps whose earlier outputs were still valid

    def summary(self) -> str:
        lines = [
            self.eval_summary,
            "",
            f"pipeline finished in {sum(self.timings.values()):.0f} s "
            f"({', '.join(f'{k} {v:.0f} s' for k, v in self.timings.items())}; wall clock per step, "
            "start-up not included)",
        ]
        if self.reused:
            lines.append(f"  reused (inputs unchanged): {', '.join(self.reused)}")
        lines += [f"  checkpoint: {self.checkpoint}", f"  evaluation: {self.report}"]
        if self.video:
            lines.append(f"  video:      {self.video}")
        return "\n".join(lines)


def run_pipeline(
    cfg: Config, out_dir: Path, data_given: bool = True, output_model: Path | None = None
) -> PipelineResult:
    """The whole process into `out_dir` (corpus/, train/, eval/, video/). Without data (`data_given`
    False) it writes the built-in corpus, on cfg.data.template_ply_path when one is given. Each step
    reuses what an earlier run left when its inputs are unchanged: the corpus (its stamp), the prepared
    data (cache), a finished training run with the same config and data, the evaluation and the video
    (their inputs.json: fingerprints of the checkpoint, the data and the code that made them)."""
    from vocagan.evaluate import evaluate
    from vocagan.prep.prepare import prepare
    from vocagan.runs import finished_run
    from vocagan.train import train

    out_dir = output_dir(out_dir)
    timings: dict[str, float] = {}
    reused: list[str] = []

    t = time.perf_counter()
    if not data_given:  # the caller's cfg stays as it was: this run uses a copy
        template = cfg.data.template_ply_path
        corpus = builtin_corpus(out_dir / "corpus", template_ply=template)
        cfg = replace(cfg, data=replace(cfg.data, root=str(corpus), template_ply_path=None))
        timings["corpus"] = time.perf_counter() - t

    t = time.perf_counter()
    prepared = prepare(cfg)  # steps 1-4 (align, mouth indices, crop, PCA + normalise); cached
    print(prepared.summary())
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    data_fingerprint = str(prepared.meta["data_fingerprint"])
    trained = finished_run(out_dir / "train", cfg, data_fingerprint) or train(cfg, out_dir / "train")  # steps 5-7
    if trained.reused:
        reused.append("training run")
    print(trained.summary())
    timings["train"] = time.perf_counter() - t
    checkpoint = Path(trained.best_checkpoint)
    if output_model is not None:
        with atomic_path(output_model) as tmp:
            shutil.copyfile(checkpoint, tmp)
        log(f"[pipeline] best model copied to {output_model}")

    t = time.perf_counter()
    eval_dir, predictions = out_dir / "eval", out_dir / "eval" / "predictions"
    inputs = {
        "checkpoint": file_fingerprint(checkpoint),
        "data": data_fingerprint,
        "fps": cfg.data.fps,
        "masks": cfg.data.masks_path,
        "code": _code_fingerprint(
            "evaluate.py", "metrics.py", "eval_report.py", "plotting.py", "stats.py", "sync_expert.py", "eval_pool.py"
        ),
    }
    if _unchanged(eval_dir, inputs) and (eval_dir / "metrics.json").is_file() and any(predictions.glob("*.npy")):
        log(f"[pipeline] reusing the evaluation in {eval_dir} (checkpoint, data and code unchanged)")
        result = EvalResult.from_saved(eval_dir)
        reused.append("evaluation")
    else:
        result = evaluate(checkpoint, cfg.data, eval_dir, fps=cfg.data.fps, save_predictions=predictions)
        _stamp(eval_dir, inputs)
    timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    video = render_test_example(cfg, checkpoint, predictions, out_dir / "video", inputs)
    if video is not None and video.reused:
        reused.append("video")
    timings["video"] = time.perf_counter() - t
    return PipelineResult(
        out_dir,
        checkpoint,
        eval_dir / "metrics.md",
        video.path if video else None,
        timings,
        result.summary(),
        reused,
    )


# ----------------------------------------------------------------------------- reuse
STAMP = "inputs.json"  # what a step's outputs were made from


def _code_fingerprint(*modules: str) -> str:
    """Content hash of vocagan modules: outputs made by other code are not reused."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in modules:
        h.update((package / name).read_bytes())
    return h.hexdigest()[:16]


def _unchanged(folder: Path, inputs: dict) -> bool:
    """Whether `folder` holds outputs made from exactly `inputs` (its STAMP says so)."""
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")) == json.loads(json.dumps(inputs))
    except (OSError, ValueError):
        return False


def _stamp(folder: Path, inputs: dict) -> None:
    atomic_write_json(folder / STAMP, inputs)


@dataclass
class ExampleVideo:
    path: Path
    reused: bool


def render_test_example(
    cfg: Config, checkpoint: Path, predictions: Path, out_dir: Path, inputs: dict | None = None
) -> ExampleVideo | None:
    """Side-by-side video (ground truth | prediction | error) of the first test sequence, with its audio;
    reused when its STAMP matches `inputs` (the evaluation's) and the prediction it shows."""
    from vocagan.formats.audio import save_wav
    from vocagan.formats.mesh import write_ply
    from vocagan.formats.vocaset import open_vocaset
    from vocagan.video import render_files

    corpus = open_vocaset(cfg.data, deepspeech=False)
    pairs = corpus.split("test")
    if not pairs:
        return None
    subject, sentence = pairs[0]
    matches = sorted(predictions.glob(f"{subject}_{sentence}_*.npy"))
    if not matches:
        log(f"[pipeline] no saved prediction for {subject}/{sentence}; skipping the video")
        return None
    video = out_dir / f"{subject}_{sentence}.mp4"
    stamp = {
        **(inputs or {}),
        "prediction": file_fingerprint(matches[0]),
        "code": _code_fingerprint("render.py", "video.py", "pipeline.py"),
    }
    if inputs is not None and video.is_file() and _unchanged(out_dir, stamp):
        log(f"[pipeline] reusing the video {video} (its prediction and code unchanged)")
        return ExampleVideo(video, True)
    output_dir(out_dir)
    gt = np.ascontiguousarray(resample_frames(corpus.load_verts(subject, sentence), corpus.source_fps, cfg.data.fps))
    with atomic_path(out_dir / f"{subject}_{sentence}_gt.npy") as tmp:
        np.save(tmp, gt)
    audio = corpus.raw_audio(subject, sentence)
    wav = None
    if audio is not None:
        wav = out_dir / f"{subject}_{sentence}.wav"
        save_wav(wav, audio[0], audio[1])
    faces_ply = out_dir / "template.ply"
    write_ply(faces_ply, corpus.templates[subject], corpus.faces, colors=corpus.colors)
    render_files(
        matches[0],
        faces_ply,
        video,
        fps=cfg.data.fps,
        audio=wav,
        gt=out_dir / f"{subject}_{sentence}_gt.npy",
        size=512,
        backend="auto",
    )
    if inputs is not None:
        _stamp(out_dir, stamp)
    return ExampleVideo(video, False)
