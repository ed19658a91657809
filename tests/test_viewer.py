"""The self-contained HTML viewer: one code path (a .glb played by three.js' GLTFLoader), no network
references, and a real headless Chromium that draws the mesh and advances the animation."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from vocagan import viewer
from vocagan.errors import VocaganError
from vocagan.formats.gltf import glb_bytes, read_glb
from vocagan.formats.mesh import write_ply
from vocagan.morph import fit_vertices
from vocagan.render import BACKGROUND


@pytest.fixture(scope="module")
def animation(icosphere):
    """(T=45, V, 3) sphere with a moving lower half, faces."""
    v, f = icosphere(3)
    t = np.arange(45) / 30
    seq = np.repeat(v[None], len(t), axis=0).copy()
    lower = v[:, 1] < -0.02
    seq[:, lower, 1] -= (0.01 * np.sin(2 * np.pi * t) ** 2)[:, None]
    return seq, f


def _embedded_glb(html: str) -> bytes:
    return base64.b64decode(re.search(r'<script type="text/plain" id="glb">([^<]*)</script>', html).group(1))


def test_vertices_become_an_exact_glb_in_the_page(tmp_path, animation):
    seq, f = animation
    write_ply(tmp_path / "rest.ply", seq[0], f)
    np.save(tmp_path / "v.npy", seq)
    out = viewer.export_html_files(tmp_path / "page.html", vertices=tmp_path / "v.npy", faces=tmp_path / "rest.ply")
    anim = read_glb(_embedded_glb(out.read_text()))
    assert np.abs(anim.vertices() - seq).max() * 1000 <= 0.01  # within 10 micrometres
    moving = (anim.targets != 0).any(axis=(0, 2))
    assert moving.sum() == int((seq != seq[0]).any(axis=(0, 2)).sum())  # only moving vertices are targets


def test_page_is_self_contained(tmp_path, animation):
    import soundfile as sf

    seq, f = animation
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    glb = glb_bytes(fit_vertices(seq, seq[0], f, 30).animation)
    html = viewer.export_html(glb, tmp_path / "page.html", audio_path=tmp_path / "a.wav").read_text()
    assert html.startswith("<!doctype html>")
    # Nothing is fetched at view time: every src is inline data, no <link>, no CDN.
    assert re.findall(r'\bsrc="(?!data:)', html) == []
    assert "<link" not in html and "cdn" not in html.lower().replace("cdnjs", "")
    assert 'src="data:audio/wav;base64,' in html
    assert "GLTFLoader" in html and "AnimationMixer" in html
    assert _embedded_glb(html) == glb


def test_export_errors(tmp_path, animation):
    seq, f = animation
    glb = glb_bytes(fit_vertices(seq, seq[0], f, 30).animation)
    with pytest.raises(VocaganError, match="audio file not found"):
        viewer.export_html(glb, tmp_path / "p.html", audio_path=tmp_path / "missing.wav")
    with pytest.raises(VocaganError, match="bad magic"):
        viewer.export_html(b"nonsense", tmp_path / "p.html")
    write_ply(tmp_path / "mesh.ply", seq[0], f)
    np.save(tmp_path / "short.npy", seq[:, :100])
    with pytest.raises(VocaganError, match=r"mesh\.ply: topology mismatch"):
        viewer.export_html_files(tmp_path / "p.html", vertices=tmp_path / "short.npy", faces=tmp_path / "mesh.ply")
    with pytest.raises(VocaganError, match="no face mesh given and no short.json"):
        viewer.export_html_files(tmp_path / "p.html", vertices=tmp_path / "short.npy")
    with pytest.raises(VocaganError, match="needs --glb"):
        viewer.export_html_files(tmp_path / "p.html")
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

    # Two moments are drawn (the mesh fills the view above the 44 px control bar) and differ in the
    # moving lower half only.
    shots = []
    for t in (0.0, 0.25):
        shot = tmp_path / f"shot{t}.png"
        proc = chromium(
            tmp_path / "profile",
            f"{url}#t={t}",
            "--window-size=400,444",
            "--virtual-time-budget=3000",
            f"--screenshot={shot}",
        )
        assert shot.is_file(), proc.stderr[-2000:]
        shots.append(np.asarray(Image.open(shot).convert("RGB")).astype(float)[:400])
    mesh_pixels = np.abs(shots[0] - np.array(BACKGROUND) * 255).sum(axis=2) > 12
    assert mesh_pixels.mean() > 0.15, f"blank viewer screenshot ({mesh_pixels.mean():.3f} mesh pixels)"
    changed = np.abs(shots[0] - shots[1]).sum(axis=2) > 24
    assert changed[200:].sum() > 30 and changed[:150].sum() < 0.1 * changed[200:].sum()

    # Playback advances: the page reports its frame in document.title.
    proc = chromium(
        tmp_path / "profile", url + "#autoplay", "--window-size=400,444", "--virtual-time-budget=1000", "--dump-dom"
    )
    match = re.search(r"<title>[^<]*\| frame (\d+)</title>", proc.stdout)
    assert match, proc.stdout[:500] + proc.stderr[-2000:]
    assert 0 < int(match.group(1)) < len(seq)


def test_the_page_shows_the_mesh_colours(chromium, tmp_path):
    """The built-in face in the page: its vertex colours travel in the .glb (COLOR_0), and an open jaw
    shows the dark mouth in a real browser (compared with the same face at rest)."""
    from PIL import Image

    from vocagan.synth import canonical, face

    head = canonical.canonical_head(0)
    basis = face.motion_basis(head.vertices, head.frame, head.lower, head.moves, head.blink)
    dark = []
    for pose in (head.vertices, head.vertices + basis[0] + basis[1]):
        anim = fit_vertices(np.stack([pose, pose]), head.vertices, head.faces, 30).animation
        anim.colors = head.colors
        glb = glb_bytes(anim)
        assert np.abs(read_glb(glb).colors - head.colors).max() < 1e-6
        page = viewer.export_html(glb, tmp_path / "face.html")
        shot = tmp_path / "shot.png"
        chromium(
            tmp_path / "profile", f"{page.as_uri()}#t=0", "--window-size=400,444", "--virtual-time-budget=3000",
            f"--screenshot={shot}",
        )  # fmt: skip
        image = np.asarray(Image.open(shot).convert("RGB")).astype(float)[:400].mean(2)
        dark.append(int((image < 30).sum()))
    assert dark[1] > dark[0] + 300, dark  # the open mouth adds a dark hole
