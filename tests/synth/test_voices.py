"""synth/voices.py: Festival sentences with their exact segment timings (skipped without Festival),
random recording channels, and the corpus options that use them (opt-in: the default corpus is
unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from vocagan.synth import voices
from vocagan.synth.speech import PHONES


@pytest.fixture(scope="module")
def festival_voice():
    installed = voices.festival_voices()
    if not installed:
        pytest.skip("no Festival voice installed (Debian: festival festvox-kallpc16k ...)")
    return installed[0]


def test_festival_sentence_has_a_timeline_in_the_formant_phone_set(festival_voice):
    timeline, audio, sr = voices.festival_sentence(np.random.default_rng(0), 2.5, festival_voice)
    assert sr >= 16000 and audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 0.01
    assert timeline[0].phone == "sil" and timeline[0].start == 0.0
    assert timeline[-1].end == pytest.approx(len(audio) / sr)
    assert all(s.phone in PHONES for s in timeline)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(timeline[:-1], timeline[1:], strict=True))
    stops = [s for s in timeline if PHONES[s.phone].kind == "stop"]
    assert all(s.start < s.release < s.end for s in stops)
    again = voices.festival_sentence(np.random.default_rng(0), 2.5, festival_voice)
    assert np.array_equal(again[1], audio)  # same draws, same sentence


def test_channel_keeps_length_and_is_seeded(tone):
    x = tone(220.0, 1.0, 16000) + 0.01 * np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    outs = [voices.channel(x, 16000, np.random.default_rng(k)) for k in range(6)]
    assert all(o.shape == x.shape and o.dtype == np.float32 and np.isfinite(o).all() for o in outs)
    assert all(np.abs(o).max() <= np.abs(x).max() + 1e-6 for o in outs)  # level changes only go down
    assert np.array_equal(outs[0], voices.channel(x, 16000, np.random.default_rng(0)))
    assert not np.allclose(outs[0], outs[1])


def test_corpus_options_change_training_audio_only(tmp_path, festival_voice):
    from vocagan.synth.corpus import generate

    plain = generate(tmp_path / "plain", scale="tiny")
    varied = generate(tmp_path / "varied", scale="tiny", voices="festival", channel=True)
    assert "Festival" in varied.voices and "channel" in varied.voices and plain.voices == "formant"
    assert (tmp_path / "varied" / "synth_version.txt").read_text().split()[1:] != []
    import soundfile as sf

    def audio(root, name):
        return sf.read(str(root / "wav" / name))[0]

    test = "FaceTalk_170809_00138_TA_sentence21.wav"  # a test subject: untouched
    assert np.array_equal(audio(tmp_path / "plain", test), audio(tmp_path / "varied", test))
    train = "FaceTalk_170728_03272_TA_sentence01.wav"
    assert not np.array_equal(audio(tmp_path / "plain", train), audio(tmp_path / "varied", train))


def test_unknown_voices_is_refused(tmp_path):
    from vocagan.errors import VocaganError
    from vocagan.synth.corpus import generate

    with pytest.raises(VocaganError, match="voices must be one of formant, festival, got 'robot'"):
        generate(tmp_path / "x", scale="tiny", voices="robot")
    assert not (tmp_path / "x").exists()  # refused before any output
