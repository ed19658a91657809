"""The synthetic corpus: mesh, timelines, audio, motion, the written VOCASET files, determinism and
evidence that speech -> motion is learnable (and that subjects differ)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vocagan.config import TEST_SUBJECTS, TRAIN_SUBJECTS, VAL_SUBJECTS, DataConfig
from vocagan.synth import face
from vocagan.synth import speech
from vocagan.synth import corpus as synthetic
from vocagan.errors import VocaganError

TINY_DATA = dict(train_sentences=[1, 2], val_sentences=[21, 22], test_sentences=[21, 22])


def edges_ok(faces: np.ndarray) -> tuple[bool, bool]:
    """(closed: every edge in exactly two faces, oriented: no directed edge twice)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, counts = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)
    return bool((counts == 2).all()), len(np.unique(e, axis=0)) == len(e)


def frame_energy_db(x: np.ndarray, sr: int, n_frames: int, fps: int = 60) -> np.ndarray:
    hop = sr / fps
    return np.array([10 * np.log10(np.mean(x[int(max(0, (i - 0.5) * hop)):int((i + 0.5) * hop)] ** 2) + 1e-12)
                     for i in range(n_frames)])


def mouth_opening(verts: np.ndarray, template: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(T,) lip aperture change (m): upper-lip minus lower-lip height near the midline, vs the template."""
    mid = lips[np.abs(template[lips, 0] - template[lips, 0].mean()) < 0.006]
    y = template[mid, 1]
    up, lo = mid[y > np.median(y)], mid[y <= np.median(y)]
    gap = verts[:, up, 1].mean(1) - verts[:, lo, 1].mean(1)
    return gap - (template[up, 1].mean() - template[lo, 1].mean())


# ----------------------------------------------------------------------------- mesh
@pytest.mark.parametrize("scale", ["tiny", "small", "full"])
def test_procedural_head_is_closed_oriented_and_head_sized(scale):
    head = face.procedural_head(*synthetic.SCALES[scale].mesh)
    v, f = head.vertices, head.faces
    closed, oriented = edges_ok(f)
    assert closed and oriented
    assert face._signed_volume(v, f) > 0                                  # normals point outwards
    lo, hi = {"tiny": (300, 1000), "small": (950, 2000), "full": (4900, 5150)}[scale]
    assert lo <= len(v) <= hi and f.dtype == np.int32 and v.dtype == np.float32
    height = np.ptp(v[:, 1])
    assert 0.15 <= height <= 0.21 and np.abs(v.mean(0)).max() < 0.03    # FLAME-like scale, centred
    areas = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert areas.min() > 1e-8                                             # no degenerate triangles
    r = head.regions
    assert {"lips", "face", "forehead", "eye_region"} <= set(r)
    lips = v[r["lips"]]
    assert np.abs(lips[:, 1] - head.frame.centre[1]).max() < 0.015      # lips hug the lip line
    assert lips[:, 2].mean() > v[r["forehead"], 2].mean() - 0.03 and v[r["forehead"], 1].min() > lips[:, 1].max()
    assert np.isin(r["lips"], r["face"]).mean() > 0.8


def test_locate_mouth_finds_the_lip_line_of_the_procedural_head():
    head = face.procedural_head(*synthetic.SCALES["small"].mesh)
    frame, lower = face.locate_mouth(head.vertices, head.faces)
    assert abs(frame.centre[1] - head.frame.centre[1]) < 0.001
    assert abs(frame.centre[0]) < 1e-6
    clear = np.abs(head.vertices[:, 1] - head.frame.centre[1]) > 0.001      # not on the lip line itself
    assert np.mean((lower[clear] > 0.5) == (head.lower[clear] > 0.5)) > 0.99


def test_motion_basis_opens_the_mouth_and_keeps_the_skull_still():
    head = face.procedural_head(*synthetic.SCALES["small"].mesh)
    basis = face.motion_basis(head.vertices, head.frame, head.lower)
    assert basis.shape == (len(face.BASIS_NAMES), len(head.vertices), 3)
    jaw = basis[0] + basis[1]                                             # jaw coefficient 1
    opening = mouth_opening(head.vertices[None] + jaw[None], head.vertices, head.regions["lips"])[0]
    assert 0.005 < opening < 0.012                                        # ~5-10 mm, like real speech
    assert np.abs(jaw[head.regions["scalp"]]).max() < 1e-4
    assert np.abs(jaw[head.regions["forehead"]]).max() < 1e-4
    sealed = jaw + basis[2] + basis[3]                                    # close while the jaw is open
    assert mouth_opening(head.vertices[None] + sealed[None], head.vertices, head.regions["lips"])[0] < 0.3 * opening
    up = np.concatenate([head.regions["forehead"], head.regions["eye_region"]])
    assert np.abs(basis[7][up]).max() > 1e-3 and np.abs(basis[8][up]).max() > 1e-3   # blink, brow


# ----------------------------------------------------------------------------- timeline + audio
def test_timeline_durations_phones_and_determinism():
    a = speech.make_timeline(np.random.default_rng(5), 3.0, 1.0)
    b = speech.make_timeline(np.random.default_rng(5), 3.0, 1.0)
    assert [(s.phone, s.start, s.end) for s in a] == [(s.phone, s.start, s.end) for s in b]
    assert a[0].phone == "sil" and a[-1].phone == "sil" and a[0].start == 0.0
    assert all(x.end == pytest.approx(y.start) for x, y in zip(a, a[1:]))
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
    for s in vowels[:3]:                                                  # pitch near f0 (declination, accents)
        seg = x[int((s.start + 0.02) * sr):int((s.end - 0.02) * sr)].astype(np.float64)
        ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
        lag = 40 + int(np.argmax(ac[40:320]))                             # 50-400 Hz
        assert 80 < sr / lag < 170
    fric = [s for s in timeline if s.phone == "s"]
    for s in fric[:2]:                                                    # /s/: energy high in the spectrum
        q = (s.end - s.start) / 4                                         # its middle half
        seg = x[int((s.start + q) * sr):int((s.end - q) * sr)]
        spec = np.abs(np.fft.rfft(seg)) ** 2
        freqs = np.fft.rfftfreq(len(seg), 1 / sr)
        assert (spec * freqs).sum() / spec.sum() > 3000
    sil = x[: int((timeline[0].end - 0.05) * sr)]
    assert np.sqrt(np.mean(sil ** 2)) < 1e-3                              # leading silence is quiet


# ----------------------------------------------------------------------------- the written corpus
def test_tiny_corpus_reads_back_in_vocaset_format(tiny_corpus):
    from vocagan.formats.pickles import safe_load_pickle
    from vocagan.formats.vocaset import open_vocaset

    ds = open_vocaset(DataConfig(root=str(tiny_corpus), **TINY_DATA))
    assert sorted(ds.subjects()) == sorted(TRAIN_SUBJECTS + VAL_SUBJECTS + TEST_SUBJECTS)
    assert len(ds.split("train")) == 16 and len(ds.split("val")) == 4 and len(ds.split("test")) == 4
    assert ds.faces is not None and ds.verts.dtype == np.float32 and ds.verts.shape[1:] == (ds.n_vertices, 3)
    mismatched = 0
    for subject, sentence in ds.split("train") + ds.split("val") + ds.split("test"):
        verts = ds.load_verts(subject, sentence)
        audio, sr = ds.raw_audio(subject, sentence)
        windows = ds.deepspeech(subject, sentence)
        assert sr in (16000, 22000, 22050) and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
        assert len(verts) == round(len(audio) / sr * 60)                   # T60 = round(duration * 60)
        assert windows.shape[1:] == (16, 29) and abs(len(windows) - len(verts)) <= 1
        mismatched += len(windows) != len(verts)
        assert (tiny_corpus / "wav" / f"{subject}_{sentence}.wav").is_file()
        assert 1.2 < len(audio) / sr < 2.3
    assert 1 <= mismatched <= 4                                           # a few off-by-one sequences
    masks = safe_load_pickle(tiny_corpus / "region_masks.pkl")
    assert {"lips", "forehead", "eye_region", "face"} <= set(masks)
    assert all(m.dtype == np.int64 and m.max() < ds.n_vertices for m in masks.values())


def test_same_seed_gives_byte_identical_files(tiny_corpus, tmp_path):
    out = tmp_path / "again"
    result = synthetic.generate(out, scale="tiny", seed=0)
    names = [p.name for p in sorted(tiny_corpus.iterdir()) if p.is_file()]
    assert "data_verts.npy" in names and len(names) >= 7
    for name in names:
        assert (out / name).read_bytes() == (tiny_corpus / name).read_bytes(), name
    wavs = sorted(p.name for p in (tiny_corpus / "wav").iterdir())
    assert wavs == sorted(p.name for p in (out / "wav").iterdir()) and len(wavs) == 24
    assert all((out / "wav" / w).read_bytes() == (tiny_corpus / "wav" / w).read_bytes() for w in wavs)
    text = result.summary()
    assert "train 16 / val 4 / test 4" in text and "12" in text and "min of speech" in text
    # another seed changes the data
    p0, p1 = synthetic.subject_profiles(0)[0], synthetic.subject_profiles(1)[0]
    assert p0.voice.f0 != p1.voice.f0


def test_learnable_mouth_opening_follows_audio_energy(tiny_corpus):
    """Open vowels are loud, closures are quiet: the mouth opening correlates with frame energy."""
    from vocagan.formats.pickles import safe_load_pickle
    from vocagan.formats.vocaset import open_vocaset

    ds = open_vocaset(DataConfig(root=str(tiny_corpus), **TINY_DATA))
    lips = safe_load_pickle(tiny_corpus / "region_masks.pkl")["lips"]
    corrs, lags = [], []
    for subject, sentence in ds.split("train"):
        verts = ds.load_verts(subject, sentence)
        audio, sr = ds.raw_audio(subject, sentence)
        opening = mouth_opening(verts, ds.templates[subject], lips)
        energy = frame_energy_db(audio, sr, len(verts))
        corrs.append(np.corrcoef(opening, energy)[0, 1])
        n = len(opening)
        lags.append(max(range(-5, 6), key=lambda k: np.corrcoef(opening[max(0, -k):n - max(0, k)],
                                                                energy[max(0, k):n - max(0, -k)])[0, 1]))
    assert np.mean(corrs) > 0.4 and min(corrs) > 0.1
    assert 0 <= np.median(lags) <= 3                                      # motion leads the sound slightly


def test_bilabial_closures_are_quiet_then_burst():
    """During /p/ /b/ the lips close (aperture back to rest) while the audio is quiet (above 500 Hz:
    a voiced closure carries a low-frequency voice bar, as in real speech); the release that follows
    is loud."""
    from scipy.signal import butter, sosfilt

    profiles = synthetic.subject_profiles(0)
    base = face.procedural_head(*synthetic.SCALES["small"].mesh)
    checked = 0
    for sentence in range(1, 7):
        p = profiles[sentence % 8]
        template, basis = synthetic.subject_geometry(base, p)
        seq = synthetic.make_sequence(p, sentence, 0, synthetic.SCALES["small"], template, basis)
        opening = mouth_opening(seq.verts, template, base.regions["lips"])
        above_bar = sosfilt(butter(4, 500, btype="highpass", fs=seq.sample_rate, output="sos"), seq.audio)
        energy = frame_energy_db(above_bar, seq.sample_rate, len(seq.verts))
        for s in seq.timeline:
            if s.phone in ("p", "b") and s.release - s.start > 0.05:
                mid = int(round((0.5 * (s.start + s.release)) * 60))
                after = energy[int(round(s.release * 60)):int(round(s.release * 60)) + 3].max()
                assert opening[mid] < 0.0015, (s, opening[mid])
                assert energy[mid] < after - 10, (s, energy[mid], after)
                checked += 1
    assert checked >= 3


def test_subjects_differ_in_identity_voice_and_style():
    profiles = synthetic.subject_profiles(0)
    base = face.procedural_head(*synthetic.SCALES["tiny"].mesh)
    templates = [synthetic.subject_geometry(base, p)[0] for p in profiles]
    dists = [np.sqrt(((a - b) ** 2).sum(1).mean()) for i, a in enumerate(templates) for b in templates[i + 1:]]
    assert min(dists) > 3e-4                                              # every pair differs by > 0.3 mm rms
    f0 = np.array([p.voice.f0 for p in profiles])
    assert f0.min() >= 90 and f0.max() <= 250 and (f0 < 150).sum() >= 3 and (f0 > 160).sum() >= 3
    amps = np.array([p.style.amp for p in profiles])
    assert amps.min() < 0.7 and amps.max() > 1.3
    assert len({p.voice.sample_rate for p in profiles}) >= 2
    # the style shows in the motion: same sentence length range, very different jaw amplitude
    lo, hi = profiles[int(amps.argmin())], profiles[int(amps.argmax())]
    swing = []
    for p in (lo, hi):
        template, basis = synthetic.subject_geometry(base, p)
        seq = synthetic.make_sequence(p, 1, 0, synthetic.SCALES["tiny"], template, basis)
        swing.append(np.percentile(mouth_opening(seq.verts, template, base.regions["lips"]), 95))
    assert swing[1] > 1.4 * swing[0]


def test_plan_holes_and_scales():
    pairs, missing = synthetic._plan(synthetic.SCALES["full"])
    assert len(pairs) == 12 * 40 - 2
    assert missing == [("FaceTalk_170811_03274_TA", "sentence24"), ("FaceTalk_170809_00138_TA", "sentence32")]
    pairs, missing = synthetic._plan(synthetic.SCALES["small"])
    assert len(pairs) == 8 * 12 + 4 * 4 and not missing
    with pytest.raises(VocaganError, match="unknown scale"):
        synthetic.generate("/nonexistent/never-written", scale="huge")


def test_generate_errors_name_the_file(tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    with pytest.raises(VocaganError, match="taken.*existing file"):
        synthetic.generate(a_file, scale="tiny")
    with pytest.raises(VocaganError, match="missing.ply.*not found"):
        synthetic.generate(tmp_path / "out", scale="tiny", template_ply=tmp_path / "missing.ply")
    assert not (tmp_path / "out" / "data_verts.npy").exists()


# ----------------------------------------------------------------------------- FLAME template
def test_flame_template_motion_lands_on_the_lips(shared_data, tmp_path):
    from vocagan.formats.mesh import read_mesh
    from vocagan.formats.vocaset import open_vocaset

    ply = shared_data / "flame" / "FLAME_sample.ply"
    masks = pickle.load(open(shared_data / "regions" / "FLAME_masks.pkl", "rb"), encoding="latin1")
    flame_v, flame_f = read_mesh(ply)
    frame, _ = face.locate_mouth(flame_v, flame_f)
    lips_v = flame_v[masks["lips"]]
    assert lips_v[:, 1].min() < frame.centre[1] < lips_v[:, 1].max()     # the lip line is between the lips
    assert abs(frame.centre[1] - np.median(lips_v[:, 1])) < 0.006

    result = synthetic.generate(tmp_path / "flame", scale="tiny", seed=0, template_ply=ply)
    assert result.n_vertices == 5023 and result.regions is None
    assert not (tmp_path / "flame" / "region_masks.pkl").exists()
    ds = open_vocaset(DataConfig(root=str(tmp_path / "flame"), **TINY_DATA))
    assert np.array_equal(ds.faces, flame_f)
    lips = np.unique(masks["lips"])
    for subject, sentence in ds.split("train") + ds.split("test"):
        motion = ds.load_verts(subject, sentence) - ds.templates[subject]
        rms = np.sqrt((motion ** 2).sum(2).mean(0))                      # (V,) per-vertex motion
        rank = np.empty(len(rms), int)
        rank[np.argsort(-rms)] = np.arange(len(rms))                     # 0 = moves most
        assert np.mean(rank[lips] < 0.15 * len(rms)) > 0.95              # lips are among the top 15 % movers
        assert np.median(rank[lips]) < 0.1 * len(rms)
        assert rms[lips].mean() > 2 * rms[masks["face"]].mean()
        assert rms[masks["scalp"]].max() < 3e-4                          # the skull stays still
