"""Rendering: both rasterisers draw the same face, blank frames raise, videos carry sound."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from vocagan import render, video
from vocagan.errors import VocaganError
from vocagan.formats.mesh import write_ply


@pytest.fixture(scope="module")
def sphere_seq(icosphere):
    """(T=6, V, 3) sphere whose lower half opens and closes like a jaw, plus faces."""
    v, f = icosphere(3)
    seq = np.repeat(v[None], 6, axis=0).copy()
    lower = v[:, 1] < -0.02
    seq[:, lower, 1] -= (0.01 * np.sin(np.linspace(0, np.pi, 6)))[:, None]
    return seq, f


def _egl_available() -> bool:
    return render._egl_context(required=False) is not None


def _mask(image: np.ndarray) -> np.ndarray:
    bg = np.array(render.BACKGROUND) * 255
    return np.abs(image.astype(float) - bg).sum(axis=2) > 6


def test_numpy_backend_draws_a_shaded_mesh(sphere_seq):
    seq, f = sphere_seq
    frames = list(render.render_frames(seq, f, size=96, backend="numpy"))
    assert len(frames) == len(seq)
    assert frames[0].shape == (96, 96, 3) and frames[0].dtype == np.uint8
    mask = _mask(frames[0])
    assert 0.3 < mask.mean() < 0.95  # the camera frames the mesh, with a margin
    lit = frames[0][mask].astype(float).mean(axis=1)
    assert lit.std() > 5  # shaded, not a flat silhouette
    assert not np.array_equal(frames[0], frames[3])  # the jaw moved


@pytest.mark.skipif(not _egl_available(), reason="EGL (moderngl) unavailable on this machine")
def test_egl_and_numpy_backends_agree(sphere_seq):
    seq, f = sphere_seq
    a = next(render.render_frames(seq, f, size=128, backend="egl")).astype(float)
    b = next(render.render_frames(seq, f, size=128, backend="numpy")).astype(float)
    ma, mb = _mask(a), _mask(b)
    iou = (ma & mb).sum() / (ma | mb).sum()
    assert iou > 0.97, iou  # same silhouette (anti-aliased edges aside)
    assert np.abs(a - b).mean() < 4.0  # same shading (mean abs difference, 0..255)


def test_flame_template_renders_with_both_backends(shared_data):
    from vocagan.formats.mesh import read_mesh

    v, f = read_mesh(shared_data / "flame" / "FLAME_sample.ply")
    images = [
        next(render.render_frames(v[None], f, size=96, backend=b))
        for b in (["egl", "numpy"] if _egl_available() else ["numpy"])
    ]
    for image in images:
        assert 0.2 < _mask(image).mean() < 0.9
    if len(images) == 2:
        assert np.abs(images[0].astype(float) - images[1].astype(float)).mean() < 5.0


def test_per_vertex_colors_show_up(sphere_seq):
    seq, f = sphere_seq
    red = np.zeros((seq.shape[1], 3), np.float32)
    red[:, 0] = 1.0
    image = next(render.render_frames(seq[:1], f, size=64, backend="numpy", colors=red)).astype(int)
    mask = _mask(image)
    assert (image[mask][:, 0] > image[mask][:, 1] + 40).mean() > 0.9


@pytest.mark.parametrize("backend", ["numpy", "egl"])
def test_blank_frame_raises(sphere_seq, backend):
    if backend == "egl" and not _egl_available():
        pytest.skip("EGL unavailable")
    seq, f = sphere_seq
    seq = seq.copy()
    seq[2] += np.array([0, 0, 100.0], np.float32)  # frame 2 flies behind the camera
    frames = render.render_frames(seq, f, size=64, backend=backend)
    with pytest.raises(VocaganError, match="frame 2 is blank"):
        list(frames)


def test_bad_input_errors(sphere_seq):
    seq, f = sphere_seq
    with pytest.raises(VocaganError, match="NaN"):
        bad = seq.copy()
        bad[1, 0, 0] = np.nan
        render.render_frames(bad, f, size=32)
    with pytest.raises(VocaganError, match="topology mismatch"):
        render.render_frames(seq[:, :10], f, size=32)
    with pytest.raises(VocaganError, match=r"\(T, V, 3\)"):
        render.render_frames(seq[0, :, :2], f, size=32)
    with pytest.raises(VocaganError, match="unknown render backend"):
        render.render_frames(seq, f, size=32, backend="vulkan")


def _probe(path) -> str:
    import imageio_ffmpeg

    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return proc.stderr


def test_write_video_with_audio_from_array(tmp_path, sphere_seq):
    seq, f = sphere_seq
    sr = 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(sr // 5) / sr)  # 0.2 s
    out = video.write_video(tmp_path / "a.mp4", render.render_frames(seq, f, 63, "numpy"), fps=30, audio=(tone, sr))
    info = _probe(out)
    assert re.search(r"Video: h264.*yuv420p.*64x64", info), info  # odd size padded to even
    assert "Audio: aac" in info
    assert not list(tmp_path.glob(".tmp-*"))  # atomic: no leftovers


def test_render_files_side_by_side_with_wav(tmp_path, sphere_seq):
    import soundfile as sf

    seq, f = sphere_seq
    np.save(tmp_path / "pred.npy", seq)
    np.save(tmp_path / "gt.npy", seq[:, :, :] * 1.02)
    write_ply(tmp_path / "mesh.ply", seq[0], f)
    sf.write(
        tmp_path / "speech.wav",
        (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32),
        16000,
        subtype="PCM_16",
    )
    out = video.render_files(
        tmp_path / "pred.npy",
        tmp_path / "mesh.ply",
        tmp_path / "sbs.mp4",
        fps=30,
        audio=tmp_path / "speech.wav",
        gt=tmp_path / "gt.npy",
        size=64,
        backend="numpy",
    )
    info = _probe(out)
    assert re.search(r"Video: h264.*192x64", info), info
    assert "Audio: aac" in info
    frame = next(video.render_side_by_side(seq, seq * 1.02, f, size=64, backend="numpy"))
    assert frame.shape == (64, 192, 3)


def test_render_files_errors_name_the_file(tmp_path, sphere_seq):
    seq, f = sphere_seq
    write_ply(tmp_path / "mesh.ply", seq[0], f)
    np.save(tmp_path / "small.npy", seq[:, :50])
    with pytest.raises(
        VocaganError, match=r"mesh\.ply: topology mismatch: the mesh has 642 vertices, small.npy has 50"
    ):
        video.render_files(tmp_path / "small.npy", tmp_path / "mesh.ply", tmp_path / "x.mp4", size=32)
    np.save(tmp_path / "nan.npy", np.full_like(seq, np.nan))
    with pytest.raises(VocaganError, match=r"nan\.npy: .*NaN"):
        video.render_files(tmp_path / "nan.npy", tmp_path / "mesh.ply", tmp_path / "x.mp4", size=32)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(VocaganError, match=r"junk\.npy"):
        video.render_files(tmp_path / "junk.npy", tmp_path / "mesh.ply", tmp_path / "x.mp4", size=32)
    with pytest.raises(VocaganError, match="not found"):
        video.render_files(tmp_path / "missing.npy", tmp_path / "mesh.ply", tmp_path / "x.mp4", size=32)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_render(tmp_path, sphere_seq):
    from vocagan.cli import main

    seq, f = sphere_seq
    np.save(tmp_path / "v.npy", seq.reshape(len(seq), -1))  # the converted (T, V*3) layout
    write_ply(tmp_path / "mesh.ply", seq[0], f)
    assert (
        main(
            [
                "render",
                "--vertices",
                str(tmp_path / "v.npy"),
                "--faces",
                str(tmp_path / "mesh.ply"),
                "--out",
                str(tmp_path / "v.mp4"),
                "--size",
                "48",
                "--backend",
                "numpy",
            ]
        )
        == 0
    )
    assert "Video: h264" in _probe(tmp_path / "v.mp4")
    assert (
        main(
            [
                "render",
                "--vertices",
                str(tmp_path / "nope.npy"),
                "--faces",
                str(tmp_path / "mesh.ply"),
                "--out",
                str(tmp_path / "w.mp4"),
            ]
        )
        == 1
    )


def test_auto_falls_back_to_numpy_when_egl_fails(monkeypatch, capsys, sphere_seq):
    import moderngl

    def broken(*args, **kwargs):
        raise RuntimeError("no EGL display")

    monkeypatch.setattr(render, "_EGL_STATE", {})  # forget any context made by other tests
    monkeypatch.setattr(moderngl, "create_standalone_context", broken)
    seq, f = sphere_seq
    image = next(render.render_frames(seq, f, size=48, backend="auto"))
    assert _mask(image).mean() > 0.3
    assert "EGL unavailable (no EGL display); using the numpy rasteriser" in capsys.readouterr().err
    with pytest.raises(VocaganError, match="EGL rendering unavailable"):
        render.render_frames(seq, f, size=48, backend="egl")


@pytest.mark.parametrize("backend", ["numpy", "egl"])
def test_the_built_in_face_shows_a_dark_mouth_and_eyes(backend):
    """The corpus face's own colours: an open jaw shows the dark mouth interior, the eyes white sclera
    and dark pupils, with either rasteriser."""
    if backend == "egl" and not _egl_available():
        pytest.skip("EGL (moderngl) unavailable on this machine")
    from vocagan.synth import canonical, face

    head = canonical.canonical_head(0)
    basis = face.motion_basis(head.vertices, head.frame, head.lower, head.moves, head.blink)
    poses = np.stack([head.vertices, head.vertices + basis[0] + basis[1]])
    camera = render.frame_camera(head.vertices)
    rest, open_ = (
        img.astype(float).mean(2)
        for img in render.render_frames(poses, head.faces, 128, backend, colors=head.colors, camera=camera)
    )
    mouth, eyes = (slice(78, 100), slice(44, 84)), (slice(35, 55), slice(20, 108))
    assert (open_[mouth] < 40).sum() > 4 * max((rest[mouth] < 40).sum(), 5)
    assert (rest[eyes] > 200).sum() > 10 and (rest[eyes] < 30).sum() > 4  # sclera, pupils
