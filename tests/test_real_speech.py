"""The labelled real recordings (tests/data/real_speech/, benchmarks/real_speech.py): the manifest and
our forced-alignment labels are well formed, cover every recording, and agree with CMU ARCTIC's own
labels where those exist; recordings are checked against their sha256 when present (the shared
reference files; the pocketsphinx sdist members only when already fetched: tests never download)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import soundfile as sf

from vocagan.prep.phonetic import PHONES  # the recogniser's phone set: labels use it


def _load(repo, name):
    spec = importlib.util.spec_from_file_location(name, repo / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rs(repo):
    return _load(repo, "real_speech")


@pytest.fixture(scope="module")
def accept(repo):
    return _load(repo, "accept_real_speech")


def test_manifest_and_labels(rs, accept):
    recs = rs.recordings()
    assert len(recs) >= 8 and len({r.id for r in recs}) == len(recs)
    bilabials = 0
    for r in recs:
        assert r.source == "shared" or r.source.startswith("pypi:"), r.id
        assert len(r.sha256) == 64 and r.licence and r.transcript and r.text == r.text.lower(), r.id
        labels = accept.read_lab(r.lab)
        assert labels[0][0] == 0.0 and labels[0][2] == labels[-1][2] == "sil", r.id
        assert all(p in PHONES for *_, p in labels), r.id
        assert all(a[1] == pytest.approx(b[0]) and a[0] < a[1] for a, b in zip(labels, labels[1:], strict=False)), r.id
        n = sum(accept.phone_kind(p) == "bilabial" for *_, p in labels)
        assert n >= 1, f"{r.id}: no bilabial to judge"
        bilabials += n
    assert bilabials >= 30


def test_labels_span_every_recording_at_hand(rs, accept):
    """Recordings already here (shared files, a fetched sdist): sha256 as recorded, labels to the end."""
    checked = 0
    for r in rs.recordings():
        at_hand = (rs.SHARED / r.member).is_file() if r.source == "shared" else (rs.cache_root() / "sdist").is_dir()
        if not at_hand:
            continue
        path = rs.audio_path(r)  # verifies the sha256
        assert abs(accept.read_lab(r.lab)[-1][1] - sf.info(str(path)).duration) < 0.05, r.id
        checked += 1
    if not checked:
        pytest.skip("no recording at hand (../shared/data absent, pocketsphinx sdist not fetched)")


def test_our_arctic_labels_agree_with_cmu_arctics_own(rs, accept, shared_data):
    ours = accept.read_lab(rs.LABELS / "cmu_arctic_a0009_phone.lab")
    theirs = accept.read_lab(shared_data / "audio" / "cmu_arctic_a0009_phone.lab")
    alias = {"ax": "ah"}
    assert [p for *_, p in ours] == [alias.get(p, p) for *_, p in theirs]  # the same 40 phones in order
    err = np.abs(np.array([s for s, *_ in ours]) - np.array([s for s, *_ in theirs]))[1:] * 1000
    assert np.median(err) <= 15 and err.max() <= 50, err  # ms; measured: median 10, max 45
