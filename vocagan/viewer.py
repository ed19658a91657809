"""One self-contained HTML page that plays a vertex animation in sync with its audio.

The page needs no network: three.js (vendored in vocagan/assets/, see scripts/vendor_three.sh) is
inlined and imported from a blob URL; the mesh is embedded compactly (the base frame as float32,
then only the vertices that move, as int16-quantised offsets, zlib-compressed and decoded in the
browser with DecompressionStream); the audio file is embedded as base64. The displayed frame is
floor(audio.currentTime * fps), so picture and sound cannot drift. Controls: play/pause, a scrub
slider, drag to orbit, wheel to zoom. The current frame is shown in the page (#frame) and in
document.title, which is what the headless-browser test reads. `#autoplay` in the URL starts
playback where the browser's autoplay policy allows it.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.options import VideoOptions, check
from vocagan.render import (
    ALBEDO,
    AMBIENT,
    BACKGROUND,
    FILL_LIGHT,
    KEY_LIGHT,
    check_mesh,
)
from vocagan.utils import atomic_write_text, log, output_file
from vocagan.video import check_audio, ffmpeg_command, ffmpeg_error, load_animation

ASSETS = Path(__file__).resolve().parent / "assets"
THREE_JS = ASSETS / "three.module.min.js"
BLOCK = 1024  # frames encoded at a time
MAX_RAW_AUDIO_BYTES = 8 << 20  # larger audio files are re-encoded to mp3 before embedding
_AUDIO_MIME = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".opus": "audio/ogg",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_mesh(vertices: np.ndarray, faces: np.ndarray, fps: float, colors: np.ndarray | None = None) -> dict:
    """Compact JSON-able form of (T, V, 3) vertices: base frame + int16 offsets of moving vertices.

    Quantisation step = max |offset| / 32767 (sub-micrometre for speech motion); vertices whose
    offset never exceeds half a step are static and not stored at all. `colors` (V, 3) in [0, 1]:
    per-vertex colours (uint8, zlib), drawn as the mesh's material colour (else ALBEDO everywhere).
    """
    base = vertices[0].astype(np.float32)  # (V, 3)
    blocks = [slice(t, t + BLOCK) for t in range(0, len(vertices), BLOCK)]  # bounded memory for long clips
    peak = max(float(np.abs(vertices[b] - base).max()) for b in blocks)
    scale = peak / 32767.0 if peak > 0 else 1.0
    moving_mask = np.zeros(len(base), bool)
    for b in blocks:
        moving_mask |= (np.abs(vertices[b] - base) > scale / 2).any(axis=(0, 2))
    moving = np.nonzero(moving_mask)[0].astype(np.uint32)  # (M,)
    packer = zlib.compressobj(6)
    offsets = (
        b"".join(
            packer.compress(np.round((vertices[b][:, moving] - base[moving]) / scale).astype("<i2").tobytes())
            for b in blocks
        )
        + packer.flush()
    )  # (T, M, 3)
    index_type = "<u2" if len(base) < 65536 else "<u4"
    return {
        "fps": float(fps),
        "n_frames": int(len(vertices)),
        "n_vertices": int(len(base)),
        "base": _b64(base.astype("<f4").tobytes()),
        "faces": _b64(zlib.compress(faces.astype(index_type).tobytes(), 6)),
        "faces_u32": index_type == "<u4",
        "moving": _b64(zlib.compress(moving.astype("<u4").tobytes(), 6)),
        "n_moving": int(len(moving)),
        "scale": scale,
        "offsets": _b64(offsets),
        "albedo": list(ALBEDO),
        "background": list(BACKGROUND),
        "key": KEY_LIGHT,
        "fill": FILL_LIGHT,
        "ambient": AMBIENT,
        "colors": None
        if colors is None
        else _b64(zlib.compress((np.clip(colors, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes(), 6)),
    }


def _audio_source(audio_path: Path) -> str:
    """A data: URL for the audio; big or unusual files are re-encoded to mp3 with the bundled ffmpeg."""
    import subprocess
    import tempfile

    check_audio(audio_path)  # a page with unplayable audio is no success
    mime = _AUDIO_MIME.get(audio_path.suffix.lower())
    if mime and audio_path.stat().st_size <= MAX_RAW_AUDIO_BYTES:
        return f"data:{mime};base64,{_b64(audio_path.read_bytes())}"

    with tempfile.TemporaryDirectory(prefix="vocagan-html-") as tmp:
        out = Path(tmp) / "audio.mp3"
        proc = subprocess.run(
            ffmpeg_command("-i", str(audio_path), "-vn", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "96k", str(out)),
            capture_output=True,
        )
        if proc.returncode != 0:
            raise VocaganError(f"cannot read the audio ({ffmpeg_error(proc.stderr, 'ffmpeg failed')})", audio_path)
        return f"data:audio/mpeg;base64,{_b64(out.read_bytes())}"


def export_html(
    vertices: np.ndarray,
    faces: np.ndarray,
    out_html: str | Path,
    fps: float = 30,
    audio_path: str | Path | None = None,
    title: str = "vocagan",
    colors: np.ndarray | None = None,
) -> Path:
    """Write one self-contained HTML page playing vertices (T, V, 3) with faces (F, 3) at `fps`,
    with the audio file (wav/mp3/ogg/flac; others re-encoded) embedded and kept in sync; `colors`
    (V, 3): the mesh's per-vertex colours."""
    out_html = Path(out_html)
    if fps <= 0:
        raise VocaganError(f"fps must be positive, got {fps}", out_html)
    vertices, faces = check_mesh(vertices, faces)
    if not THREE_JS.is_file():
        raise VocaganError("vendored three.js missing; run scripts/vendor_three.sh", THREE_JS)
    three = THREE_JS.read_text(encoding="utf-8")
    if "</script" in three.lower() or "<!--" in three:
        raise VocaganError("vendored three.js cannot be inlined (contains a script end tag)", THREE_JS)
    if colors is not None and np.shape(colors) != (vertices.shape[1], 3):
        raise VocaganError(f"colours must be ({vertices.shape[1]}, 3), got {np.shape(colors)}", out_html)
    mesh = json.dumps(encode_mesh(vertices, faces, fps, colors)).replace("</", "<\\/")
    audio = _audio_source(Path(audio_path)) if audio_path is not None else ""
    page = (
        _PAGE.replace("@TITLE@", _html_escape(title))
        .replace("@BACKGROUND@", "#" + "".join(f"{int(c * 255):02x}" for c in BACKGROUND))
        .replace("@AUDIO@", f'<audio id="audio" preload="auto" src="{audio}"></audio>' if audio else "")
        .replace("@MESH@", mesh)
        .replace("@APP@", _APP)
    )
    page = page.replace("@THREE@", three)  # last: nothing is substituted inside three.js
    atomic_write_text(out_html, page)
    return out_html


def export_html_files(
    vertices: str | Path,
    faces: str | Path | None,
    out: str | Path,
    fps: float | None = None,
    audio: str | Path | None = None,
) -> Path:
    """`vocagan export-html`: vertices .npy (T, V, 3) + its face mesh (default: the one named in the
    .json `animate` writes beside the .npy; another vertex count is refused) -> HTML. Sound and fps
    default to the .json's (fps 30 without one)."""
    fps = check(VideoOptions, fps=fps)
    output_file(out)
    anim = load_animation(vertices, faces)
    if audio is None and anim.audio is not None:
        audio = anim.audio
        log(f"export-html: sound from {audio} (named in {Path(vertices).with_suffix('.json').name})")
    return export_html(
        anim.vertices,
        anim.faces,
        out,
        fps=fps or anim.fps or 30,
        audio_path=audio,
        title=Path(vertices).stem,
        colors=anim.colors,
    )


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("@", "&#64;")
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>
html, body { margin: 0; height: 100%; background: @BACKGROUND@; color: #ddd; font: 14px sans-serif; overflow: hidden; }
#view { position: absolute; inset: 0 0 44px 0; touch-action: none; cursor: grab; }
#bar { position: absolute; left: 0; right: 0; bottom: 0; height: 44px; display: flex; align-items: center;
       gap: 10px; padding: 0 12px; background: #17171a; box-sizing: border-box; }
#bar button { width: 64px; height: 30px; }
#scrub { flex: 1; }
#status { min-width: 150px; text-align: right; font-variant-numeric: tabular-nums; }
</style></head>
<body>
<div id="view"></div>
<div id="bar"><button id="play" type="button">play</button>
<input id="scrub" type="range" min="0" max="0" value="0" step="1">
<span id="status">frame <span id="frame">0</span></span></div>
@AUDIO@
<script type="text/plain" id="three-src">@THREE@</script>
<script type="application/json" id="mesh-data">@MESH@</script>
<script type="module">@APP@</script>
</body></html>
"""

_APP = r"""
const src = document.getElementById('three-src').textContent;
const THREE = await import(URL.createObjectURL(new Blob([src], {type: 'text/javascript'})));
const M = JSON.parse(document.getElementById('mesh-data').textContent);
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
async function inflate(b64) {   // zlib stream -> ArrayBuffer
  const stream = new Blob([bytes(b64)]).stream().pipeThrough(new DecompressionStream('deflate'));
  return await new Response(stream).arrayBuffer();
}
const base = new Float32Array(bytes(M.base).buffer);                      // (V*3)
const faceBuf = await inflate(M.faces);
const faces = M.faces_u32 ? new Uint32Array(faceBuf) : new Uint16Array(faceBuf);
const moving = new Uint32Array(await inflate(M.moving));                   // (M,)
const offsets = new Int16Array(await inflate(M.offsets));                 // (T*M*3)
const T = M.n_frames, NM = M.n_moving, fps = M.fps;

const view = document.getElementById('view');
const renderer = new THREE.WebGLRenderer({antialias: true, preserveDrawingBuffer: true});
renderer.setPixelRatio(window.devicePixelRatio || 1);
view.appendChild(renderer.domElement);
const scene = new THREE.Scene();
// Linear output with render.py's light intensities (x pi: three's Lambert BRDF divides by pi), so the
// page looks like the mp4 frames.
renderer.outputColorSpace = THREE.LinearSRGBColorSpace;
scene.background = new THREE.Color().setRGB(...M.background);
const geometry = new THREE.BufferGeometry();
const positions = new Float32Array(base);
const posAttr = new THREE.BufferAttribute(positions, 3);
posAttr.setUsage(THREE.DynamicDrawUsage);
geometry.setAttribute('position', posAttr);
geometry.setIndex(new THREE.BufferAttribute(faces, 1));
geometry.computeVertexNormals();
geometry.computeBoundingBox();
if (M.colors) {   // per-vertex colours (skin, lips, mouth interior, eyes), linear RGB as in render.py
  const rgb = new Uint8Array(await inflate(M.colors));
  geometry.setAttribute('color', new THREE.BufferAttribute(Float32Array.from(rgb, (c) => c / 255), 3));
}
const material = new THREE.MeshPhongMaterial({shininess: 24, specular: 0x1c1c1c, side: THREE.DoubleSide,
                                              vertexColors: Boolean(M.colors)});
if (M.colors) material.color.setRGB(1, 1, 1); else material.color.setRGB(...M.albedo);
scene.add(new THREE.Mesh(geometry, material));

// Camera framing as vocagan.render.frame_camera: fit the x/y extent of frame 0, head facing +z.
const box = geometry.boundingBox, center = box.getCenter(new THREE.Vector3());
const half = box.getSize(new THREE.Vector3()).multiplyScalar(0.5);
const camera = new THREE.PerspectiveCamera(20, 1, 0.001, 100);
// key, fill (as render.py)
for (const [intensity, x, y, z] of [[M.key[1], ...M.key[0]], [M.fill[1], ...M.fill[0]]]) {
  const light = new THREE.DirectionalLight(0xffffff, intensity * Math.PI);
  light.position.set(x, y, z);     // in camera space; shining towards the camera's origin
  light.target = camera;
  camera.add(light);
}
scene.add(camera);
scene.add(new THREE.AmbientLight(0xffffff, M.ambient * Math.PI));
// Orbit controls (drag = rotate around the head, wheel = zoom): spherical coordinates around `center`.
const orbit = {theta: 0, phi: 0, radius: 1};
function placeCamera() {
  const c = Math.cos(orbit.phi);
  camera.position.set(center.x + orbit.radius * c * Math.sin(orbit.theta),
                      center.y + orbit.radius * Math.sin(orbit.phi),
                      center.z + orbit.radius * c * Math.cos(orbit.theta));
  camera.lookAt(center);
  camera.near = orbit.radius / 100; camera.far = orbit.radius * 100; camera.updateProjectionMatrix();
}
function resize() {
  const w = view.clientWidth || 1, h = view.clientHeight || 1;
  renderer.setSize(w, h);
  camera.aspect = w / h;
  const t = Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2);
  orbit.radius = Math.max(half.y, half.x / camera.aspect) * 1.08 / t + half.z;
  placeCamera();
}
let drag = null;
view.addEventListener('pointerdown', (e) => {
  drag = {x: e.clientX, y: e.clientY};
  view.setPointerCapture(e.pointerId);
});
view.addEventListener('pointerup', () => { drag = null; });
view.addEventListener('pointermove', (e) => {
  if (!drag) return;
  orbit.theta -= (e.clientX - drag.x) * 0.01;
  orbit.phi = Math.max(-1.5, Math.min(1.5, orbit.phi + (e.clientY - drag.y) * 0.01));
  drag = {x: e.clientX, y: e.clientY};
  placeCamera();
});
view.addEventListener('wheel', (e) => {
  e.preventDefault();
  orbit.radius *= Math.exp(e.deltaY * 0.001);
  placeCamera();
}, {passive: false});
window.addEventListener('resize', resize);
resize();

// Playback: the audio clock drives the frame (frame = floor(currentTime * fps)); without audio a wall clock.
const audio = document.getElementById('audio');
const playButton = document.getElementById('play'), scrub = document.getElementById('scrub');
const frameLabel = document.getElementById('frame');
scrub.max = String(T - 1);
let playing = false, clockStart = 0, clockOffset = 0, shown = -1;
const duration = T / fps;
function currentTime() {
  if (audio) return audio.currentTime;
  return playing ? clockOffset + (performance.now() - clockStart) / 1000 : clockOffset;
}
function setFrame(frame) {
  frame = Math.max(0, Math.min(T - 1, frame));
  if (frame === shown) return;
  const o = frame * NM * 3, s = M.scale;
  for (let k = 0; k < NM; k++) {
    const v = moving[k] * 3, q = o + k * 3;
    positions[v] = base[v] + offsets[q] * s;
    positions[v + 1] = base[v + 1] + offsets[q + 1] * s;
    positions[v + 2] = base[v + 2] + offsets[q + 2] * s;
  }
  posAttr.needsUpdate = true;
  geometry.computeVertexNormals();
  shown = frame;
  scrub.value = String(frame);
  frameLabel.textContent = String(frame);
  document.title = `${document.title.split(' | ')[0]} | frame ${frame}`;
}
async function play() {
  if (audio) {
    if (audio.ended || audio.currentTime >= duration) audio.currentTime = 0;
    try { await audio.play(); } catch (err) {          // blocked by the autoplay policy: wait for a click
      playButton.textContent = 'play'; return;
    }
  } else {
    if (clockOffset >= duration) clockOffset = 0;
    clockStart = performance.now();
  }
  playing = true; playButton.textContent = 'pause';
}
function pause() {
  if (audio) audio.pause(); else clockOffset = currentTime();
  playing = false; playButton.textContent = 'play';
}
playButton.addEventListener('click', () => (playing ? pause() : play()));
scrub.addEventListener('input', () => {
  const t = Number(scrub.value) / fps;
  if (audio) audio.currentTime = t; else { clockOffset = t; clockStart = performance.now(); }
  setFrame(Number(scrub.value));
});
if (audio) audio.addEventListener('ended', () => pause());
function update() {
  if (!playing) return;
  const t = currentTime();
  if (!audio && t >= duration) { clockOffset = duration; pause(); }
  setFrame(Math.floor(t * fps));
}
function tick() {
  update();
  renderer.render(scene, camera);
  requestAnimationFrame(tick);
}
setFrame(0);
requestAnimationFrame(tick);
setInterval(update, 250 / fps);   // keeps the frame state current even where rAF is throttled (hidden tab)
if (location.hash.includes('autoplay')) play();
"""
