"""Streaming animation: 16 kHz PCM in, morph weights out, frame by frame, with bounded look-ahead.

`Streamer(checkpoint)` turns audio pushed in chunks of any size into the model's motion frames as soon
as they are final, and the same frames as `vocagan animate` on the whole recording (the tests check
it to float rounding):

    audio chunk -> prep.features.StreamingFeatures (exact twin of features_at_fps: log-mel frames
                   once their STFT window is complete, interpolated onto the frame times)
                -> model.stream_step (a causal model, `model.lookahead` >= 0: frame t is final once
                   the features of frame t + lookahead are)
                -> normalised coefficients (n, K) -> morph weights (n, 1 + K) for the .glb targets
                   of `morph.from_coefficients` ("mean" = 1, then the coefficients)

Latency: the algorithmic part (`Streamer.lookahead_ms`) is the audio a frame waits for after its
own time: the model's look-ahead frames plus half an STFT window plus the interpolation step. The
compute per chunk is measured by `benchmarks/bench_stream.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError


@dataclass
class StreamInfo:
    sample_rate: int
    fps: float
    targets: list[str]
    lookahead_frames: int
    lookahead_ms: float  # algorithmic latency: audio needed after a frame's own time
    style: str


class Streamer:
    """One live stream: `push(samples) -> weights (n, 1 + K)`, `end() -> the last frames`."""

    def __init__(self, model, ckpt, style: str | None = None):
        from vocagan.prep.features import StreamingFeatures

        if getattr(model.cfg, "lookahead", -1) < 0:
            raise VocaganError(
                f"this {ckpt.model_name} model sees the whole clip (model.lookahead=-1) and cannot stream; "
                "train a streaming model, e.g. --config configs/streaming.yaml (model.lookahead=2)",
                ckpt.path,
            )
        self.model, self.ckpt = model, ckpt
        styles = ckpt.styles
        if style is not None and style not in styles:
            raise VocaganError(f"unknown style '{style}'; valid: {', '.join(styles)}", ckpt.path)
        self.style = style or styles[0]
        self.features = StreamingFeatures(ckpt.features, ckpt.fps)
        self.state = model.stream_start(ckpt.style_index(self.style))
        self.frames_out = 0
        k = model.motion_dim
        lookahead = int(model.cfg.lookahead)
        self.info = StreamInfo(
            sample_rate=int(ckpt.features.sample_rate),
            fps=float(ckpt.fps),
            targets=["mean"] + [f"pc{i + 1:02d}" for i in range(k)],
            lookahead_frames=lookahead,
            lookahead_ms=1000.0 * (lookahead / ckpt.fps) + self.features.lookahead_ms,
            style=self.style,
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, style: str | None = None) -> Streamer:
        from vocagan.checkpoint import load_checkpoint

        model, ckpt = load_checkpoint(Path(checkpoint), device="cpu")
        return cls(model, ckpt, style)

    def _weights(self, coefs: np.ndarray) -> np.ndarray:
        self.frames_out += len(coefs)
        return np.concatenate([np.ones((len(coefs), 1), np.float32), coefs.astype(np.float32)], axis=1)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Mono float samples in [-1, 1] at `info.sample_rate` -> the frames that became final (n, 1 + K)."""
        feats = self.features.push(np.asarray(samples, np.float32))
        return self._weights(self.model.stream_step(self.state, feats))

    def end(self) -> np.ndarray:
        """The stream is over: the remaining frames (their future taken as the last audio frame, as
        offline inference does at the end of a clip)."""
        feats = self.features.end()
        coefs = self.model.stream_step(self.state, feats)
        return self._weights(np.concatenate([coefs, self.model.stream_end(self.state)]))
