"""VOCASET format layer: writer -> reader round trip, read-only mmap, safe pickles (Python 2 / numpy 1
streams included), skipped pairs, validation errors, the converted layout. (`convert`:
test_convert.py.)"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from vocagan.config import DataConfig
from vocagan.errors import VocaganError
from vocagan.formats.mesh import read_mesh, write_ply
from vocagan.formats.pickles import safe_load_pickle
from vocagan.formats.vocaset import open_vocaset
from vocagan.formats.vocaset_files import resolve_paths
from vocagan.formats.vocaset_writer import VocasetWriter

V = 30  # vertices of the toy mesh
FACES = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7]], np.int32)
SUBJECTS = ["FaceTalk_A_TA", "FaceTalk_B_TA", "FaceTalk_C_TA"]


def _split_cfg(root, **kw) -> DataConfig:
    base = dict(
        root=str(root),
        train_subjects=SUBJECTS[:2],
        train_sentences=[1, 2],
        val_subjects=SUBJECTS[2:],
        val_sentences=[1, 2],
        test_subjects=SUBJECTS[2:],
        test_sentences=[2],
    )
    base.update(kw)
    return DataConfig(**base)


def _write_corpus(out: Path, deepspeech=True, masks=None, skip=()) -> dict:
    """A 3-subject x 2-sentence corpus; returns the arrays written, keyed by (subject, sentence)."""
    rng = np.random.default_rng(1)
    written = {}
    with VocasetWriter(out, V, faces=FACES, masks=masks) as w:
        for s_i, subject in enumerate(SUBJECTS):
            template = rng.normal(size=(V, 3)).astype(np.float32) * 0.1
            w.add_subject(subject, template)
            for n in (1, 2):
                if (subject, n) in skip:
                    continue
                t = 5 + 3 * s_i + n
                verts = template + rng.normal(size=(t, V, 3)).astype(np.float32) * 1e-3
                sr = 16000 if n == 1 else 22000
                audio = (rng.uniform(-0.5, 0.5, size=sr // 10)).astype(np.float32)
                ds = rng.normal(size=(t, 16, 29)).astype(np.float32) if deepspeech else None
                w.add_sequence(subject, n, verts, audio, sr, ds)
                written[(subject, f"sentence{n:02d}")] = dict(verts=verts, audio=audio, sr=sr, ds=ds, template=template)
    return written


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return out, _write_corpus(out)


def _copy(corpus, tmp_path) -> Path:
    dst = tmp_path / "c"
    shutil.copytree(corpus[0], dst)
    return dst


# ----------------------------------------------------------------------------- round trip
def test_writer_reader_round_trip_is_exact(corpus):
    root, written = corpus
    names = sorted(p.name for p in root.iterdir())
    assert names == [
        "FLAME_sample.ply",
        "data_verts.npy",
        "processed_audio_deepspeech.pkl",
        "raw_audio_fixed.pkl",
        "subj_seq_to_idx.pkl",
        "templates.pkl",
        "wav",
    ]
    for name in ("subj_seq_to_idx.pkl", "templates.pkl", "raw_audio_fixed.pkl", "processed_audio_deepspeech.pkl"):
        assert (root / name).read_bytes()[:2] == b"\x80\x02"  # protocol 2, as the original files
    vs = open_vocaset(_split_cfg(root))
    assert vs.n_vertices == V and vs.layout == "vocaset" and vs.skipped == []
    assert vs.subjects() == SUBJECTS and vs.sentences(SUBJECTS[0]) == ["sentence01", "sentence02"]
    assert vs.split("train") == [(s, q) for s in SUBJECTS[:2] for q in ("sentence01", "sentence02")]
    assert vs.split("test") == [(SUBJECTS[2], "sentence02")]
    np.testing.assert_array_equal(vs.faces, FACES)
    np.testing.assert_array_equal(vs.template_mesh, written[(SUBJECTS[0], "sentence01")]["template"])
    index = safe_load_pickle(root / "subj_seq_to_idx.pkl")
    row = 0
    for (subject, sentence), w in written.items():  # rows are stacked in writing order
        assert index[subject][sentence] == {i: row + i for i in range(len(w["verts"]))}
        row += len(w["verts"])
        np.testing.assert_array_equal(vs.load_verts(subject, sentence), w["verts"])
        assert vs.sequence_length(subject, sentence) == len(w["verts"])
        np.testing.assert_array_equal(vs.templates[subject], w["template"])
        audio, sr = vs.raw_audio(subject, sentence)
        assert sr == w["sr"] and audio.dtype == np.float32
        np.testing.assert_array_equal(audio, w["audio"])
        np.testing.assert_array_equal(vs.deepspeech(subject, sentence), w["ds"])
        info = soundfile.info(str(root / "wav" / f"{subject}_{sentence}.wav"))
        assert info.subtype == "PCM_16" and info.samplerate == w["sr"] and info.frames == len(w["audio"])
    assert vs.verts.shape == (row, V, 3)
    assert vs.masks is None and vs.masks_source == "none"


def test_verts_is_a_read_only_memmap_and_sequences_are_copies(corpus):
    vs = open_vocaset(_split_cfg(corpus[0]))
    assert isinstance(vs.verts, np.memmap) and vs.verts.mode == "r"
    with pytest.raises(ValueError):
        vs.verts[0, 0, 0] = 1.0  # read-only
    seq = vs.load_verts(SUBJECTS[0], "sentence01")
    assert not isinstance(seq, np.memmap) and seq.flags.writeable and seq.dtype == np.float32


def test_writer_streams_frames_and_renames_only_at_close(tmp_path):
    w = VocasetWriter(tmp_path, V)
    w.add_subject("S", np.zeros((V, 3)))
    for n in range(3):
        w.add_sequence("S", n + 1, np.ones((10, V, 3)), np.zeros(100), 16000)
        # frames are already on disk (header + rows), under a temporary name only
        tmp = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-data_verts.npy")]
        assert len(tmp) == 1 and tmp[0].stat().st_size == 128 + (n + 1) * 10 * V * 3 * 4
    assert not (tmp_path / "data_verts.npy").exists() and not (tmp_path / "wav" / "S_sentence01.wav").exists()
    w.close()
    assert np.load(tmp_path / "data_verts.npy").shape == (30, V, 3)
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_writer_error_leaves_nothing_behind(tmp_path):
    with pytest.raises(VocaganError, match="must be"):
        with VocasetWriter(tmp_path, V) as w:
            w.add_subject("S", np.zeros((V, 3)))
            w.add_sequence("S", 1, np.ones((4, V, 3)), np.zeros(10), 16000)
            w.add_sequence("S", 2, np.ones((4, V + 1, 3)), np.zeros(10), 16000)  # wrong vertex count
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(VocaganError, match="every sequence or for none"):
        with VocasetWriter(tmp_path / "b", V) as w:
            w.add_subject("S", np.zeros((V, 3)))
            w.add_sequence("S", 1, np.ones((4, V, 3)), np.zeros(10), 16000, np.zeros((4, 16, 29)))
            w.add_sequence("S", 2, np.ones((4, V, 3)), np.zeros(10), 16000)


# ----------------------------------------------------------------------------- safe pickles
class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    for proto in (0, 2, 5):
        path = tmp_path / f"evil{proto}.pkl"
        path.write_bytes(pickle.dumps({"FaceTalk_A_TA": _Evil(marker)}, protocol=proto))
        with pytest.raises(VocaganError, match=r"refusing to unpickle (os|posix)\.system") as err:
            safe_load_pickle(path)
        assert str(path) in str(err.value)
    (tmp_path / "eval.pkl").write_bytes(
        b"cbuiltins\neval\n(V__import__('os').system('touch %s')\ntR." % str(marker).encode()
    )
    with pytest.raises(VocaganError, match="refusing to unpickle builtins.eval"):
        safe_load_pickle(tmp_path / "eval.pkl")
    assert not marker.exists()


def _s(b: bytes) -> bytes:
    """A Python 2 `str` as cPickle wrote it: SHORT_BINSTRING (or BINSTRING when long)."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _dtype(code: bytes) -> bytes:
    # numpy.dtype(code, 0, 1) + __setstate__((3, '<', None, None, None, -1, -1, 0)), as numpy 1.x
    return (
        b"cnumpy\ndtype\n"
        + _s(code)
        + b"K\x00K\x01\x87R(K\x03"
        + _s(b"<")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )


def _array(a: np.ndarray) -> bytes:
    # numpy.core.multiarray._reconstruct(ndarray, (0,), 'b') + __setstate__((1, shape, dtype, False, raw))
    shape = b"(" + b"".join(b"J" + struct.pack("<i", n) for n in a.shape) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + _s(b"b")
        + b"\x87R"
        + b"(K\x01"
        + shape
        + _dtype(a.dtype.str[1:].encode())
        + b"\x89"
        + _s(a.tobytes())
        + b"tb"
    )


def _scalar_i8(v: int) -> bytes:
    return b"cnumpy.core.multiarray\nscalar\n(" + _dtype(b"i8") + _s(struct.pack("<q", v)) + b"tR"


def _dict(items: list[tuple[bytes, bytes]]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in items) + b"u"


def _py2_pickle(obj: bytes) -> bytes:
    return b"\x80\x02" + obj + b"."


def test_python2_numpy1_pickles_load(tmp_path):
    """Hand-assembled streams as Python 2 + numpy 1.x wrote VOCASET: str keys as SHORT_BINSTRING,
    arrays via numpy.core.multiarray._reconstruct, np.int64 via numpy.core.multiarray.scalar."""
    root = tmp_path / "c"
    written = _write_corpus(root, deepspeech=False)
    subject = SUBJECTS[0]
    pcm = (np.arange(-800, 800, 3) * 40).astype("<i2")
    raw = _dict(
        [
            (
                _s(s.encode()),
                _dict(
                    [
                        (
                            _s(b"sentence01"),
                            _dict([(_s(b"audio"), _array(pcm)), (_s(b"sample_rate"), _scalar_i8(22000))]),
                        ),
                        (
                            _s(b"sentence02"),
                            _dict([(_s(b"audio"), _array(pcm)), (_s(b"sample_rate"), b"J\xf0U\x00\x00")]),
                        ),
                    ]
                ),
            )
            for s in SUBJECTS
        ]
    )
    (root / "raw_audio_fixed.pkl").write_bytes(_py2_pickle(raw))
    templates = _dict(
        [(_s(s.encode()), _array(written[(s, "sentence01")]["template"].astype("<f8"))) for s in SUBJECTS]
    )
    (root / "templates.pkl").write_bytes(_py2_pickle(templates))
    assert b"numpy._core" not in (root / "templates.pkl").read_bytes()
    loaded = safe_load_pickle(root / "raw_audio_fixed.pkl")
    with open(root / "raw_audio_fixed.pkl", "rb") as f:  # the stream is valid for the stdlib too
        np.testing.assert_array_equal(pickle.load(f, encoding="latin1")[subject]["sentence01"]["audio"], pcm)
    assert loaded[subject]["sentence01"]["sample_rate"] == 22000
    assert isinstance(loaded[subject]["sentence01"]["sample_rate"], np.int64)
    vs = open_vocaset(_split_cfg(root))
    audio, sr = vs.raw_audio(subject, "sentence01")
    assert sr == 22000 and vs.raw_audio(subject, "sentence02")[1] == 22000
    np.testing.assert_allclose(audio, pcm / 32768.0, atol=0)
    np.testing.assert_array_equal(vs.templates[subject], written[(subject, "sentence01")]["template"])
    # the same stream with the names current numpy writes (numpy._core) loads too
    (root / "t2.pkl").write_bytes((root / "templates.pkl").read_bytes().replace(b"cnumpy.core.", b"cnumpy._core."))
    np.testing.assert_array_equal(safe_load_pickle(root / "t2.pkl")[subject], vs.templates[subject])


def test_bytes_keys_and_frame_gaps(corpus, tmp_path, capsys):
    root = _copy(corpus, tmp_path)
    index = safe_load_pickle(root / "subj_seq_to_idx.pkl")
    rows = index[SUBJECTS[0]]["sentence01"]
    # frames 10, 11, 13, ... (not from 0, one missing), stored in shuffled key order
    shuffled = {10 + k + (k >= 2): rows[k] for k in reversed(range(len(rows)))}
    index[SUBJECTS[0]]["sentence01"] = shuffled
    byte_keyed = {s.encode(): {q.encode(): v for q, v in d.items()} for s, d in index.items()}
    (root / "subj_seq_to_idx.pkl").write_bytes(pickle.dumps(byte_keyed, protocol=2))
    vs = open_vocaset(_split_cfg(root))
    assert vs.subjects() == SUBJECTS
    np.testing.assert_array_equal(
        vs.load_verts(SUBJECTS[0], "sentence01"), corpus[1][(SUBJECTS[0], "sentence01")]["verts"]
    )
    assert vs.gaps == [(SUBJECTS[0], "sentence01", 1)]
    assert "gaps" in capsys.readouterr().err


# ----------------------------------------------------------------------------- splits and holes
def test_missing_pairs_are_skipped_counted_and_logged_once(tmp_path, capsys):
    root = tmp_path / "c"
    _write_corpus(root, skip={(SUBJECTS[1], 2)})
    raw = safe_load_pickle(root / "raw_audio_fixed.pkl")
    del raw[SUBJECTS[0]]["sentence01"]  # mesh present, audio missing
    (root / "raw_audio_fixed.pkl").write_bytes(pickle.dumps(raw, protocol=2))
    vs = open_vocaset(_split_cfg(root, train_subjects=SUBJECTS[:2] + ["FaceTalk_gone_TA"]))
    assert vs.split("train") == [(SUBJECTS[0], "sentence02"), (SUBJECTS[1], "sentence01")]
    # a hole (in some files, not all) is skipped with its reason; a pair in no file is "absent"
    assert vs.skipped == [(SUBJECTS[0], "sentence01", "not in raw_audio_fixed.pkl")]
    assert sorted(vs.absent) == [
        (SUBJECTS[1], "sentence02"),
        ("FaceTalk_gone_TA", "sentence01"),
        ("FaceTalk_gone_TA", "sentence02"),
    ]
    assert vs.raw_audio(SUBJECTS[0], "sentence01") is None
    err = capsys.readouterr().err
    assert err.count("vocaset:") == 1 and "skipped 1" in err and "3 requested sequence(s) are in no file" in err
    vs.split("val"), vs.split("test")
    assert capsys.readouterr().err == ""  # once per open, not per split


def test_split_with_no_surviving_pair_is_an_error(corpus):
    vs = open_vocaset(_split_cfg(corpus[0], test_subjects=["FaceTalk_nobody_TA"]))
    with pytest.raises(VocaganError, match="no complete sequence for split 'test'"):
        vs.split("test")
    assert vs.split("train")  # the other splits still work
    with pytest.raises(VocaganError, match="unknown split"):
        vs.split("dev")


def test_masks_resolution(tmp_path, corpus):
    root = tmp_path / "c"
    _write_corpus(root, masks={"lips": np.arange(5), "forehead": np.arange(5, 9)})
    vs = open_vocaset(_split_cfg(root))
    assert vs.masks_source.endswith("region_masks.pkl") and vs.masks["lips"].tolist() == [0, 1, 2, 3, 4]
    with open(root / "FLAME_masks.pkl", "wb") as f:
        pickle.dump({"lips": np.arange(7, 10)}, f, protocol=0)
    vs = open_vocaset(_split_cfg(root))
    assert vs.masks_source.endswith("FLAME_masks.pkl") and vs.masks["lips"].tolist() == [7, 8, 9]
    with open(tmp_path / "mine.pkl", "wb") as f:
        pickle.dump({"lips": np.array([1])}, f)
    assert open_vocaset(_split_cfg(root, masks_path=str(tmp_path / "mine.pkl"))).masks["lips"].tolist() == [1]
    with open(tmp_path / "big.pkl", "wb") as f:
        pickle.dump({"lips": np.array([V])}, f)
    with pytest.raises(VocaganError, match="big.pkl.*outside"):
        open_vocaset(_split_cfg(root, masks_path=str(tmp_path / "big.pkl")))


# ----------------------------------------------------------------------------- bad inputs
def _assert_error(cfg, file: Path, fragment: str, call=None):
    with pytest.raises(VocaganError) as err:
        vs = open_vocaset(cfg)
        if call:
            call(vs)
    message = str(err.value)
    assert str(file) in message and fragment in message, message
    assert "\n" not in message


def test_bad_inputs_give_one_line_errors_naming_the_file(corpus, tmp_path):
    root = _copy(corpus, tmp_path)
    cfg = _split_cfg(root)
    verts = np.load(root / "data_verts.npy")

    def restore():
        shutil.rmtree(root)
        shutil.copytree(corpus[0], root)

    (root / "templates.pkl").unlink()
    _assert_error(cfg, root / "templates.pkl", "file not found")
    restore()
    np.save(root / "data_verts.npy", verts.reshape(len(verts), -1))
    _assert_error(cfg, root / "data_verts.npy", "shape (frames, vertices, 3)")
    np.save(root / "data_verts.npy", verts[..., :2])
    _assert_error(cfg, root / "data_verts.npy", "shape (frames, vertices, 3)")
    np.save(root / "data_verts.npy", verts[:, :-1])
    _assert_error(cfg, root / "templates.pkl", f"has {V} vertices")
    restore()
    write_ply(root / "FLAME_sample.ply", np.zeros((V + 2, 3)))
    _assert_error(cfg, root / "FLAME_sample.ply", f"{V + 2} vertices")
    np.save(root / "data_verts.npy", verts[:-1])  # last row now beyond the end
    restore()
    np.save(root / "data_verts.npy", verts[:-1])
    _assert_error(cfg, root / "subj_seq_to_idx.pkl", f"outside data_verts.npy ({len(verts) - 1} frames)")
    restore()
    bad = verts.copy()
    bad[safe_load_pickle(root / "subj_seq_to_idx.pkl")[SUBJECTS[1]]["sentence01"][2], 3, 1] = np.nan
    np.save(root / "data_verts.npy", bad)
    _assert_error(
        cfg,
        root / "data_verts.npy",
        f"NaN/inf in sequence {SUBJECTS[1]}/sentence01 (frame 2",
        lambda vs: [vs.load_verts(*p) for p in vs.split("train")],
    )
    restore()
    (root / "templates.pkl").write_bytes(pickle.dumps([np.zeros((V, 3))], protocol=2))
    _assert_error(cfg, root / "templates.pkl", "wrong structure: expected a dict subject")
    (root / "templates.pkl").write_bytes(pickle.dumps({"S": "not an array"}, protocol=2))
    _assert_error(cfg, root / "templates.pkl", "must be a (V, 3) array")
    restore()
    (root / "raw_audio_fixed.pkl").write_bytes(pickle.dumps({SUBJECTS[0]: [1, 2]}, protocol=2))
    _assert_error(cfg, root / "raw_audio_fixed.pkl", "wrong structure")
    restore()
    data = (root / "data_verts.npy").read_bytes()
    (root / "data_verts.npy").write_bytes(data[: len(data) // 2])
    _assert_error(cfg, root / "data_verts.npy", "not a readable .npy file")
    (root / "data_verts.npy").write_bytes(b"garbage")
    _assert_error(cfg, root / "data_verts.npy", "not a readable .npy file")
    restore()
    data = (root / "subj_seq_to_idx.pkl").read_bytes()
    (root / "subj_seq_to_idx.pkl").write_bytes(data[: len(data) // 2])
    _assert_error(cfg, root / "subj_seq_to_idx.pkl", "corrupt or truncated pickle")
    _assert_error(_split_cfg(tmp_path / "nowhere"), tmp_path / "nowhere", "data folder not found")
    _assert_error(_split_cfg(root, template_ply_path=str(tmp_path / "x.ply")), tmp_path / "x.ply", "file not found")


def test_resolve_paths_explicit_paths_win(corpus, tmp_path):
    other = tmp_path / "elsewhere.pkl"
    shutil.copy(corpus[0] / "templates.pkl", other)
    paths = resolve_paths(_split_cfg(corpus[0], template_path=str(other)))
    assert paths.templates == other and paths.data_verts == corpus[0] / "data_verts.npy"
    assert paths.raw_audio is not None and paths.masks is None
    cfg = DataConfig(
        data_verts_path=str(corpus[0] / "data_verts.npy"),
        idx_map_path=str(corpus[0] / "subj_seq_to_idx.pkl"),
        template_path=str(other),
    )
    paths = resolve_paths(cfg)
    # the seed's explicit flags only: optional files are found next to data_verts.npy
    assert paths.raw_audio == corpus[0] / "raw_audio_fixed.pkl"
    assert paths.template_ply == corpus[0] / "FLAME_sample.ply"
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(corpus[0] / "data_verts.npy", lone)
    paths = resolve_paths(
        DataConfig(
            data_verts_path=str(lone / "data_verts.npy"),
            idx_map_path=str(corpus[0] / "subj_seq_to_idx.pkl"),
            template_path=str(other),
        )
    )
    assert paths.deepspeech is None and paths.raw_audio is None and paths.template_ply is None


# ----------------------------------------------------------------------------- converted layout
def _converted_layout(corpus, dst: Path, fps_step: int = 1) -> None:
    vs = open_vocaset(_split_cfg(corpus[0]))
    (dst / "vertices_npy").mkdir(parents=True)
    (dst / "wav").mkdir()
    for (subject, sentence), w in corpus[1].items():
        np.save(dst / "vertices_npy" / f"{subject}_{sentence}.npy", w["verts"][::fps_step].reshape(-1, V * 3))
        shutil.copy(corpus[0] / "wav" / f"{subject}_{sentence}.wav", dst / "wav")
    with open(dst / "templates.pkl", "wb") as f:
        pickle.dump(vs.templates, f, protocol=2)


def test_converted_layout_reads_through_open_vocaset(corpus, tmp_path):
    root = tmp_path / "conv"
    _converted_layout(corpus, root)
    vs = open_vocaset(_split_cfg(root, source_fps=30))
    assert vs.layout == "converted" and vs.verts is None and vs.source_fps == 30
    assert vs.subjects() == SUBJECTS and vs.split("train")
    for (subject, sentence), w in corpus[1].items():
        np.testing.assert_array_equal(vs.load_verts(subject, sentence), w["verts"])
        audio, sr = vs.raw_audio(subject, sentence)
        assert sr == w["sr"]
        np.testing.assert_allclose(audio, w["audio"], atol=1 / 32768 + 1e-7)  # 16-bit PCM quantisation
        assert vs.deepspeech(subject, sentence) is None


# ----------------------------------------------------------------------------- real files
def test_real_flame_masks_load_safely(shared_data):
    masks = safe_load_pickle(shared_data / "regions" / "FLAME_masks.pkl")
    assert len(masks["lips"]) == 254 and len(np.unique(masks["lips"])) == 250
    assert len(masks["forehead"]) == 133 and len(masks["eye_region"]) == 751


def test_real_flame_template_with_real_masks(shared_data, tmp_path):
    vertices, faces = read_mesh(shared_data / "flame" / "FLAME_sample.ply")
    with VocasetWriter(tmp_path, len(vertices), faces=faces) as w:
        w.add_subject("FaceTalk_170728_03272_TA", vertices)
        w.add_sequence("FaceTalk_170728_03272_TA", 1, vertices[None].repeat(3, 0), np.zeros(1600), 16000)
    vs = open_vocaset(
        DataConfig(
            root=str(tmp_path),
            masks_path=str(shared_data / "regions" / "FLAME_masks.pkl"),
            train_subjects=["FaceTalk_170728_03272_TA"],
            train_sentences=[1],
            val_subjects=[],
            test_subjects=[],
        )
    )
    assert vs.faces.shape == (9976, 3) and len(vs.masks["lips"]) == 254
    assert vs.split("train") == [("FaceTalk_170728_03272_TA", "sentence01")] and vs.split("val") == []


def test_tiny_synthetic_corpus_opens(request):
    pytest.importorskip("vocagan.synth.corpus")  # written by another module; skip until it exists
    vs = open_vocaset(DataConfig(root=str(request.getfixturevalue("tiny_corpus"))))
    assert vs.n_vertices == vs.verts.shape[1] and vs.subjects()
