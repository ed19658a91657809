"""The torch side of the data: `SequenceDataset` (sequences of one split of a `Prepared`, random
training crops, optional VTLP) and `collate` (padding + mask). No file-format knowledge here."""

from __future__ import annotations

import numpy as np
import torch

from vocagan.errors import VocaganError
from vocagan.prep.prepared import Prepared


class SequenceDataset(torch.utils.data.Dataset):
    """Sequences of one split as dict(audio (T, F), motion (T, K), style, subject, sentence).

    For split "train" with crop_frames > 0, each item is a random window of crop_frames frames
    (the whole sequence when shorter). The window comes from a generator seeded with (seed, epoch,
    index, draw), so a run is reproducible and every epoch sees new windows; call `set_epoch` when
    loading with workers (each worker holds its own copy of the draw counters). Val/test items are
    whole sequences. style = index in prepared.styles for training subjects, -1 for unseen ones.
    vtlp > 0 (train split, log-mel features only): each item's features are warped along frequency
    by a factor drawn uniformly from [1 - vtlp, 1 + vtlp] (`prep.features.vtlp_warp`), seeded like the crops.
    """

    def __init__(self, prepared: Prepared, split: str, crop_frames: int = 0, seed: int = 0, vtlp: float = 0.0):
        if split not in prepared.seqs:
            raise VocaganError(f"unknown split '{split}' (valid: {', '.join(prepared.seqs)})")
        if not 0.0 <= float(vtlp) < 0.5:
            raise VocaganError(f"train.vtlp must be in [0, 0.5), got {vtlp}")
        self.prepared, self.split = prepared, split
        self.crop_frames = int(crop_frames) if split == "train" else 0
        spec = prepared.meta.get("features", {})
        self.vtlp = float(vtlp) if split == "train" and spec.get("kind", "logmel") == "logmel" else 0.0
        if self.vtlp:
            from dataclasses import fields

            from vocagan.config import FeatureConfig

            self.feature_spec = FeatureConfig(**{f.name: spec[f.name] for f in fields(FeatureConfig) if f.name in spec})
        self.seed, self.epoch = int(seed), 0
        self._draws = np.zeros(len(prepared.seqs[split]), np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        """What a resumed run needs to draw the same crops: the per-sequence draw counters."""
        return {"draws": self._draws.copy()}

    def load_state_dict(self, state: dict) -> None:
        draws = np.asarray(state["draws"], np.int64)
        if draws.shape != self._draws.shape:
            raise VocaganError(f"dataset state for {len(draws)} sequences, this split has {len(self._draws)}")
        self._draws = draws.copy()

    def __len__(self) -> int:
        return len(self.prepared.seqs[self.split])

    def __getitem__(self, i: int) -> dict:
        info = self.prepared.seqs[self.split][i]
        audio, motion = self.prepared.sequence(self.split, i)
        if self.vtlp:  # its own stream: the crops stay those of vtlp = 0
            from vocagan.prep.features import vtlp_warp

            alpha = np.random.default_rng([self.seed, self.epoch, i, int(self._draws[i]), 1]).uniform(
                1.0 - self.vtlp, 1.0 + self.vtlp
            )
            audio = vtlp_warp(audio, alpha, self.feature_spec)
        if 0 < self.crop_frames < info.length:
            rng = np.random.default_rng([self.seed, self.epoch, i, int(self._draws[i])])
            self._draws[i] += 1
            start = int(rng.integers(0, info.length - self.crop_frames + 1))
            audio, motion = audio[start : start + self.crop_frames], motion[start : start + self.crop_frames]
        return {
            "audio": torch.from_numpy(np.array(audio, np.float32)),
            "motion": torch.from_numpy(np.array(motion, np.float32)),
            "style": self.prepared.style_index(info.subject),
            "subject": info.subject,
            "sentence": info.sentence,
        }


def collate(items: list[dict]) -> dict:
    """Pad to the longest item: audio (B, T, F), motion (B, T, K), mask (B, T) bool (True on real
    frames), style (B,) long, lengths (B,) long, subject/sentence lists."""
    lengths = torch.tensor([len(x["audio"]) for x in items], dtype=torch.long)
    t = int(lengths.max())
    audio = torch.zeros(len(items), t, items[0]["audio"].shape[-1])
    motion = torch.zeros(len(items), t, items[0]["motion"].shape[-1])
    for b, x in enumerate(items):
        audio[b, : len(x["audio"])] = x["audio"]
        motion[b, : len(x["motion"])] = x["motion"]
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return {
        "audio": audio,
        "motion": motion,
        "mask": mask,
        "style": torch.tensor([x["style"] for x in items], dtype=torch.long),
        "lengths": lengths,
        "subject": [x["subject"] for x in items],
        "sentence": [x["sentence"] for x in items],
    }
