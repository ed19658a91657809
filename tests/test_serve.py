"""Live animation: the Streamer gives animate's frames; `vocagan serve` speaks its WebSocket protocol
(frames for PCM chunks, clear errors on malformed input, back-pressure) and its page animates the face
from a microphone (headless Chromium's fake capture fed from a wav)."""

from __future__ import annotations

import asyncio
import json
import re
import threading

import numpy as np
import pytest
import soundfile as sf

from vocagan.checkpoint import load_checkpoint
from vocagan.errors import VocaganError

STREAMING = ["model.lookahead=2", "model.attention_band=15", "model.norm_window=30"]


@pytest.fixture(scope="module")
def streaming_ckpt(tmp_path_factory, toy_checkpoint):
    return toy_checkpoint(tmp_path_factory.mktemp("stream") / "toy.pt", name="transformer_gan", extra=STREAMING)


def test_streamer_equals_offline_inference(streaming_ckpt, speech_like):
    from vocagan.infer import audio_features, predict_motion
    from vocagan.stream import Streamer

    model, ckpt = load_checkpoint(streaming_ckpt)
    x = speech_like(2.3, 16000)
    want = predict_motion(model, audio_features(ckpt, x, 16000, 30), ckpt.style_index("SubjB"), device="cpu")[0]
    streamer = Streamer(model, ckpt, "SubjB")
    rng = np.random.default_rng(0)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 4000))
        out.append(streamer.push(x[i : i + n]))
        i += n
    out.append(streamer.end())
    got = np.concatenate(out)
    assert got.shape == (len(want), 1 + want.shape[1])
    np.testing.assert_array_equal(got[:, 0], 1.0)  # the "mean" target
    np.testing.assert_allclose(got[:, 1:], want, atol=1e-4)
    info = streamer.info
    assert info.lookahead_frames == 2 and abs(info.lookahead_ms - (2000 / 30 + 22.667)) < 0.1


def test_offline_checkpoint_cannot_stream(tmp_path, toy_checkpoint):
    from vocagan.stream import Streamer

    with pytest.raises(VocaganError, match="cannot stream"):
        Streamer.from_checkpoint(toy_checkpoint(tmp_path / "off.pt"))


@pytest.fixture(scope="module")
def server(streaming_ckpt):
    """A running FaceServer on a free local port: (port, FaceServer)."""
    from vocagan.serve import FaceServer, run_server

    face = FaceServer(streaming_ckpt)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    port: list[int] = []

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            run_server(face, "127.0.0.1", 0, ready=lambda p: (port.append(p), ready.set()), stop=stop)
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield port[0], face
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def test_protocol_frames_for_chunks(server, speech_like):
    from websockets.sync.client import connect

    port, face = server
    x = speech_like(1.5, 16000)
    with connect(f"ws://127.0.0.1:{port}/stream") as ws:
        hello = json.loads(ws.recv())
        assert hello["type"] == "hello" and hello["sample_rate"] == 16000 and hello["format"] == "s16le"
        assert hello["targets"][0] == "mean" and 60 < hello["lookahead_ms"] <= 100
        frames, starts = [], []
        for a in range(0, len(x), 1600):  # 100 ms chunks
            ws.send(_pcm(x[a : a + 1600]))
            msg = json.loads(ws.recv(timeout=10)) if a >= 3200 else None  # the first chunks may complete no frame
            if msg:
                starts.append(msg["start"])
                frames += msg["weights"]
        ws.send(json.dumps({"type": "end"}))
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "end":
                break
            starts.append(msg["start"])
            frames += msg["weights"]
    assert msg["frames"] == len(frames) == 45 and len(frames[0]) == len(hello["targets"])
    assert starts == sorted(starts) and starts[0] == 0


@pytest.mark.parametrize(
    ("message", "code", "text"),
    [
        (b"\x01\x02\x03", 1007, "not a whole number of 16-bit samples"),
        ("hello?", 1003, "unexpected text message"),
        (b"\x00" * (1 << 17), 1009, None),
    ],
)
def test_malformed_input_gets_a_clear_error(server, message, code, text):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    port, _ = server
    with connect(f"ws://127.0.0.1:{port}/stream", max_size=None) as ws:
        json.loads(ws.recv())
        ws.send(message)
        replies = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                replies.append(json.loads(ws.recv(timeout=10)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    if text:
        assert replies and replies[-1]["type"] == "error" and text in replies[-1]["message"]


def test_back_pressure_a_fast_sender_loses_nothing(server, speech_like):
    """A client that sends 8 s of audio at once and reads only afterwards gets every frame in order
    (the server works message by message; TCP and the bounded queue hold the rest)."""
    from websockets.sync.client import connect

    port, _ = server
    x = speech_like(8.0, 16000)
    with connect(f"ws://127.0.0.1:{port}/stream") as ws:
        json.loads(ws.recv())
        for a in range(0, len(x), 1600):
            ws.send(_pcm(x[a : a + 1600]))
        ws.send(json.dumps({"type": "end"}))
        frames, expected = 0, 0
        while True:
            msg = json.loads(ws.recv(timeout=30))
            if msg["type"] == "end":
                break
            assert msg["start"] == expected
            expected += len(msg["weights"])
            frames += len(msg["weights"])
    assert frames == msg["frames"] == 240


def test_http_routes(server):
    import urllib.request

    from vocagan.formats.gltf import read_glb

    port, face = server
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode()
    assert "getUserMedia" in page and "/face.glb" in page
    glb = urllib.request.urlopen(f"http://127.0.0.1:{port}/face.glb").read()
    assert read_glb(glb).names == face.info.targets
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing")


@pytest.mark.slow
def test_page_animates_from_a_fake_microphone(server, tmp_path, chromium_live, speech_like):
    """Chromium's fake audio capture plays a wav as the microphone; the page streams it to the server,
    receives motion frames in real time and the face moves (two screenshots differ in the mouth half)."""
    import time

    from PIL import Image

    port, face = server
    wav = tmp_path / "mic.wav"
    sf.write(wav, np.tile(speech_like(2.0, 16000), 4), 16000, subtype="PCM_16")
    before = face.stats.frames
    page = chromium_live(
        f"http://127.0.0.1:{port}/#autostart",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--window-size=400,444",
    )
    frames, shots, deadline = 0, [], time.monotonic() + 60
    while time.monotonic() < deadline and (frames < 60 or len(shots) < 2):
        time.sleep(0.3)
        match = re.search(r"frames (\d+)", page.evaluate("document.title") or "")
        frames = int(match.group(1)) if match else 0
        if frames > 20 * (len(shots) + 1) and len(shots) < 2:
            shots.append(np.asarray(Image.open(page.screenshot(tmp_path / f"live{len(shots)}.png")).convert("RGB")))
    assert frames >= 60 and face.stats.frames - before >= 60, f"{frames} frames reached the page"
    assert "look-ahead" in page.evaluate("document.getElementById('status').textContent")
    a, b = (s.astype(float)[:400] for s in shots)
    changed = np.abs(a - b).sum(2) > 24
    assert changed.sum() > 30, "the face did not move"
    assert changed[:200].sum() < changed[200:].sum(), "motion outside the lower half (the toy mouth)"
