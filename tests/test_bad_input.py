"""Bad input, by hand: each case goes through the real entry point (the CLI `main`, `open_vocaset`,
`prepare`, the readers) and must end in ONE clear error line naming the file (exit status 1), or,
where DESIGN.md says so (a sequence missing from some file), in a skip that is counted and reported.

Readers: malformed PLY list lengths, NaN vertices, YAML nesting and alias bombs, pickle memory bombs.
Semantics: template/mesh vertex counts, NaN/inf frames, zero-length / silent audio, sample rate 0,
a subject without a template, a 1-frame sentence, an unknown style or template.
"""

from __future__ import annotations

import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from vocagan.cli import main
from vocagan.config import DataConfig, load_config
from vocagan.errors import VocaganError
from vocagan.formats.pickles import safe_load_pickle

SUBJECT = "FaceTalk_170728_03272_TA"  # first training subject of the tiny corpus
TEST_SUBJECT = "FaceTalk_170809_00138_TA"


# ----------------------------------------------------------------------------- helpers
def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit 1 with exactly one `error:` line (the last stderr line), no traceback."""
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


def copy_corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    return root


def rewrite_pickle(path: Path, edit) -> None:
    """Load a VOCASET pickle, let `edit(obj)` change it in place, write it back (protocol 2)."""
    obj = safe_load_pickle(path)
    edit(obj)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def prepare_argv(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["prepare", "--data", str(root), "--cache-dir", str(tmp_path / "cache"), *extra]


def set_frame(root: Path, subject: str, sentence: str, frame: int, value: float) -> None:
    rows = safe_load_pickle(root / "subj_seq_to_idx.pkl")[subject][sentence]
    verts = np.load(root / "data_verts.npy", mmap_mode="r+")
    verts[rows[frame], 3, 1] = value
    verts.flush()
    del verts


# ----------------------------------------------------------------------------- readers, by hand
PLY_HEADER = (
    b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    b"property float z\nelement face 1\nproperty list int int vertex_indices\nend_header\n"
)


@pytest.mark.parametrize("count", [-3, 2**31 - 1])
def test_ply_impossible_list_length(tmp_path, count):
    from vocagan.formats.mesh import read_mesh

    path = tmp_path / "face.ply"
    path.write_bytes(PLY_HEADER + np.zeros(9, "<f4").tobytes() + struct.pack("<i", count) + struct.pack("<3i", 0, 1, 2))
    with pytest.raises(VocaganError, match=rf"face.ply: PLY element 'face': list length {count} is impossible"):
        read_mesh(path)


def test_ply_huge_element_count_is_truncated_not_a_hang(tmp_path):
    from vocagan.formats.mesh import read_mesh

    path = tmp_path / "big.ply"
    path.write_bytes(PLY_HEADER.replace(b"vertex 3", b"vertex 4000000000") + np.zeros(9, "<f4").tobytes())
    with pytest.raises(VocaganError, match="big.ply: truncated PLY"):
        read_mesh(path)


def test_mesh_with_nan_vertices(tmp_path):
    from vocagan.formats.mesh import read_mesh

    path = tmp_path / "nan.obj"
    path.write_text("v nan 0 0\nv 0 1 0\nv inf 0 1\nf 1 2 3\n")
    with pytest.raises(VocaganError, match="nan.obj: 2 vertices have NaN/inf coordinates"):
        read_mesh(path)


def test_yaml_alias_bomb_and_deep_nesting(tmp_path, capsys):
    """A 1 kB YAML whose aliases expand to 10^9 list items, and 1000 nested brackets: errors, not hangs."""
    levels = ["&l0 [x,x,x,x,x,x,x,x,x,x]"] + [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("data:\n  train_subjects: [" + ", ".join(levels) + "]\n")
    assert "bomb.yaml: config holds more than 100000 values" in cli_error(capsys, ["prepare", "--config", str(bomb)])
    deep = tmp_path / "deep.yaml"
    deep.write_text("data: " + "[" * 1000 + "]" * 1000 + "\n")
    with pytest.raises(VocaganError, match="deep.yaml: invalid YAML"):
        load_config(deep)


def test_yaml_not_utf8_and_wrong_types(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"train:\n  epochs: \xff\xfe\n")
    with pytest.raises(VocaganError, match=r"exp.yaml: not UTF-8 text \(byte 17\)"):
        load_config(path)
    path.write_text("data:\n  train_subjects: FaceTalk_170728_03272_TA\n")
    with pytest.raises(VocaganError, match="exp.yaml: config key data.train_subjects must be a list of str"):
        load_config(path)
    path.write_text("train:\n  epochs: 3\n")
    with pytest.raises(VocaganError) as err:  # an override's mistake is not blamed on the file
        load_config(path, overrides=["train.nope=1"])
    assert "unknown config key(s) train.nope" in str(err.value) and "exp.yaml" not in str(err.value)


class _HugeArray:
    def __reduce__(self):  # numpy's own pickle path, with a 400 GB shape
        return np.ndarray.__reduce__(np.zeros(1, np.float32))[0], (np.ndarray, (10**11,), b"f")


class _HugeBytes:
    def __reduce__(self):
        return bytearray, (10**11,)


def test_pickle_memory_bomb(tmp_path):
    """Tiny pickles asking for a 400 GB array or a 100 GB bytearray: one clear error."""
    path = tmp_path / "templates.pkl"
    for bomb in (_HugeArray(), _HugeBytes()):
        path.write_bytes(pickle.dumps({"FaceTalk_170728_03272_TA": bomb}, protocol=2))
        assert len(path.read_bytes()) < 200
        with pytest.raises(VocaganError, match="templates.pkl: unpickling needs more memory than is available"):
            safe_load_pickle(path)


@pytest.mark.parametrize("content", [b"", b"\x80\x02]q\x00.", b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x05s."])
def test_pickle_wrong_structure(tiny_corpus, tmp_path, capsys, content):
    """Empty file, a list instead of a dict, a dict of ints instead of arrays."""
    root = copy_corpus(tiny_corpus, tmp_path)
    (root / "templates.pkl").write_bytes(content)
    assert cli_error(capsys, prepare_argv(root, tmp_path)).startswith(f"error: {root / 'templates.pkl'}: ")


def test_folder_instead_of_file_and_missing_files(tiny_corpus, tmp_path, capsys):
    root = copy_corpus(tiny_corpus, tmp_path)
    (root / "data_verts.npy").unlink()
    (root / "data_verts.npy").mkdir()
    folder = cli_error(capsys, prepare_argv(root, tmp_path))
    assert folder == f"error: {root / 'data_verts.npy'}: expected a file, got a folder"
    (root / "data_verts.npy").rmdir()
    assert cli_error(capsys, prepare_argv(root, tmp_path)) == f"error: {root / 'data_verts.npy'}: file not found"
    assert "nowhere: data folder not found" in cli_error(capsys, prepare_argv(tmp_path / "nowhere", tmp_path))


def test_npy_header_garbage(tiny_corpus, tmp_path, capsys):
    root = copy_corpus(tiny_corpus, tmp_path)
    data = bytearray((root / "data_verts.npy").read_bytes()[:4096])
    data[10:20] = b"{'descr': "[::-1]
    (root / "data_verts.npy").write_bytes(bytes(data))
    assert "data_verts.npy: not a readable .npy file" in cli_error(capsys, prepare_argv(root, tmp_path))


# ----------------------------------------------------------------------------- semantic: meshes
def test_template_vertex_count_differs_from_meshes(tiny_corpus, tmp_path, capsys):
    root = copy_corpus(tiny_corpus, tmp_path)
    rewrite_pickle(root / "templates.pkl", lambda t: t.__setitem__(SUBJECT, np.zeros((10, 3), np.float32)))
    msg = cli_error(capsys, prepare_argv(root, tmp_path))
    assert msg == (
        f"error: {root / 'templates.pkl'}: template of {SUBJECT} has 10 vertices, the sequences have "
        f"{np.load(root / 'data_verts.npy', mmap_mode='r').shape[1]}"
    )


def test_template_ply_vertex_count_differs(tiny_corpus, tmp_path, capsys):
    from vocagan.formats.mesh import write_ply

    root = copy_corpus(tiny_corpus, tmp_path)
    write_ply(root / "FLAME_sample.ply", np.zeros((5, 3), np.float32), np.array([[0, 1, 2]]))
    assert "FLAME_sample.ply: mesh has 5 vertices, the sequences have" in cli_error(
        capsys, prepare_argv(root, tmp_path)
    )


def test_converted_layout_with_wrong_vertex_count(tiny_corpus, tmp_path):
    from vocagan.formats.vocaset import open_vocaset

    root = tmp_path / "converted"
    (root / "vertices_npy").mkdir(parents=True)
    shutil.copy(tiny_corpus / "templates.pkl", root / "templates.pkl")
    shutil.copytree(tiny_corpus / "wav", root / "wav")
    np.save(root / "vertices_npy" / f"{SUBJECT}_sentence01.npy", np.zeros((20, 30), np.float32))
    vs = open_vocaset(DataConfig(root=str(root), train_subjects=[SUBJECT], train_sentences=[1]))
    with pytest.raises(VocaganError, match=rf"{SUBJECT}_sentence01.npy: expected \(T, \d+\) or \(T, \d+, 3\), got"):
        vs.load_verts(SUBJECT, "sentence01")


@pytest.mark.parametrize(
    "value,split_subject,sentence", [(np.nan, SUBJECT, "sentence02"), (np.inf, TEST_SUBJECT, "sentence22")]
)
def test_nan_inf_frames(tiny_corpus, tmp_path, capsys, value, split_subject, sentence):
    root = copy_corpus(tiny_corpus, tmp_path)
    set_frame(root, split_subject, sentence, 5, value)
    msg = cli_error(capsys, prepare_argv(root, tmp_path))
    assert msg == (
        f"error: {root / 'data_verts.npy'}: NaN/inf in sequence {split_subject}/{sentence} (frame 5, 1 frame(s))"
    )
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.npz"))


def test_one_frame_sentence_prepares_and_trains_a_step(tiny_corpus, tmp_path):
    """A 1-frame sequence (at 60 fps) is kept (1 frame at 30 fps): a batch holding it trains."""
    import torch

    from vocagan.dataset import SequenceDataset, collate
    from vocagan.models import build
    from vocagan.prep.prepare import prepare

    root = copy_corpus(tiny_corpus, tmp_path)
    rewrite_pickle(
        root / "subj_seq_to_idx.pkl", lambda m: m[SUBJECT].__setitem__("sentence01", {0: m[SUBJECT]["sentence01"][0]})
    )
    cfg = load_config(
        overrides=[
            f"data.root={root}",
            f"prep.cache_dir={tmp_path / 'cache'}",
            "model.name=rnn",
            "model.hidden=8",
            "model.n_layers=1",
        ]
    )
    prepared = prepare(cfg)
    info = next(q for q in prepared.seqs["train"] if (q.subject, q.sentence) == (SUBJECT, "sentence01"))
    assert info.length == 1 and prepared.meta["trimmed_sequences"] >= 1
    ds = SequenceDataset(prepared, "train", crop_frames=cfg.train.crop_frames)
    i = prepared.seqs["train"].index(info)
    batch = collate([ds[i], ds[(i + 1) % len(ds)]])
    assert batch["lengths"].tolist()[0] == 1
    model = build(cfg.model, prepared.audio_dim, prepared.motion_dim, len(prepared.styles))
    loss = model.loss(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)


def test_subject_without_template_is_skipped_and_reported(tiny_corpus, tmp_path, capsys):
    root = copy_corpus(tiny_corpus, tmp_path)
    rewrite_pickle(root / "templates.pkl", lambda t: t.pop(SUBJECT))
    capsys.readouterr()
    assert main(prepare_argv(root, tmp_path)) == 0
    err = capsys.readouterr().err
    assert err.count("no template in templates.pkl") == 1  # said once
    from vocagan.prep.prepared import Prepared

    prepared = Prepared.load(next((tmp_path / "cache").glob("*.npz")))
    assert SUBJECT not in prepared.styles and len(prepared.styles) == 7
    skipped = {(s, q): why for s, q, why in prepared.meta["skipped"]}
    assert "no template in templates.pkl" in skipped[(SUBJECT, "sentence01")]


# ----------------------------------------------------------------------------- semantic: audio
def test_sample_rate_zero_in_raw_audio_pickle(tiny_corpus, tmp_path, capsys):
    root = copy_corpus(tiny_corpus, tmp_path)
    rewrite_pickle(root / "raw_audio_fixed.pkl", lambda a: a[SUBJECT]["sentence01"].__setitem__("sample_rate", 0))
    assert cli_error(capsys, prepare_argv(root, tmp_path)) == (
        f"error: {root / 'raw_audio_fixed.pkl'}: {SUBJECT}/sentence01: invalid sample_rate 0 (must be > 0)"
    )


def test_zero_length_audio_is_skipped_and_silent_audio_works(tiny_corpus, tmp_path, capsys):
    from vocagan.prep.prepared import Prepared

    root = copy_corpus(tiny_corpus, tmp_path)

    def edit(audio):
        audio[SUBJECT]["sentence01"]["audio"] = np.zeros(0, np.float32)  # zero-length
        entry = audio[SUBJECT]["sentence02"]
        entry["audio"] = np.zeros_like(entry["audio"])  # digital silence

    rewrite_pickle(root / "raw_audio_fixed.pkl", edit)
    capsys.readouterr()
    assert main(prepare_argv(root, tmp_path)) == 0
    assert f"skipped 1 sequence(s) without audio (e.g. {SUBJECT}/sentence01)" in capsys.readouterr().err
    prepared = Prepared.load(next((tmp_path / "cache").glob("*.npz")))
    names = [(q.subject, q.sentence) for q in prepared.seqs["train"]]
    assert (SUBJECT, "sentence01") not in names and (SUBJECT, "sentence02") in names
    assert np.isfinite(prepared.audio["train"]).all()


# ----------------------------------------------------------------------------- animate / render / evaluate
@pytest.fixture(scope="module")
def checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    """An untrained RNN checkpoint over the tiny corpus's real preprocessing (no training needed)."""
    from vocagan.checkpoint import save_checkpoint
    from vocagan.models import build
    from vocagan.prep.prepare import prepare

    folder = tmp_path_factory.mktemp("bad_input_ckpt")
    cfg = load_config(
        overrides=[
            f"data.root={tiny_corpus}",
            f"prep.cache_dir={folder / 'cache'}",
            "model.name=rnn",
            "model.hidden=8",
            "model.n_layers=1",
        ]
    )
    prepared = prepare(cfg)
    model = build(cfg.model, prepared.audio_dim, prepared.motion_dim, len(prepared.styles))
    return save_checkpoint(folder / "best.pt", model, cfg, prepared.stats_dict())


def test_animate_bad_audio(checkpoint, tmp_path, capsys):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    soundfile.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    data = bytearray((tmp_path / "silent.wav").read_bytes())
    data[24:28] = struct.pack("<I", 0)  # the fmt chunk's sample rate
    (tmp_path / "sr0.wav").write_bytes(bytes(data))

    def animate(wav: str, *extra: str) -> list[str]:
        return [
            "animate",
            "--checkpoint",
            str(checkpoint),
            "--audio",
            str(tmp_path / wav),
            "--out",
            str(tmp_path / "out"),
            "--no-video",
            *extra,
        ]

    assert (
        cli_error(capsys, animate("empty.wav")) == f"error: {tmp_path / 'empty.wav'}: audio file is empty (0 samples)"
    )
    assert cli_error(capsys, animate("sr0.wav")).startswith(f"error: {tmp_path / 'sr0.wav'}: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    capsys.readouterr()
    assert main(animate("silent.wav")) == 0  # silence is valid speech input
    (out,) = (tmp_path / "out").glob("*.npy")
    verts = np.load(out)
    assert verts.shape[0] == 30 and np.isfinite(verts).all()


def test_unknown_style_and_template_list_the_valid_ones(checkpoint, tiny_corpus, tmp_path, capsys):
    from vocagan.checkpoint import load_checkpoint
    from vocagan.formats.mesh import write_ply

    styles = load_checkpoint(checkpoint)[1].styles
    wav = str(next((tiny_corpus / "wav").glob("*.wav")))
    base = ["animate", "--checkpoint", str(checkpoint), "--audio", wav, "--out", str(tmp_path / "o"), "--no-video"]
    msg = cli_error(capsys, base + ["--style", "Nobody"])
    assert msg.startswith(f"error: {checkpoint}: ") and "Nobody" in msg and all(s in msg for s in styles)
    msg = cli_error(capsys, base + ["--template", "Nobody"])
    assert msg.startswith(f"error: {checkpoint}: ") and "Nobody" in msg and styles[0] in msg
    write_ply(tmp_path / "small.ply", np.zeros((10, 3), np.float32), np.array([[0, 1, 2]]))
    msg = cli_error(capsys, base + ["--template", str(tmp_path / "small.ply")])
    assert msg.startswith(f"error: {tmp_path / 'small.ply'}: template has 10 vertices")
    msg = cli_error(
        capsys,
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(tiny_corpus),
            "--out",
            str(tmp_path / "ev"),
            "--style",
            "Nobody",
        ],
    )
    assert "Nobody" in msg and all(s in msg for s in styles)


def test_render_vertex_count_mismatch(tiny_corpus, tmp_path, capsys):
    np.save(tmp_path / "pred.npy", np.zeros((5, 10, 3), np.float32))
    msg = cli_error(
        capsys,
        [
            "render",
            "--vertices",
            str(tmp_path / "pred.npy"),
            "--faces",
            str(tiny_corpus / "FLAME_sample.ply"),
            "--out",
            str(tmp_path / "x.mp4"),
        ],
    )
    assert msg.startswith(f"error: {tiny_corpus / 'FLAME_sample.ply'}: topology mismatch: the mesh has ")
    assert not (tmp_path / "x.mp4").exists()
