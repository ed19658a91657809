"""Shared fixtures for the whole suite.

- `repo`: the repository root (benchmarks/, main_*.py); `shared_data`: the real reference files in
  ../shared/data (tests using them skip cleanly when that folder is absent).
- `tiny_corpus`: a tiny synthetic VOCASET corpus, built once per session.
- `cache_dir`, `one_thread`: isolation and speed helpers.
- Factories (fixtures returning a function): `tone` (a sine), `speech_like` (speech-like audio),
  `icosphere` (a smooth closed test mesh), `toy_checkpoint` (a random-weight checkpoint on the
  icosphere topology).

Test modules never import each other or this file: everything shared is a fixture. Folder-specific
fixtures live in the conftest.py of tests/formats, tests/prep, tests/synth and tests/models.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("VOCAGAN_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VOCAGAN_SHARED_DATA", REPO.parent / "shared" / "data"))

# what `toy_checkpoint` builds: the styles it was "trained" on, and small model sizes
TOY_STYLES = ["SubjA", "SubjB", "SubjC"]
TOY_K = 6
TOY_MODEL_SIZES = {
    "rnn": {"hidden": 16, "n_layers": 1},
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "transformer_vae": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "transformer_gan": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_channels": 8},
}


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (holds benchmarks/, main_*.py, vocagan/)."""
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (FLAME template, FLAME masks, real speech); skip when absent."""
    if not (SHARED_DATA / "flame" / "FLAME_sample.ply").is_file():
        pytest.skip(f"real reference files not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A complete VOCASET-format folder at `--scale tiny` (seconds to build), shared by all tests.
    Tests must not modify it: copy it first when a test needs to corrupt something."""
    from vocagan.synth.corpus import generate

    out = tmp_path_factory.mktemp("tiny_corpus")
    generate(out, scale="tiny", seed=0)
    return out


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An isolated prepared-data cache for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("VOCAGAN_CACHE", str(d))
    return d


@pytest.fixture(scope="module")
def one_thread():
    """Toy-sized models run fastest on one torch thread (and far faster on a loaded machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- factories
def _tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def tone():
    """Factory: tone(freq, seconds, sr, amp=0.5) -> float32 samples of a sine starting at phase 0."""
    return _tone


def _icosphere(subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A sphere of radius 0.1 (V, 3) float32 / (F, 3) int32 with outward winding: a smooth closed
    test mesh (subdivisions 2: 162 vertices, 3: 642)."""
    t = (1 + 5**0.5) / 2
    v = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    f = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]

    def mid(cache, a, b):  # the index of the edge's midpoint vertex (added once per subdivision)
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    for _ in range(subdivisions):
        cache, new_faces = {}, []
        for a, b, c in f:
            ab, bc, ca = mid(cache, a, b), mid(cache, b, c), mid(cache, c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = new_faces
    return np.array(verts, np.float32) * 0.1, np.array(f, np.int32)


@pytest.fixture(scope="session")
def icosphere():
    """Factory: icosphere(subdivisions=3) -> (vertices (V, 3) float32, faces (F, 3) int32)."""
    return _icosphere


def _speech_like(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic noise: syllable-rate energy changes a model can react to."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)) ** 2
    voice = sum(np.sin(2 * np.pi * f * t) / i for i, f in enumerate((140, 280, 420, 700, 1200), start=1))
    return (0.25 * envelope * (voice / 2 + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


@pytest.fixture(scope="session")
def speech_like():
    """Factory: speech_like(seconds, sr, seed=0) -> float32 mono samples."""
    return _speech_like


def _toy_checkpoint(path, name="transformer", features="logmel", fps=30, faces=True, extra=()):
    """A random-weight checkpoint whose PCA decodes to a sphere's lower half ("jaw") moving: styles
    TOY_STYLES, templates TOY_STYLES + ["Unseen"], icosphere(2) topology (162 vertices)."""
    import torch

    from vocagan.checkpoint import save_checkpoint
    from vocagan.config import load_config
    from vocagan.models import build
    from vocagan.prep.prepared import Prepared
    from vocagan.prep.regions import Regions

    rng = np.random.default_rng(0)
    verts, tris = _icosphere(2)
    mouth = np.nonzero(verts[:, 1] < 0)[0]
    comps = np.linalg.qr(rng.normal(size=(3 * len(mouth), TOY_K)))[0].T.astype(np.float32)
    cfg = load_config(
        overrides=[f"model.name={name}", f"features.kind={features}", f"data.fps={fps}"]
        + [f"model.{k}={v}" for k, v in TOY_MODEL_SIZES[name].items()]
        + list(extra)
    )
    audio_dim = 80 if features == "logmel" else 16 * 29
    meta = {
        "fps": fps,
        "styles": TOY_STYLES,
        "template_names": TOY_STYLES + ["Unseen"],
        "region_source": "test",
        "n_vertices": len(verts),
        "features": {"kind": features},
        "feature_dim": audio_dim,
    }
    regions = Regions(mouth=mouth, lips=mouth[:10], upper_face=np.nonzero(verts[:, 1] > 0.05)[0], source="test")
    templates = np.stack([verts * (1 + 0.05 * i) for i in range(4)]).astype(np.float32)
    prepared = Prepared(
        meta=meta,
        faces=tris if faces else np.zeros((0, 3), np.int32),
        templates=templates,
        regions=regions,
        crop=mouth,
        pca_components=comps,
        pca_mean=np.zeros(3 * len(mouth), np.float32),
        explained_variance_ratio=np.full(TOY_K, 0.1, np.float32),
        coef_mean=np.zeros(TOY_K, np.float32),
        coef_std=np.full(TOY_K, 2e-3, np.float32),
    )
    torch.manual_seed(0)
    model = build(cfg.model, audio_dim, TOY_K, len(TOY_STYLES)).eval()
    return save_checkpoint(path, model, cfg, prepared.stats_dict())


@pytest.fixture(scope="session")
def toy_checkpoint():
    """Factory: toy_checkpoint(path, name="transformer", features="logmel", fps=30, faces=True, extra=())
    -> path (extra: more config overrides, e.g. ["model.lookahead=2", "model.attention_band=20"])
    of a random-weight checkpoint (styles SubjA, SubjB, SubjC; extra template "Unseen"; a 162-vertex
    sphere whose lower half is the mouth)."""
    return _toy_checkpoint


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


@pytest.fixture(scope="session")
def chromium():
    """Factory: chromium(profile_dir, url, *flags, timeout=120) -> CompletedProcess of a headless
    Debian Chromium (installed with apt-get once if absent; the test is skipped only if that fails)."""
    import os
    import shutil
    import subprocess

    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(["apt-get", "update"], capture_output=True, env=env).returncode == 0:
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, env=env)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("headless Chromium unavailable (apt-get install -y chromium failed or not permitted)")

    def run(profile: Path, url: str, *flags: str, timeout: float = 120):
        return subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


GLTF_VALIDATOR_VERSION = "2.0.0-dev.3.10"


@pytest.fixture(scope="session")
def gltf_validator(repo):
    """Factory: gltf_validator(path) -> the Khronos glTF-Validator report (dict) of a .glb. The npm
    package (pinned) lives in .venv/node (scripts/setup.sh --test installs it; installed here when
    absent); skipped only when node/npm are unavailable."""
    import json
    import shutil
    import subprocess

    prefix = repo / ".venv" / "node"
    package = prefix / "node_modules" / "gltf-validator"
    if not package.is_dir() and shutil.which("npm"):
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-save",
                "--prefix",
                str(prefix),
                f"gltf-validator@{GLTF_VALIDATOR_VERSION}",
            ],
            capture_output=True,
        )
    if not package.is_dir() or not shutil.which("node"):
        pytest.skip("node or the gltf-validator npm package unavailable")
    script = (
        "const v = require(process.argv[1]); const fs = require('fs');"
        "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])), {maxIssues: 200})"
        ".then((r) => console.log(JSON.stringify(r)));"
    )

    def validate(path: Path) -> dict:
        proc = subprocess.run(
            ["node", "-e", script, str(package), str(path)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return validate


@pytest.fixture()
def chromium_live(chromium, tmp_path):
    """Factory: chromium_live(url, *flags) -> a page in a running headless Chromium, driven over the
    DevTools protocol in real time (for pages that need a real clock: microphone capture, WebSockets):
    `.evaluate(js)` -> value, `.screenshot(path)`. Closed after the test."""
    import base64
    import contextlib
    import json
    import shutil
    import subprocess
    import time
    import urllib.request

    from websockets.sync.client import connect

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    opened = []

    class Page:
        def __init__(self, url: str, *flags: str):
            profile = tmp_path / f"live-profile-{len(opened)}"
            self.proc = subprocess.Popen(
                [
                    exe,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--remote-debugging-port=0",
                    *flags,
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            opened.append(self)
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (port_file.is_file() and port_file.read_text().strip()):
                assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
            target = next(t for t in targets if t["type"] == "page")
            self.stack = contextlib.ExitStack()
            self.ws = self.stack.enter_context(connect(target["webSocketDebuggerUrl"], max_size=None))
            self.n = 0
            self.call("Page.navigate", url=url)

        def call(self, method: str, **params):
            self.n += 1
            self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
            while True:
                msg = json.loads(self.ws.recv(timeout=60))
                if msg.get("id") == self.n:
                    return msg.get("result", {})

        def evaluate(self, expression: str):
            return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

        def screenshot(self, path: Path) -> Path:
            path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
            return path

        def close(self) -> None:
            self.stack.close()
            self.proc.terminate()
            self.proc.wait(30)

    yield Page
    for page in opened:
        page.close()
