"""The seed's whole process as one function: [synthesise the built-in corpus] -> prepare -> train ->
plot curves -> evaluate on the test split -> render a result video with sound.

`vocagan pipeline` and the seed's scripts (`main_transformer_gan.py`, ...) call `run_pipeline`;
every step is the same library function the individual commands use.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vocagan.config import Config
from vocagan.frames import resample_frames
from vocagan.synth.corpus import builtin_corpus
from vocagan.utils import atomic_path, log


@dataclass
class PipelineResult:
    out_dir: Path
    checkpoint: Path
    report: Path
    video: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    eval_summary: str = ""

    def summary(self) -> str:
        lines = [
            self.eval_summary,
            "",
            f"pipeline finished in {sum(self.timings.values()):.0f} s "
            f"({', '.join(f'{k} {v:.0f} s' for k, v in self.timings.items())})",
            f"  checkpoint: {self.checkpoint}",
            f"  evaluation: {self.report}",
        ]
        if self.video:
            lines.append(f"  video:      {self.video}")
        return "\n".join(lines)


def run_pipeline(
    cfg: Config, out_dir: Path, data_given: bool = True, output_model: Path | None = None
) -> PipelineResult:
    from vocagan.evaluate import evaluate
    from vocagan.prep.prepare import prepare
    from vocagan.train import train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    if not data_given:  # the caller's cfg stays as it was: this run uses a copy
        cfg = replace(cfg, data=replace(cfg.data, root=str(builtin_corpus(out_dir / "corpus"))))
        timings["corpus"] = time.perf_counter() - t

    t = time.perf_counter()
    print(prepare(cfg).summary())  # steps 1-4 (align, mouth indices, crop, PCA + normalise); cached
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    trained = train(cfg, out_dir / "train")  # steps 5-7: loaders, train + validate, curves
    print(trained.summary())
    timings["train"] = time.perf_counter() - t
    checkpoint = Path(trained.best_checkpoint)
    if output_model is not None:
        with atomic_path(output_model) as tmp:
            shutil.copyfile(checkpoint, tmp)
        log(f"[pipeline] best model copied to {output_model}")

    t = time.perf_counter()
    predictions = out_dir / "eval" / "predictions"
    result = evaluate(checkpoint, cfg.data, out_dir / "eval", fps=cfg.data.fps, save_predictions=predictions)
    timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    video = render_test_example(cfg, checkpoint, predictions, out_dir / "video")
    timings["video"] = time.perf_counter() - t
    return PipelineResult(out_dir, checkpoint, out_dir / "eval" / "metrics.md", video, timings, result.summary())


def render_test_example(cfg: Config, checkpoint: Path, predictions: Path, out_dir: Path) -> Path | None:
    """Side-by-side video (ground truth | prediction | error) of the first test sequence, with its audio."""
    from vocagan.formats.audio import save_wav
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
    out_dir.mkdir(parents=True, exist_ok=True)
    gt = np.ascontiguousarray(resample_frames(corpus.load_verts(subject, sentence), corpus.source_fps, cfg.data.fps))
    with atomic_path(out_dir / f"{subject}_{sentence}_gt.npy") as tmp:
        np.save(tmp, gt)
    audio = corpus.raw_audio(subject, sentence)
    wav = None
    if audio is not None:
        wav = out_dir / f"{subject}_{sentence}.wav"
        save_wav(wav, audio[0], audio[1])
    faces_ply = out_dir / "template.ply"
    from vocagan.formats.mesh import write_ply

    write_ply(faces_ply, corpus.templates[subject], corpus.faces, colors=corpus.colors)
    video = out_dir / f"{subject}_{sentence}.mp4"
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
    return video
