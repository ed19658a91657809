"""Shared fixtures: a tiny synthetic VOCASET corpus (built once per session) and the real reference
files in ../shared/data (tests using them skip cleanly when that folder is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("VOCAGAN_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VOCAGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (FLAME template, FLAME masks, real speech); skip when absent."""
    if not (SHARED_DATA / "flame" / "FLAME_sample.ply").is_file():
        pytest.skip(f"real reference files not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A complete VOCASET-format folder at `--scale tiny` (seconds to build), shared by all tests.
    Tests must not modify it: copy it first when a test needs to corrupt something."""
    from vocagan.synth.corpus import generate

    out = tmp_path_factory.mktemp("tiny_corpus")
    generate(out, scale="tiny", seed=0)
    return out


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An isolated prepared-data cache for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("VOCAGAN_CACHE", str(d))
    return d


@pytest.fixture(scope="module")
def one_thread():
    """Toy-sized models run fastest on one torch thread (and far faster on a loaded machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
