"""prep/phonetic.py: PocketSphinx phone recognition as per-frame features, and forced alignment
(how the real recordings of the acceptance check were labelled)."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan.config import FeatureConfig
from vocagan.errors import VocaganError

pytest.importorskip("pocketsphinx")
from vocagan.prep import phonetic
from vocagan.prep.features import feature_dim, features_at_fps

ARCTIC_TEXT = "he turned sharply and faced gregson across the table"


def test_silence_is_silence_and_frames_cover_the_audio():
    quiet = 1e-3 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)  # a quiet room
    ids = phonetic.phone_frames(quiet, 16000)
    assert ids.shape == (100,) and set(ids.tolist()) == {phonetic.PHONE_INDEX["sil"]}
    assert (
        phonetic.phone_frames(np.zeros(100, np.float32), 8000).tolist() == [phonetic.PHONE_INDEX["sil"]] * 2
    )  # 12.5 ms


def test_phonetic_features_alone_and_beside_logmel(speech_like):
    x, sr = speech_like(2.0, 22050), 22050
    ph = FeatureConfig(kind="phonetic")
    both = FeatureConfig(kind="phonetic", phonetic_logmel=True)
    a, b = features_at_fps(x, sr, ph, 30, 60), features_at_fps(x, sr, both, 30, 60)
    assert a.shape == (60, feature_dim(ph)) == (60, len(phonetic.PHONES))
    assert b.shape == (60, feature_dim(both)) == (60, 80 + len(phonetic.PHONES))
    assert np.allclose(a.sum(1), 1.0) and (a >= 0).all()  # interpolated one-hots
    assert np.array_equal(b[:, 80:], a)


def test_forced_alignment_of_the_arctic_recording(shared_data):
    from vocagan.formats.audio import load_audio

    x, sr = load_audio(shared_data / "audio" / "cmu_arctic_a0009.wav")
    labels = phonetic.align(x, sr, ARCTIC_TEXT)
    phones = [p for _, _, p, _ in labels]
    assert phones[0] == phones[-1] == "sil" and phones.count("p") == 1 and phones.count("b") == 1
    assert [w for *_, w in labels if w not in ("<sil>", "</s>", "<s>")][:2] == ["he", "he"]
    # CMU ARCTIC's own labels: /p/ of "sharply" at 0.815-0.905 s, /b/ of "table" at 2.680-2.750 s
    (p,) = [(s, e) for s, e, ph, _ in labels if ph == "p"]
    (b,) = [(s, e) for s, e, ph, _ in labels if ph == "b"]
    assert abs(p[0] - 0.815) < 0.04 and abs(p[1] - 0.905) < 0.04
    assert abs(b[0] - 2.680) < 0.04 and abs(b[1] - 2.750) < 0.04


def test_unknown_word_is_named(speech_like):
    with pytest.raises(VocaganError, match="not in the pronunciation dictionary: zzyzzxq"):
        phonetic.align(speech_like(1.0, 16000), 16000, "hello zzyzzxq")


@pytest.mark.slow
def test_a_phonetic_model_trains_and_animates(tiny_corpus, tmp_path, cache_dir, one_thread):
    from vocagan.cli import main

    sets = [
        "--set",
        "features.kind=phonetic",
        "--set",
        "features.phonetic_logmel=true",
        "--model",
        "transformer",
        "--set",
        "model.d_model=16",
        "--set",
        "model.n_heads=2",
        "--set",
        "model.n_layers=1",
    ]
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_corpus), "--out", str(run), "--epochs", "1", *sets]) == 0
    wav = sorted((tiny_corpus / "wav").glob("*.wav"))[0]
    assert (
        main(
            [
                "animate",
                "--checkpoint",
                str(run / "best.pt"),
                "--audio",
                str(wav),
                "--out",
                str(tmp_path / "a"),
                "--no-video",
            ]
        )
        == 0
    )
    verts = np.load(next((tmp_path / "a").glob("*.npy")))
    assert np.isfinite(verts).all() and len(verts) > 10
