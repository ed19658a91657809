"""The mouth-opening loss term: its linearised opening matches metrics.mouth_opening, it is zero for a
perfect prediction, the closure boost weights closed frames, and the weight switches it on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocagan import metrics
from vocagan.config import model_config
from vocagan.models import build
from vocagan.models.base import opening_loss
from vocagan.models.layers import LipDecoder
from vocagan.prep.regions import CLOSED_MM, lip_positions, mouth_opening_vertices, opening_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

K = 6


def toy_mouth(seed=0):
    """A template (V,3) whose crop (M,) holds a lip ring of 12 vertices (rest gap ~4 mm) plus 4
    other crop vertices and 4 outside; a random orthonormal PCA basis (K, 3M) of the crop."""
    rng = np.random.default_rng(seed)
    angle = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lips = np.stack(
        [0.025 * np.cos(angle), 0.004 * np.sin(angle) + 0.002 * np.sign(np.sin(angle)), 0.01 * np.ones(12)], 1
    )
    other = rng.normal(size=(8, 3)) * 0.03
    template = np.concatenate([other[:4], lips, other[4:]]).astype(np.float32)  # (20, 3)
    crop = np.arange(2, 18)  # (16,) 2 extra + lips + 2
    lip_idx = np.arange(4, 16)
    q, _ = np.linalg.qr(rng.normal(size=(3 * len(crop), K)))
    return template, crop, lip_idx, q.T.astype(np.float32)  # components (K, 3M)


def decoder_for(template, crop, lip_idx, components, coef_std=2e-3):
    std = np.full(K, coef_std, np.float32)
    pca_mean = np.zeros(components.shape[1], np.float32)

    return LipDecoder(
        components,
        pca_mean,
        np.zeros(K, np.float32),
        std,
        lip_positions(crop, lip_idx),
        opening=opening_weights(crop, template, lip_idx),
        closed_mm=CLOSED_MM,
    )


def test_linear_opening_matches_the_metric_for_small_motion():
    template, crop, lip_idx, comps = toy_mouth()
    dec = decoder_for(template, crop, lip_idx, comps)
    coefs = torch.randn(1, 30, K, generator=torch.Generator().manual_seed(1)) * 0.1  # ~0.2 mm offsets
    offsets = (coefs[0].numpy() * 2e-3) @ comps  # (T, 3M) metres
    verts = np.repeat(template[None], 30, 0)
    verts[:, crop] += offsets.reshape(30, -1, 3)
    up, lo = mouth_opening_vertices(template, lip_idx)
    exact = metrics.mouth_opening(verts, up, lo) - metrics.mouth_opening(template[None], up, lo)[0]  # (T,) mm
    linear = (coefs @ dec.opening_basis + dec.opening_offset)[0].numpy()
    assert np.abs(exact).max() > 0.05  # the motion does move the lips apart/together
    np.testing.assert_allclose(linear, exact, atol=0.02 * np.abs(exact).max())


def test_opening_loss_zero_for_perfect_prediction_and_boost_weights_closures():
    template, crop, lip_idx, comps = toy_mouth()
    dec = decoder_for(template, crop, lip_idx, comps)
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 25, K, generator=g)
    mask = torch.ones(2, 25, dtype=torch.bool)
    assert float(opening_loss(target, target, mask, dec)) == 0.0
    pred = target + 0.3 * torch.randn(2, 25, K, generator=g)
    plain = float(opening_loss(pred, target, mask, dec))
    err = ((pred - target) @ dec.opening_basis).pow(2)  # (B,T) mm^2
    assert plain == pytest.approx(float(err.mean()), rel=1e-5)
    closed = (target @ dec.opening_basis + dec.opening_offset) <= CLOSED_MM
    assert 0 < int(closed.sum()) < closed.numel()
    boosted = float(opening_loss(pred, target, mask, dec, close_boost=3.0))
    assert boosted == pytest.approx(float((err * (1 + 3.0 * closed.float())).mean()), rel=1e-5)


def test_opening_weight_enters_the_total_loss_only_when_set():
    template, crop, lip_idx, comps = toy_mouth()
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": torch.randn(2, 16, 10, generator=g),
        "motion": torch.randn(2, 16, K, generator=g),
        "mask": torch.ones(2, 16, dtype=torch.bool),
        "style": torch.tensor([0, 1]),
    }
    totals = {}
    for w in (0.0, 2.0):
        torch.manual_seed(0)
        model = build(
            model_config(
                "transformer",
                {"d_model": 16, "n_heads": 2, "n_layers": 1, "dropout": 0.0, "freq_masks": 0, "opening_weight": w},
            ),
            10,
            K,
            2,
        ).eval()
        model.set_decoder(decoder_for(template, crop, lip_idx, comps))
        parts = model.loss(batch)
        totals[w] = (parts["loss"].item(), parts["opening"].item())
        parts["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert totals[0.0][1] == pytest.approx(totals[2.0][1]) and totals[0.0][1] > 0
    assert totals[2.0][0] == pytest.approx(totals[0.0][0] + 2.0 * totals[0.0][1], rel=1e-5)


def test_opening_weights_none_without_upper_and_lower_lip():
    flat = np.zeros((4, 3), np.float32)
    flat[:, 0] = np.arange(4) * 0.01  # lips on one horizontal line: no vertical split
    assert opening_weights(np.arange(4), flat, np.arange(4)) is None


def test_the_opening_loss_says_once_when_it_cannot_run(capsys):
    """Lips without an upper/lower split leave no opening to measure: the loss is off, and the user is
    told so once (it used to switch itself off without a word)."""
    template, crop, lip_idx, comps = toy_mouth()
    decoder = decoder_for(template, crop, lip_idx, comps)
    decoder.opening_basis = None  # what from_prepared gives for such lips
    model = build(model_config("transformer", {"d_model": 16, "n_heads": 2, "n_layers": 1}), 10, K, 2)
    model.set_decoder(decoder)
    err = capsys.readouterr().err
    assert err.count("mouth-opening loss is off") == 1 and "model.opening_weight=1.0" in err
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": torch.randn(1, 8, 10, generator=g),
        "motion": torch.randn(1, 8, K, generator=g),
        "mask": torch.ones(1, 8, dtype=torch.bool),
        "style": torch.tensor([0]),
    }
    assert "opening" not in model.loss(batch)
    quiet = build(
        model_config("transformer", {"d_model": 16, "n_heads": 2, "n_layers": 1, "opening_weight": 0}), 10, K, 2
    )
    quiet.set_decoder(decoder)  # not asked for: nothing to say
    assert "opening" not in capsys.readouterr().err


def test_the_loss_and_the_metric_share_one_definition_of_closed_lips():
    """A frame whose true opening is 0.3 mm above rest is closed for the closure metric (<= CLOSED_MM,
    0.5 mm), so the loss weights it as a closure too (it used to count only <= 0 mm)."""
    template, crop, lip_idx, comps = toy_mouth()
    prepared = type("P", (), {})()
    prepared.pca_components, prepared.pca_mean = comps, np.zeros(comps.shape[1], np.float32)
    prepared.coef_mean, prepared.coef_std = np.zeros(K, np.float32), np.full(K, 2e-3, np.float32)
    prepared.crop, prepared.templates = crop, template[None]
    prepared.regions = type("R", (), {"lips": lip_idx})()
    from vocagan.prep.prepared import Prepared

    dec = LipDecoder(**Prepared.lip_decoder_arrays(prepared))
    assert dec.closed_mm == CLOSED_MM == 0.5
    basis = dec.opening_basis / dec.opening_basis.pow(2).sum()
    target = ((0.3 - dec.opening_offset) * basis).reshape(1, 1, K)  # opening exactly 0.3 mm above rest
    assert float(target @ dec.opening_basis + dec.opening_offset) == pytest.approx(0.3, abs=1e-5)
    pred, mask = target + 0.1, torch.ones(1, 1, dtype=torch.bool)
    err = float(((pred - target) @ dec.opening_basis).pow(2))
    assert float(opening_loss(pred, target, mask, dec, close_boost=4.0)) == pytest.approx(5.0 * err, rel=1e-5)
    assert metrics.closure_events(np.array([3.0, 0.3, 3.0])) == [(1, 2)]  # the metric counts it closed too
