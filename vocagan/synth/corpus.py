"""The built-in synthetic corpus, written in the exact VOCASET format (`vocagan synth`).

VOCASET cannot be redistributed, so this corpus lets every command run end to end. It is built so
that speech-to-motion is learnable and style matters:

- one phoneme timeline per sentence drives both the audio (source-filter synthesis) and the mouth
  motion (coarticulated visemes that lead the sound by ~1-2 frames) — `synth_speech.py`;
- the face is a real human face shape, Google's MediaPipe canonical face mesh made to speak
  (`synth/canonical.py`: mouth opened along the inner lip line, mouth interior, eyes, subdivided;
  Apache-2.0, see vocagan/assets/MEDIAPIPE_NOTICE), or a user mesh such as FLAME_sample.ply, moved
  by smooth deformation fields: jaw rotation, lip rounding/spread/closure, lower lip to teeth, blinks
  and brow raises, plus ~0.05 mm measurement noise — `synth/face.py`;
- the 12 VOCASET subjects differ in identity (face shape), voice (pitch, formants, speaking rate,
  sample rate) and speaking style (articulation amplitude, rounding, spread, anticipation).

Like the real data, a few sequences have one more or one fewer DeepSpeech window than mesh frames
(preprocessing must trim and report it), and at full scale the two known holes of VOCASET
(03274/sentence24, 00138/sentence32) are left out. Same seed -> byte-identical files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocagan.config import TEST_SUBJECTS, TRAIN_SUBJECTS, VAL_SUBJECTS
from vocagan.errors import VocaganError
from vocagan.formats.audio import deepspeech_like_windows
from vocagan.options import SynthOptions, check
from vocagan.synth import face, speech
from vocagan.synth.voices import CHANNEL_SHARE, FESTIVAL_SHARE, FESTIVAL_VOICES, festival_sentence, festival_voices
from vocagan.synth.voices import channel as add_channel
from vocagan.utils import atomic_write_text, log, output_dir, progress

VERSION_FILE = "synth_version.txt"  # what wrote a corpus (`corpus_stamp`; the pipeline's reuse check)
FACE_VERSION = 2  # bump when the built-in face (synth/canonical.py) or its motion changes (1: procedural head)
NOTICE_FILES = {"MEDIAPIPE_NOTICE.txt": "MEDIAPIPE_NOTICE", "MEDIAPIPE_LICENSE.txt": "MEDIAPIPE_LICENSE"}

SUBJECTS = TRAIN_SUBJECTS + VAL_SUBJECTS + TEST_SUBJECTS
KNOWN_HOLES = [("FaceTalk_170811_03274_TA", 24), ("FaceTalk_170809_00138_TA", 32)]
FPS = 60
NOISE_STD = 5e-5  # measurement noise per coordinate (m)


@dataclass(frozen=True)
class Scale:
    face_levels: int  # Loop subdivision levels of the built-in face (0: ~730 vertices, 1: ~2300)
    train_sentences: tuple[int, ...]
    heldout_sentences: tuple[int, ...]  # val and test subjects
    duration: tuple[float, float]  # sentence length range (s), silences included
    holes: bool = False  # leave out VOCASET's known missing sequences
    extra_val: int = 0  # synthetic subjects beyond VOCASET's 12, named Synth_val_01, ... (see extra_subjects)
    extra_test: int = 0  # ... and Synth_test_01, ...


SCALES = {
    "tiny": Scale(0, (1, 2), (21, 22), (1.3, 1.7)),
    "small": Scale(1, tuple(range(1, 13)), (21, 22, 23, 24), (2.0, 4.5)),
    "full": Scale(1, tuple(range(1, 41)), tuple(range(1, 41)), (3.0, 5.4), holes=True),
    # the benchmark corpus (docs/experiments.md, "Sizing the benchmark corpus"): VOCASET's training set
    # size (8 subjects x 40 sentences) and many more held-out speakers, 10 sentences each
    "bench": Scale(1, tuple(range(1, 41)), tuple(range(21, 31)), (2.0, 4.5), extra_val=10, extra_test=46),
}


def extra_subjects(scale: Scale) -> tuple[list[str], list[str]]:
    """The synthetic subjects a scale adds to VOCASET's 12: (val names, test names)."""
    return (
        [f"Synth_val_{i + 1:02d}" for i in range(scale.extra_val)],
        [f"Synth_test_{i + 1:02d}" for i in range(scale.extra_test)],
    )


@dataclass
class Profile:
    """Everything that makes one synthetic subject differ from the others."""

    name: str
    index: int
    identity: face.Identity
    voice: speech.Voice
    style: speech.Style


def subject_profiles(seed: int = 0, extra: tuple[list[str], list[str]] = ([], [])) -> list[Profile]:
    """The 12 subjects (VOCASET names) with identity, voice and style drawn from `seed`, then the
    extra synthetic subjects (`extra_subjects`: val names, test names), each from its own stream and
    with its own index (1000 + k for val, 2000 + k for test): adding some never changes the others.
    Their style amplitude is drawn from the 12's range (0.62-1.38), their voice high or low at random."""
    rng = np.random.default_rng([seed, 7919])
    amps = rng.permutation(np.linspace(0.62, 1.38, len(SUBJECTS)))  # style amplitude spans 0.6-1.4
    high = rng.permutation([i % 2 == 1 for i in range(len(SUBJECTS))])  # half low, half high voices
    out = [
        _profile(name, i, np.random.default_rng([seed, 7919, i]), amps[i], high[i]) for i, name in enumerate(SUBJECTS)
    ]
    for base, names in ((1000, extra[0]), (2000, extra[1])):  # val, test: 1000 + k, 2000 + k
        for k, name in enumerate(names):
            r = np.random.default_rng([seed, 7919, base + k])
            out.append(_profile(name, base + k, r, r.uniform(0.62, 1.38), bool(r.integers(2))))
    return out


def _profile(name: str, index: int, r: np.random.Generator, amp: float, high: bool) -> Profile:
    u = r.uniform
    ident = face.Identity(
        width=u(0.93, 1.07),
        height=u(0.95, 1.05),
        jaw=u(0.85, 1.15),
        lips=u(0.75, 1.3),
        nose=u(0.8, 1.25),
        chin=u(0.75, 1.3),
    )
    voice = speech.Voice(
        f0=u(170, 250) if high else u(90, 140),
        formant_scale=u(1.1, 1.2) if high else u(0.95, 1.05),
        rate=u(0.85, 1.2),
        breathiness=u(0.01, 0.05),
        jitter=u(0.005, 0.015),
        gain=u(0.45, 0.8),
        sample_rate=int(r.choice([16000, 22000, 22050])),
    )
    style = speech.Style(
        amp=float(amp),
        round_gain=u(0.7, 1.4),
        spread_gain=u(0.7, 1.3),
        anticipation=u(0.015, 0.035),
        coart=u(0.85, 1.2),
        brow_gain=u(0.5, 1.5),
        blink_rate=u(0.2, 0.5),
    )
    return Profile(name, index, ident, voice, style)


@dataclass
class SynthResult:
    out_dir: Path
    scale: str
    seed: int
    mesh: str
    n_vertices: int
    n_faces: int
    subjects: list[str]
    sequences: dict[str, int]  # per split
    total_frames: int
    seconds: float
    sample_rates: dict[str, int]
    mismatched: list[tuple[str, str, int, int]]  # (subject, sentence, mesh frames, deepspeech windows)
    missing: list[tuple[str, str]]
    regions: dict[str, int] | None
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes ("wav/" summed)
    elapsed_s: float = 0.0
    voices: str = "formant"  # what speaks the training sentences (and whether a channel colours them)

    def summary(self) -> str:
        mb = lambda b: f"{b / 1e6:.1f} MB"  # noqa: E731
        seq = " / ".join(f"{k} {v}" for k, v in self.sequences.items())
        lines = [
            f"synthetic VOCASET (scale {self.scale}, seed {self.seed}) -> {self.out_dir}",
            f"  subjects: {len(self.subjects)}; sequences: {seq}",
            f"  frames: {self.total_frames} at {FPS} fps = {self.seconds / 60:.2f} min of speech",
            f"  mesh: {self.mesh}, {self.n_vertices} vertices, {self.n_faces} triangles",
            f"  voices: {self.voices}",
            "  audio sample rates: "
            + ", ".join(f"{sr} Hz x{n}" for sr, n in sorted(_count(self.sample_rates.values()).items())),
            "  regions: "
            + (
                ", ".join(f"{k} {v}" for k, v in self.regions.items()) + " (region_masks.pkl)"
                if self.regions
                else "not written (unknown for a user mesh)"
            ),
            f"  mesh/audio-window mismatches of 1 frame (preprocessing trims them): {len(self.mismatched)}",
            "  missing as in VOCASET: " + (", ".join(f"{s}/{q}" for s, q in self.missing) or "none at this scale"),
            "  files: "
            + ", ".join(f"{k} {mb(v)}" for k, v in self.files.items())
            + f"; total {mb(sum(self.files.values()))}",
            f"  built in {self.elapsed_s:.1f} s",
        ]
        return "\n".join(lines)


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _plan(scale: Scale) -> tuple[list[tuple[int, int]], list[tuple[str, str]]]:
    """(subject index, sentence number) pairs to write, and the holes left out."""
    pairs, missing = [], []
    val_extra, test_extra = extra_subjects(scale)
    for i, name in enumerate(SUBJECTS + val_extra + test_extra):
        for s in scale.train_sentences if name in TRAIN_SUBJECTS else scale.heldout_sentences:
            if scale.holes and (name, s) in KNOWN_HOLES:
                missing.append((name, f"sentence{s:02d}"))
            else:
                pairs.append((i, s))
    return pairs, missing


def subject_geometry(base: face.Head, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """A subject's template (V, 3) and motion basis (K, V, 3) on the base head."""
    template, frame = face.reshape_head(base, profile.identity)
    return template, face.motion_basis(template, frame, base.lower, base.moves, base.blink)


@dataclass
class Sequence:
    verts: np.ndarray  # (T60, V, 3) float32
    audio: np.ndarray  # float32 1-D
    sample_rate: int
    deepspeech: np.ndarray  # (T60 + {-1, 0, 1}, 16, 29)
    timeline: list[speech.Segment]  # the phonemes behind both
    coefs: np.ndarray  # (T60, K) motion coefficients (synth_face.BASIS_NAMES)


def make_sequence(
    profile: Profile,
    sentence: int,
    seed: int,
    scale: Scale,
    template: np.ndarray,
    basis: np.ndarray,
    real_voices: tuple[str, ...] = (),
    channel: bool = False,
) -> Sequence:
    """One sequence of one subject; depends only on (seed, subject, sentence), never on order."""
    rng = np.random.default_rng([seed, profile.index, sentence, 1])
    timeline = speech.make_timeline(rng, rng.uniform(*scale.duration), profile.voice.rate)
    audio = speech.synthesize(timeline, profile.voice, rng)
    sr = profile.voice.sample_rate
    if (real_voices or channel) and profile.name in TRAIN_SUBJECTS:  # val/test stay as they are (comparable LVE)
        own = np.random.default_rng([seed, profile.index, sentence, 2])
        if real_voices and own.random() < FESTIVAL_SHARE:
            voice = real_voices[int(own.integers(len(real_voices)))]
            timeline, audio, sr = festival_sentence(own, timeline[-1].end, voice)
        if channel and own.random() < CHANNEL_SHARE:
            audio = add_channel(audio, sr, own)
    n_frames = int(round(len(audio) / sr * FPS))
    coefs = speech.motion_coefficients(timeline, profile.style, n_frames, FPS, rng)  # (T, K)
    motion = (coefs @ basis.reshape(len(basis), -1)).reshape(n_frames, -1, 3)  # (T, V, 3)
    noise = rng.standard_normal(motion.shape, dtype=np.float32) * np.float32(NOISE_STD)
    verts = (template[None] + motion + noise).astype(np.float32)
    # a few sequences get one DeepSpeech window more or fewer than mesh frames, as in the real data
    extra = (1 if sentence % 2 == 0 else -1) if (7 * profile.index + sentence) % 20 == 3 else 0
    deepspeech = deepspeech_like_windows(audio, sr, n_frames + extra)
    return Sequence(verts, audio, sr, deepspeech, timeline, coefs)


def generate(
    out_dir: str | Path,
    scale: str = "small",
    seed: int = 0,
    template_ply: str | Path | None = None,
    voices: str = "formant",
    channel: bool = False,
) -> SynthResult:
    """Write the synthetic corpus to `out_dir` (VOCASET files + wav/) and return its summary.

    voices "festival": half of the training subjects' sentences are spoken by Debian's Festival voices
    (`festival_voices()`; the formant voice alone, said once, when none is installed).
    channel: 70 % of the training sentences go through a random recording channel (`speech.channel`).
    Neither is on by default: on the demo recipe both made the test split and the real recordings
    worse (docs/experiments.md)."""
    from vocagan.formats.mesh import read_mesh
    from vocagan.formats.vocaset_writer import VocasetWriter

    t0 = time.perf_counter()
    if scale not in SCALES:
        raise VocaganError(f"unknown scale '{scale}' (valid: {', '.join(SCALES)})")
    sc = SCALES[scale]
    seed, voices = check(SynthOptions, seed=seed, voices=voices)
    out_dir = output_dir(out_dir)
    if template_ply is not None:
        verts, faces = read_mesh(template_ply)
        if len(faces) == 0:
            raise VocaganError("the template mesh has no faces", template_ply)
        frame, lower = face.locate_mouth(verts, faces)
        base = face.Head(verts.astype(np.float32), faces, frame, lower, None)
        mesh = f"{Path(template_ply).name} ({frame.source})"
        log(
            f"synth: mouth of {template_ply} at {np.round(frame.centre, 4).tolist()} m, "
            f"corners +-{frame.half_width * 1000:.1f} mm ({frame.source})"
        )
    else:
        from vocagan.synth.canonical import canonical_head

        base = canonical_head(sc.face_levels)
        mesh = f"MediaPipe canonical face (Apache-2.0), {sc.face_levels} Loop subdivision level(s)"
    real_voices = festival_voices() if voices == "festival" else ()
    if voices == "festival" and not real_voices:
        log(
            "synth: no Festival voice is installed (Debian: festival "
            + " ".join(FESTIVAL_VOICES.values())
            + "; scripts/setup.sh --test installs them as root): the corpus uses the formant voice only"
        )
    extra = extra_subjects(sc)
    profiles = subject_profiles(seed, extra)
    pairs, missing = _plan(sc)
    writer = VocasetWriter(
        out_dir,
        n_vertices=len(base.vertices),
        faces=base.faces,
        template_ply_vertices=base.vertices,
        masks=base.regions,
        colors=base.colors,
    )
    subjects: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    split_of = {
        **{s: "train" for s in TRAIN_SUBJECTS},
        **{s: "val" for s in VAL_SUBJECTS},
        **{s: "test" for s in TEST_SUBJECTS},
        **{s: "val" for s in extra[0]},
        **{s: "test" for s in extra[1]},
    }
    counts = {"train": 0, "val": 0, "test": 0}
    mismatched, total_frames, seconds = [], 0, 0.0
    try:
        for i, s in progress(pairs, desc=f"synth {scale}", unit="seq"):
            p = profiles[i]
            if i not in subjects:
                subjects[i] = subject_geometry(base, p)
                writer.add_subject(p.name, subjects[i][0])
            template, basis = subjects[i]
            seq = make_sequence(p, s, seed, sc, template, basis, real_voices, channel)
            writer.add_sequence(p.name, s, seq.verts, seq.audio, seq.sample_rate, deepspeech=seq.deepspeech)
            counts[split_of[p.name]] += 1
            total_frames += len(seq.verts)
            seconds += len(seq.audio) / seq.sample_rate
            if len(seq.deepspeech) != len(seq.verts):
                mismatched.append((p.name, f"sentence{s:02d}", len(seq.verts), len(seq.deepspeech)))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    _write_notices(out_dir, builtin_face=template_ply is None)
    atomic_write_text(out_dir / VERSION_FILE, corpus_stamp(scale, seed, template_ply, real_voices, channel) + "\n")
    files: dict[str, int] = {}
    for name in (
        "data_verts.npy",
        "subj_seq_to_idx.pkl",
        "templates.pkl",
        "processed_audio_deepspeech.pkl",
        "raw_audio_fixed.pkl",
        "FLAME_sample.ply",
        "region_masks.pkl",
    ):
        if (out_dir / name).is_file():
            files[name] = (out_dir / name).stat().st_size
    wav_dir = out_dir / "wav"
    if wav_dir.is_dir():
        files["wav/"] = sum(f.stat().st_size for f in wav_dir.glob("*.wav"))
    return SynthResult(
        out_dir,
        scale,
        seed,
        mesh,
        len(base.vertices),
        len(base.faces),
        [p.name for p in profiles],
        counts,
        total_frames,
        seconds,
        {p.name: p.voice.sample_rate for p in profiles},
        mismatched,
        missing,
        {k: len(v) for k, v in base.regions.items()} if base.regions else None,
        files,
        time.perf_counter() - t0,
        "formant"
        + (" + Festival " + ", ".join(real_voices) if real_voices else "")
        + (" + channel" if channel else ""),
    )


def _write_notices(out_dir: Path, builtin_face: bool) -> None:
    """The built-in face is a modified MediaPipe mesh (Apache-2.0): its NOTICE and licence go with every
    corpus that holds it; a corpus on a user's mesh holds neither (stale copies are removed)."""
    assets = Path(__file__).resolve().parents[1] / "assets"
    for name, asset in NOTICE_FILES.items():
        if builtin_face:
            atomic_write_text(out_dir / name, (assets / asset).read_text(encoding="utf-8"))
        elif (out_dir / name).is_file():
            (out_dir / name).unlink()


def corpus_stamp(
    scale: str,
    seed: int,
    template_ply: str | Path | None = None,
    voices: tuple[str, ...] | list[str] = (),
    channel: bool = False,
) -> str:
    """What a corpus was written by and from: synthesiser and face versions, scale, seed, template mesh
    (its name and content fingerprint), and the opt-in real voices and channel variation when used. A
    folder whose stamp differs is written again."""
    from vocagan.utils import file_fingerprint

    template = "built-in face"
    if template_ply is not None:
        template = f"{Path(template_ply).name} {file_fingerprint(template_ply)}"
    stamp = f"speech {speech.SYNTH_VERSION}; face {FACE_VERSION}; scale {scale}; seed {seed}; template {template}"
    if voices:
        stamp += "; voices " + ",".join(voices)
    return stamp + ("; channel" if channel else "")


def builtin_corpus(
    out_dir: Path,
    scale: str = "small",
    seed: int = 0,
    template_ply: str | Path | None = None,
    voices: str = "formant",
    channel: bool = False,
) -> Path:
    """The built-in synthetic corpus in `out_dir` (on the user's `template_ply` mesh when given), generated
    once: reused when complete and its stamp (`corpus_stamp`) matches, written again otherwise."""
    real_voices = festival_voices() if voices == "festival" else ()
    wanted = corpus_stamp(scale, seed, template_ply, real_voices, channel)
    if (out_dir / "data_verts.npy").is_file() and (out_dir / "templates.pkl").is_file():
        stamp = out_dir / VERSION_FILE
        written = stamp.read_text().strip() if stamp.is_file() else "an older version"
        if written == wanted:
            log(f"[corpus] using the built-in corpus at {out_dir}")
            return out_dir
        log(f"[corpus] the corpus at {out_dir} was written by {written}, not {wanted}: writing it again")
    log(f"[corpus] writing the built-in corpus ({scale}) to {out_dir}")
    result = generate(out_dir, scale=scale, seed=seed, template_ply=template_ply, voices=voices, channel=channel)
    print(result.summary())
    return out_dir
