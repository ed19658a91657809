"""The self-contained HTML viewer: compact encoding round trip, no network references, and a real
headless Chromium that draws the mesh and advances the animation."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from vocagan import viewer
from vocagan.errors import VocaganError
from vocagan.formats.mesh import write_ply
from vocagan.render import BACKGROUND

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """/usr/bin/chromium; installed with apt-get once if absent; skip only if that fails."""
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.run(["apt-get", "update"], capture_output=True, env=env).returncode == 0
        if ok:
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, env=env)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("headless Chromium unavailable (apt-get install -y chromium failed or not permitted)")
    return exe


def _run_chromium(exe: str, tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def animation(icosphere):
    """(T=45, V, 3) sphere with a moving lower half, faces."""
    v, f = icosphere(3)
    t = np.arange(45) / 30
    seq = np.repeat(v[None], len(t), axis=0).copy()
    lower = v[:, 1] < -0.02
    seq[:, lower, 1] -= (0.01 * np.sin(2 * np.pi * t) ** 2)[:, None]
    return seq, f


def _decode(mesh: dict) -> np.ndarray:
    """Python mirror of the page's decoder: -> (T, V, 3)."""
    base = np.frombuffer(base64.b64decode(mesh["base"]), "<f4").reshape(-1, 3)
    moving = np.frombuffer(zlib.decompress(base64.b64decode(mesh["moving"])), "<u4")
    offsets = np.frombuffer(zlib.decompress(base64.b64decode(mesh["offsets"])), "<i2")
    offsets = offsets.reshape(mesh["n_frames"], mesh["n_moving"], 3) * mesh["scale"]
    out = np.repeat(base[None], mesh["n_frames"], axis=0)
    out[:, moving] += offsets
    return out


def test_encoding_round_trip_and_only_moving_vertices_stored(animation):
    seq, f = animation
    mesh = viewer.encode_mesh(seq, f, fps=30)
    decoded = _decode(mesh)
    assert np.abs(decoded - seq).max() <= mesh["scale"] * 0.51 + 1e-7  # half a quantisation step
    assert mesh["n_moving"] == int((seq != seq[0]).any(axis=(0, 2)).sum()) < seq.shape[1]  # static ones dropped
    faces = np.frombuffer(zlib.decompress(base64.b64decode(mesh["faces"])), "<u2").reshape(-1, 3)
    np.testing.assert_array_equal(faces, f)


def test_page_is_self_contained(tmp_path, animation):
    import soundfile as sf

    seq, f = animation
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    out = viewer.export_html(seq, f, tmp_path / "page.html", fps=30, audio_path=tmp_path / "a.wav")
    html = out.read_text()
    assert html.startswith("<!doctype html>")
    # Nothing is fetched at view time: every src is inline data, no <link>, no CDN.
    assert re.findall(r'\bsrc="(?!data:)', html) == []
    assert "<link" not in html and "cdn" not in html.lower().replace("cdnjs", "")
    assert 'src="data:audio/wav;base64,' in html
    assert len(re.findall(r"</script>", html)) == 3  # three.js, mesh data, app


def test_export_errors(tmp_path, animation):
    seq, f = animation
    with pytest.raises(VocaganError, match="audio file not found"):
        viewer.export_html(seq, f, tmp_path / "p.html", audio_path=tmp_path / "missing.wav")
    with pytest.raises(VocaganError, match="topology mismatch"):
        viewer.export_html(seq[:, :5], f, tmp_path / "p.html")
    write_ply(tmp_path / "mesh.ply", seq[0], f)
    np.save(tmp_path / "short.npy", seq[:, :100])
    with pytest.raises(VocaganError, match=r"mesh\.ply: topology mismatch"):
        viewer.export_html_files(tmp_path / "short.npy", tmp_path / "mesh.ply", tmp_path / "p.html")
    assert not (tmp_path / "p.html").exists()


@pytest.mark.parametrize("with_audio", [False, True])
def test_chromium_draws_and_plays(chromium, tmp_path, animation, with_audio):
    import soundfile as sf
    from PIL import Image

    from vocagan.cli import main

    seq, f = animation
    np.save(tmp_path / "v.npy", seq)
    write_ply(tmp_path / "mesh.ply", seq[0], f)
    args = [
        "export-html",
        "--vertices",
        str(tmp_path / "v.npy"),
        "--faces",
        str(tmp_path / "mesh.ply"),
        "--out",
        str(tmp_path / "page.html"),
        "--fps",
        "30",
    ]
    if with_audio:
        sr = 22050
        tone = 0.2 * np.sin(2 * np.pi * 200 * np.arange(int(1.5 * sr)) / sr)
        sf.write(tmp_path / "a.wav", tone.astype(np.float32), sr, subtype="PCM_16")
        args += ["--audio", str(tmp_path / "a.wav")]
    assert main(args) == 0
    url = (tmp_path / "page.html").as_uri()

    # The first frame is drawn: mesh pixels in the 3D view (everything above the 44 px control bar).
    shot = tmp_path / "shot.png"
    proc = _run_chromium(
        chromium, tmp_path, url, "--window-size=400,444", "--virtual-time-budget=800", f"--screenshot={shot}"
    )
    assert shot.is_file(), proc.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB")).astype(float)[:400]
    mesh_pixels = np.abs(image - np.array(BACKGROUND) * 255).sum(axis=2) > 12
    assert mesh_pixels.mean() > 0.15, f"blank viewer screenshot ({mesh_pixels.mean():.3f} mesh pixels)"

    # Playback advances: the page reports its frame in document.title.
    proc = _run_chromium(
        chromium, tmp_path, url + "#autoplay", "--window-size=400,444", "--virtual-time-budget=1000", "--dump-dom"
    )
    match = re.search(r"<title>[^<]*\| frame (\d+)</title>", proc.stdout)
    assert match, proc.stdout[:500] + proc.stderr[-2000:]
    assert 0 < int(match.group(1)) < len(seq)


def test_the_page_shows_the_mesh_colours(chromium, tmp_path):
    """The built-in face in the page: its colours are embedded, and an open jaw shows the dark mouth in
    a real browser (compared with the same face at rest)."""
    from PIL import Image

    from vocagan.synth import canonical, face

    head = canonical.canonical_head(0)
    basis = face.motion_basis(head.vertices, head.frame, head.lower, head.moves, head.blink)
    dark = []
    for pose in (head.vertices, head.vertices + basis[0] + basis[1]):
        page = viewer.export_html(np.stack([pose, pose]), head.faces, tmp_path / "face.html", colors=head.colors)
        data = re.search(r'<script type="application/json" id="mesh-data">(.*?)</script>', page.read_text(), re.S)
        embedded = np.frombuffer(zlib.decompress(base64.b64decode(json.loads(data.group(1))["colors"])), np.uint8)
        assert np.abs(embedded.reshape(-1, 3) / 255 - head.colors).max() < 0.01
        shot = tmp_path / "shot.png"
        _run_chromium(chromium, tmp_path, page.as_uri(), "--window-size=400,444", "--virtual-time-budget=800",
                      f"--screenshot={shot}")  # fmt: skip
        image = np.asarray(Image.open(shot).convert("RGB")).astype(float)[:400].mean(2)
        dark.append(int((image < 30).sum()))
    assert dark[1] > dark[0] + 300, dark  # the open mouth adds a dark hole
