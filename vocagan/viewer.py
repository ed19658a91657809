"""One self-contained HTML page that plays a .glb morph animation in sync with its audio.

One code path for every input: the page always plays a glTF binary (`formats/gltf.py`) with three.js'
own GLTFLoader and AnimationMixer, exactly as a web app or an artist's tool would load the file. A
vertex sequence (.npy) is first turned into morph targets (`morph.fit_vertices`: the template plus a
PCA of the offsets, reproducing every vertex within 0.01 mm), a .glb from `vocagan animate --format
glb` is embedded as it is.

The page needs no network: three.js and its GLTFLoader (vendored in vocagan/assets/, see
scripts/vendor_three.sh) are inlined and imported from blob URLs; the .glb and the audio are
embedded as base64. The animation time is the audio clock (`audio.currentTime`), so picture and sound
cannot drift; the shown frame is floor(time * fps). Controls: play/pause, a scrub slider, drag to
orbit, wheel to zoom. The current frame is shown in the page (#frame) and in document.title, which is
what the headless-browser tests read. URL hash: `#autoplay` starts playback where the browser's
autoplay policy allows it, `#t=1.5` shows the pose at 1.5 s (screenshots).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from vocagan.errors import VocaganError
from vocagan.options import VideoOptions, check
from vocagan.render import AMBIENT, BACKGROUND, FILL_LIGHT, KEY_LIGHT
from vocagan.utils import atomic_write_text, existing_file, log, output_file
from vocagan.video import check_audio, ffmpeg_command, ffmpeg_error

ASSETS = Path(__file__).resolve().parent / "assets"
THREE_JS = ASSETS / "three.module.min.js"
GLTF_LOADER_JS = ASSETS / "GLTFLoader.js"
GEOMETRY_UTILS_JS = ASSETS / "BufferGeometryUtils.js"
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


def _asset(path: Path) -> str:
    if not path.is_file():
        raise VocaganError("vendored three.js file missing; run scripts/vendor_three.sh", path)
    text = path.read_text(encoding="utf-8")
    if "</script" in text.lower() or "<!--" in text:
        raise VocaganError("vendored three.js file cannot be inlined (contains a script end tag)", path)
    return text


def three_modules() -> str:
    """HTML that defines `window.vocaganThree()` -> {THREE, GLTFLoader} (three.js and its loader from
    inlined sources through blob URLs, their `import` specifiers rewritten) and
    `window.vocaganFrame(THREE, scene, object, element, renderer)` -> a camera framing `object` as
    vocagan.render does, with its lights and drag/wheel orbit controls. Shared by this page and the
    live page of `vocagan serve`."""
    lights = json.dumps({"key": KEY_LIGHT, "fill": FILL_LIGHT, "ambient": AMBIENT, "background": BACKGROUND})
    return (
        f'<script type="text/plain" id="three-src">{_asset(THREE_JS)}</script>\n'
        f'<script type="text/plain" id="gltf-loader-src">{_asset(GLTF_LOADER_JS)}</script>\n'
        f'<script type="text/plain" id="geometry-utils-src">{_asset(GEOMETRY_UTILS_JS)}</script>\n'
        f"<script>window.vocaganLights = {lights};{_BOOT}</script>"
    )


_BOOT = r"""
window.vocaganThree = async function () {
  const text = (id) => document.getElementById(id).textContent;
  const url = (src) => URL.createObjectURL(new Blob([src], {type: 'text/javascript'}));
  const three = url(text('three-src'));
  const utils = url(text('geometry-utils-src').replaceAll("from 'three'", `from '${three}'`));
  const loader = url(text('gltf-loader-src').replaceAll("from 'three'", `from '${three}'`)
    .replaceAll("from '../utils/BufferGeometryUtils.js'", `from '${utils}'`));
  const THREE = await import(three);
  const { GLTFLoader } = await import(loader);
  return { THREE, GLTFLoader };
};
// Camera and lights as vocagan.render: fit the x/y extent of the object, head facing +z; linear output
// with render.py's light intensities (x pi: three's Lambert BRDF divides by pi) so pages look like videos.
window.vocaganFrame = function (THREE, scene, object, element, renderer) {
  const L = window.vocaganLights;
  renderer.outputColorSpace = THREE.LinearSRGBColorSpace;
  scene.background = new THREE.Color().setRGB(...L.background);
  object.traverse((o) => { if (o.isMesh) { o.material = new THREE.MeshPhongMaterial({
    color: o.material.color, vertexColors: o.material.vertexColors,   // COLOR_0: skin, lips, mouth, eyes
    shininess: 24, specular: 0x1c1c1c, side: THREE.DoubleSide}); } });
  const box = new THREE.Box3().setFromObject(object);
  const center = box.getCenter(new THREE.Vector3()), half = box.getSize(new THREE.Vector3()).multiplyScalar(0.5);
  const camera = new THREE.PerspectiveCamera(20, 1, 0.001, 100);
  for (const [intensity, x, y, z] of [[L.key[1], ...L.key[0]], [L.fill[1], ...L.fill[0]]]) {
    const light = new THREE.DirectionalLight(0xffffff, intensity * Math.PI);
    light.position.set(x, y, z);
    light.target = camera;
    camera.add(light);
  }
  scene.add(camera);
  scene.add(new THREE.AmbientLight(0xffffff, L.ambient * Math.PI));
  const orbit = {theta: 0, phi: 0, radius: 1};
  function place() {
    const c = Math.cos(orbit.phi);
    camera.position.set(center.x + orbit.radius * c * Math.sin(orbit.theta),
                        center.y + orbit.radius * Math.sin(orbit.phi),
                        center.z + orbit.radius * c * Math.cos(orbit.theta));
    camera.lookAt(center);
    camera.near = orbit.radius / 100; camera.far = orbit.radius * 100; camera.updateProjectionMatrix();
  }
  function resize() {
    const w = element.clientWidth || 1, h = element.clientHeight || 1;
    renderer.setSize(w, h);
    camera.aspect = w / h;
    const t = Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2);
    orbit.radius = Math.max(half.y, half.x / camera.aspect) * 1.08 / t + half.z;
    place();
  }
  let drag = null;
  element.addEventListener('pointerdown', (e) => {
    drag = {x: e.clientX, y: e.clientY};
    element.setPointerCapture(e.pointerId);
  });
  element.addEventListener('pointerup', () => { drag = null; });
  element.addEventListener('pointermove', (e) => {
    if (!drag) return;
    orbit.theta -= (e.clientX - drag.x) * 0.01;
    orbit.phi = Math.max(-1.5, Math.min(1.5, orbit.phi + (e.clientY - drag.y) * 0.01));
    drag = {x: e.clientX, y: e.clientY};
    place();
  });
  element.addEventListener('wheel', (e) => { e.preventDefault(); orbit.radius *= Math.exp(e.deltaY * 0.001); place(); },
                           {passive: false});
  window.addEventListener('resize', resize);
  resize();
  return camera;
};
"""


def _audio_source(audio_path: Path) -> str:
    """A data: URL for the audio; big or unusual files are re-encoded to mp3 with the bundled ffmpeg."""
    check_audio(audio_path)  # a page with unplayable audio is no success
    mime = _AUDIO_MIME.get(audio_path.suffix.lower())
    if mime and audio_path.stat().st_size <= MAX_RAW_AUDIO_BYTES:
        return f"data:{mime};base64,{_b64(audio_path.read_bytes())}"
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vocagan-html-") as tmp:
        out = Path(tmp) / "audio.mp3"
        cmd = ffmpeg_command("-i", str(audio_path), "-vn", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "96k", str(out))
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode != 0:
            raise VocaganError(f"cannot read the audio ({ffmpeg_error(proc.stderr, 'ffmpeg failed')})", audio_path)
        return f"data:audio/mpeg;base64,{_b64(out.read_bytes())}"


def export_html(glb: bytes, out_html: str | Path, audio_path: str | Path | None = None, title: str = "vocagan") -> Path:
    """Write one self-contained HTML page playing the .glb content `glb` (a morph-target animation as
    `formats.gltf.glb_bytes` writes it) with the audio file (wav/mp3/ogg/flac; others re-encoded)."""
    from vocagan.formats.gltf import read_glb

    out_html = Path(out_html)
    anim = read_glb(glb)  # refuses what the page could not play, with a clear reason
    if not len(anim.targets):
        raise VocaganError("the .glb has no morph targets to play", out_html)
    audio = _audio_source(Path(audio_path)) if audio_path is not None else ""
    page = (
        _PAGE.replace("@TITLE@", _html_escape(title))
        .replace("@BACKGROUND@", "#" + "".join(f"{int(c * 255):02x}" for c in BACKGROUND))
        .replace("@AUDIO@", f'<audio id="audio" preload="auto" src="{audio}"></audio>' if audio else "")
        .replace("@GLB@", _b64(glb))
        .replace("@FPS@", repr(float(anim.fps)))
        .replace("@APP@", _APP)
    )
    page = page.replace("@MODULES@", three_modules())  # last: nothing is substituted inside three.js
    atomic_write_text(out_html, page)
    return out_html


def export_html_files(
    out: str | Path,
    vertices: str | Path | None = None,
    faces: str | Path | None = None,
    glb: str | Path | None = None,
    fps: float | None = None,
    audio: str | Path | None = None,
) -> Path:
    """`vocagan export-html`: a .glb, or vertices .npy (T, V, 3) and its face mesh (default: the mesh
    the <vertices>.json of `animate` names; a mesh of another vertex count is refused), turned into
    morph targets (`morph.fit_vertices`, the mesh's vertex colours kept) -> HTML. Sound and fps default
    to the .json's (fps 30 without one)."""
    from vocagan.formats.gltf import glb_bytes

    fps = check(VideoOptions, fps=fps)
    output_file(out)
    if glb is not None:
        glb = existing_file(glb, ".glb file")
        return export_html(glb.read_bytes(), out, audio_path=audio, title=glb.stem)
    if vertices is None:
        raise VocaganError("export-html needs --glb FILE, or --vertices NPY (with --faces MESH or its .json)")
    from vocagan.morph import fit_vertices
    from vocagan.video import load_animation

    vertices = Path(vertices)
    anim = load_animation(vertices, faces)
    if audio is None and anim.audio is not None:
        audio = anim.audio
        log(f"export-html: sound from {audio} (named in {vertices.with_suffix('.json').name})")
    from vocagan.formats.mesh import read_mesh

    rest = read_mesh(anim.mesh)[0]
    fit = fit_vertices(anim.vertices, rest, anim.faces, fps or anim.fps or 30)
    fit.animation.colors = anim.colors
    return export_html(glb_bytes(fit.animation), out, audio_path=audio, title=vertices.stem)


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
<script type="text/plain" id="glb">@GLB@</script>
@MODULES@
<script type="module">const FPS = @FPS@;@APP@</script>
</body></html>
"""

_APP = r"""
const { THREE, GLTFLoader } = await window.vocaganThree();
const bytes = Uint8Array.from(atob(document.getElementById('glb').textContent), (c) => c.charCodeAt(0));
const gltf = await new GLTFLoader().parseAsync(bytes.buffer, '');
const view = document.getElementById('view');
const renderer = new THREE.WebGLRenderer({antialias: true, preserveDrawingBuffer: true});
renderer.setPixelRatio(window.devicePixelRatio || 1);
view.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.add(gltf.scene);
const camera = window.vocaganFrame(THREE, scene, gltf.scene, view, renderer);
const clip = gltf.animations[0];
const mixer = new THREE.AnimationMixer(gltf.scene);
const action = mixer.clipAction(clip);
action.setLoop(THREE.LoopOnce, 1);
action.clampWhenFinished = true;
action.play();
const duration = clip.duration, T = Math.max(1, Math.round(duration * FPS) + 1);

// Playback: the audio clock drives the animation time; without audio a wall clock.
const audio = document.getElementById('audio');
const playButton = document.getElementById('play'), scrub = document.getElementById('scrub');
const frameLabel = document.getElementById('frame');
scrub.max = String(T - 1);
let playing = false, clockStart = 0, clockOffset = 0, shown = -1;
function currentTime() {
  if (audio) return audio.currentTime;
  return playing ? clockOffset + (performance.now() - clockStart) / 1000 : clockOffset;
}
function show(t) {
  t = Math.max(0, Math.min(duration, t));
  mixer.setTime(t);
  const frame = Math.min(T - 1, Math.floor(t * FPS + 1e-6));
  if (frame === shown) return;
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
  const t = Number(scrub.value) / FPS;
  if (audio) audio.currentTime = t; else { clockOffset = t; clockStart = performance.now(); }
  show(t);
});
if (audio) audio.addEventListener('ended', () => pause());
function update() {
  if (!playing) return;
  const t = currentTime();
  if (!audio && t >= duration) { clockOffset = duration; pause(); }
  show(t);
}
function tick() {
  update();
  renderer.render(scene, camera);
  requestAnimationFrame(tick);
}
const at = location.hash.match(/t=([0-9.]+)/);
show(at ? Number(at[1]) : 0);
if (at) { clockOffset = Number(at[1]); if (audio) audio.currentTime = clockOffset; }
requestAnimationFrame(tick);
setInterval(update, 250 / FPS);   // keeps the frame state current even where rAF is throttled (hidden tab)
if (location.hash.includes('autoplay')) play();
"""
