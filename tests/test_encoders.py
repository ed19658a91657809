"""Pretrained speech encoders (vocagan/encoders.py, models/audio.py): tiny randomly initialised
wav2vec2, HuBERT and WavLM models, saved with save_pretrained to a temporary folder, go through the
whole path (prepare -> train frozen and fine-tuned, 1 epoch -> evaluate -> animate) with the hub
switched off (HF_HUB_OFFLINE=1) and every socket refused and recorded: nothing may be fetched.

Skipped when the optional `transformers` package (vocagan[encoders]) is not installed."""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
import soundfile as sf
import torch

from vocagan.cli import main
from vocagan.errors import VocaganError

transformers = pytest.importorskip("transformers")

ARCHS = ["wav2vec2", "hubert", "wavlm"]
TINY = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=2,
)
MODEL = [
    "--model",
    "transformer",
    "--set",
    "model.d_model=16",
    "--set",
    "model.n_heads=2",
    "--set",
    "model.n_layers=1",
    "--set",
    "train.batch_size=8",
]


def save_tiny(folder, arch: str, seed: int = 0):
    classes = {
        "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
        "hubert": ("HubertConfig", "HubertModel"),
        "wavlm": ("WavLMConfig", "WavLMModel"),
    }
    config_cls, model_cls = (getattr(transformers, n) for n in classes[arch])
    torch.manual_seed(seed)
    model_cls(config_cls(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {arch: save_tiny(root / arch, arch) for arch in ARCHS}


@pytest.fixture()
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1 and no network: every connection attempt is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == [], f"something tried to reach the network: {attempts}"


def encoder_sets(path, *extra) -> list[str]:
    out = ["--set", "features.kind=encoder", "--set", f"features.encoder_path={path}"]
    for e in extra:
        out += ["--set", e]
    return out


def run_whole_path(corpus, tmp_path, sets, model=MODEL, capsys=None):
    run, ev, anim = tmp_path / "run", tmp_path / "eval", tmp_path / "anim"
    assert main(["prepare", "--data", str(corpus), *sets]) == 0
    assert main(["train", "--data", str(corpus), "--out", str(run), "--epochs", "1", *model, *sets]) == 0
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(corpus), "--out", str(ev)]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())["metrics"]
    assert np.isfinite(metrics["lve"]) and metrics["lve"] > 0
    wav = sorted((corpus / "wav").glob("*.wav"))[0]
    assert (
        main(["animate", "--checkpoint", str(run / "best.pt"), "--audio", str(wav), "--out", str(anim), "--no-video"])
        == 0
    )
    verts = np.load(next(anim.glob("*.npy")))
    info = sf.info(str(wav))
    assert verts.shape[0] == round(info.duration * 30) and np.isfinite(verts).all()
    return run / "best.pt"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_encoder_whole_path(arch, encoders, tiny_corpus, tmp_path, cache_dir, offline, one_thread):
    best = run_whole_path(tiny_corpus, tmp_path, encoder_sets(encoders[arch], "features.encoder_layer=1"))
    from vocagan.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(best)
    rec = ckpt.meta["encoder"]
    assert rec["model_type"] == arch and rec["path"] == str(encoders[arch].resolve())
    assert json.loads(rec["config"])["hidden_size"] == 16 and len(rec["weights_sha256"]) == 64
    assert ckpt.audio_dim == 16 and model.hear.passthrough  # frozen: precomputed features


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_finetuned_encoder_whole_path(arch, encoders, tiny_corpus, tmp_path, cache_dir, offline, one_thread):
    best = run_whole_path(
        tiny_corpus,
        tmp_path,
        encoder_sets(encoders[arch], "features.encoder_finetune=true", "train.encoder_freeze_steps=1"),
    )
    from vocagan.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(best)
    enc = model.hear.encoder
    assert enc is not None and enc.info.model_type == arch and int(enc.updates) >= 2
    # the checkpoint holds the fine-tuned weights: it animates with the encoder folder gone
    shutil.move(str(encoders[arch]), str(tmp_path / "moved"))
    try:
        wav = sorted((tiny_corpus / "wav").glob("*.wav"))[0]
        main(["animate", "--checkpoint", str(best), "--audio", str(wav), "--out", str(tmp_path / "a2"), "--no-video"])
    finally:
        shutil.move(str(tmp_path / "moved"), str(encoders[arch]))
    assert list((tmp_path / "a2").glob("*.npy"))


@pytest.mark.slow
def test_finetuned_encoder_in_the_gan_with_a_learned_layer_mix(
    encoders, tiny_corpus, tmp_path, cache_dir, offline, one_thread
):
    gan = [
        "--model",
        "transformer_gan",
        "--set",
        "model.d_model=16",
        "--set",
        "model.n_heads=2",
        "--set",
        "model.n_layers=1",
        "--set",
        "model.d_channels=8",
        "--set",
        "train.batch_size=8",
        "--set",
        "model.adv_start_epoch=0",
    ]
    best = run_whole_path(
        tiny_corpus,
        tmp_path,
        encoder_sets(encoders["wav2vec2"], "features.encoder_finetune=true", "features.encoder_mix=true"),
        model=gan,
    )
    from vocagan.checkpoint import load_checkpoint

    model, _ = load_checkpoint(best)
    assert model.hear.encoder.mix is not None and model.hear.encoder.mix.logits.shape == (3,)


def test_freeze_schedule_and_frozen_feature_extractor(encoders, tiny_corpus, cache_dir, one_thread):
    """Frozen for the first N steps (no weight moves), then trained at train.encoder_lr; the
    convolutional feature extractor never moves."""
    from vocagan.config import load_config
    from vocagan.dataset import SequenceDataset, collate
    from vocagan.models.optim import lr_factor
    from vocagan.prep.prepare import prepare
    from vocagan.train import make_model

    cfg = load_config(
        overrides=[
            f"data.root={tiny_corpus}",
            "model.name=transformer",
            "model.d_model=16",
            "model.n_heads=2",
            "model.n_layers=1",
            "features.kind=encoder",
            f"features.encoder_path={encoders['hubert']}",
            "features.encoder_finetune=true",
            "train.encoder_freeze_steps=2",
            "train.encoder_lr=1e-3",
            "train.warmup_steps=0",
        ]
    )
    prepared = prepare(cfg)
    model, _ = make_model(cfg, prepared, torch.device("cpu"))
    steps = model.configure_optimizers(cfg.train, 10)
    assert len(steps) == 1
    enc = model.hear.encoder
    cnn0 = [p.detach().clone() for p in enc.cnn.parameters()]
    rest = [p for p in enc.net.parameters() if p.requires_grad]
    assert rest and not any(p.requires_grad for p in enc.cnn.parameters())
    batch = collate([SequenceDataset(prepared, "train", crop_frames=30)[i] for i in range(2)])
    model.train()
    before = [p.detach().clone() for p in rest]
    lrs = []
    for k in range(4):
        step = steps[0]
        step.optimizer.zero_grad(set_to_none=True)
        model.step_loss(batch, step.name)["loss"].backward()
        step.optimizer.step()
        step.scheduler.step()
        lrs.append(step.optimizer.param_groups[-1]["lr"])
        moved = any(not torch.equal(a, b) for a, b in zip(before, rest, strict=True))
        assert moved == (k >= 2), f"step {k}: encoder moved={moved}"
    assert lrs[0] == 0.0 and lrs[3] == pytest.approx(1e-3 * lr_factor(2, 0, 8))
    assert all(torch.equal(a, b) for a, b in zip(cnn0, enc.cnn.parameters(), strict=True))


def test_representations_and_frame_timing(encoders, one_thread):
    from vocagan.encoders import encode, inspect_encoder
    from vocagan.frames import resample_frames
    from vocagan.models.audio import frames_at_fps

    info = inspect_encoder(encoders["wavlm"])
    assert (info.fps, info.stride, info.receptive, info.n_layers) == (50.0, 320, 400, 2)
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    last, first, every = encode(x, info), encode(x, info, layer=0), encode(x, info, all_layers=True)
    assert last.shape == (50, 16) and every.shape == (50, 48)
    assert np.allclose(every[:, 32:], last) and np.allclose(every[:, :16], first) and not np.allclose(first, last)
    h = torch.randn(1, 77, 5)
    for fps in (25, 30, 50, 60):
        n = int(77 * fps / 50) + 3
        assert np.allclose(frames_at_fps(h, 50, fps, n)[0].numpy(), resample_frames(h[0].numpy(), 50, fps, n))


def test_cache_key_follows_weights_and_layer(encoders, tiny_corpus, tmp_path, cache_dir, one_thread):
    from vocagan.config import load_config
    from vocagan.formats.vocaset import resolve_paths
    from vocagan.prep.prepare import cache_key

    def key(path, *extra):
        cfg = load_config(
            overrides=[f"data.root={tiny_corpus}", "features.kind=encoder", f"features.encoder_path={path}", *extra]
        )
        return cache_key(resolve_paths(cfg.data), cfg)

    other = save_tiny(tmp_path / "other", "wav2vec2", seed=1)
    same = save_tiny(tmp_path / "same", "wav2vec2", seed=0)
    assert key(encoders["wav2vec2"]) != key(encoders["wav2vec2"], "features.encoder_layer=1")
    assert key(encoders["wav2vec2"]) != key(other)
    assert key(same) == key(encoders["wav2vec2"])  # the same weights elsewhere: the same features, one cache


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "speech encoder folder not found"),
        ("file", "must be a folder"),
        ("no_config", "no config.json"),
        ("bert", "model_type 'bert'"),
        ("no_weights", "no weights"),
    ],
)
def test_a_wrong_folder_is_one_clear_line(case, message, tmp_path, encoders, tiny_corpus, cache_dir, capsys):
    folder = tmp_path / "enc"
    if case == "file":
        folder.write_text("x")
    elif case != "missing":
        shutil.copytree(encoders["wav2vec2"], folder)
        if case == "no_config":
            (folder / "config.json").unlink()
        elif case == "bert":
            (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
        elif case == "no_weights":
            (folder / "model.safetensors").unlink()
    assert main(["prepare", "--data", str(tiny_corpus), *encoder_sets(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0 and message in err and str(folder) in err


def test_layer_out_of_range(encoders, tiny_corpus, cache_dir, capsys):
    assert (
        main(["prepare", "--data", str(tiny_corpus), *encoder_sets(encoders["hubert"], "features.encoder_layer=5")])
        == 1
    )
    assert "features.encoder_layer=5 is out of range" in capsys.readouterr().err


def test_without_transformers_the_install_line(monkeypatch, encoders):
    import sys

    from vocagan.encoders import build_network, inspect_encoder

    info = inspect_encoder(encoders["wav2vec2"])
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(VocaganError, match=r"pip install 'vocagan\[encoders\]'"):
        build_network(info)


@pytest.mark.slow
def test_frozen_model_tells_what_to_do_when_the_encoder_is_gone(
    encoders, tiny_corpus, tmp_path, cache_dir, offline, one_thread, capsys
):
    folder = tmp_path / "enc"
    shutil.copytree(encoders["wavlm"], folder)
    best = run_whole_path(tiny_corpus, tmp_path / "r", encoder_sets(folder))
    wav = str(sorted((tiny_corpus / "wav").glob("*.wav"))[0])
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    animate = ["animate", "--checkpoint", str(best), "--audio", wav, "--out", str(tmp_path / "x"), "--no-video"]
    evaluate = ["evaluate", "--checkpoint", str(best), "--data", str(tiny_corpus), "--out", str(tmp_path / "y")]
    for command in (animate, evaluate):
        assert main(command) == 1
        last = capsys.readouterr().err.strip().splitlines()[-1]  # the one error line (after progress logs)
        assert last.startswith("error: ") and "is gone" in last and str(folder) in last and "--encoder DIR" in last
    for command in (animate, evaluate):  # told where the encoder is now
        assert main([*command, "--encoder", str(moved)]) == 0
    capsys.readouterr()
    assert main([*animate, "--encoder", str(encoders["wav2vec2"])]) == 1  # a different encoder is refused, not used
    assert "not the encoder this model was trained with" in capsys.readouterr().err
