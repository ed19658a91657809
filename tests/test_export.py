"""Standard exports: `animate --format glb csv json` and `export` of an existing .npy. The .glb passes
the Khronos validator and plays in three.js (GLTFLoader in headless Chromium: two moments differ in
the mouth); the weight tables match it; errors are one line."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from vocagan.cli import main
from vocagan.formats.gltf import read_glb
from vocagan.render import BACKGROUND


@pytest.fixture(scope="module")
def animated(tmp_path_factory, toy_checkpoint, speech_like):
    """animate --format glb,csv,json,npy on a toy checkpoint: (out dir, checkpoint, wav)."""
    tmp = tmp_path_factory.mktemp("anim")
    ckpt = toy_checkpoint(tmp / "toy.pt")
    sf.write(tmp / "speech.wav", speech_like(1.5, 16000), 16000, subtype="PCM_16")
    args = [
        "animate",
        "--checkpoint",
        str(ckpt),
        "--audio",
        str(tmp / "speech.wav"),
        "--out",
        str(tmp / "out"),
        "--no-video",
        "--format",
        "glb,csv",
        "--format",
        "json",
        "--format",
        "npy",
    ]
    assert main(args) == 0
    return tmp / "out", ckpt, tmp / "speech.wav"


def test_animate_writes_glb_audio_and_tables(animated):
    out, _, _ = animated
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "speech_SubjA.glb",
        "speech_SubjA.json",  # the npy's sidecar: what made it (checkpoint, style, fps)
        "speech_SubjA.npy",
        "speech_SubjA.wav",
        "speech_SubjA_weights.csv",
        "speech_SubjA_weights.json",
        "speech_mesh.ply",  # the face the vertices move (faces and colours)
    ]
    anim = read_glb(out / "speech_SubjA.glb")
    verts = np.load(out / "speech_SubjA.npy")
    assert anim.n_frames == len(verts) == 45 and anim.extras["audio"] == "speech_SubjA.wav"
    assert np.abs(anim.vertices() - verts).max() < 1e-6  # the morph weights reproduce the meshes
    with open(out / "speech_SubjA_weights.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["frame", "time_s", "mean"] and len(rows) == 46
    np.testing.assert_allclose(np.array(rows[1:], float)[:, 2:], anim.weights, rtol=1e-5, atol=1e-6)


def test_animate_glb_passes_the_khronos_validator(animated, gltf_validator):
    out, _, _ = animated
    issues = gltf_validator(out / "speech_SubjA.glb")["issues"]
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_animate_glb_plays_in_threejs(animated, tmp_path, chromium):
    """The viewer page plays the .glb through three.js' GLTFLoader + AnimationMixer; two moments differ
    in the lower half of the face (the toy model's mouth), not the top."""
    from PIL import Image

    out, _, wav = animated
    assert (
        main(
            [
                "export-html",
                "--glb",
                str(out / "speech_SubjA.glb"),
                "--audio",
                str(wav),
                "--out",
                str(tmp_path / "page.html"),
            ]
        )
        == 0
    )
    shots = []
    for t in (0.2, 0.9):
        shot = tmp_path / f"t{t}.png"
        proc = chromium(
            tmp_path / "profile",
            f"{(tmp_path / 'page.html').as_uri()}#t={t}",
            "--window-size=400,444",
            "--virtual-time-budget=4000",
            f"--screenshot={shot}",
        )
        assert shot.is_file(), proc.stderr[-2000:]
        shots.append(np.asarray(Image.open(shot).convert("RGB")).astype(float)[:400])
    mesh = np.abs(shots[0] - np.array(BACKGROUND) * 255).sum(2) > 12
    assert mesh.mean() > 0.1, "blank page"
    changed = np.abs(shots[0] - shots[1]).sum(2) > 24
    rows = np.nonzero(mesh.any(1))[0]
    middle = (rows.min() + rows.max()) // 2
    assert changed[middle:].sum() > 30, "the face did not move between the two moments"
    assert changed[:middle].sum() < 0.2 * changed[middle:].sum(), "motion outside the mouth half"
    proc = chromium(
        tmp_path / "profile",
        (tmp_path / "page.html").as_uri() + "#autoplay",
        "--window-size=400,444",
        "--virtual-time-budget=1000",
        "--dump-dom",
    )
    assert "| frame " in proc.stdout and "| frame 0<" not in proc.stdout  # playback advanced


def test_export_existing_npy_with_and_without_the_checkpoint(animated, tmp_path, gltf_validator, toy_checkpoint):
    from vocagan.checkpoint import load_checkpoint
    from vocagan.formats.mesh import write_ply

    out, ckpt, wav = animated
    npy = out / "speech_SubjA.npy"
    assert (
        main(
            [
                "export",
                "--vertices",
                str(npy),
                "--checkpoint",
                str(ckpt),
                "--template",
                "SubjA",
                "--out",
                str(tmp_path / "proj"),
                "--audio",
                str(wav),
                "--format",
                "glb,json",
            ]
        )
        == 0
    )
    same = read_glb(tmp_path / "proj" / "speech_SubjA.glb")
    first = read_glb(out / "speech_SubjA.glb")
    np.testing.assert_allclose(same.weights, first.weights, atol=1e-4)  # the model's own basis and weights
    assert (tmp_path / "proj" / "speech_SubjA.wav").is_file()
    _, c = load_checkpoint(ckpt)
    write_ply(tmp_path / "rest.ply", c.prepared.template("SubjA"), c.prepared.faces)
    assert (
        main(
            ["export", "--vertices", str(npy), "--template", str(tmp_path / "rest.ply"), "--out", str(tmp_path / "pca")]
        )
        == 0
    )
    pca = read_glb(tmp_path / "pca" / "speech_SubjA.glb")
    assert np.abs(pca.vertices() - np.load(npy)).max() * 1000 <= 0.0101
    assert gltf_validator(tmp_path / "pca" / "speech_SubjA.glb")["issues"]["numErrors"] == 0


def test_export_errors_are_one_line(animated, tmp_path, capsys):
    out, ckpt, _ = animated
    npy = out / "speech_SubjA.npy"
    cases = [
        (["--template", "SubjA"], "must be a PLY/OBJ"),
        (["--template", "SubjB", "--checkpoint", str(ckpt)], "does not lie in the checkpoint's basis"),
        (["--template", "SubjA", "--checkpoint", str(ckpt), "--format", "fbx"], "unknown export format"),
    ]
    for extra, message in cases:
        assert main(["export", "--vertices", str(npy), "--out", str(tmp_path / "x"), *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    assert (
        main(
            [
                "animate",
                "--checkpoint",
                str(ckpt),
                "--audio",
                str(out / "speech_SubjA.wav"),
                "--out",
                str(tmp_path / "y"),
                "--format",
                "usd",
            ]
        )
        == 1
    )
    assert "unknown output format(s) usd" in capsys.readouterr().err
