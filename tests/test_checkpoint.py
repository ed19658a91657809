"""Checkpoints: self-describing round trip, identical predictions, safe loading, clear errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from vocagan.checkpoint import from_storable, load_checkpoint, read_checkpoint, save_checkpoint, to_storable
from vocagan.config import load_config
from vocagan.errors import VocaganError
from vocagan.models import MODELS, build
from vocagan.prep.prepared import Prepared
from vocagan.prep.regions import Regions

AUDIO, K, V, M = 10, 4, 12, 6
SMALL = {
    "rnn": {"hidden": 16, "n_layers": 1},
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "transformer_vae": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "transformer_gan": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_channels": 8},
}


def toy_prepared() -> Prepared:
    rng = np.random.default_rng(0)
    comps = np.linalg.qr(rng.normal(size=(3 * M, K)))[0].T.astype(np.float32)  # (K, 3M) orthonormal rows
    meta = {
        "fps": 30,
        "styles": ["A", "B"],
        "template_names": ["A", "B", "C"],
        "region_source": "test",
        "n_vertices": V,
        "features": {"kind": "logmel"},
        "feature_dim": AUDIO,
    }
    regions = Regions(mouth=np.arange(M), lips=np.array([1, 3]), upper_face=np.array([8, 9]), source="test")
    return Prepared(
        meta=meta,
        faces=np.array([[0, 1, 2]], np.int32),
        templates=rng.normal(size=(3, V, 3)).astype(np.float32),
        regions=regions,
        crop=np.arange(M),
        pca_components=comps,
        pca_mean=np.zeros(3 * M, np.float32),
        explained_variance_ratio=np.full(K, 0.2, np.float32),
        coef_mean=np.zeros(K, np.float32),
        coef_std=np.full(K, 1e-3, np.float32),
    )


def make(name: str, tmp_path):
    torch.manual_seed(0)
    cfg = load_config(overrides=[f"model.name={name}"] + [f"model.{k}={v}" for k, v in SMALL[name].items()])
    model = build(cfg.model, AUDIO, K, 2).eval()
    prepared = toy_prepared()
    path = save_checkpoint(
        tmp_path / "m.pt", model, cfg, prepared.stats_dict(), extra={"note": "x"}, epoch=7, metrics={"val_lve": 1.5}
    )
    return model, cfg, prepared, path


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_identical_predictions(name, tmp_path):
    model, cfg, prepared, path = make(name, tmp_path)
    loaded, ckpt = load_checkpoint(path)
    audio, style = torch.randn(2, 50, AUDIO), torch.tensor([0, 1])
    torch.testing.assert_close(loaded.predict(audio, style), model.predict(audio, style), rtol=0, atol=0)
    assert not loaded.training
    assert ckpt.model_name == name and ckpt.epoch == 7 and ckpt.metrics["val_lve"] == 1.5
    assert ckpt.styles == ["A", "B"] and ckpt.fps == 30 and ckpt.features.kind == "logmel"
    assert ckpt.config.to_dict() == cfg.to_dict()
    assert ckpt.extra == {"note": "x"}
    # the stats decode exactly like the original prepared data
    coefs = np.random.default_rng(1).normal(size=(5, K)).astype(np.float32)
    np.testing.assert_array_equal(ckpt.prepared.to_vertices(coefs, "B"), prepared.to_vertices(coefs, "B"))
    np.testing.assert_array_equal(ckpt.prepared.regions.lips, prepared.regions.lips)


def test_loaded_with_weights_only(tmp_path, monkeypatch):
    _, _, _, path = make("transformer", tmp_path)
    seen = {}
    real_load = torch.load

    def spy(*a, **kw):
        seen.update(kw)
        return real_load(*a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path)
    assert seen.get("weights_only") is True


def test_storable_round_trip():
    obj = {
        "a": np.arange(6, dtype=np.int64).reshape(2, 3),
        "b": [np.float32(1.5), ("x", 2)],
        "c": np.array(["s1", "s2"]),
        3: {"d": None},
    }
    back = from_storable(to_storable(obj))
    np.testing.assert_array_equal(back["a"], obj["a"])
    assert back["a"].dtype == np.int64 and back["b"] == [1.5, ["x", 2]] and back[3] == {"d": None}
    assert back["c"].tolist() == ["s1", "s2"]


def test_truncated_file_is_a_clear_error(tmp_path):
    _, _, _, path = make("rnn", tmp_path)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VocaganError, match="truncated.pt"):
        load_checkpoint(bad)


def test_garbage_and_foreign_files_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(VocaganError, match="garbage.pt: not a readable vocagan checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(VocaganError, match="foreign.pt: not a vocagan checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(VocaganError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_objects_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "vocagan-checkpoint", "payload": Evil()}, evil)
    with pytest.raises(VocaganError, match="evil.pt"):
        read_checkpoint(evil)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"format": "vocagan-checkpoint"}))
    with pytest.raises(VocaganError, match="plain.pt"):
        read_checkpoint(plain)


def test_mismatched_weights_are_a_clear_error(tmp_path):
    _, _, _, path = make("transformer", tmp_path)
    payload = torch.load(path, weights_only=True)
    desc = json.loads(payload["model"])
    desc["config"]["d_model"] = 32
    payload["model"] = json.dumps(desc)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(VocaganError, match="weights do not match"):
        load_checkpoint(tmp_path / "bad.pt")


def test_save_is_atomic(tmp_path, monkeypatch):
    model, cfg, prepared, path = make("rnn", tmp_path)
    before = path.read_bytes()

    def boom(*a, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(path, model, cfg, prepared.stats_dict())
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind
