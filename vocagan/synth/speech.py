"""Speech side of the synthetic corpus: one phoneme timeline per sentence drives both the audio
(a source-filter synthesiser) and the mouth motion (coarticulated viseme coefficients).

- `make_timeline(rng, target_s, rate)`: words of CV/CVC/CCV syllables over a small phone set,
  durations ~50-220 ms scaled by the speaking rate, leading/trailing silence, stress and pitch
  accents.
- `synthesize(timeline, voice, rng)`: glottal pulse train (pitch contour, declination, accents,
  jitter, shimmer) through time-varying formant resonators (F1-F3, plus fixed F4/F5) for voiced
  sounds, with pitch-synchronous aspiration noise above ~2.5 kHz; band noise for fricatives;
  closure then a burst (and aspiration) for plosives, with a low-frequency voice bar of random
  level in voiced closures; nasal murmur; smooth amplitude envelopes; a room-noise floor (hum and
  hiss) of random level. The realism items (F4/F5, aspiration, voice bar, noise floor) were added
  because a model trained on this corpus must animate real recordings (see SYNTH_VERSION).
- `motion_coefficients(timeline, style, n_frames, fps, rng)`: per-phone viseme targets (jaw,
  rounding, spread, lip closure, labiodental) blended with dominance functions (Cohen-Massaro
  coarticulation) whose centres lead the sound by the subject's anticipation (~1-2 frames), plus
  blinks and brow raises tied to pitch accents. Columns follow `synth_face.BASIS_NAMES`.

All randomness comes from the `rng` passed in, so a (seed, subject, sentence) triple always gives
the same sentence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import butter, sosfilt


@dataclass(frozen=True)
class Phone:
    kind: str  # vowel | stop | fric | nasal | liquid | sil
    voiced: bool
    formants: tuple = (500, 1500, 2500)  # F1-F3 targets / loci (Hz)
    bandwidths: tuple = (80, 100, 140)  # Hz
    noise: tuple | None = None  # fricative band (lo, hi) Hz, amplitude
    burst: tuple | None = None  # plosive release band (lo, hi) Hz
    jaw: float = 0.3  # viseme targets, 0..1
    round: float = 0.0
    spread: float = 0.0
    close: float = 0.0
    ld: float = 0.0  # lower lip to upper teeth
    loud: float = 1.0


PHONES: dict[str, Phone] = {
    "a": Phone("vowel", True, (730, 1090, 2440), jaw=1.0, spread=0.15, loud=1.0),
    "e": Phone("vowel", True, (530, 1840, 2480), jaw=0.6, spread=0.55, loud=0.9),
    "i": Phone("vowel", True, (270, 2290, 3010), jaw=0.25, spread=1.0, loud=0.75),
    "o": Phone("vowel", True, (570, 840, 2410), jaw=0.65, round=0.8, loud=0.9),
    "u": Phone("vowel", True, (300, 870, 2240), jaw=0.3, round=1.0, loud=0.75),
    "@": Phone("vowel", True, (500, 1500, 2500), jaw=0.45, loud=0.8),
    "p": Phone("stop", False, (300, 800, 2200), burst=(300, 1500), jaw=0.12, close=1.0),
    "b": Phone("stop", True, (300, 800, 2200), burst=(300, 1500), jaw=0.12, close=1.0),
    "m": Phone("nasal", True, (250, 1100, 2200), (60, 300, 400), jaw=0.12, close=1.0, loud=0.45),
    "f": Phone("fric", False, (300, 1200, 2300), noise=((1500, 7500), 0.25), jaw=0.18, ld=1.0),
    "v": Phone("fric", True, (300, 1200, 2300), noise=((1500, 7500), 0.15), jaw=0.18, ld=1.0, loud=0.3),
    "s": Phone("fric", False, (400, 1700, 2600), noise=((4500, 7800), 1.0), jaw=0.12, spread=0.5),
    "z": Phone("fric", True, (400, 1700, 2600), noise=((4500, 7800), 0.5), jaw=0.12, spread=0.5, loud=0.3),
    "sh": Phone("fric", False, (400, 1800, 2500), noise=((2000, 4500), 1.0), jaw=0.18, round=0.6),
    "t": Phone("stop", False, (400, 1700, 2600), burst=(3000, 6500), jaw=0.25),
    "d": Phone("stop", True, (400, 1700, 2600), burst=(3000, 6500), jaw=0.25),
    "k": Phone("stop", False, (400, 2000, 2500), burst=(1500, 3200), jaw=0.35),
    "g": Phone("stop", True, (400, 2000, 2500), burst=(1500, 3200), jaw=0.35),
    "n": Phone("nasal", True, (250, 1700, 2600), (60, 300, 400), jaw=0.25, loud=0.45),
    "l": Phone("liquid", True, (360, 1300, 2700), jaw=0.3, loud=0.55),
    "r": Phone("liquid", True, (420, 1300, 1600), jaw=0.3, round=0.4, loud=0.55),
    "sil": Phone("sil", False, jaw=0.0, loud=0.0),
}
VOWELS, VOWEL_P = ["a", "e", "i", "o", "u", "@"], [0.22, 0.18, 0.18, 0.14, 0.12, 0.16]
ONSETS = ["p", "b", "m", "f", "v", "s", "sh", "z", "t", "d", "k", "g", "n", "l", "r"]
ONSET_P = np.array([8, 7, 9, 6, 5, 10, 4, 4, 10, 8, 8, 4, 9, 7, 7], float) / 106
CODAS = ["n", "m", "s", "z", "t", "d", "k", "l", "r", "f", "v", "sh", "p"]
CLUSTERS = [("s", "p"), ("s", "t"), ("s", "k"), ("p", "l"), ("b", "r"), ("k", "l"), ("g", "r"), ("f", "l")]
VISEMES = ["jaw", "round", "spread", "close", "ld"]

# Bump when `synthesize`/`make_timeline`/`motion_coefficients` produce different output for the same
# inputs (a corpus written by another version holds different audio). 2: F4/F5, aspiration noise,
# low-passed voice bar of random level, hum + hiss floor (real speech has energy above 3 kHz in
# vowels and a strong low-frequency voice bar in /b d g/; version 1 had neither); voiceless-stop
# aspiration through the formants (was: burst-band noise).
SYNTH_VERSION = 2
HIGH_FORMANTS = (3500.0, 4500.0)  # F4, F5 (Hz) of every voiced sound, scaled by the voice's tract length
HIGH_BANDWIDTHS = (250.0, 350.0)
VOICE_BAR_DB = (-26.0, -12.0)  # voice bar rms re the voiced rms, drawn per closure (real: -10..-30 dB)
ASPIRATION_DB = (-38.0, -28.0)  # >2.5 kHz aspiration noise re the voiced rms, drawn per sentence
STOP_ASPIRATION_DB = (-22.0, -12.0)  # voiceless-stop aspiration (through the formants) re the voiced rms
FLOOR_DB = (-68.0, -52.0)  # room hiss and hum re the output peak, drawn per sentence


@dataclass
class Voice:
    f0: float = 120.0  # mean pitch (Hz)
    formant_scale: float = 1.0  # vocal tract length (higher = shorter tract)
    rate: float = 1.0  # speaking rate (higher = faster)
    breathiness: float = 0.03
    jitter: float = 0.01
    gain: float = 0.6  # output peak
    sample_rate: int = 16000


@dataclass
class Style:
    amp: float = 1.0  # overall articulation amplitude (jaw, rounding, spread)
    round_gain: float = 1.0
    spread_gain: float = 1.0
    anticipation: float = 0.025  # motion leads sound by this (s)
    coart: float = 1.0  # dominance width (higher = smoother, more coarticulation)
    brow_gain: float = 1.0
    blink_rate: float = 0.3  # blinks per second


@dataclass
class Segment:
    phone: str
    start: float
    end: float
    stress: bool = False
    accent: bool = False  # pitch accent (also drives a brow raise)
    release: float | None = None  # stops: end of the closure (burst time)


# ----------------------------------------------------------------------------- timeline
def make_timeline(rng: np.random.Generator, target_s: float, rate: float) -> list[Segment]:
    """A random sentence of ~target_s seconds (including leading/trailing silence)."""

    def dur(lo, hi):
        return float(np.clip(rng.uniform(lo, hi) / rate, 0.05, 0.22))

    segs = [Segment("sil", 0.0, rng.uniform(0.15, 0.35))]
    body_end = target_s - rng.uniform(0.15, 0.35)
    first = True
    while first or segs[-1].end < body_end - 0.12:
        if not first and rng.random() < 0.12:
            _append(segs, "sil", rng.uniform(0.08, 0.2))
        first = False
        n_syl = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
        n_syl = max(1, min(n_syl, int((body_end - segs[-1].end) * rate / 0.25)))  # don't overshoot much
        stressed, accent = int(rng.integers(n_syl)), bool(rng.random() < 0.5)
        for syl in range(n_syl):
            onset: list[str] = []
            r = rng.random()
            if r < 0.12:
                onset = list(CLUSTERS[int(rng.integers(len(CLUSTERS)))])
            elif r < 0.85:
                onset = [str(rng.choice(ONSETS, p=ONSET_P))]
            for c in onset:
                _append_consonant(segs, c, dur, rng)
            stress = syl == stressed
            v = str(rng.choice(VOWELS, p=VOWEL_P))
            d = dur(0.09, 0.15) * (1.35 if stress else 1.0)
            _append(segs, v, min(d, 0.22), stress=stress, accent=stress and accent)
            if rng.random() < 0.35:
                _append_consonant(segs, str(rng.choice(CODAS)), dur, rng)
    _append(segs, "sil", max(rng.uniform(0.15, 0.35), target_s - segs[-1].end))
    return segs


def _append(segs, phone, d, **kw):
    t0 = segs[-1].end
    if phone == "sil" and segs[-1].phone == "sil":
        segs[-1].end = t0 + d
        return
    segs.append(Segment(phone, t0, t0 + d, **kw))


def _append_consonant(segs, c, dur, rng):
    p = PHONES[c]
    if p.kind == "stop":  # closure, then burst (+ aspiration when voiceless)
        closure, release = dur(0.05, 0.085), rng.uniform(0.012, 0.025) + (0.0 if p.voiced else rng.uniform(0.02, 0.04))
        t0 = segs[-1].end
        segs.append(Segment(c, t0, t0 + closure + release, release=t0 + closure))
    elif p.kind == "fric":
        _append(segs, c, dur(0.08, 0.13))
    else:
        _append(segs, c, dur(0.055, 0.09))


# ----------------------------------------------------------------------------- audio
@functools.lru_cache(maxsize=64)
def _band(lo: float, hi: float, sr: int):
    hi = min(hi, 0.45 * sr)
    return butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")


def _resonator_sos(freqs, bws, sr):
    """Klatt cascade resonators (unity gain at DC) as second-order sections (..., n, 6)."""
    f = np.minimum(np.asarray(freqs, float), 0.45 * sr)
    r = np.exp(-np.pi * np.asarray(bws, float) / sr)
    b1, b2 = 2 * r * np.cos(2 * np.pi * f / sr), -r * r
    a0 = 1 - b1 - b2
    return np.stack([a0, 0 * a0, 0 * a0, np.ones_like(a0), -b1, -b2], axis=-1)


def synthesize(timeline: list[Segment], voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """Render the timeline to float32 samples at voice.sample_rate (peak = voice.gain)."""
    sr = int(voice.sample_rate)
    dur = timeline[-1].end
    n = int(round(dur * sr))
    n_ms = int(np.ceil(dur * 1000)) + 2
    av, bar, asp = np.zeros(n_ms), np.zeros(n_ms), np.zeros(n_ms)  # per-ms voicing/voice bar/aspiration
    nz: dict[tuple[float, float], np.ndarray] = {}  # fricative band (lo, hi) Hz -> per-ms amplitude
    high = np.array(HIGH_FORMANTS) * voice.formant_scale
    form = np.tile(np.concatenate([[500.0, 1500.0, 2500.0], high]), (n_ms, 1))  # (n_ms, 5) F1-F5
    bw = np.tile([80.0, 100.0, 140.0, *HIGH_BANDWIDTHS], (n_ms, 1))
    f0_bump = np.zeros(n_ms)
    t_ms = np.arange(n_ms) / 1000.0
    bursts: list[tuple[float, tuple[float, float], float]] = []  # (time, band, amp)
    for seg in timeline:
        p = PHONES[seg.phone]
        a, b = int(round(seg.start * 1000)), int(round(seg.end * 1000))
        release = seg.end if seg.release is None else seg.release  # every stop has one (end of its closure)
        form[a:b, :3], bw[a:b, :3] = np.array(p.formants) * voice.formant_scale, p.bandwidths
        if p.kind == "vowel":
            av[a:b] = p.loud * (1.15 if seg.stress else 1.0)
        elif p.kind in ("nasal", "liquid") or (p.kind == "fric" and p.voiced):
            av[a:b] = p.loud
        elif p.kind == "stop" and p.voiced:  # voice bar during the closure
            bar[a : int(round(release * 1000))] = 10 ** (rng.uniform(*VOICE_BAR_DB) / 20)
        if p.noise is not None:
            band, amp = p.noise
            nz.setdefault(band, np.zeros(n_ms))[a:b] = amp
        if p.burst is not None:
            bursts.append((release, p.burst, 1.0 if p.voiced else 1.5))
            if not p.voiced:  # aspiration after the burst
                asp[int(round(release * 1000)) + 5 : b] = 1.0
        if seg.accent:
            f0_bump += 0.15 * np.exp(-(((t_ms - 0.5 * (seg.start + seg.end)) / 0.09) ** 2))
    av, bar, asp = (gaussian_filter1d(v, 8.0) for v in (av, bar, asp))  # ~8 ms on/offsets
    form, bw = gaussian_filter1d(form, 15.0, axis=0), gaussian_filter1d(bw, 15.0, axis=0)
    jitter = gaussian_filter1d(rng.standard_normal(n_ms), 3.0)
    jitter *= voice.jitter / (jitter.std() + 1e-9)
    f0 = voice.f0 * (1.1 - 0.2 * t_ms / dur) * (1.0 + f0_bump) * (1.0 + jitter)

    ts = np.arange(n) / sr
    f0_s, av_s = np.interp(ts, t_ms, f0), np.interp(ts, t_ms, av)
    phase = np.cumsum(f0_s / sr)
    frac = phase % 1.0
    pulse = np.where(
        frac < 0.4,
        0.5 * (1 - np.cos(np.pi * frac / 0.4)),
        np.where(frac < 0.56, np.cos(0.5 * np.pi * (frac - 0.4) / 0.16), 0.0),
    )  # glottal flow
    shimmer = 1.0 + 0.04 * rng.standard_normal(int(phase[-1]) + 2)
    glottal = np.diff(pulse * shimmer[phase.astype(int)], prepend=0.0) * (sr / (4 * voice.f0))  # lip radiation
    source = (glottal + voice.breathiness * rng.standard_normal(n)) * av_s
    voiced = _formant_cascade(source, form, bw, sr, n_ms)
    loud = av_s > 0.5 * max(float(av_s.max()), 1e-9)
    level = _rms(voiced[loud]) if loud.any() else 1.0  # voiced rms: reference for the extras

    white = rng.standard_normal(n)
    # aspiration: turbulence at the glottis, above ~2.5 kHz, louder while the folds are open
    hiss = sosfilt(_band(2500.0, 6500.0, sr), rng.standard_normal(n)) * av_s * (0.4 + pulse)
    out = voiced + _to_rms(hiss, level * 10 ** (rng.uniform(*ASPIRATION_DB) / 20), hiss[loud])
    # voice bar: a closed tract radiates only the lowest harmonics (through the cheeks and throat)
    bar_s = np.interp(ts, t_ms, bar)
    if bar_s.any():
        low = sosfilt(_lowpass(350.0, sr), glottal)
        out = out + low * bar_s * (level / max(_rms(low), 1e-12))
    asp_s = np.interp(ts, t_ms, asp)
    if asp_s.any():  # voiceless-stop aspiration: glottal noise through the (moving) formants, as in Klatt (1980)
        noisy = _formant_cascade(rng.standard_normal(n) * asp_s, form, bw, sr, n_ms)
        on = asp_s > 0.5
        out = out + _to_rms(noisy, level * 10 ** (rng.uniform(*STOP_ASPIRATION_DB) / 20), noisy[on])
    for band, track in nz.items():  # fricative noise
        env = np.interp(ts, t_ms, gaussian_filter1d(track, 6.0))
        out = out + env * sosfilt(_band(band[0], band[1], sr), white)
    for t_rel, band, amp in bursts:  # plosive releases (transient)
        tt = ts - t_rel
        tp = np.clip(tt, 0.0, None)
        env = amp * np.where(tt >= 0, (1 - np.exp(-tp / 0.001)) * np.exp(-tp / 0.006), 0.0)
        sel = np.flatnonzero(env > 1e-5)
        if sel.size:
            noise = sosfilt(_band(band[0], band[1], sr), white[sel[0] : sel[-1] + 1])
            out[sel[0] : sel[-1] + 1] += env[sel[0] : sel[-1] + 1] * noise
    out = out / (np.abs(out).max() + 1e-9) * voice.gain
    # room noise, so silence is not digital zero: mains/room hum below ~150 Hz and broadband hiss
    hum = sosfilt(_lowpass(150.0, sr), rng.standard_normal(n))
    out += _to_rms(hum, voice.gain * 10 ** (rng.uniform(*FLOOR_DB) / 20), hum)
    out += voice.gain * 10 ** ((rng.uniform(*FLOOR_DB) - 15.0) / 20) * rng.standard_normal(n)
    return out.astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _to_rms(x: np.ndarray, rms: float, ref: np.ndarray) -> np.ndarray:
    """x scaled so that `ref` (x or a selection of it) would have the given rms."""
    return x * (rms / max(_rms(ref), 1e-12))


@functools.lru_cache(maxsize=16)
def _lowpass(fc: float, sr: int):
    return butter(2, fc, btype="lowpass", fs=sr, output="sos")


def _formant_cascade(source: np.ndarray, form: np.ndarray, bw: np.ndarray, sr: int, n_ms: int) -> np.ndarray:
    """source (n,) through the cascade of resonators form/bw (n_ms, R) Hz, updated every 8 ms."""
    n = len(source)
    out = np.empty(n)
    zi = np.zeros((form.shape[1], 2))
    block = max(1, sr // 125)
    starts = np.arange(0, n, block)
    ms = np.minimum(n_ms - 1, np.rint((starts + block / 2) / sr * 1000).astype(int))
    sos = _resonator_sos(form[ms], bw[ms], sr)  # (blocks, R, 6)
    for b, s0 in enumerate(starts):
        out[s0 : s0 + block], zi = sosfilt(sos[b], source[s0 : s0 + block], zi=zi)
    return out


# ----------------------------------------------------------------------------- motion
_ALPHA = {  # dominance strength per viseme parameter: (default, overrides by phone)
    "jaw": (
        0.8,
        {
            "a": 1.2,
            "e": 1.2,
            "i": 1.2,
            "o": 1.2,
            "u": 1.2,
            "@": 1.0,
            "p": 3.0,
            "b": 3.0,
            "m": 3.0,
            "f": 2.0,
            "v": 2.0,
            "sil": 1.5,
        },
    ),
    "round": (0.4, {"u": 2.5, "o": 2.0, "sh": 1.5, "r": 1.0, "i": 1.5, "sil": 1.0}),
    "spread": (0.4, {"i": 2.0, "e": 1.5, "s": 1.0, "z": 1.0, "u": 1.5, "o": 1.0, "sil": 1.0}),
    "close": (1.0, {"p": 10.0, "b": 10.0, "m": 10.0}),
    "ld": (1.0, {"f": 8.0, "v": 8.0}),
}


def motion_coefficients(
    timeline: list[Segment], style: Style, n_frames: int, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """(n_frames, 9) coefficients in synth_face.BASIS_NAMES order for frames at times i / fps."""
    t = np.arange(n_frames) / float(fps)  # (T,)
    centres, widths, targets, alphas = [], [], [], []
    for seg in timeline:
        p = PHONES[seg.phone]
        end = seg.release if seg.release is not None else seg.end  # stops: the closure is the target
        centres.append(0.5 * (seg.start + end) - style.anticipation)
        widths.append(style.coart * (0.5 * (end - seg.start) + 0.03))
        jitter = rng.uniform(0.85, 1.15)
        targets.append(
            [
                p.jaw * jitter * style.amp,
                p.round * style.round_gain * style.amp,
                p.spread * style.spread_gain * style.amp,
                p.close,
                p.ld,
            ]
        )
        alphas.append([_ALPHA[k][1].get(seg.phone, _ALPHA[k][0]) for k in VISEMES])
    c, w = np.array(centres), np.array(widths)
    dom = np.exp(-(((t[:, None] - c[None]) / w[None]) ** 2))  # (T, P)
    dom = dom[:, :, None] * np.array(alphas)[None] + 1e-12  # (T, P, 5)
    vis = (dom * np.array(targets)[None]).sum(1) / dom.sum(1)  # (T, 5)
    jaw, rnd, spr, close, ld = vis.T
    close = np.clip((close - 0.2) / 0.6, 0.0, 1.0)  # contact is all-or-nothing-ish
    ld = np.clip((ld - 0.2) / 0.6, 0.0, 1.0)

    blink = np.zeros(n_frames)
    dur = timeline[-1].end
    tb = rng.uniform(0.0, 1.5 / max(style.blink_rate, 1e-3))
    while tb < dur:
        x = t - tb
        blink += np.where(x < 0, np.exp(-((x / 0.05) ** 2)), np.exp(-((x / 0.1) ** 2)))
        tb += rng.exponential(1.0 / max(style.blink_rate, 1e-3)) + 0.4
    brow = np.zeros(n_frames)
    for seg in timeline:
        if seg.accent:
            tc = 0.5 * (seg.start + seg.end) - 0.05
            brow += rng.uniform(0.5, 1.0) * style.brow_gain * np.exp(-(((t - tc) / 0.15) ** 2))
    return np.stack(
        [jaw, jaw**2, close * jaw, close, rnd, spr, ld, np.clip(blink, 0, 1), np.clip(brow, 0, 1.5)], axis=1
    ).astype(np.float32)
