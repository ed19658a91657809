"""vocagan.synth.speech: timelines (durations, phones, determinism), the synthesised audio (pitch,
frication, quiet silence), and what makes it look like real recordings to a model (SYNTH_VERSION 2):
energy above 3 kHz in vowels (F4/F5 + aspiration), a low-frequency voice bar in voiced closures,
aspiration after voiceless bursts, and a hum floor in silence. Version 1 failed the first three
(measured: vowel 3-6 kHz share median -55 dB, voiced-closure low/high ratio down to 10 dB, silence
floor white)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from vocagan.synth import speech

SR = 16000


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    """Energy (dB) of x between lo and hi Hz (Hann-windowed periodogram)."""
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(power[(f >= lo) & (f < hi)].sum() + 1e-20))


# ----------------------------------------------------------------------------- timeline + audio
def test_timeline_durations_phones_and_determinism():
    a = speech.make_timeline(np.random.default_rng(5), 3.0, 1.0)
    b = speech.make_timeline(np.random.default_rng(5), 3.0, 1.0)
    assert [(s.phone, s.start, s.end) for s in a] == [(s.phone, s.start, s.end) for s in b]
    assert a[0].phone == "sil" and a[-1].phone == "sil" and a[0].start == 0.0
    assert all(x.end == pytest.approx(y.start) for x, y in pairwise(a))
    assert 2.5 < a[-1].end < 3.6
    for seg in a[1:-1]:
        assert seg.phone in speech.PHONES
        if seg.phone != "sil":
            assert 0.045 <= seg.end - seg.start <= 0.3
    fast = speech.make_timeline(np.random.default_rng(5), 3.0, 1.2)
    slow = speech.make_timeline(np.random.default_rng(5), 3.0, 0.85)
    mean_dur = lambda tl: np.mean([s.end - s.start for s in tl if s.phone != "sil"])  # noqa: E731
    assert mean_dur(fast) < mean_dur(slow)


def test_synthesised_audio_has_pitch_formant_noise_and_bursts():
    rng = np.random.default_rng(0)
    timeline = speech.make_timeline(rng, 4.0, 1.0)
    voice = speech.Voice(f0=120.0, sample_rate=16000, gain=0.6)
    x = speech.synthesize(timeline, voice, rng)
    assert x.dtype == np.float32 and abs(len(x) - timeline[-1].end * 16000) <= 1
    assert np.isfinite(x).all() and np.abs(x).max() == pytest.approx(0.6, abs=0.01)
    sr = 16000
    vowels = [s for s in timeline if s.phone in speech.VOWELS and s.end - s.start > 0.09]
    assert vowels
    for s in vowels[:3]:  # pitch near f0 (declination, accents)
        seg = x[int((s.start + 0.02) * sr) : int((s.end - 0.02) * sr)].astype(np.float64)
        ac = np.correlate(seg, seg, "full")[len(seg) - 1 :]
        lag = 40 + int(np.argmax(ac[40:320]))  # 50-400 Hz
        assert 80 < sr / lag < 170
    fric = [s for s in timeline if s.phone == "s"]
    for s in fric[:2]:  # /s/: energy high in the spectrum
        q = (s.end - s.start) / 4  # its middle half
        seg = x[int((s.start + q) * sr) : int((s.end - q) * sr)]
        spec = np.abs(np.fft.rfft(seg)) ** 2
        freqs = np.fft.rfftfreq(len(seg), 1 / sr)
        assert (spec * freqs).sum() / spec.sum() > 3000
    sil = x[: int((timeline[0].end - 0.05) * sr)]
    assert np.sqrt(np.mean(sil**2)) < 1e-3  # leading silence is quiet


# ----------------------------------------------------------------------------- what a model hears
@pytest.fixture(scope="module")
def sentences():
    """Six 4-second sentences from low and high voices: [(timeline, samples float64)]."""
    out = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        timeline = speech.make_timeline(rng, 4.0, 1.0)
        voice = speech.Voice(
            f0=120.0 if seed % 2 else 210.0, formant_scale=1.0 if seed % 2 else 1.15, sample_rate=SR, gain=0.6
        )
        out.append((timeline, speech.synthesize(timeline, voice, rng).astype(np.float64)))
    return out


def cut(x, a, b):
    return x[int(a * SR) : int(b * SR)]


def test_vowels_have_energy_above_3khz(sentences):
    share = [
        band_db(seg, 3000, 6000) - band_db(seg, 0, 8000)
        for tl, x in sentences
        for s in tl
        if s.phone in speech.VOWELS and s.end - s.start > 0.08
        for seg in [cut(x, s.start + 0.02, s.end - 0.02)]
    ]
    assert len(share) > 30
    assert -42 < np.median(share) < -15  # real vowels: ~-25..-40 dB; version 1: -55 dB


def test_voiced_closures_carry_a_low_frequency_voice_bar(sentences):
    checked = 0
    for tl, x in sentences:
        vowel_rms = np.sqrt(
            np.mean(np.concatenate([cut(x, s.start, s.end) for s in tl if s.phone in speech.VOWELS]) ** 2)
        )
        for s in tl:
            if s.phone in ("b", "d", "g") and s.release - s.start > 0.05:
                closure = cut(x, s.start + 0.015, s.release - 0.01)
                assert band_db(closure, 0, 400) - band_db(closure, 1000, 8000) > 22  # low-passed
                level = 20 * np.log10(np.sqrt(np.mean(closure**2)) / vowel_rms)
                assert -40 < level < -5, (s, level)  # present, below the vowels
                checked += 1
    assert checked >= 5


def test_voiceless_bursts_are_followed_by_aspiration(sentences):
    rises = []
    for tl, x in sentences:
        for s in tl:
            if s.phone in ("p", "t", "k"):
                closure, after = cut(x, s.start + 0.015, s.release - 0.01), cut(x, s.release + 0.008, s.end)
                if len(closure) > 100 and len(after) > 100:
                    rises.append(10 * np.log10(np.mean(after**2) / np.mean(closure**2)))
    assert len(rises) > 10 and min(rises) > 10


def test_silence_has_a_quiet_hum_floor(sentences):
    for tl, x in sentences:
        lead = cut(x, 0.0, tl[0].end - 0.05)
        rms = np.sqrt(np.mean(lead**2))
        assert 0 < rms < 0.6 * 10 ** (-50 / 20)  # below -50 dB re the 0.6 peak, never digital zero
        assert band_db(lead, 0, 200) - band_db(lead, 0, 8000) > -3  # mostly hum below 200 Hz (as CMU ARCTIC)


def test_same_rng_same_audio_and_version_is_recorded():
    a = speech.synthesize(
        speech.make_timeline(np.random.default_rng(1), 2.0, 1.0), speech.Voice(), np.random.default_rng(2)
    )
    b = speech.synthesize(
        speech.make_timeline(np.random.default_rng(1), 2.0, 1.0), speech.Voice(), np.random.default_rng(2)
    )
    assert np.array_equal(a, b) and speech.SYNTH_VERSION >= 2


def test_corpus_records_what_wrote_it_and_pipeline_rewrites_another(tiny_corpus, tmp_path, monkeypatch):
    """The stamp holds the synthesiser and face versions, scale, seed and template mesh; a corpus whose
    stamp differs in any of them (an old one, or another template) is written again."""
    from vocagan import pipeline
    from vocagan.synth import corpus as synthetic

    stamp = (tiny_corpus / synthetic.VERSION_FILE).read_text().strip()
    assert stamp == synthetic.corpus_stamp("tiny", 0) and f"speech {speech.SYNTH_VERSION}" in stamp
    calls = []

    def fake_generate(out, scale, seed, template_ply, **_):
        calls.append((out, template_ply))
        return _Summary()

    monkeypatch.setattr(synthetic, "generate", fake_generate)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("data_verts.npy", "templates.pkl"):
        (corpus / name).write_bytes(b"x")
    pipeline.builtin_corpus(corpus)  # no stamp: an old corpus
    assert calls == [(corpus, None)]
    (corpus / synthetic.VERSION_FILE).write_text(synthetic.corpus_stamp("small", 0) + "\n")
    assert pipeline.builtin_corpus(corpus) == corpus and len(calls) == 1  # the same: reused
    mesh = tmp_path / "template.ply"
    mesh.write_bytes(b"ply")
    pipeline.builtin_corpus(corpus, template_ply=mesh)  # another face: written again
    assert calls[-1] == (corpus, mesh) and len(calls) == 2


class _Summary:
    def summary(self) -> str:
        return "corpus"
