"""A learned lip-sync expert for 3-D motion, in the spirit of SyncNet's LSE-D / LSE-C (Chung &
Zisserman 2016; Wav2Lip's evaluation), used by `vocagan.evaluate` to score predictions and ground truth.

Two small temporal convolution encoders map a window of WINDOW frames of audio features and of
mouth motion (at FPS) to unit vectors. They are trained contrastively on the TRAINING split of the
prepared data only: for a motion window at frame t, the audio window at t must be closer than the
audio windows at t + k (k = -MAX_OFFSET..MAX_OFFSET, k != 0: the same sentence, shifted) and than
the audio of the other sequences in the batch at t (InfoNCE, temperature TAU). Its own accuracy is
measured on the validation split: how often the true offset is retrieved among the 2*MAX_OFFSET+1
(per window, exactly and within +-1 frame; per sequence from the mean distance curve).

Inputs, so that any model's predictions and the ground truth go through the same path:
- audio: the prepared features (T, F) at their fps, z-scored with the training split's per-feature
  statistics, then each utterance's mean removed (unseen voices differ in level and colour);
- motion: mouth-crop offsets from the template (T, M, 3) in metres at their fps, projected on the
  first N_COMPONENTS principal components of the prepared data (in mm; not whitened, so components
  that hold only measurement noise stay small), divided by one global scale;
- both resampled to FPS (`frames.resample_frames`), so the window and the offsets have one meaning
  in time: WINDOW = 7 frames = 233 ms, MAX_OFFSET = 15 frames = +-0.5 s.

The expert is a model of its own, not a `MotionModel` of the registry: `expert_for(prepared)`
trains it once per prepared data set and caches it beside the prepared cache file, keyed by the
prepared data's fingerprint and EXPERT_VERSION, so every model evaluated on one corpus (all runs
of a `compare`) is scored by the same expert; `load_expert(path)` reads a saved one (evaluate
keeps a copy with each report, so its numbers can be reproduced).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vocagan.errors import VocaganError
from vocagan.frames import resample_frames
from vocagan.utils import atomic_path, log, one_torch_thread, progress

EXPERT_VERSION = 1  # part of the cache name: change it whenever anything below changes the expert
FPS = 30  # the expert's frame rate (inputs are resampled to it)
WINDOW = 7  # frames seen by one embedding: three convolutions of kernel 3 (233 ms at 30 fps)
MAX_OFFSET = 15  # audio shifts searched, +-frames (+-0.5 s; SyncNet: +-15 frames at 25 fps)
N_COMPONENTS = 16  # principal components of the mouth motion the expert sees
DIM = 32  # embedding size
HIDDEN = 128  # channels of the encoders
STEPS = 300  # optimisation steps (the small corpus: ~10 s on one CPU thread)
BATCH = 32  # sequences per step (random crops of CROP frames)
CROP = 64
LR = 2e-3
TAU = 0.1  # InfoNCE temperature
SEED = 0
MIN_FRAMES = WINDOW + 2 * MAX_OFFSET  # shortest sequence (frames at FPS) with one window at every offset


class _Encoder(nn.Module):
    """(B, T, C) -> (B, T - WINDOW + 1, DIM) unit vectors; output row i sees input frames i..i+WINDOW-1."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, HIDDEN, 3),
            nn.GELU(),
            nn.Conv1d(HIDDEN, HIDDEN, 3),
            nn.GELU(),
            nn.Conv1d(HIDDEN, DIM, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x.transpose(1, 2)).transpose(1, 2), dim=-1)


class SyncExpert(nn.Module):
    """The two encoders and the fixed input transforms (stored as buffers, saved with the weights)."""

    audio_mean: torch.Tensor
    audio_std: torch.Tensor
    motion_mean: torch.Tensor
    motion_basis: torch.Tensor
    motion_scale: torch.Tensor

    def __init__(self, audio_dim: int, motion_dim: int):
        super().__init__()
        self.audio = _Encoder(audio_dim)
        self.motion = _Encoder(N_COMPONENTS)
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))
        self.register_buffer("motion_mean", torch.zeros(motion_dim))  # (3M,) metres
        self.register_buffer("motion_basis", torch.zeros(N_COMPONENTS, motion_dim))  # rows orthonormal
        self.register_buffer("motion_scale", torch.ones(()))  # mm

    @property
    def audio_dim(self) -> int:
        return int(self.audio_mean.numel())

    @property
    def motion_dim(self) -> int:
        return int(self.motion_mean.numel())

    # -- inputs (numpy in, tensors at FPS out)
    def audio_input(self, audio: np.ndarray, fps: float) -> torch.Tensor:
        """(T, F) features at fps -> (T', F) at FPS: train-split z-score, utterance mean removed."""
        a = torch.from_numpy(np.asarray(resample_frames(np.asarray(audio, np.float32), fps, FPS), np.float32))
        a = (a - self.audio_mean) / self.audio_std
        return a - a.mean(0, keepdim=True) if len(a) else a

    def motion_input(self, offsets: np.ndarray, fps: float) -> torch.Tensor:
        """(T, M, 3) mouth-crop offsets (metres) at fps -> (T', N_COMPONENTS) at FPS."""
        x = np.asarray(resample_frames(np.asarray(offsets, np.float32), fps, FPS), np.float32)
        flat = torch.from_numpy(x.reshape(len(x), -1))
        if flat.shape[1] != self.motion_dim:
            raise ValueError(f"motion of {flat.shape[1]} values per frame, the expert expects {self.motion_dim}")
        return (flat - self.motion_mean) @ self.motion_basis.T * 1000.0 / self.motion_scale

    # -- embeddings and distances
    @torch.no_grad()
    def embed_audio(self, audio: np.ndarray, fps: float) -> np.ndarray:
        """(T, F) at fps -> (T' - WINDOW + 1, DIM): one unit vector per window at FPS."""
        return _embed(self.audio, self.audio_input(audio, fps))

    @torch.no_grad()
    def embed_motion(self, offsets: np.ndarray, fps: float) -> np.ndarray:
        """(T, M, 3) metres at fps -> (T' - WINDOW + 1, DIM)."""
        return _embed(self.motion, self.motion_input(offsets, fps))


def _embed(encoder: nn.Module, x: torch.Tensor) -> np.ndarray:
    if len(x) < WINDOW:
        return np.zeros((0, DIM), np.float32)
    with one_torch_thread():  # the same numbers whatever the caller's thread count
        return encoder(x[None])[0].numpy()


def distances(motion_emb: np.ndarray, audio_emb: np.ndarray, max_offset: int = MAX_OFFSET) -> np.ndarray:
    """(N, 2*max_offset+1): Euclidean distance between motion window t and audio window t + k for
    k = -max_offset..max_offset (column max_offset: k = 0), for the windows t where every shift exists
    (N = min(len) - 2*max_offset; (0, 2*max_offset+1) when the sequence is too short)."""
    n = min(len(motion_emb), len(audio_emb))
    t = np.arange(max_offset, n - max_offset)
    out = np.zeros((len(t), 2 * max_offset + 1))
    for j, k in enumerate(range(-max_offset, max_offset + 1)):
        out[:, j] = np.linalg.norm(motion_emb[t] - audio_emb[t + k], axis=-1)
    return out


# ----------------------------------------------------------------------------- training
def _offsets_and_audio(prepared, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mouth-crop offsets (T, M, 3), audio features (T, F)) of every sequence of a split."""
    out = []
    for i in range(len(prepared.seqs.get(split, []))):
        audio, motion = prepared.sequence(split, i)
        out.append((prepared.decode(np.asarray(motion)), np.asarray(audio)))
    return out


def _logits(m: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """m, a (B, N, DIM) window embeddings of B crops -> (B, n, 2K+1 + B) logits of the anchors t in
    [K, N-K): the audio of the same crop at t + k (the true one at column K), then the other crops'
    audio at t (the crop's own excluded)."""
    b, n, _ = m.shape
    t = torch.arange(MAX_OFFSET, n - MAX_OFFSET)
    shifted = torch.stack([a[:, t + k] for k in range(-MAX_OFFSET, MAX_OFFSET + 1)], 2)  # (B, n, 2K+1, D)
    anchor = m[:, t]  # (B, n, D)
    own = (anchor.unsqueeze(2) * shifted).sum(-1)
    cross = torch.einsum("bnd,cnd->bnc", anchor, a[:, t])
    cross = cross.masked_fill(torch.eye(b, dtype=torch.bool)[:, None, :], float("-inf"))
    return torch.cat([own, cross], -1) / TAU


def train_expert(prepared, steps: int | None = None) -> tuple[SyncExpert, dict]:
    """Train an expert on prepared's training split for `steps` (default STEPS) steps (seeded, on one
    torch thread whatever the caller's setting, so the same data gives the same expert on a machine).
    Returns it in eval mode and its record: what it was trained on, how long it took, its accuracy on
    the validation split."""
    steps = STEPS if steps is None else int(steps)
    t0 = time.perf_counter()
    train = [
        (m, a)
        for m, a in _offsets_and_audio(prepared, "train")
        if len(resample_frames(a, prepared.fps, FPS)) >= MIN_FRAMES
    ]
    if not train:
        raise VocaganError(
            f"no training sequence is long enough for the sync expert ({MIN_FRAMES} frames at {FPS} fps)",
            prepared.path,
        )
    motion_dim = int(prepared.pca_components.shape[1])
    audio_all = np.concatenate([a for _, a in train]).astype(np.float64)
    # one thread: the same expert whatever the caller's thread count, and fast on a loaded CPU (these
    # tensors are small: more threads mostly wait for each other)
    with torch.random.fork_rng(devices=[]), one_torch_thread():
        torch.manual_seed(SEED)
        expert = SyncExpert(prepared.audio_dim, motion_dim)
        basis = np.asarray(prepared.pca_components[:N_COMPONENTS], np.float32)
        k = len(basis)
        expert.motion_basis[:k] = torch.from_numpy(basis)
        expert.motion_mean.copy_(torch.from_numpy(np.asarray(prepared.pca_mean, np.float32)))
        expert.audio_mean.copy_(torch.from_numpy(audio_all.mean(0).astype(np.float32)))
        expert.audio_std.copy_(torch.from_numpy((audio_all.std(0) + 1e-6).astype(np.float32)))
        with torch.no_grad():
            raw = torch.cat([expert.motion_input(m, prepared.fps) for m, _ in train])
            expert.motion_scale.copy_(raw.pow(2).mean().sqrt().clamp_min(1e-8))
            inputs = [(expert.motion_input(m, prepared.fps), expert.audio_input(a, prepared.fps)) for m, a in train]
        opt = torch.optim.AdamW(expert.parameters(), lr=LR, weight_decay=1e-4)
        rng = np.random.default_rng(SEED)
        losses = []
        for _ in progress(range(steps), desc="sync expert", unit="step"):
            pick = rng.integers(0, len(inputs), BATCH)
            n = min(CROP, *(min(len(inputs[i][0]), len(inputs[i][1])) for i in pick))
            starts = [int(rng.integers(0, min(len(inputs[i][0]), len(inputs[i][1])) - n + 1)) for i in pick]
            m = torch.stack([inputs[i][0][s : s + n] for i, s in zip(pick, starts, strict=True)])
            a = torch.stack([inputs[i][1][s : s + n] for i, s in zip(pick, starts, strict=True)])
            logits = _logits(expert.motion(m), expert.audio(a))
            target = torch.full(logits.shape[:2], MAX_OFFSET)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    expert.eval()
    info = {
        "version": EXPERT_VERSION,
        "trained_on": prepared.meta.get("data_fingerprint", ""),
        "train_sequences": len(train),
        "train_frames": int(sum(len(m) for m, _ in train)),
        "steps": steps,
        "final_loss": float(np.mean(losses[-20:])),
        "seconds": round(time.perf_counter() - t0, 1),
        "threads": 1,
        "fps": FPS,
        "window": WINDOW,
        "max_offset": MAX_OFFSET,
        "components": int(k),
        "val": offset_accuracy(expert, _offsets_and_audio(prepared, "val"), prepared.fps),
    }
    return expert, info


def offset_accuracy(expert: SyncExpert, pairs: list[tuple[np.ndarray, np.ndarray]], fps: float) -> dict:
    """How well the expert finds the true offset among the 2*MAX_OFFSET+1 on (offsets, audio) pairs:
    per window, the share whose nearest audio window is the true one (exactly; within +-1 frame); per
    sequence, the share whose mean distance curve is lowest at offset 0. Chance: 1/(2*MAX_OFFSET+1)."""
    hits, near, seq_hits, seqs = 0, 0, 0, 0
    windows = 0
    for offsets, audio in pairs:
        d = distances(expert.embed_motion(offsets, fps), expert.embed_audio(audio, fps))
        if not len(d):
            continue
        best = d.argmin(1) - MAX_OFFSET
        hits += int(np.sum(best == 0))
        near += int(np.sum(np.abs(best) <= 1))
        windows += len(d)
        seq_hits += int(np.argmin(d.mean(0)) == MAX_OFFSET)
        seqs += 1
    nan = float("nan")
    return {
        "windows": windows,
        "window_top1": hits / windows if windows else nan,
        "window_within1": near / windows if windows else nan,
        "sequences": seqs,
        "sequence_top1": seq_hits / seqs if seqs else nan,
        "chance": 1 / (2 * MAX_OFFSET + 1),
    }


# ----------------------------------------------------------------------------- files and the cache
@dataclass
class LoadedExpert:
    expert: SyncExpert
    path: Path  # where it was read from or cached
    sha256: str  # of that file
    info: dict  # train_expert's record

    def describe(self) -> str:
        v = self.info.get("val", {})
        return (
            f"sync expert {self.path.name} (sha256 {self.sha256[:12]}; trained on the training split of "
            f"prepared data {self.info.get('trained_on') or '?'}, {self.info.get('train_sequences')} sequences, "
            f"{self.info.get('steps')} steps, {self.info.get('seconds')} s; validation offset retrieval "
            f"{_pct(v.get('window_top1'))} of windows exact, {_pct(v.get('window_within1'))} within +-1 frame, "
            f"{_pct(v.get('sequence_top1'))} of sequences, chance {_pct(v.get('chance'))})"
        )


def _pct(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def save_expert(path: str | Path, expert: SyncExpert, info: dict) -> Path:
    path = Path(path)
    payload = {
        "format": "vocagan-sync-expert",
        "version": EXPERT_VERSION,
        "audio_dim": expert.audio_dim,
        "motion_dim": expert.motion_dim,
        "state_dict": expert.state_dict(),
        "info": json.dumps(info, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_expert(path: str | Path) -> LoadedExpert:
    """A saved expert (weights only: nothing in the file can run code)."""
    path = Path(path)
    if not path.is_file():
        raise VocaganError("sync expert not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != "vocagan-sync-expert":
            raise ValueError("not a vocagan sync expert")
        if payload.get("version") != EXPERT_VERSION:
            raise ValueError(f"sync expert version {payload.get('version')}, this vocagan reads {EXPERT_VERSION}")
        expert = SyncExpert(int(payload["audio_dim"]), int(payload["motion_dim"]))
        expert.load_state_dict(payload["state_dict"])
        info = json.loads(payload["info"])
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear error
        raise VocaganError(f"unreadable sync expert ({e})", path) from None
    expert.eval()
    return LoadedExpert(expert, path, _sha256(path), info)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_path(prepared) -> Path | None:
    """Where the expert of `prepared` is cached: beside its cache file, named by its fingerprint."""
    if prepared.path is None:
        return None
    fingerprint = prepared.meta.get("data_fingerprint") or Path(prepared.path).stem
    return Path(prepared.path).parent / f"{fingerprint}.sync-expert-v{EXPERT_VERSION}-{STEPS}steps.pt"


def expert_for(prepared) -> LoadedExpert:
    """The expert of a prepared data set: the cached one, or trained now on its training split and cached."""
    path = cache_path(prepared)
    if path is not None and path.is_file():
        try:
            loaded = load_expert(path)
            log(f"[sync expert] using the cached expert {path}")
            return loaded
        except VocaganError as e:
            log(f"warning: {e}; training it again")
    log(f"[sync expert] training the lip-sync expert on the training split ({STEPS} steps)")
    expert, info = train_expert(prepared)
    v = info["val"]
    log(
        f"[sync expert] trained in {info['seconds']} s; validation offset retrieval: {_pct(v['window_top1'])} "
        f"of windows exact, {_pct(v['window_within1'])} within +-1 frame (chance {_pct(v['chance'])})"
    )
    if path is None:
        return LoadedExpert(expert, Path("sync_expert.pt"), "", info)
    save_expert(path, expert, info)
    return LoadedExpert(expert, path, _sha256(path), info)
