"""A phonetic front end trained on real speech that installs from PyPI: CMU PocketSphinx.

The `pocketsphinx` wheel (5.x, BSD licence) ships CMU's US-English acoustic model (continuous
HMMs trained on real read and spontaneous speech), its pronunciation dictionary and a phone
language model. Two uses:

- `phone_frames(x, sr)`: phone recognition with the phone-loop search ("allphone") -> one phone id
  per 10 ms frame; `phone_features(...)` turns it into per-frame one-hot vectors over `PHONES` at any
  frame rate (linear interpolation of the one-hots through `frames.resample_frames`, so a model
  frame straddling two phones sees both in proportion). What `features.kind=phonetic` gives a model.
- `align(x, sr, text)`: forced alignment of a known transcript -> (start s, end s, phone, word)
  per phone; how the real recordings of the acceptance check were labelled.

Audio is resampled to 16 kHz and converted to 16-bit PCM (what the acoustic model expects);
cepstral mean normalisation runs over the whole clip. Nothing is downloaded: the model files are
inside the wheel.
"""

from __future__ import annotations

import functools

import numpy as np

from vocagan.errors import VocaganError

SAMPLE_RATE = 16000
FPS = 100  # one recogniser frame every 10 ms
# the 39 ARPAbet phones of the CMU dictionary, then silence (noise and filler models map to it)
PHONES = (
    "aa",
    "ae",
    "ah",
    "ao",
    "aw",
    "ay",
    "b",
    "ch",
    "d",
    "dh",
    "eh",
    "er",
    "ey",
    "f",
    "g",
    "hh",
    "ih",
    "iy",
    "jh",
    "k",
    "l",
    "m",
    "n",
    "ng",
    "ow",
    "oy",
    "p",
    "r",
    "s",
    "sh",
    "t",
    "th",
    "uh",
    "uw",
    "v",
    "w",
    "y",
    "z",
    "zh",
    "sil",
)
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}
LANGUAGE_WEIGHT = 2.0  # phone-LM weight of the allphone search (frame accuracy on arctic_a0009:
# 0.59 / 0.58 / 0.57 / 0.47 at 1 / 2 / 4 / 6.5, the decoder's default)
INSTALL_HINT = "pip install pocketsphinx==5.1.1 (requirements.txt pins it)"


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise VocaganError(f"the phonetic front end needs the package 'pocketsphinx': {INSTALL_HINT}") from None
    return pocketsphinx


def _pcm16(x: np.ndarray, sr: int) -> bytes:
    from vocagan.formats.audio import resample

    y = resample(np.asarray(x, np.float32).reshape(-1), int(sr), SAMPLE_RATE)
    return (np.clip(y, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@functools.lru_cache(maxsize=1)
def _model_files() -> dict:
    import os

    ps = _pocketsphinx()
    root = ps.get_model_path()
    return {
        "hmm": os.path.join(root, "en-us", "en-us"),
        "dict": os.path.join(root, "en-us", "cmudict-en-us.dict"),
        "phone_lm": os.path.join(root, "en-us", "en-us-phone.lm.bin"),
    }


def _decoder(**kw):
    ps = _pocketsphinx()
    files = _model_files()
    return ps.Decoder(hmm=files["hmm"], dict=files["dict"], loglevel="ERROR", **kw)


def phone_of(name: str) -> str:
    """A recogniser unit name -> one of PHONES (noise, filler and silence units -> 'sil')."""
    p = name.lower()
    return p if p in PHONE_INDEX else "sil"


def phone_frames(x: np.ndarray, sr: int) -> np.ndarray:
    """Phone recognition (phone loop + phone LM) -> (ceil(duration * 100),) int64 indices into PHONES,
    frame t covering [t / 100, (t + 1) / 100) s."""
    pcm = _pcm16(x, sr)
    n = max(1, -(-(len(pcm) // 2) // (SAMPLE_RATE // FPS)))
    ids = np.full(n, PHONE_INDEX["sil"], np.int64)
    if len(pcm) < 2 * 400:  # shorter than one analysis window: silence
        return ids
    d = _decoder(allphone=_model_files()["phone_lm"], lm=None, lw=LANGUAGE_WEIGHT)
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    for seg in d.seg():
        ids[max(0, seg.start_frame) : min(n, seg.end_frame + 1)] = PHONE_INDEX[phone_of(seg.word)]
    return ids


def phone_features(x: np.ndarray, sr: int, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames, len(PHONES)) float32 one-hot phones at frame times i / fps (see module doc)."""
    from vocagan.frames import resample_frames

    onehot = np.eye(len(PHONES), dtype=np.float32)[phone_frames(x, sr)]  # (T100, P)
    return resample_frames(onehot, FPS, fps, int(n_frames)).astype(np.float32)


def align(x: np.ndarray, sr: int, text: str) -> list[tuple[float, float, str, str]]:
    """Forced alignment of `text` (lower-case words of the CMU dictionary, alternatives chosen by the
    decoder) -> [(start s, end s, phone, word)], silences included as 'sil'. VocaganError naming the
    first unknown word, or when the audio cannot be aligned to the text."""
    words = text.lower().split()
    d = _decoder(lm=None)
    unknown = [w for w in words if d.lookup_word(w) is None]
    if unknown:
        raise VocaganError(f"word(s) not in the pronunciation dictionary: {', '.join(unknown)}")
    pcm = _pcm16(x, sr)
    try:
        d.set_align_text(" ".join(words))
        for _ in range(2):  # word alignment, then the phone-level pass
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            if d.get_alignment() is None:
                d.set_alignment()
        alignment = d.get_alignment()
    except RuntimeError as e:
        raise VocaganError(f"forced alignment failed ({e})") from None
    out = []
    for word in alignment:
        for phone in word:
            out.append(
                (phone.start / FPS, (phone.start + phone.duration) / FPS, phone_of(phone.name), word.name.split("(")[0])
            )
    if not out:
        raise VocaganError("forced alignment found no path through the text")
    return out
