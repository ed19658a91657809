"""Streaming models (model.lookahead >= 0): causal by construction, and the frame-by-frame `stream_*`
computation gives what `predict` gives on the whole sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocagan.config import load_config
from vocagan.errors import VocaganError
from vocagan.models import build

STREAMING = ["model.lookahead=2", "model.attention_band=12", "model.norm_window=20"]
SIZES = ["model.d_model=16", "model.n_heads=2", "model.n_layers=2"]


def _model(name: str, *extra: str):
    cfg = load_config(overrides=[f"model.name={name}", *SIZES, *STREAMING, *extra])
    torch.manual_seed(0)
    return build(cfg.model, 10, 5, 3).eval()


def _audio(T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, T, 10, generator=g) * 2 + 1


@pytest.mark.parametrize("name", ["transformer", "transformer_vae", "transformer_gan"])
@pytest.mark.parametrize("chunks", [[1], [0, 3, 7, 2], [50]])
def test_stream_equals_predict(name, chunks):
    model = _model(name)
    audio = _audio(61)
    with torch.no_grad():
        full = model.predict(audio, torch.tensor([1]))[0, 0].numpy()  # (T, K)
    state = model.stream_start(1)
    out, i, k = [], 0, 0
    while i < audio.shape[1]:
        n = chunks[k % len(chunks)]
        out.append(model.stream_step(state, audio[0, i : i + n].numpy()))
        i, k = i + n, k + 1
    out.append(model.stream_end(state))
    got = np.concatenate(out)
    assert got.shape == full.shape
    np.testing.assert_allclose(got, full, atol=2e-5)


def test_frames_never_hear_beyond_the_lookahead():
    model = _model("transformer")
    audio = _audio(60)
    changed = audio.clone()
    changed[:, 40:] = -changed[:, 40:]  # the audio from frame 40 on differs
    with torch.no_grad():
        a = model(audio, torch.tensor([0]))[0]
        b = model(changed, torch.tensor([0]))[0]
    assert torch.equal(a[:38], b[:38])  # frame t hears frames <= t + 2
    assert not torch.allclose(a[38], b[38])


def test_offline_models_refuse_to_stream_and_bad_settings_fail():
    cfg = load_config(overrides=["model.name=transformer", *SIZES])
    model = build(cfg.model, 10, 5, 3)
    with pytest.raises(VocaganError, match="whole clip"):
        model.stream_start(0)
    rnn = build(load_config(overrides=["model.name=rnn"]).model, 10, 5, 3)
    with pytest.raises(VocaganError, match="cannot stream"):
        rnn.stream_start(0)
    with pytest.raises(VocaganError, match="attention_band"):
        load_config(overrides=["model.name=transformer", "model.lookahead=2"])
