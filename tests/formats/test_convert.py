"""vocagan.formats.convert: a user's own meshes + wavs -> the VOCASET files, for both input layouts
(VOCA registrations `<subject>/<sentence>/*.ply|obj`, and `vertices_npy/<subject>_<sentence>.npy`),
templates from a file or the first frame, 30 -> 60 fps resampling, skipped sequences, errors naming
the file, and `vocagan convert`."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile

from vocagan.config import DataConfig
from vocagan.errors import VocaganError
from vocagan.formats.convert import convert
from vocagan.formats.mesh import read_mesh, write_obj, write_ply
from vocagan.formats.vocaset import open_vocaset

V = 8  # vertices of the toy mesh
FACES = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7]], np.int32)
SUBJECTS = ["FaceTalk_A_TA", "FaceTalk_B_TA"]  # names with underscores: split at the last one
SENTENCES = ["sentence01", "sentence02"]


def read_cfg(root, **kw) -> DataConfig:
    """Reads every converted pair: subject A is train (sentences 1-2), subject B val (1-2) and test (2)."""
    base = dict(
        root=str(root),
        train_subjects=SUBJECTS[:1],
        train_sentences=[1, 2],
        val_subjects=SUBJECTS[1:],
        val_sentences=[1, 2],
        test_subjects=SUBJECTS[1:],
        test_sentences=[2],
    )
    base.update(kw)
    return DataConfig(**base)


@pytest.fixture(scope="module")
def sequences():
    """(subject, sentence) -> verts (T, V, 3) float32 at 60 fps, audio, sr, template (V, 3)."""
    rng = np.random.default_rng(7)
    out = {}
    for s_i, subject in enumerate(SUBJECTS):
        template = (rng.normal(size=(V, 3)) * 0.1).astype(np.float32)
        for n, sentence in enumerate(SENTENCES):
            t = 7 + 2 * s_i + n
            verts = (template + rng.normal(size=(t, V, 3)) * 1e-3).astype(np.float32)
            sr = 16000 if n == 0 else 22050
            audio = rng.uniform(-0.5, 0.5, size=int(t / 60 * sr)).astype(np.float32)
            out[(subject, sentence)] = dict(verts=verts, audio=audio, sr=sr, template=template)
    return out


def write_wav(path, seq) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, seq["audio"], seq["sr"], subtype="PCM_16")


def vertices_npy_layout(sequences, root, step: int = 1, flat: bool = True):
    """vertices_npy/<subject>_<sentence>.npy (every `step`-th frame; (T, V*3) or (T, V, 3)) + wav/."""
    (root / "vertices_npy").mkdir(parents=True)
    for (subject, sentence), seq in sequences.items():
        frames = seq["verts"][::step]
        np.save(
            root / "vertices_npy" / f"{subject}_{sentence}.npy", frames.reshape(len(frames), -1) if flat else frames
        )
        write_wav(root / "wav" / f"{subject}_{sentence}.wav", seq)
    return root


# ----------------------------------------------------------------------------- layout (a): registrations
def test_convert_registration_layout(sequences, tmp_path):
    """Subject A: PLY frames, wav next to the sentence folder, templates/<A>.ply; subject B: OBJ
    frames, wav under wav/, no template file (its first frame is used). Frames are ordered by the
    last number in the file name, not as text (1, 8, 15, ...)."""
    src = tmp_path / "regs"
    for (subject, sentence), seq in sequences.items():
        folder = src / subject / sentence
        folder.mkdir(parents=True)
        for i, frame in enumerate(seq["verts"]):
            if subject == SUBJECTS[0]:
                write_ply(folder / f"{sentence}.{i * 7 + 1}.ply", frame, FACES)
            else:
                write_obj(folder / f"frame_{i * 7 + 1}.obj", frame, FACES)
        write_wav(
            src / subject / f"{sentence}.wav" if subject == SUBJECTS[0] else src / "wav" / f"{subject}_{sentence}.wav",
            seq,
        )
    template_a = sequences[(SUBJECTS[0], "sentence01")]["template"]
    (src / "templates").mkdir()
    write_ply(src / "templates" / f"{SUBJECTS[0]}.ply", template_a)
    out = tmp_path / "out"
    result = convert(src, out)
    assert result.layout == "registration" and result.input_fps == 60 and not result.skipped
    assert result.n_sequences == 4 and result.n_frames == sum(len(s["verts"]) for s in sequences.values())
    vs = open_vocaset(read_cfg(out))
    np.testing.assert_array_equal(vs.faces, FACES)  # from the first input mesh
    for (subject, sentence), seq in sequences.items():
        np.testing.assert_array_equal(vs.load_verts(subject, sentence), seq["verts"])  # PLY and OBJ exact
        assert vs.raw_audio(subject, sentence)[1] == seq["sr"]
        assert vs.deepspeech(subject, sentence).shape == (len(seq["verts"]), 16, 29)
    np.testing.assert_array_equal(vs.templates[SUBJECTS[0]], template_a)
    np.testing.assert_array_equal(vs.templates[SUBJECTS[1]], sequences[(SUBJECTS[1], "sentence01")]["verts"][0])
    assert result.template_sources[SUBJECTS[0]] == str(src / "templates" / f"{SUBJECTS[0]}.ply")
    assert result.template_sources[SUBJECTS[1]].startswith("first frame")
    summary = result.summary()
    assert summary.startswith(
        f"converted 4 sequence(s) of 2 subject(s), {result.n_frames} frames at 60 fps "
        "(registration layout, input 60 fps)"
    )
    assert "first frame" in summary and "resampled" not in summary


# ----------------------------------------------------------------------------- layout (b): vertices_npy
@pytest.mark.parametrize("flat", [True, False], ids=["T_x_V3", "T_x_V_x_3"])
def test_convert_vertices_npy_layout(sequences, tmp_path, flat):
    src = vertices_npy_layout(sequences, tmp_path / "npy", flat=flat)
    templates = {s: sequences[(s, "sentence01")]["template"] for s in SUBJECTS}
    with open(src / "templates.pkl", "wb") as f:
        pickle.dump(templates, f, protocol=2)
    out = tmp_path / "out"
    result = convert(src, out)
    assert result.layout == "vertices_npy" and result.n_sequences == 4
    assert any("without faces" in n for n in result.notes)  # no template_ply, no mesh files
    assert read_mesh(out / "FLAME_sample.ply")[1].shape == (0, 3)
    vs = open_vocaset(read_cfg(out))
    for (subject, sentence), seq in sequences.items():
        np.testing.assert_array_equal(vs.load_verts(subject, sentence), seq["verts"])
    for subject in SUBJECTS:
        np.testing.assert_array_equal(vs.templates[subject], templates[subject])
        assert result.template_sources[subject] == f"{src / 'templates.pkl'}[{subject}]"


def test_convert_resamples_30_to_60_and_skips_sequences_without_wav(sequences, tmp_path):
    """Meshes at 30 fps: T30 frames -> 2 * T30 - 1 frames at 60 fps, the input frames at the even
    ones and midpoints between them (linear in time). A sequence without a wav is skipped and listed;
    --template-ply supplies the faces."""
    src = vertices_npy_layout(sequences, tmp_path / "at30", step=2)
    (src / "wav" / f"{SUBJECTS[1]}_sentence02.wav").unlink()
    template_ply = tmp_path / "tpl.ply"
    write_ply(template_ply, np.zeros((V, 3)), FACES)
    out = tmp_path / "out"
    result = convert(src, out, input_fps=30, template_ply=template_ply)
    assert result.layout == "vertices_npy" and result.input_fps == 30 and result.n_sequences == 3
    assert result.skipped == [(SUBJECTS[1], "sentence02", "no wav")]
    assert "meshes resampled from 30 to 60 fps (linear interpolation)" in result.notes
    assert f"skipped {SUBJECTS[1]}/sentence02: no wav" in result.summary()
    assert read_mesh(out / "FLAME_sample.ply")[1].tolist() == FACES.tolist()
    vs = open_vocaset(read_cfg(out, test_subjects=SUBJECTS[:1]))
    assert vs.split("val") == [(SUBJECTS[1], "sentence01")]
    total = 0
    for (subject, sentence), seq in sequences.items():
        if (subject, sentence) == (SUBJECTS[1], "sentence02"):
            continue
        at30 = seq["verts"][::2]
        got = vs.load_verts(subject, sentence)
        assert len(got) == 2 * len(at30) - 1
        np.testing.assert_array_equal(got[::2], at30)  # input frames kept
        np.testing.assert_allclose(got[1::2], (at30[:-1] + at30[1:]) / 2, atol=1e-7)  # midpoints
        assert vs.deepspeech(subject, sentence).shape == (len(got), 16, 29)  # windows at the new rate
        total += len(got)
    assert result.n_frames == total


# ----------------------------------------------------------------------------- errors
def test_convert_errors_name_the_file(sequences, tmp_path):
    with pytest.raises(VocaganError, match="input folder not found"):
        convert(tmp_path / "none", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VocaganError, match="no sequences with audio"):
        convert(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(VocaganError, match=r"input_fps must be in \[1, 1000\], got 0"):
        convert(tmp_path / "empty", tmp_path / "out", input_fps=0)
    seq = sequences[(SUBJECTS[0], "sentence01")]
    # vertices_npy with a file name that has no <subject>_<sentence> split
    bad = tmp_path / "bad_name"
    (bad / "vertices_npy").mkdir(parents=True)
    np.save(bad / "vertices_npy" / "nosentence.npy", seq["verts"].reshape(len(seq["verts"]), -1))
    with pytest.raises(VocaganError, match=r"nosentence\.npy: expected <subject>_<sentence>\.npy"):
        convert(bad, tmp_path / "out")
    # rows that are not (T, V*3) vertices
    wrong = vertices_npy_layout({(SUBJECTS[0], "sentence01"): seq}, tmp_path / "wrong_width")
    np.save(wrong / "vertices_npy" / f"{SUBJECTS[0]}_sentence01.npy", np.zeros((5, 7), np.float32))
    with pytest.raises(
        VocaganError, match=r"_sentence01\.npy: expected \(T, V\*3\) or \(T, V, 3\) vertices, got \(5, 7\)"
    ):
        convert(wrong, tmp_path / "out")
    # NaN vertices
    nan = vertices_npy_layout({(SUBJECTS[0], "sentence01"): seq}, tmp_path / "nan")
    frames = seq["verts"].copy()
    frames[2, 3, 1] = np.nan
    np.save(nan / "vertices_npy" / f"{SUBJECTS[0]}_sentence01.npy", frames)
    with pytest.raises(VocaganError, match="vertices contain NaN/inf"):
        convert(nan, tmp_path / "out")
    # a registration frame without a number in its name
    regs = tmp_path / "regs"
    (regs / SUBJECTS[0] / "sentence01").mkdir(parents=True)
    write_ply(regs / SUBJECTS[0] / "sentence01" / "neutral.ply", seq["verts"][0], FACES)
    write_ply(regs / SUBJECTS[0] / "sentence01" / "f1.ply", seq["verts"][1], FACES)
    write_wav(regs / SUBJECTS[0] / "sentence01.wav", seq)
    with pytest.raises(VocaganError, match=r"neutral\.ply: cannot find a frame number"):
        convert(regs, tmp_path / "out")
    # a template mesh with another vertex count
    good = vertices_npy_layout({(SUBJECTS[0], "sentence01"): seq}, tmp_path / "good")
    write_ply(tmp_path / "small.ply", np.zeros((V - 1, 3)), np.array([[0, 1, 2]], np.int32))
    with pytest.raises(VocaganError, match=rf"small\.ply: mesh has {V - 1} vertices, the sequences have {V}"):
        convert(good, tmp_path / "out", template_ply=tmp_path / "small.ply")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.npy"))  # nothing written


def test_unknown_layout_says_which_layouts_are_accepted(sequences, tmp_path):
    """Meshes dumped at the top of the folder (no <subject>/<sentence>/ folders, no vertices_npy/):
    the error names the folder and spells out both accepted layouts."""
    src = tmp_path / "flat"
    src.mkdir()
    seq = sequences[(SUBJECTS[0], "sentence01")]
    for i, frame in enumerate(seq["verts"]):
        write_ply(src / f"{i:04d}.ply", frame, FACES)
    write_wav(src / "audio.wav", seq)
    with pytest.raises(VocaganError) as err:
        convert(src, tmp_path / "out")
    message = str(err.value)
    assert message.startswith(str(src)) and "no sequences with audio found" in message
    assert "<subject>/<sentence>/*.ply + wav" in message
    assert "vertices_npy/<subject>_<sentence>.npy + wav/<subject>_<sentence>.wav" in message
    assert "\n" not in message


def test_template_of_the_wrong_shape_in_templates_pkl(sequences, tmp_path):
    src = vertices_npy_layout(sequences, tmp_path / "npy")
    with open(src / "templates.pkl", "wb") as f:
        pickle.dump({SUBJECTS[0]: np.zeros((V + 2, 3), np.float32)}, f, protocol=2)
    with pytest.raises(VocaganError, match=rf"templates\.pkl: template of {SUBJECTS[0]} has shape \({V + 2}, 3\)"):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out" / "data_verts.npy").exists()


# ----------------------------------------------------------------------------- CLI
def test_cli_convert(sequences, tmp_path, capsys):
    from vocagan.cli import main

    src = vertices_npy_layout(sequences, tmp_path / "conv", step=2)
    assert main(["convert", "--input", str(src), "--out", str(tmp_path / "out"), "--input-fps", "30"]) == 0
    out = capsys.readouterr().out
    assert "converted 4 sequence(s)" in out and "input 30 fps" in out and "without faces" in out
    assert (tmp_path / "out" / "data_verts.npy").is_file()
    assert main(["convert", "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope: input folder not found" in err
