"""`animate`: any audio file in, vertices/meshes/video out; styles, samples, chunked long audio, errors.

Fast tests use a small random-weight checkpoint on a sphere topology; the integration test trains a
real model for a few epochs on the tiny synthetic corpus."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import soundfile as sf

from vocagan.checkpoint import load_checkpoint
from vocagan.config import load_config
from vocagan.errors import VocaganError
from vocagan.frames import chunk_spans
from vocagan.infer import animate, audio_features, predict_motion

STYLES = ["SubjA", "SubjB", "SubjC"]  # the styles of the `toy_checkpoint` fixture


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory, toy_checkpoint):
    return toy_checkpoint(tmp_path_factory.mktemp("ckpt") / "toy.pt")


def _probe(path) -> str:
    import imageio_ffmpeg

    return subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr


def test_chunk_spans_cover_with_overlap():
    assert chunk_spans(50, 100, 10) == [(0, 50)]
    spans = chunk_spans(1000, 120, 30)
    assert spans[0][0] == 0 and spans[-1][1] == 1000
    assert all(b - a <= 120 for a, b in spans)
    assert all(spans[i][1] - spans[i + 1][0] == 30 for i in range(len(spans) - 1))


def test_int16_stereo_44k_and_float_mono_22k(tmp_path, ckpt_path, speech_like):
    x = speech_like(1.0, 44100)
    sf.write(tmp_path / "stereo.wav", np.stack([x, 0.5 * x], axis=1), 44100, subtype="PCM_16")
    sf.write(tmp_path / "mono.wav", speech_like(1.0, 22050, seed=1), 22050, subtype="FLOAT")
    r1 = animate(ckpt_path, tmp_path / "stereo.wav", tmp_path / "out1", size=64, backend="numpy")
    v = np.load(r1.outputs[0].vertices)
    assert v.shape == (30, 162, 3) and v.dtype == np.float32 and np.isfinite(v).all()
    assert v.std(axis=0).max() > 0  # it moves
    info = _probe(r1.outputs[0].video)
    assert "Video: h264" in info and "Audio: aac" in info
    assert re.search(r"Duration: 00:00:01\.0", info), info
    r2 = animate(ckpt_path, tmp_path / "mono.wav", tmp_path / "out2", video=False, ply=True, obj=True, fps=60)
    v2 = np.load(r2.outputs[0].vertices)
    assert v2.shape[0] == 60 and r2.fps == 60  # resampled to the requested fps
    assert len(list(r2.outputs[0].meshes[0].glob("*.ply"))) == 60
    assert len(list(r2.outputs[0].meshes[1].glob("*.obj"))) == 60
    summary = r2.summary()
    assert str(r2.outputs[0].vertices) in summary and "_ply/ (60 files)" in summary


def test_style_all_and_samples(tmp_path, toy_checkpoint, speech_like):
    ckpt = toy_checkpoint(tmp_path / "vae.pt", name="transformer_vae")
    sf.write(tmp_path / "a.wav", speech_like(0.5, 16000), 16000)
    result = animate(ckpt, tmp_path / "a.wav", tmp_path / "out", style="all", samples=2, video=False)
    assert [(o.style, o.sample) for o in result.outputs] == [(s, k) for s in STYLES for k in range(2)]
    a, b = (np.load(o.vertices) for o in result.outputs[:2])
    assert np.abs(a - b).max() > 1e-6  # two samples differ
    again = animate(ckpt, tmp_path / "a.wav", tmp_path / "again", style="SubjA", samples=2, video=False)
    np.testing.assert_array_equal(np.load(again.outputs[1].vertices), b)  # seeded: reproducible
    assert len(result.files()) == 1 + 2 * 6  # the face mesh, then per output the vertices and their .json
    assert result.mesh == tmp_path / "out" / "a_mesh.ply" and result.mesh.is_file()


def test_template_by_name_and_mesh_file(tmp_path, ckpt_path, speech_like, icosphere):
    from vocagan.formats.mesh import write_ply

    sf.write(tmp_path / "a.wav", speech_like(0.4, 16000), 16000)
    unseen = animate(ckpt_path, tmp_path / "a.wav", tmp_path / "o1", template="Unseen", video=False)
    base = animate(ckpt_path, tmp_path / "a.wav", tmp_path / "o2", video=False)
    assert unseen.template == "Unseen" and base.template == "SubjA"
    _, ckpt = load_checkpoint(ckpt_path)
    verts, tris = icosphere(2)
    write_ply(tmp_path / "face.ply", verts * 2, tris)
    custom = animate(
        ckpt_path, tmp_path / "a.wav", tmp_path / "o3", template=str(tmp_path / "face.ply"), size=48, backend="numpy"
    )
    v = np.load(custom.outputs[0].vertices)
    assert np.abs(v[:, verts[:, 1] > 0.05] - verts[verts[:, 1] > 0.05] * 2).max() < 1e-6  # static upper part
    write_ply(tmp_path / "wrong.ply", verts[:10])
    with pytest.raises(VocaganError, match=r"wrong\.ply: template has 10 vertices"):
        animate(ckpt_path, tmp_path / "a.wav", tmp_path / "o4", template=str(tmp_path / "wrong.ply"))
    with pytest.raises(VocaganError, match="unknown template 'Nobody'"):
        animate(ckpt_path, tmp_path / "a.wav", tmp_path / "o4", template="Nobody")


def test_errors(tmp_path, ckpt_path, toy_checkpoint, speech_like):
    sf.write(tmp_path / "a.wav", speech_like(0.3, 16000), 16000)
    with pytest.raises(VocaganError, match="unknown style 'Bob'; valid: all, SubjA, SubjB, SubjC"):
        animate(ckpt_path, tmp_path / "a.wav", tmp_path / "o", style="Bob")
    ds = toy_checkpoint(tmp_path / "ds.pt", features="deepspeech")
    with pytest.raises(VocaganError, match="features.kind=logmel"):
        animate(ds, tmp_path / "a.wav", tmp_path / "o")
    with pytest.raises(VocaganError, match="audio file not found"):
        animate(ckpt_path, tmp_path / "missing.wav", tmp_path / "o")
    sf.write(tmp_path / "tiny.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(VocaganError, match="audio too short"):
        animate(ckpt_path, tmp_path / "tiny.wav", tmp_path / "o")
    noface = toy_checkpoint(tmp_path / "nf.pt", faces=False)
    with pytest.raises(VocaganError, match="no faces"):
        animate(noface, tmp_path / "a.wav", tmp_path / "o")
    assert animate(noface, tmp_path / "a.wav", tmp_path / "o", video=False).outputs[0].vertices.is_file()


@pytest.mark.parametrize("name", ["transformer", "rnn", "transformer_gan"])
def test_chunked_long_audio_matches_unchunked(tmp_path, name, toy_checkpoint, speech_like):
    """60 s in 20 s chunks (4 s overlap) vs one pass: close everywhere, and no seam (no jump larger
    than the one-pass motion has). Full attention sees the whole clip in one pass, so transformers
    differ slightly; the recurrent model matches to float precision."""
    model, ckpt = load_checkpoint(toy_checkpoint(tmp_path / f"{name}.pt", name=name))
    feats = audio_features(ckpt, speech_like(60.0, 16000), 16000, ckpt.fps)  # (1800, 80)
    full = predict_motion(model, feats, 1, n_samples=2, chunk=len(feats))
    chunked = predict_motion(model, feats, 1, n_samples=2, chunk=600, overlap=120)
    diff = np.abs(chunked - full)
    assert diff.max() < 0.025 * np.abs(full).max(), diff.max() / np.abs(full).max()
    assert diff.mean() < 0.01 * np.abs(full).mean(), diff.mean() / np.abs(full).mean()
    jump_full = np.abs(np.diff(full, axis=1)).max()
    assert np.abs(np.diff(chunked, axis=1)).max() <= 1.05 * jump_full


# ----------------------------------------------------------------------------- a really trained model
@pytest.fixture(scope="module")
def trained(request, tmp_path_factory):
    """best.pt of a transformer trained for 2 epochs on the tiny synthetic corpus (~10 s)."""
    from vocagan.train import train

    corpus = request.getfixturevalue("tiny_corpus")
    tmp = tmp_path_factory.mktemp("trained")
    cfg = load_config(
        overrides=[
            f"data.root={corpus}",
            "model.name=transformer",
            "train.epochs=2",
            "model.d_model=32",
            "model.n_layers=1",
            "model.n_heads=2",
            f"prep.cache_dir={tmp / 'cache'}",
        ]
    )
    return train(cfg, tmp / "run").best_checkpoint


@pytest.mark.slow
def test_cli_animate_trained_model_style_all(tmp_path, trained, tiny_corpus, capsys, speech_like):
    from vocagan.cli import main
    from vocagan.formats.pickles import safe_load_pickle

    x = speech_like(1.2, 44100)
    sf.write(tmp_path / "in.wav", np.stack([x, x[::-1]], axis=1), 44100, subtype="PCM_16")  # int16 stereo

    def animate_cli(out: str, style: str) -> int:
        audio = str(tmp_path / "in.wav")
        return main(
            ["animate", "--checkpoint", str(trained), "--audio", audio, "--out", str(tmp_path / out)]
            + ["--style", style, "--size", "64"]
        )

    assert animate_cli("out", "all") == 0
    printed = capsys.readouterr().out
    _, ckpt = load_checkpoint(trained)
    videos = sorted((tmp_path / "out").glob("*.mp4"))
    assert len(videos) == len(ckpt.styles) == 8
    assert all(str(v) in printed for v in videos)
    info = _probe(videos[0])
    assert "Video: h264" in info and "Audio: aac" in info
    n_vertices = next(iter(safe_load_pickle(tiny_corpus / "templates.pkl").values())).shape[0]
    v = np.load(sorted((tmp_path / "out").glob("*.npy"))[0])
    assert v.shape == (36, n_vertices, 3) and np.isfinite(v).all()
    assert animate_cli("bad", "Nobody") == 1
    assert "valid: all, FaceTalk_170728_03272_TA" in capsys.readouterr().err


@pytest.mark.slow
def test_trained_model_float_mono_22k_and_chunking(tmp_path, trained, speech_like):
    sf.write(tmp_path / "in.wav", speech_like(0.8, 22050, seed=3), 22050, subtype="FLOAT")
    result = animate(trained, tmp_path / "in.wav", tmp_path / "out", samples=2, video=False)
    a, b = (np.load(o.vertices) for o in result.outputs)
    assert a.shape[0] == 24
    np.testing.assert_array_equal(a, b)  # a deterministic model repeats its one prediction
    model, ckpt = load_checkpoint(trained)
    feats = audio_features(ckpt, speech_like(30.0, 16000, seed=4), 16000, ckpt.fps)  # (900, 80)
    full = predict_motion(model, feats, 0, chunk=len(feats))
    chunked = predict_motion(model, feats, 0, chunk=300, overlap=60)
    prepared = ckpt.prepared
    motion_mm = np.abs(prepared.decode(full[0]) - prepared.decode(full[0]).mean(axis=0)).max() * 1000
    seam_mm = np.abs(prepared.decode(chunked[0]) - prepared.decode(full[0])).max() * 1000
    print(f"max chunked-vs-full vertex difference {seam_mm:.4f} mm (motion amplitude {motion_mm:.3f} mm)")
    assert seam_mm < 0.05 * motion_mm and seam_mm < 0.05


def test_animate_writes_what_render_and_export_html_need(tmp_path, ckpt_path, speech_like, capsys):
    """Beside its vertices animate writes the face mesh and a .json (fps, counts, mesh, audio): render and
    export-html need nothing else, and refuse a mesh of another topology in one line."""
    import json

    from vocagan.cli import main

    sf.write(tmp_path / "a.wav", speech_like(0.4, 16000), 16000)
    result = animate(ckpt_path, tmp_path / "a.wav", tmp_path / "out", fps=25, video=False)
    info = json.loads(result.outputs[0].info.read_text())
    assert info["fps"] == 25 and info["n_vertices"] == 162 and info["mesh"] == "a_mesh.ply"
    assert info["audio"] == "a.wav" or info["audio"].endswith("a.wav")
    npy = result.outputs[0].vertices
    assert main(["render", "--vertices", str(npy), "--out", str(tmp_path / "v.mp4"), "--size", "32"]) == 0
    assert main(["export-html", "--vertices", str(npy), "--out", str(tmp_path / "p.html")]) == 0
    assert (tmp_path / "v.mp4").stat().st_size > 1000 and "data:audio/wav" in (tmp_path / "p.html").read_text()
    timings = result.summary()
    assert "loading" in timings and "warm-up" in timings and "x real time" in timings  # what each figure holds
    capsys.readouterr()
    from vocagan.formats.mesh import write_ply

    write_ply(tmp_path / "other.ply", np.zeros((10, 3), np.float32), np.array([[0, 1, 2]]))
    argv = ["render", "--vertices", str(npy), "--faces", str(tmp_path / "other.ply"), "--out", str(tmp_path / "x.mp4")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "topology mismatch: the mesh has 10 vertices" in err[0]


@pytest.mark.parametrize("name", ["rnn", "transformer", "transformer_vae", "transformer_gan"])
def test_compiled_forward_equals_eager(tmp_path, toy_checkpoint, name):
    """animate's one-pass path runs a frozen TorchScript graph (MotionModel.compiled): same output as eager."""
    import torch

    from vocagan.checkpoint import load_checkpoint
    from vocagan.infer import predict_motion

    model, _ = load_checkpoint(toy_checkpoint(tmp_path / "m.pt", name=name))
    feats = np.random.default_rng(0).normal(size=(53, 80)).astype(np.float32)
    eager_path = predict_motion(model, feats, 1)  # no graph built: eager
    assert model.compiled(build=False) is None and model.compiled() is not None
    fast = predict_motion(model, feats, 1)  # one chunk, one sample: the compiled graph
    np.testing.assert_allclose(fast, eager_path, atol=1e-5)
    with torch.no_grad():
        eager = model.predict(torch.from_numpy(feats)[None], torch.tensor([1]))[:, 0].numpy()
    np.testing.assert_allclose(fast, eager, atol=1e-5)


def test_streaming_models_are_not_compiled(tmp_path, toy_checkpoint):
    from vocagan.checkpoint import load_checkpoint

    path = toy_checkpoint(tmp_path / "s.pt", extra=["model.lookahead=2", "model.attention_band=10"])
    model, _ = load_checkpoint(path)
    assert model.compiled() is None
