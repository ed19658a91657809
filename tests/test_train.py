"""The training loop on the tiny synthetic corpus: run folder, resume, reproducibility, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import yaml

import vocagan.train as train_module
from vocagan.checkpoint import load_checkpoint
from vocagan.config import load_config
from vocagan.errors import VocaganError
from vocagan.models import MODELS
from vocagan.models.optim import MIN_LR_RATIO, lr_factor
from vocagan.train import train

TINY_MODEL = {
    "rnn": ["model.hidden=16", "model.n_layers=1", "model.style_dim=4"],
    "transformer": ["model.d_model=16", "model.n_heads=2", "model.n_layers=1"],
    "transformer_vae": ["model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.latent_dim=4"],
    "transformer_gan": [
        "model.d_model=16",
        "model.n_heads=2",
        "model.n_layers=1",
        "model.d_channels=8",
        "model.d_layers=2",
        "model.adv_start_epoch=1",
        "model.adv_ramp_epochs=1",
    ],
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One prepared-data cache for the whole module: the tiny corpus is prepared once."""
    return tmp_path_factory.mktemp("prepared")


def tiny_cfg(corpus: Path, cache: Path, name: str, epochs: int = 2, extra: list[str] = ()):
    overrides = [
        f"data.root={corpus}",
        f"prep.cache_dir={cache}",
        f"model.name={name}",
        f"train.epochs={epochs}",
        "train.batch_size=4",
        "train.crop_frames=24",
        "train.warmup_steps=2",
        "train.device=cpu",
        *TINY_MODEL[name],
        *extra,
    ]
    return load_config(overrides=overrides)


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 4, 20) for s in range(21)]
    assert f[0] == 0.25 and f[3] == 1.0
    assert all(a >= b for a, b in pairwise(f[4:]))
    assert f[20] == pytest.approx(MIN_LR_RATIO)


@pytest.mark.parametrize("name", list(MODELS))
def test_two_epochs_write_the_run_folder(name, tiny_corpus, cache, tmp_path):
    run = tmp_path / "run"
    result = train(tiny_cfg(tiny_corpus, cache, name), run)
    for f in ("config.yaml", "metrics.jsonl", "metrics.csv", "best.pt", "last.pt", "loss.png", "val_lve.png"):
        assert (run / f).is_file(), f
    if name == "transformer_gan":
        assert (run / "gan.png").is_file()
    if name == "transformer_vae":
        assert (run / "kl.png").is_file()
    r = rows(run)
    assert [x["epoch"] for x in r] == [1, 2]
    for key in ("train_loss", "train_recon", "train_velocity", "train_lip", "val_loss", "val_lve", "lr", "time_s"):
        assert all(key in x and x[key] == x[key] for x in r), key  # present and not NaN
    if name == "transformer_gan":
        assert all("d_loss" in x and "train_adv" in x for x in r)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_lve" in header and "train_loss" in header
    assert result.best_checkpoint == run / "best.pt"
    assert result.best_val_lve == min(x["val_lve"] for x in r)
    assert set(result.baselines) == {"zero motion", "mean motion"} and all(v > 0 for v in result.baselines.values())
    assert "best val LVE" in result.summary()
    model, ckpt = load_checkpoint(run / "best.pt")
    assert ckpt.model_name == name and ckpt.epoch == result.best_epoch
    assert ckpt.metrics["val_lve"] == pytest.approx(result.best_val_lve)
    assert ckpt.config.model_name == name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == ckpt.config.to_dict() and saved["model"]["name"] == name
    assert set(saved["model"]) == {"name", *(f.name for f in dataclasses.fields(MODELS[name].Config))}


@pytest.mark.parametrize("name", ["transformer_gan", "transformer_vae"])
def test_interrupted_then_resumed_run_is_bit_identical(name, tiny_corpus, cache, tmp_path, monkeypatch):
    cfg = tiny_cfg(tiny_corpus, cache, name, epochs=3)
    train(cfg, tmp_path / "straight")

    def interrupt(epoch):
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_epoch_end_hook", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed")
    assert [x["epoch"] for x in rows(tmp_path / "resumed")] == [1]
    monkeypatch.setattr(train_module, "_epoch_end_hook", lambda epoch: None)
    train(cfg, tmp_path / "resumed", resume=True)

    a, b = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "resumed" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = [{k: v for k, v in x.items() if k != "time_s"} for x in rows(tmp_path / "straight")]
    assert strip == [{k: v for k, v in x.items() if k != "time_s"} for x in rows(tmp_path / "resumed")]


def test_same_seed_same_metrics_other_seed_differs(tiny_corpus, cache, tmp_path):
    runs = {}
    for tag, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(tiny_cfg(tiny_corpus, cache, "transformer", extra=[f"train.seed={seed}"]), tmp_path / tag)
        runs[tag] = [{k: v for k, v in x.items() if k != "time_s"} for x in rows(tmp_path / tag)]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_resume_errors(tiny_corpus, cache, tmp_path):
    cfg = tiny_cfg(tiny_corpus, cache, "rnn", epochs=1)
    with pytest.raises(VocaganError, match="nothing to resume"):
        train(cfg, tmp_path / "empty", resume=True)
    train(cfg, tmp_path / "run")
    changed = tiny_cfg(tiny_corpus, cache, "rnn", epochs=2, extra=["model.hidden=24"])
    with pytest.raises(VocaganError, match="model.hidden"):
        train(changed, tmp_path / "run", resume=True)
    longer = tiny_cfg(tiny_corpus, cache, "rnn", epochs=2)  # more epochs may be asked for
    result = train(longer, tmp_path / "run", resume=True)
    assert [x["epoch"] for x in rows(tmp_path / "run")] == [1, 2] and result.epochs_run == 2


def _edit_saved_config(path: Path, edit) -> None:
    payload = torch.load(path, weights_only=True)
    saved = json.loads(payload["config"])
    edit(saved)
    payload["config"] = json.dumps(saved)
    torch.save(payload, path)


def test_resume_refuses_a_run_whose_model_settings_are_unknown_or_changed(tiny_corpus, cache, tmp_path):
    """A changed library default must not switch a run's losses mid-way. Before every model field was
    recorded, a saved config held only the keys set explicitly and the rest compared equal as
    defaults, so a run trained with adv_weight 0.5 resumed at the new default 0.1 without a word."""
    cfg = tiny_cfg(tiny_corpus, cache, "transformer_gan", epochs=1)
    train(cfg, tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    _edit_saved_config(last, lambda d: d["model"].pop("adv_weight"))  # as saved before: not recorded
    with pytest.raises(VocaganError, match="model.adv_weight"):
        train(tiny_cfg(tiny_corpus, cache, "transformer_gan", epochs=2), tmp_path / "run", resume=True)
    _edit_saved_config(last, lambda d: d["model"].update(adv_weight=0.5))  # trained under another default
    with pytest.raises(VocaganError, match="model.adv_weight"):
        train(tiny_cfg(tiny_corpus, cache, "transformer_gan", epochs=2), tmp_path / "run", resume=True)
    _edit_saved_config(last, lambda d: d["model"].update(adv_weight=cfg.model.adv_weight))
    assert (
        train(tiny_cfg(tiny_corpus, cache, "transformer_gan", epochs=2), tmp_path / "run", resume=True).epochs_run == 2
    )


def test_a_run_missing_a_train_key_is_not_resumed_as_if_it_had_the_default(tiny_corpus, cache, tmp_path):
    cfg = tiny_cfg(tiny_corpus, cache, "rnn", epochs=1)
    train(cfg, tmp_path / "run")
    _edit_saved_config(tmp_path / "run" / "last.pt", lambda d: d["train"].pop("vtlp"))
    with pytest.raises(VocaganError, match="train.vtlp"):
        train(tiny_cfg(tiny_corpus, cache, "rnn", epochs=2), tmp_path / "run", resume=True)


def test_a_gan_starts_from_a_trained_transformer(tiny_corpus, cache, tmp_path, capsys):
    """train.init_from: the GAN's generator takes a Transformer's weights (same data and backbone); a
    checkpoint of other prepared data or another backbone is refused with one line."""
    source = train(tiny_cfg(tiny_corpus, cache, "transformer", epochs=1), tmp_path / "t")
    extra = [f"train.init_from={source.best_checkpoint}", "model.adv_start_epoch=5"]
    started: dict = {}
    real_warm_start = train_module.warm_start

    def spy(model, path, prepared):
        out = real_warm_start(model, path, prepared)
        started.update({k: v.clone() for k, v in model.generator.state_dict().items()})
        return out

    train_module.warm_start = spy
    try:
        train(tiny_cfg(tiny_corpus, cache, "transformer_gan", epochs=1, extra=extra), tmp_path / "g")
    finally:
        train_module.warm_start = real_warm_start
    weights, _ = load_checkpoint(source.best_checkpoint)
    for k, v in weights.backbone.state_dict().items():
        assert torch.equal(started[k], v)
    assert "initial weights: " in capsys.readouterr().err
    with pytest.raises(VocaganError, match="other prepared data .*pca_components"):
        train(tiny_cfg(tiny_corpus, cache, "transformer_gan", 1, [*extra, "prep.pca_components=5"]), tmp_path / "x")
    with pytest.raises(VocaganError, match="weights do not fit"):
        train(tiny_cfg(tiny_corpus, cache, "transformer_gan", 1, [*extra, "model.n_layers=2"]), tmp_path / "y")
    with pytest.raises(VocaganError, match="a rnn model cannot start from a transformer checkpoint"):
        train(tiny_cfg(tiny_corpus, cache, "rnn", 1, extra[:1]), tmp_path / "z")


def test_early_stopping(tiny_corpus, cache, tmp_path, monkeypatch):
    scores = iter([5.0, 4.0, 4.5, 4.6, 4.7, 4.8])
    real_validate = train_module.validate

    def fake_validate(*a, **kw):
        out = real_validate(*a, **kw)
        out["val_lve"] = next(scores)
        return out

    monkeypatch.setattr(train_module, "validate", fake_validate)
    cfg = tiny_cfg(tiny_corpus, cache, "rnn", epochs=6, extra=["train.patience=2"])
    result = train(cfg, tmp_path / "run")
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 2
    assert load_checkpoint(tmp_path / "run" / "best.pt")[1].epoch == 2


def test_ddp_two_cpu_processes(tiny_corpus, cache, tmp_path, repo):
    """`torchrun --nproc_per_node=2 -m vocagan train ...`: gloo DDP, one writer, a loadable model.
    (7-27 s measured on 2 shared cores, so not marked slow.)"""
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vocagan",
        "train",
        "--model",
        "transformer_gan",
        "--data",
        str(tiny_corpus),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--cache-dir",
        str(cache),
        "--set",
        "train.crop_frames=24",
        "--set",
        "train.device=cpu",
    ] + [a for o in TINY_MODEL["transformer_gan"] for a in ("--set", o)]
    env = {**os.environ, "VOCAGAN_PROGRESS": "0", "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(DDP)" in proc.stderr and "best val LVE" in proc.stdout
    assert [x["epoch"] for x in rows(run)] == [1, 2]
    model, ckpt = load_checkpoint(run / "best.pt")
    assert ckpt.model_name == "transformer_gan"
    assert not list(run.glob(".tmp-*"))
