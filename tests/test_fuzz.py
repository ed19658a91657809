"""Fuzzing every reader with hypothesis: byte mutations and truncations of valid files.

The property, for each reader: a mutated file either loads into well-formed arrays, or raises ONE
`VocaganError` whose one-line message names the file, within a time bound. Never a traceback from
inside numpy/torch/struct/pickle/yaml, never a hang. Readers covered: the VOCASET pickles, data_verts.npy
and FLAME_sample.ply through `open_vocaset` (plus every per-sequence accessor), `safe_load_pickle`,
`read_mesh` (binary/ASCII PLY, OBJ), `load_audio` (wav), `load_config` (YAML), checkpoints
(`load_checkpoint`), the prepared-data cache (`Prepared.load`) and `video.load_vertices`.

Examples are bounded and derandomised (same inputs every run; no example database on disk).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vocagan.config import DataConfig
from vocagan.errors import VocaganError

TIME_LIMIT_S = 20.0  # per example: a reader that takes longer counts as a hang (SIGALRM; no
# hypothesis deadline: a busy CI machine must not make timing flaky)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
V = 12  # vertices of the toy mesh
SUBJECTS = ["FaceTalk_A_TA", "FaceTalk_B_TA", "FaceTalk_C_TA"]
FACES = np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8], [8, 9, 10], [9, 10, 11]], np.int32)


# ----------------------------------------------------------------------------- helpers
@contextmanager
def time_limit(seconds: float):
    """Turn a hang into a test failure (SIGALRM interrupts Python-level loops)."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"reader still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def loads_or_names(read, path: Path, names: str | None = None):
    """Run `read(path)`; return its result, or None after a VocaganError that names `names`
    (default: the file's name) on one line. Anything else fails the example."""
    t0 = time.monotonic()
    try:
        with time_limit(TIME_LIMIT_S):
            return read(path)
    except VocaganError as e:
        msg = str(e)
        assert (names or path.name) in msg, f"error does not name {names or path.name}: {msg}"
        assert "\n" not in msg and len(msg) < 1000, msg
        return None
    finally:
        assert time.monotonic() - t0 < TIME_LIMIT_S


def fuzz_reader(read, path: Path, original: bytes, header: int, check=None, fuzz=FUZZ) -> None:
    """The property for one reader: every mutation of `original` (edits favouring its first `header`
    bytes), written to `path`, either loads and passes `check(result)` (when given) or raises one
    VocaganError naming the file (`loads_or_names`)."""

    @fuzz
    @given(data=mutated(original, header))
    def example(data):
        path.write_bytes(data)
        result = loads_or_names(read, path)
        if result is not None and check is not None:
            check(result)

    example()


@st.composite
def mutated(draw, original: bytes, header: int = 256):
    """`original` with 1-4 edits: overwrite bytes, insert bytes, delete a range, or truncate.
    Positions favour the first `header` bytes, where the structure lives."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        pos = draw(st.one_of(st.integers(0, max(0, min(n, header) - 1)), st.integers(0, max(0, n - 1))))
        kind = draw(st.sampled_from(["overwrite", "overwrite", "insert", "delete", "truncate"]))
        if kind == "overwrite" and n:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        else:
            del data[pos:]
    return bytes(data)


def _toy_corpus(out: Path) -> Path:
    """A complete VOCASET folder (3 subjects x 2 sentences, V=12, 8 kHz audio, DeepSpeech windows,
    region masks), small enough to copy for every example."""
    from vocagan.formats.vocaset_writer import VocasetWriter

    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.05, (V, 3)).astype(np.float32)
    masks = {"lips": np.arange(4), "forehead": np.arange(8, 10), "eye_region": np.arange(10, 12)}
    with VocasetWriter(out, n_vertices=V, faces=FACES, masks=masks) as w:
        for subject in SUBJECTS:
            w.add_subject(subject, base)
            for sentence in (1, 2):
                t = 6 + sentence
                verts = base + rng.normal(0, 0.001, (t, V, 3)).astype(np.float32)
                audio = (rng.standard_normal(t * 8000 // 60) * 0.1).astype(np.float32)
                w.add_sequence(subject, sentence, verts, audio, 8000, rng.normal(size=(t, 16, 29)))
    return out


def _corpus_cfg(root: Path) -> DataConfig:
    return DataConfig(
        root=str(root),
        train_subjects=SUBJECTS[:2],
        train_sentences=[1, 2],
        val_subjects=SUBJECTS[2:],
        val_sentences=[1],
        test_subjects=SUBJECTS[2:],
        test_sentences=[2],
    )


def _read_everything(root: Path):
    """open_vocaset plus every per-sequence accessor of every split: the reader's whole surface."""
    from vocagan.formats.vocaset import open_vocaset

    vs = open_vocaset(_corpus_cfg(root))
    shapes = []
    for split in ("train", "val", "test"):
        for subject, sentence in vs.split(split):
            verts = vs.load_verts(subject, sentence)
            assert verts.dtype == np.float32 and verts.shape[1:] == (vs.n_vertices, 3)
            assert np.isfinite(verts).all()
            raw = vs.raw_audio(subject, sentence)
            if raw is not None:
                assert raw[0].ndim == 1 and raw[1] > 0
            ds = vs.deepspeech(subject, sentence)
            if ds is not None:
                assert ds.shape[1:] == (16, 29)
            shapes.append(verts.shape)
    return shapes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _toy_corpus(tmp_path_factory.mktemp("fuzz_corpus"))


# ----------------------------------------------------------------------------- VOCASET folder
CORPUS_FILES = [
    "subj_seq_to_idx.pkl",
    "templates.pkl",
    "raw_audio_fixed.pkl",
    "processed_audio_deepspeech.pkl",
    "region_masks.pkl",
    "data_verts.npy",
    "FLAME_sample.ply",
]


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_vocaset_folder_survives_mutations(corpus, name):
    """A mutated VOCASET file: the folder opens and every sequence reads, or the error names a file
    of that folder (a mutated index can correctly blame data_verts.npy, for instance)."""
    original = (corpus / name).read_bytes()
    header = 160 if name.endswith(".npy") else 400

    @FUZZ
    @given(data=mutated(original, header))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "corpus"
            shutil.copytree(corpus, root)
            (root / name).write_bytes(data)
            try:
                with time_limit(TIME_LIMIT_S):
                    _read_everything(root)
            except VocaganError as e:
                assert e.path is not None and root in (e.path, *e.path.parents), str(e)
                assert "\n" not in str(e)

    check()


@pytest.mark.parametrize("name", [n for n in CORPUS_FILES if n.endswith(".pkl")])
def test_safe_load_pickle_names_the_file(corpus, name, tmp_path_factory):
    from vocagan.formats.pickles import safe_load_pickle

    original = (corpus / name).read_bytes()
    path = tmp_path_factory.mktemp("pkl") / name
    fuzz_reader(safe_load_pickle, path, original, header=len(original))


def test_unmutated_corpus_reads(corpus):
    """The fuzz baseline really loads (so the property above is not vacuously about errors)."""
    assert len(_read_everything(corpus)) == 6


# ----------------------------------------------------------------------------- meshes
def _mesh_ok(result):
    if result is not None:
        vertices, faces = result
        assert vertices.ndim == 2 and vertices.shape[1] == 3 and vertices.dtype == np.float32
        assert np.isfinite(vertices).all()
        assert faces.ndim == 2 and faces.shape[1] == 3 and faces.dtype == np.int32
        assert len(faces) == 0 or (faces.min() >= 0 and faces.max() < len(vertices))


@pytest.mark.parametrize("kind", ["binary.ply", "ascii.ply", "mesh.obj"])
def test_read_mesh_survives_mutations(kind, tmp_path_factory):
    from vocagan.formats.mesh import read_mesh, write_obj, write_ply

    folder = tmp_path_factory.mktemp("mesh")
    vertices = np.random.default_rng(1).normal(size=(V, 3)).astype(np.float32)
    valid = folder / f"valid_{kind}"
    if kind == "mesh.obj":
        write_obj(valid, vertices, FACES)
    else:
        write_ply(valid, vertices, FACES, binary=kind == "binary.ply")
    _mesh_ok(read_mesh(valid))
    original = valid.read_bytes()
    fuzz_reader(read_mesh, folder / kind, original, header=300, check=_mesh_ok)


# ----------------------------------------------------------------------------- audio
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaN samples: zeroed
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_load_audio_survives_mutations(subtype, tmp_path_factory):
    import soundfile

    from vocagan.formats.audio import load_audio

    folder = tmp_path_factory.mktemp("wav")
    valid = folder / "valid.wav"
    soundfile.write(str(valid), np.sin(np.arange(800) / 5.0).astype(np.float32) * 0.5, 8000, subtype=subtype)
    original = valid.read_bytes()

    def check(result):
        samples, sr = result
        assert samples.ndim == 1 and len(samples) > 0 and sr > 0 and np.isfinite(samples).all()

    fuzz_reader(load_audio, folder / "speech.wav", original, header=80, check=check)


# ----------------------------------------------------------------------------- YAML configs
VALID_YAML = b"""# an experiment
data:
  fps: 30
  train_sentences: [1, 2, 3]
features:
  n_mels: 40
prep:
  pca_variance: 0.99
model:
  name: transformer
  d_model: 32
train:
  epochs: 3
  lr: 3e-4
  bf16: false
"""


def test_load_config_survives_mutations(tmp_path_factory):
    from vocagan.config import Config, load_config

    path = tmp_path_factory.mktemp("yaml") / "experiment.yaml"
    path.write_bytes(VALID_YAML)
    assert load_config(path).train.epochs == 3

    def check(cfg):
        assert isinstance(cfg, Config)
        cfg.to_dict()

    fuzz_reader(
        load_config, path, VALID_YAML, header=len(VALID_YAML), check=check, fuzz=settings(FUZZ, max_examples=150)
    )


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    """A real (tiny RNN) checkpoint, as written by save_checkpoint."""
    import torch

    from vocagan.checkpoint import save_checkpoint
    from vocagan.config import load_config
    from vocagan.models import build
    from vocagan.prep.prepared import Prepared
    from vocagan.prep.regions import Regions

    torch.manual_seed(0)
    cfg = load_config(overrides=["model.name=rnn", "model.hidden=8", "model.n_layers=1"])
    model = build(cfg.model, 6, 3, 2)
    rng = np.random.default_rng(0)
    prepared = Prepared(
        meta={
            "fps": 30,
            "styles": ["A", "B"],
            "template_names": ["A", "B"],
            "region_source": "test",
            "n_vertices": V,
            "features": {"kind": "logmel"},
            "feature_dim": 6,
        },
        faces=FACES,
        templates=rng.normal(size=(2, V, 3)).astype(np.float32),
        regions=Regions(mouth=np.arange(4), lips=np.arange(2), upper_face=np.arange(8, 12), source="test"),
        crop=np.arange(4),
        pca_components=np.eye(3, 12, dtype=np.float32),
        pca_mean=np.zeros(12, np.float32),
        explained_variance_ratio=np.full(3, 0.3, np.float32),
        coef_mean=np.zeros(3, np.float32),
        coef_std=np.ones(3, np.float32),
    )
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", model, cfg, prepared.stats_dict())
    return path.read_bytes()


def test_load_checkpoint_survives_mutations(checkpoint_bytes, tmp_path_factory):
    import torch

    from vocagan.checkpoint import load_checkpoint

    path = tmp_path_factory.mktemp("ckpt_fuzz") / "best.pt"
    path.write_bytes(checkpoint_bytes)
    assert isinstance(load_checkpoint(path)[0], torch.nn.Module)

    def check(result):
        model, ckpt = result
        assert isinstance(model, torch.nn.Module) and ckpt.model_name == "rnn"

    fuzz_reader(load_checkpoint, path, checkpoint_bytes, header=len(checkpoint_bytes), check=check)


# ----------------------------------------------------------------------------- arrays
def test_prepared_cache_survives_mutations(checkpoint_bytes, tmp_path_factory):
    """The prepared-data .npz cache (normally written atomically, but disks and users corrupt files)."""
    from vocagan.checkpoint import from_storable, read_checkpoint
    from vocagan.prep.prepared import Prepared

    folder = tmp_path_factory.mktemp("npz")
    (folder / "ckpt.pt").write_bytes(checkpoint_bytes)
    prepared = Prepared.from_stats_dict(from_storable(read_checkpoint(folder / "ckpt.pt")["stats"]))
    valid = prepared.save(folder / "valid.npz")
    assert Prepared.load(valid).meta["fps"] == 30
    original = valid.read_bytes()
    fuzz_reader(Prepared.load, folder / "0123abcd.npz", original, header=len(original))


def test_load_vertices_survives_mutations(tmp_path_factory):
    from vocagan.video import load_vertices

    folder = tmp_path_factory.mktemp("npy")
    valid = folder / "valid.npy"
    np.save(valid, np.random.default_rng(2).normal(size=(4, V, 3)).astype(np.float32))

    def check(result):
        assert result.ndim == 3 and result.shape[2] == 3

    fuzz_reader(load_vertices, folder / "pred.npy", valid.read_bytes(), header=128, check=check)


@pytest.mark.parametrize("suffix", [".npy", ".txt"])
def test_mouth_index_file_survives_mutations(suffix, tmp_path_factory):
    from vocagan.prep.regions import load_index_file

    folder = tmp_path_factory.mktemp("idx")
    valid = folder / f"valid{suffix}"
    if suffix == ".npy":
        np.save(valid, np.arange(2, 9))
    else:
        valid.write_text(" ".join(map(str, range(2, 9))) + "\n")
    assert list(load_index_file(valid, V)) == list(range(2, 9))

    def check(result):
        assert result.dtype == np.int64 and result.min() >= 0 and result.max() < V

    fuzz_reader(lambda p: load_index_file(p, V), folder / f"mouth{suffix}", valid.read_bytes(), header=128, check=check)
