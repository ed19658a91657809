"""vocagan.synth.corpus, the synthetic corpus: the written VOCASET files, determinism, evidence that
speech -> motion is learnable (and that subjects differ), bilabial closures, scales, errors, and a
corpus on the real FLAME template. (The head mesh and motion basis: test_face.py; timelines and
audio: test_speech.py.)"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from vocagan.config import TEST_SUBJECTS, TRAIN_SUBJECTS, VAL_SUBJECTS, DataConfig
from vocagan.errors import VocaganError
from vocagan.synth import corpus as synthetic
from vocagan.synth import face
from vocagan.synth.canonical import canonical_head

TINY_DATA = dict(train_sentences=[1, 2], val_sentences=[21, 22], test_sentences=[21, 22])


def frame_energy_db(x: np.ndarray, sr: int, n_frames: int, fps: int = 60) -> np.ndarray:
    hop = sr / fps
    return np.array(
        [
            10 * np.log10(np.mean(x[int(max(0, (i - 0.5) * hop)) : int((i + 0.5) * hop)] ** 2) + 1e-12)
            for i in range(n_frames)
        ]
    )


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
        assert len(verts) == round(len(audio) / sr * 60)  # T60 = round(duration * 60)
        assert windows.shape[1:] == (16, 29) and abs(len(windows) - len(verts)) <= 1
        mismatched += len(windows) != len(verts)
        assert (tiny_corpus / "wav" / f"{subject}_{sentence}.wav").is_file()
        assert 1.2 < len(audio) / sr < 2.3
    assert 1 <= mismatched <= 4  # a few off-by-one sequences
    notice = (tiny_corpus / "MEDIAPIPE_NOTICE.txt").read_text()  # the face's licence travels with the corpus
    assert "Apache" in notice and "Apache License" in (tiny_corpus / "MEDIAPIPE_LICENSE.txt").read_text()
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


def test_learnable_mouth_opening_follows_audio_energy(tiny_corpus, lip_aperture):
    """Open vowels are loud, closures are quiet: the mouth opening correlates with frame energy."""
    from vocagan.formats.pickles import safe_load_pickle
    from vocagan.formats.vocaset import open_vocaset

    ds = open_vocaset(DataConfig(root=str(tiny_corpus), **TINY_DATA))
    lips = safe_load_pickle(tiny_corpus / "region_masks.pkl")["lips"]
    corrs, lags = [], []
    for subject, sentence in ds.split("train"):
        verts = ds.load_verts(subject, sentence)
        audio, sr = ds.raw_audio(subject, sentence)
        opening = lip_aperture(verts, ds.templates[subject], lips)
        energy = frame_energy_db(audio, sr, len(verts))
        corrs.append(np.corrcoef(opening, energy)[0, 1])
        n = len(opening)
        lags.append(
            max(
                range(-5, 6),
                key=lambda k: np.corrcoef(opening[max(0, -k) : n - max(0, k)], energy[max(0, k) : n - max(0, -k)])[
                    0, 1
                ],
            )
        )
    assert np.mean(corrs) > 0.4 and min(corrs) > 0.1
    assert 0 <= np.median(lags) <= 3  # motion leads the sound slightly


def test_bilabial_closures_are_quiet_then_burst(lip_aperture):
    """During /p/ /b/ the lips close (aperture back to rest) while the audio is quiet (above 500 Hz:
    a voiced closure carries a low-frequency voice bar, as in real speech); the release that follows
    is loud."""
    from scipy.signal import butter, sosfilt

    profiles = synthetic.subject_profiles(0)
    base = canonical_head(synthetic.SCALES["small"].face_levels)
    checked = 0
    for sentence in range(1, 7):
        p = profiles[sentence % 8]
        template, basis = synthetic.subject_geometry(base, p)
        seq = synthetic.make_sequence(p, sentence, 0, synthetic.SCALES["small"], template, basis)
        opening = lip_aperture(seq.verts, template, base.regions["lips"])
        above_bar = sosfilt(butter(4, 500, btype="highpass", fs=seq.sample_rate, output="sos"), seq.audio)
        energy = frame_energy_db(above_bar, seq.sample_rate, len(seq.verts))
        for s in seq.timeline:
            if s.phone in ("p", "b") and s.release - s.start > 0.05:
                mid = int(round((0.5 * (s.start + s.release)) * 60))
                after = energy[int(round(s.release * 60)) : int(round(s.release * 60)) + 3].max()
                assert opening[mid] < 0.0015, (s, opening[mid])
                assert energy[mid] < after - 10, (s, energy[mid], after)
                checked += 1
    assert checked >= 3


def test_subjects_differ_in_identity_voice_and_style(lip_aperture):
    profiles = synthetic.subject_profiles(0)
    base = canonical_head(synthetic.SCALES["tiny"].face_levels)
    templates = [synthetic.subject_geometry(base, p)[0] for p in profiles]
    dists = [np.sqrt(((a - b) ** 2).sum(1).mean()) for i, a in enumerate(templates) for b in templates[i + 1 :]]
    assert min(dists) > 3e-4  # every pair differs by > 0.3 mm rms
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
        swing.append(np.percentile(lip_aperture(seq.verts, template, base.regions["lips"]), 95))
    assert swing[1] > 1.4 * swing[0]


def test_plan_holes_and_scales():
    pairs, missing = synthetic._plan(synthetic.SCALES["full"])
    assert len(pairs) == 12 * 40 - 2
    assert missing == [("FaceTalk_170811_03274_TA", "sentence24"), ("FaceTalk_170809_00138_TA", "sentence32")]
    pairs, missing = synthetic._plan(synthetic.SCALES["small"])
    assert len(pairs) == 8 * 12 + 4 * 4 and not missing
    with pytest.raises(VocaganError, match="unknown scale"):
        synthetic.generate("/nonexistent/never-written", scale="huge")


def test_bench_scale_adds_held_out_speakers_and_configs_bench_names_them(repo):
    """The benchmark corpus: VOCASET's 8 x 40 training sequences and 12 + 48 held-out speakers x
    sentences 21-30; configs/bench.yaml's split is exactly the corpus's subjects and sentences."""
    from vocagan.config import load_config

    sc = synthetic.SCALES["bench"]
    pairs, missing = synthetic._plan(sc)
    assert len(pairs) == 8 * 40 + (4 + 56) * 10 and not missing
    val_extra, test_extra = synthetic.extra_subjects(sc)
    assert val_extra[0] == "Synth_val_01" and len(val_extra) == 10 and test_extra[-1] == "Synth_test_46"
    data = load_config(repo / "configs" / "bench.yaml").data
    assert data.train_subjects == TRAIN_SUBJECTS and data.train_sentences == list(sc.train_sentences)
    assert data.val_subjects == VAL_SUBJECTS + val_extra and data.test_subjects == TEST_SUBJECTS + test_extra
    assert data.val_sentences == data.test_sentences == list(sc.heldout_sentences)


def test_extra_speakers_never_change_the_others():
    """Adding speakers keeps the 12 VOCASET ones and every other extra speaker as they were; the
    extras' styles span the 12's range."""
    few = synthetic.subject_profiles(0, (["Synth_val_01"], ["Synth_test_01"]))
    many = synthetic.subject_profiles(0, ([f"Synth_val_{i:02d}" for i in range(1, 6)], ["Synth_test_01"]))
    assert few[:12] == synthetic.subject_profiles(0) == many[:12]
    assert few[12] == many[12] and few[13] == many[-1]  # Synth_val_01, Synth_test_01
    assert len({p.index for p in many}) == len(many)
    amps = [p.style.amp for p in synthetic.subject_profiles(0, synthetic.extra_subjects(synthetic.SCALES["bench"]))]
    assert 0.62 <= min(amps) < 0.75 and 1.25 < max(amps) <= 1.38


def test_the_stamp_names_scale_seed_mesh_voices_and_channel(tiny_corpus):
    """`synth --reuse` and builtin_corpus keep a corpus only when its stamp is the one these settings
    write: scale, seed, mesh, the opt-in voices and channel all change it."""
    stamp = (tiny_corpus / synthetic.VERSION_FILE).read_text().strip()
    assert stamp == synthetic.corpus_stamp("tiny", 0)
    others = {
        synthetic.corpus_stamp("small", 0),
        synthetic.corpus_stamp("tiny", 1),
        synthetic.corpus_stamp("tiny", 0, voices=("kal",)),
        synthetic.corpus_stamp("tiny", 0, channel=True),
    }
    assert stamp not in others and len(others) == 4


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
    assert lips_v[:, 1].min() < frame.centre[1] < lips_v[:, 1].max()  # the lip line is between the lips
    assert abs(frame.centre[1] - np.median(lips_v[:, 1])) < 0.006

    result = synthetic.generate(tmp_path / "flame", scale="tiny", seed=0, template_ply=ply)
    assert result.n_vertices == 5023 and result.regions is None
    assert not (tmp_path / "flame" / "region_masks.pkl").exists()
    assert not (tmp_path / "flame" / "MEDIAPIPE_NOTICE.txt").exists()  # not the MediaPipe face
    ds = open_vocaset(DataConfig(root=str(tmp_path / "flame"), **TINY_DATA))
    assert np.array_equal(ds.faces, flame_f)
    lips = np.unique(masks["lips"])
    for subject, sentence in ds.split("train") + ds.split("test"):
        motion = ds.load_verts(subject, sentence) - ds.templates[subject]
        rms = np.sqrt((motion**2).sum(2).mean(0))  # (V,) per-vertex motion
        rank = np.empty(len(rms), int)
        rank[np.argsort(-rms)] = np.arange(len(rms))  # 0 = moves most
        assert np.mean(rank[lips] < 0.15 * len(rms)) > 0.95  # lips are among the top 15 % movers
        assert np.median(rank[lips]) < 0.1 * len(rms)
        assert rms[lips].mean() > 2 * rms[masks["face"]].mean()
        assert rms[masks["scalp"]].max() < 3e-4  # the skull stays still


def test_synth_reuse_from_the_command_line(tiny_corpus, tmp_path, capsys):
    import shutil

    from vocagan import cli

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    before = (out / "data_verts.npy").stat().st_mtime_ns
    assert cli.main(["synth", "--scale", "tiny", "--reuse", "--out", str(out)]) == 0
    assert (out / "data_verts.npy").stat().st_mtime_ns == before
    assert "using the built-in corpus" in capsys.readouterr().err
    assert cli.main(["synth", "--reuse", "--template-ply", str(tmp_path / "x.ply"), "--out", str(out)]) == 1
    err = capsys.readouterr().err  # another mesh would be written again; a missing one is one line
    assert err.startswith("error: ") and "x.ply" in err and err.count("\n") == 1
    assert (out / "data_verts.npy").stat().st_mtime_ns == before  # and nothing was touched
