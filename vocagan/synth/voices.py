"""Voices beyond the formant synthesiser, for the built-in corpus (`vocagan synth --voices festival
--channel`): sentences spoken by Debian's Festival voices, and random recording channels.

- `festival_sentence(rng, target_s, voice)`: random words of Festival's lexicon spoken by a voice
  built from recordings of a real speaker (diphone or HTS voice); Festival reports each segment's
  exact end time, so the sentence's mouth motion (`speech.motion_coefficients`) is timed like the
  formant voice's. Festival phones map to the formant voice's phones (`FESTIVAL_PHONES`), whose
  viseme targets they share.
- `channel(x, sr, rng)`: microphone colour, room reverberation, background noise, a codec and a
  level change, drawn at random.

Both are opt-in: on the demo recipe they made the built-in test split and the real recordings worse
(docs/experiments.md), so the default corpus is the formant voice alone. All randomness comes from
the `rng` passed in.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import butter, sosfilt

from vocagan.synth.speech import PHONES, Segment, _band, _rms, _to_rms

# Debian's Festival voices are built from recordings of real speakers (diphone and HTS voices), and
# Festival reports every segment's exact end time, so their sentences get mouth motion timed like the
# formant voice's. English voices only; the project's setup installs them where it can (root + apt).
FESTIVAL_VOICES = {  # Festival voice -> Debian package
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
FESTIVAL_WORDS = "/usr/share/festival/dicts/wsj.wp39.poslexR"  # festlex-poslex: the words to say
# Festival's US phone set (radio) -> the phone whose viseme targets it shares
FESTIVAL_PHONES = {
    "aa": "a",
    "ae": "a",
    "ah": "@",
    "ao": "o",
    "aw": "a",
    "ax": "@",
    "axr": "@",
    "ay": "a",
    "eh": "e",
    "er": "@",
    "ey": "e",
    "ih": "i",
    "ix": "i",
    "iy": "i",
    "ow": "o",
    "oy": "o",
    "uh": "u",
    "uw": "u",
    "w": "u",
    "y": "i",
    "b": "b",
    "p": "p",
    "m": "m",
    "em": "m",
    "f": "f",
    "v": "v",
    "th": "t",
    "dh": "d",
    "s": "s",
    "z": "z",
    "sh": "sh",
    "zh": "sh",
    "ch": "sh",
    "jh": "sh",
    "t": "t",
    "d": "d",
    "dx": "d",
    "k": "k",
    "g": "g",
    "n": "n",
    "en": "n",
    "nx": "n",
    "ng": "n",
    "l": "l",
    "el": "l",
    "r": "r",
    "hh": "@",
    "pau": "sil",
    "h#": "sil",
    "brth": "sil",
}
FESTIVAL_SHARE = 0.5  # training sentences spoken by a Festival voice (when installed)
STOP_CLOSURE = 0.75  # a Festival stop segment: closure for this share, then the release


@functools.lru_cache(maxsize=1)
def festival_voices() -> tuple[str, ...]:
    """The Festival voices installed here (empty without the `festival` program)."""
    import shutil
    from pathlib import Path

    if shutil.which("festival") is None:
        return ()
    roots = [Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")]
    found = {p.name for r in roots if r.is_dir() for p in r.glob("*/*") if p.is_dir()}
    return tuple(v for v in FESTIVAL_VOICES if v in found)


@functools.lru_cache(maxsize=1)
def festival_words() -> tuple[str, ...]:
    """Common plain words of Festival's part-of-speech lexicon (~2000)."""
    import re

    words = []
    with open(FESTIVAL_WORDS, encoding="latin-1") as f:
        for line in f:
            m = re.match(r'\("([a-z]+)" \(\((.*)\) \) \(\) \)', line.strip())
            if m and 2 <= len(m.group(1)) <= 10 and max(float(x) for x in re.findall(r"-?\d+\.\d+", m.group(2))) > -7:
                words.append(m.group(1))
    return tuple(words)


def festival_sentence(rng: np.random.Generator, target_s: float, voice: str) -> tuple[list[Segment], np.ndarray, int]:
    """A random sentence of ~target_s seconds spoken by a Festival voice -> (timeline in the formant
    voice's phone set, float32 samples, sample rate). Raises RuntimeError when Festival fails."""
    import subprocess
    import tempfile
    from pathlib import Path

    import soundfile as sf

    words = festival_words()
    n_words = max(2, int(round(target_s * rng.uniform(1.8, 2.6))))
    text = " ".join(words[int(i)] for i in rng.integers(len(words), size=n_words))
    with tempfile.TemporaryDirectory(prefix="vocagan-festival-") as tmp:
        wav, segs = Path(tmp) / "s.wav", Path(tmp) / "s.segs"
        script = (
            f'(voice_{voice})\n(set! utt (Utterance Text "{text}."))\n(utt.synth utt)\n'
            f'(utt.save.wave utt "{wav}" \'riff)\n(utt.save.segs utt "{segs}")\n'
        )
        (Path(tmp) / "s.scm").write_text(script)
        done = subprocess.run(["festival", "-b", str(Path(tmp) / "s.scm")], capture_output=True, timeout=60)
        if done.returncode != 0 or not wav.is_file() or not segs.is_file():
            raise RuntimeError(f"festival ({voice}) failed: {done.stderr.decode(errors='replace')[:200]}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        ends = [ln.split() for ln in segs.read_text().splitlines() if ln and not ln.startswith("#")]
    audio = audio[:, 0]
    timeline: list[Segment] = []
    t0 = 0.0
    for end, _, phone in ends:
        p = FESTIVAL_PHONES.get(phone, "sil")
        t1 = float(end)
        if t1 <= t0:
            continue
        if p == "sil" and timeline and timeline[-1].phone == "sil":
            timeline[-1].end = t1
        else:
            release = t0 + STOP_CLOSURE * (t1 - t0) if PHONES[p].kind == "stop" else None
            timeline.append(Segment(p, t0, t1, release=release))
        t0 = t1
    if not timeline or timeline[0].phone != "sil":
        timeline.insert(0, Segment("sil", 0.0, 0.0))
    duration = len(audio) / sr
    if timeline[-1].end < duration:
        if timeline[-1].phone == "sil":
            timeline[-1].end = duration
        else:
            timeline.append(Segment("sil", timeline[-1].end, duration))
    return timeline, audio.astype(np.float32), int(sr)


# ----------------------------------------------------------------------------- channel variation
CHANNEL_SHARE = 0.7  # training sentences that go through a random recording channel


def channel(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A random recording channel: microphone colour (tilt and a presence band, +-6 dB), then maybe
    room reverberation (RT60 0.15-0.6 s), background noise (10-35 dB SNR, white to brown), a codec
    (telephone band + 8-bit mu-law, or a 4-7 kHz low-pass) and a level change (-20..0 dB)."""
    from scipy.signal import fftconvolve

    x = np.asarray(x, np.float64)
    peak = float(np.abs(x).max()) or 1.0
    # microphone colour: low and high bands up or down by up to 6 dB, a presence peak or dip
    low = sosfilt(butter(2, 300.0, btype="lowpass", fs=sr, output="sos"), x)
    high = sosfilt(butter(2, min(3000.0, 0.4 * sr), btype="highpass", fs=sr, output="sos"), x)
    mid = sosfilt(_band(1500.0, 4000.0, sr), x)
    x = (
        x
        + low * (10 ** (rng.uniform(-6, 6) / 20) - 1)
        + high * (10 ** (rng.uniform(-6, 6) / 20) - 1)
        + mid * (10 ** (rng.uniform(-4, 4) / 20) - 1)
    )
    if rng.random() < 0.5:  # room: exponentially decaying noise tail after the direct path
        rt60 = rng.uniform(0.15, 0.6)
        t = np.arange(int(rt60 * sr)) / sr
        tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        tail[: int(0.003 * sr)] = 0.0
        rir = np.concatenate(
            [[1.0], tail[1:] * 10 ** (-rng.uniform(0.0, 12.0) / 20) / max(_rms(tail), 1e-9) / np.sqrt(len(t))]
        )
        x = fftconvolve(x, rir)[: len(x)]
    if rng.random() < 0.6:  # background noise, spectral slope 0 (white) .. -2 (brown)
        n = rng.standard_normal(len(x))
        spec = np.fft.rfft(n)
        f = np.maximum(np.fft.rfftfreq(len(n), 1.0 / sr), 20.0)
        noise = np.fft.irfft(spec * f ** (-rng.uniform(0.0, 1.0)), len(n))
        x = x + _to_rms(noise, _rms(x) * 10 ** (-rng.uniform(10.0, 35.0) / 20), noise)
    r = rng.random()
    if r < 0.15:  # telephone: 300-3400 Hz, 8-bit mu-law
        x = sosfilt(_band(300.0, 3400.0, sr), x)
        m = np.abs(x).max() or 1.0
        mu = np.sign(x / m) * np.log1p(255 * np.abs(x / m)) / np.log(256)
        x = np.sign(mu) * np.expm1(np.abs(np.round(mu * 127) / 127) * np.log(256)) / 255 * m
    elif r < 0.35:  # band-limited (low-rate codecs)
        x = sosfilt(butter(6, min(rng.uniform(4000.0, 7000.0), 0.45 * sr), btype="lowpass", fs=sr, output="sos"), x)
    x = x / (np.abs(x).max() + 1e-9) * peak * 10 ** (-rng.uniform(0.0, 20.0) / 20)
    return x.astype(np.float32)
