"""Fixtures for the preprocessing tests: a hand-made micro corpus (12 subjects with the real names x
sentences 21-22, rank-4 mouth motion on a small head, 16 kHz noise audio), its config, and its
prepared data (built once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vocagan.config import TEST_SUBJECTS, TRAIN_SUBJECTS, VAL_SUBJECTS, Config

SR = 16000


def _head(n_theta: int = 24, n_phi: int = 20) -> np.ndarray:
    """A small head-shaped point cloud (metres, +y up, +z forward) with a nose and a mouth cavity."""
    th, ph = np.meshgrid(np.linspace(0, 2 * np.pi, n_theta, endpoint=False), np.linspace(0.1, np.pi - 0.1, n_phi))
    pts = np.stack([0.08 * np.sin(ph) * np.sin(th), 0.11 * np.cos(ph), 0.09 * np.sin(ph) * np.cos(th)], -1)
    pts = pts.reshape(-1, 3)
    pts[:, 2] += 0.03 * np.exp(-((pts[:, 0] / 0.015) ** 2 + ((pts[:, 1] + 0.005) / 0.025) ** 2)) * (pts[:, 2] > 0)
    cavity = np.array([[dx, -0.04, 0.05] for dx in (-0.006, -0.002, 0.002, 0.006)])
    return np.concatenate([pts, cavity]).astype(np.float32)


def _make_micro_corpus(
    out: Path, seed: int = 0, val_modes_scale: float = 1.0, short_audio: int = 2, deepspeech: bool = True
) -> Path:
    """12 subjects (the real names) x sentences 21-22, rank-4 mouth motion, 16 kHz noise audio.
    One sequence's audio (first train subject, sentence21) is `short_audio` frames (at 60 fps)
    shorter than its mesh."""
    from vocagan.formats.vocaset_writer import VocasetWriter

    rng = np.random.default_rng(seed)
    base = _head()
    mouth_centre = np.array([0.0, -0.04, 0.06])
    weight = np.exp(-((base - mouth_centre) ** 2).sum(1) / 0.03**2)[:, None]  # (V, 1)
    modes = rng.standard_normal((4, len(base), 3)) * weight * 0.004  # (4, V, 3)
    with VocasetWriter(out, n_vertices=len(base)) as w:
        for s, subject in enumerate(TRAIN_SUBJECTS + VAL_SUBJECTS + TEST_SUBJECTS):
            template = base + rng.normal(0, 0.001, 3).astype(np.float32)
            w.add_subject(subject, template)
            scale = val_modes_scale if subject in VAL_SUBJECTS else 1.0
            for sentence in (21, 22):
                t60 = int(rng.integers(48, 80))
                t = np.arange(t60) / 60.0
                amps = np.stack([np.sin(2 * np.pi * (1.0 + j) * t + rng.uniform(0, 6)) for j in range(4)], 1)
                verts = template + scale * np.einsum("tj,jvc->tvc", amps * [1.0, 0.6, 0.3, 0.1], modes)
                n_audio = t60 - (short_audio if (s, sentence) == (0, 21) else 0)
                audio = (rng.standard_normal(int(n_audio * SR / 60)) * 0.1).astype(np.float32)
                ds = rng.standard_normal((n_audio, 16, 29)).astype(np.float32) if deepspeech else None
                w.add_sequence(subject, sentence, verts.astype(np.float32), audio, SR, ds)
    return out


def _micro_config(root: Path, cache: Path, **prep) -> Config:
    cfg = Config()
    cfg.data.root = str(root)
    cfg.data.train_sentences = cfg.data.val_sentences = cfg.data.test_sentences = [21, 22]
    cfg.prep.cache_dir = str(cache)
    for k, v in prep.items():
        setattr(cfg.prep, k, v)
    return cfg


@pytest.fixture(scope="session")
def make_micro_corpus():
    """Factory: make_micro_corpus(out, seed=0, val_modes_scale=1.0, short_audio=2, deepspeech=True) -> out,
    a VOCASET folder of 12 subjects x sentences 21-22 (the same data for the same arguments)."""
    return _make_micro_corpus


@pytest.fixture(scope="session")
def micro_config():
    """Factory: micro_config(root, cache, **prep) -> Config reading sentences 21-22 of `root` into
    the prepared-data cache `cache`, with `prep.<key>` set from the keyword arguments."""
    return _micro_config


@pytest.fixture(scope="session")
def micro_corpus(tmp_path_factory) -> Path:
    """The default micro corpus; read-only (copy or build another one to change it)."""
    return _make_micro_corpus(tmp_path_factory.mktemp("micro"))


@pytest.fixture(scope="session")
def micro_prepared(micro_corpus, tmp_path_factory):
    """`prepare` of the micro corpus with the default config (a Prepared; do not modify it)."""
    from vocagan.prep.prepare import prepare

    return prepare(_micro_config(micro_corpus, tmp_path_factory.mktemp("micro_cache")))
