"""`vocagan serve`: a local server that animates a face from live audio (WebSocket) and the browser page
that sends it the microphone.

One port, three routes:
- `GET /` the live page (three.js and its GLTFLoader inlined): it loads `/face.glb`, captures the
  microphone at 16 kHz (Web Audio), sends the PCM over `/stream` and applies every motion frame it
  receives to the face's morph targets.
- `GET /face.glb` the template mesh with the model's motion basis as morph targets (`morph`), the
  same file `vocagan animate --format glb` writes, with a one-frame animation.
- `/stream` (WebSocket) the protocol:
    server -> {"type": "hello", "sample_rate": 16000, "fps": 30, "targets": [...], "lookahead_ms": ...,
               "format": "s16le", "style": ...}
    client -> binary messages: mono 16-bit little-endian PCM at `sample_rate`, any length up to
              MAX_MESSAGE_BYTES (100 ms = 3200 bytes is typical)
    server -> {"type": "frames", "start": first frame index, "weights": [[w_0..w_K], ...]} for the
              frames each chunk completed (weights for the .glb's targets, in order)
    client -> {"type": "end"}: the server sends the last frames, then {"type": "end", "frames": total}
  Malformed input (an odd byte count, a text message that is not one of these, a message over the
  size limit) gets {"type": "error", "message": ...} and the connection is closed (code 1003/1007/1009).

Back-pressure: each connection handles one message at a time (features + model, then `send`, which
waits while the client is not reading); the library buffers at most `max_queue` incoming messages
and otherwise stops reading the socket, so a client that sends faster than real time or stops reading
is slowed by TCP flow control, never by unbounded server memory.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.utils import log

MAX_MESSAGE_BYTES = 1 << 16  # 2 s of 16 kHz 16-bit audio per message at most
MAX_QUEUE = 4  # incoming messages buffered per connection before the socket is no longer read


@dataclass
class ServeStats:
    connections: int = 0
    frames: int = 0
    errors: int = 0


class FaceServer:
    """The model, the face and the HTTP/WebSocket handlers of `vocagan serve` (see module docstring)."""

    def __init__(self, checkpoint: str | Path, style: str | None = None, template: str | None = None):
        from vocagan.checkpoint import load_checkpoint
        from vocagan.formats.gltf import glb_bytes
        from vocagan.infer import resolve_template
        from vocagan.morph import from_coefficients
        from vocagan.stream import Streamer

        self.checkpoint = Path(checkpoint)
        self.model, self.ckpt = load_checkpoint(self.checkpoint, device="cpu")
        self.style = style
        self.info = Streamer(self.model, self.ckpt, style).info  # validates: a streaming model, a known style
        name, verts, faces = resolve_template(self.ckpt, self.ckpt.prepared, template)
        if faces is None:
            if not len(self.ckpt.prepared.faces):
                raise VocaganError("the checkpoint holds no faces: pass --template mesh.ply", self.checkpoint)
            faces = self.ckpt.prepared.faces
        coefs = np.zeros((1, self.model.motion_dim), np.float32)
        face = from_coefficients(self.ckpt.prepared, coefs, verts, faces, self.ckpt.fps, {"template": name})
        self.glb = glb_bytes(face)
        self.stats = ServeStats()

    def page(self) -> str:
        from vocagan.viewer import three_modules

        return _PAGE.replace("@MODULES@", three_modules()).replace("@APP@", _APP)

    # -- HTTP
    def process_request(self, connection, request):
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = request.path.split("?")[0]
        if path == "/stream":
            return None  # the WebSocket handshake
        if path in ("/", "/index.html"):
            body, kind = self.page().encode("utf-8"), "text/html; charset=utf-8"
        elif path == "/face.glb":
            body, kind = self.glb, "model/gltf-binary"
        else:
            return connection.respond(404, "not found\n")
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return Response(200, "OK", headers, body)

    # -- WebSocket
    async def handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        from vocagan.stream import Streamer

        self.stats.connections += 1
        streamer = Streamer(self.model, self.ckpt, self.style)
        info = streamer.info
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "sample_rate": info.sample_rate,
                    "fps": info.fps,
                    "targets": info.targets,
                    "lookahead_ms": round(info.lookahead_ms, 2),
                    "format": "s16le",
                    "style": info.style,
                }
            )
        )
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    if len(message) % 2:
                        await self._fail(
                            ws,
                            1007,
                            f"PCM message of {len(message)} bytes is not a whole number "
                            "of 16-bit samples (send mono s16le)",
                        )
                        return
                    samples = np.frombuffer(message, "<i2").astype(np.float32) / 32768.0
                    await self._send_frames(ws, streamer, streamer.push(samples))
                    continue
                try:
                    kind = json.loads(message).get("type")
                except (ValueError, AttributeError):
                    kind = None
                if kind != "end":
                    await self._fail(
                        ws,
                        1003,
                        f"unexpected text message {message[:80]!r}: send binary PCM "
                        'chunks and {"type": "end"} at the end',
                    )
                    return
                await self._send_frames(ws, streamer, streamer.end())
                await ws.send(json.dumps({"type": "end", "frames": streamer.frames_out}))
                await ws.close()
                return
        except ConnectionClosed:
            return

    async def _send_frames(self, ws, streamer, weights: np.ndarray) -> None:
        if len(weights):
            start = streamer.frames_out - len(weights)
            rows = [[round(float(v), 6) for v in row] for row in weights]
            await ws.send(json.dumps({"type": "frames", "start": start, "weights": rows}))
            self.stats.frames += len(weights)

    async def _fail(self, ws, code: int, message: str) -> None:
        self.stats.errors += 1
        log(f"serve: closing a connection: {message}")
        await ws.send(json.dumps({"type": "error", "message": message}))
        await ws.close(code, message[:120])


async def run_server(server: FaceServer, host: str = "127.0.0.1", port: int = 8765, ready=None, stop=None) -> None:
    """Serve until `stop` (an asyncio.Event) is set, or forever. `ready(port)` is called once listening."""
    from websockets.asyncio.server import serve as ws_serve

    async with ws_serve(
        server.handle,
        host,
        port,
        process_request=server.process_request,
        max_size=MAX_MESSAGE_BYTES,
        max_queue=MAX_QUEUE,
        compression=None,
    ) as s:
        bound = s.sockets[0].getsockname()[1] if s.sockets else port
        if ready is not None:
            ready(bound)
        await (stop.wait() if stop is not None else asyncio.Future())


def serve(
    checkpoint: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    style: str | None = None,
    template: str | None = None,
) -> None:
    """`vocagan serve`: blocks until interrupted (Ctrl-C)."""
    server = FaceServer(checkpoint, style, template)
    info = server.info

    def ready(bound: int) -> None:
        print(
            f"vocagan serve: open http://{host}:{bound}/ (WebSocket ws://{host}:{bound}/stream); "
            f"{info.fps:g} fps, {len(info.targets)} morph targets, look-ahead {info.lookahead_ms:.1f} ms; "
            "Ctrl-C stops",
            flush=True,
        )

    try:
        asyncio.run(run_server(server, host, port, ready))
    except OSError as e:
        raise VocaganError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vocagan live</title>
<style>
html, body { margin: 0; height: 100%; background: #212126; color: #ddd; font: 14px sans-serif; overflow: hidden; }
#view { position: absolute; inset: 0 0 44px 0; }
#bar { position: absolute; left: 0; right: 0; bottom: 0; height: 44px; display: flex; align-items: center;
       gap: 12px; padding: 0 12px; background: #17171a; }
#bar button { height: 30px; }
</style></head>
<body><div id="view"></div>
<div id="bar"><button id="start" type="button">start microphone</button><span id="status">idle</span></div>
@MODULES@
<script type="module">@APP@</script>
</body></html>
"""

_APP = r"""
const { THREE, GLTFLoader } = await window.vocaganThree();
const status = document.getElementById('status');
const view = document.getElementById('view');
const gltf = await new GLTFLoader().loadAsync('/face.glb');
const renderer = new THREE.WebGLRenderer({antialias: true, preserveDrawingBuffer: true});
renderer.setPixelRatio(window.devicePixelRatio || 1);
view.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x212126);
scene.add(gltf.scene);
let mesh = null;
gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetInfluences) mesh = o; });
const camera = window.vocaganFrame(THREE, scene, gltf.scene, view, renderer);
let received = 0, queue = [], fps = 30;
function apply(weights) { for (let k = 0; k < weights.length; k++) mesh.morphTargetInfluences[k] = weights[k]; }
function tick() {
  if (queue.length) { apply(queue.shift()); }      // one frame per display refresh at most; skip ahead if late
  while (queue.length > 3) apply(queue.shift());
  renderer.render(scene, camera);
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
const button = document.getElementById('start');
async function start() {
  button.disabled = true;
  button.textContent = 'microphone on';
  const ws = new WebSocket(`ws://${location.host}/stream`);
  ws.binaryType = 'arraybuffer';
  const hello = await new Promise((ok, fail) => { ws.onmessage = (e) => ok(JSON.parse(e.data)); ws.onerror = fail; });
  fps = hello.fps;
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === 'frames') { for (const w of msg.weights) queue.push(w); received += msg.weights.length; }
    if (msg.type === 'error') status.textContent = 'server: ' + msg.message;
    document.title = `vocagan live | frames ${received}`;
    status.textContent = `${received} frames (look-ahead ${hello.lookahead_ms} ms)`;
  };
  const stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: false,
                                                                     noiseSuppression: false, autoGainControl: false}});
  const ctx = new AudioContext({sampleRate: hello.sample_rate});
  const worklet = `registerProcessor('pcm', class extends AudioWorkletProcessor {
    constructor() { super(); this.buf = []; this.n = 0; }
    process(inputs) {
      const x = inputs[0][0];
      if (x) { this.buf.push(Float32Array.from(x)); this.n += x.length; }
      if (this.n >= ${Math.round(hello.sample_rate / 10)}) {          // 100 ms chunks
        const out = new Int16Array(this.n); let o = 0;
        for (const b of this.buf) {
          for (const v of b) out[o++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
        }
        this.port.postMessage(out.buffer, [out.buffer]); this.buf = []; this.n = 0;
      }
      return true;
    }
  });`;
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], {type: 'text/javascript'})));
  const node = new AudioWorkletNode(ctx, 'pcm');
  node.port.onmessage = (e) => { if (ws.readyState === 1) ws.send(e.data); };
  ctx.createMediaStreamSource(stream).connect(node);
  status.textContent = 'listening';
}
button.addEventListener('click', start);
if (location.hash.includes('autostart')) start();
"""
