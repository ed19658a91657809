"""vocagan.models.layers, by hand: masked reductions, the ALiBi attention bias (distance penalty,
padding, local band), the convolutional front end (shapes, padding, utterance normalisation), the
lip-vertex decoder against Prepared.decode, the linearised mouth opening against
metrics.mouth_opening, and the vertex-space losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vocagan import metrics
from vocagan.errors import VocaganError
from vocagan.models.attention import alibi_slopes, attention_bias
from vocagan.models.layers import (
    ConvFrontEnd,
    LipDecoder,
    full_mask,
    masked_mean,
    masked_pool,
    vertex_losses,
)
from vocagan.prep.prepared import Prepared
from vocagan.prep.regions import Regions, lip_positions, opening_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

NEG_INF = float("-inf")


# ----------------------------------------------------------------------------- masked helpers
def test_masked_mean_and_pool_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])  # (B=2, T=3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert masked_mean(x, mask).item() == pytest.approx((1 + 2 + 3 + 4 + 5) / 5)
    # trailing dims are averaged too: 5 valid frames x 2 values
    y = torch.stack([x, 10 * x], -1)  # (2, 3, 2)
    assert masked_mean(y, mask).item() == pytest.approx(11 * 15 / 10)
    assert masked_mean(x, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0  # nothing valid: 0, not NaN
    pooled = masked_pool(y, mask)  # per sequence, over its valid frames
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 20.0], [4.5, 45.0]]))


def test_full_mask():
    m = full_mask(torch.zeros(2, 5, 7, 3))
    assert m.shape == (2, 5) and m.dtype == torch.bool and bool(m.all())
    x = torch.arange(10.0).reshape(2, 5)
    assert masked_mean(x, full_mask(x)).item() == pytest.approx(4.5)


# ----------------------------------------------------------------------------- attention bias
def test_alibi_slopes_are_geometric():
    torch.testing.assert_close(alibi_slopes(2), torch.tensor([2**-4, 2**-8]))
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-k for k in range(1, 9)]))
    assert alibi_slopes(4).shape == (4,) and bool((alibi_slopes(4).diff() < 0).all())


def test_alibi_bias_masks_padding_and_band():
    mask = torch.tensor([[True, True, True, False]])
    bias = attention_bias(mask, alibi_slopes(2), band=1)
    assert bias.shape == (1, 2, 4, 4)
    assert torch.isinf(bias[0, :, :, 3]).all()  # padded key never attended
    assert torch.isinf(bias[0, :, 0, 2]).all()  # outside the band
    assert bias[0, 0, 1, 0] == -alibi_slopes(2)[0]  # distance 1 penalty
    assert not torch.isnan(torch.softmax(bias, -1)).any()


def test_attention_bias_by_hand():
    """Head 0 (slope 1/16) over 4 frames, the last one padded: -|i - j| / 16, -inf on the padded key;
    with band 1 also -inf where |i - j| > 1."""
    mask = torch.tensor([[True, True, True, False]])
    s = 1 / 16
    full = attention_bias(mask, alibi_slopes(2))[0, 0]
    expect = [[0, -s, -2 * s, NEG_INF], [-s, 0, -s, NEG_INF], [-2 * s, -s, 0, NEG_INF], [-3 * s, -2 * s, -s, NEG_INF]]
    torch.testing.assert_close(full, torch.tensor(expect))
    banded = attention_bias(mask, alibi_slopes(2), band=1)[0, 0]
    expect = [
        [0, -s, NEG_INF, NEG_INF],
        [-s, 0, -s, NEG_INF],
        [NEG_INF, -s, 0, NEG_INF],
        [NEG_INF, NEG_INF, -s, NEG_INF],
    ]
    torch.testing.assert_close(banded, torch.tensor(expect))
    # head 1 has its own slope (1/256)
    assert attention_bias(mask, alibi_slopes(2))[0, 1, 0, 2].item() == pytest.approx(-2 / 256)


def test_attention_bias_rows_with_no_valid_key_are_zero_not_nan():
    mask = torch.tensor([[True, True, False], [False, False, False]])  # second sequence: all padding
    bias = attention_bias(mask, alibi_slopes(4), band=1)
    assert bias.shape == (2, 4, 3, 3)
    assert bool((bias[1] == 0).all())  # every key blocked -> 0
    weights = torch.softmax(bias, -1)
    assert not torch.isnan(weights).any()
    assert weights[0, :, :, 2].abs().max().item() == 0.0  # padded key of sequence 0: weight 0


# ----------------------------------------------------------------------------- front end
def front_end(utterance_norm: bool) -> ConvFrontEnd:
    torch.manual_seed(0)
    return ConvFrontEnd(audio_dim=5, d_model=8, n_layers=2, kernel=3, dropout=0.0, utterance_norm=utterance_norm).eval()


def test_front_end_shapes_and_padding():
    """(B, T, F) -> (B, T, D); padded frames are zero and the valid ones do not depend on the padding
    (the same as the sequence alone, unpadded)."""
    fe = front_end(utterance_norm=True)
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(2, 7, 5, generator=g)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    audio[1, 4:] = 1e3  # garbage in the padding
    with torch.no_grad():
        out = fe(audio, mask)
        alone = fe(audio[1:, :4], full_mask(audio[1:, :4]))
    assert out.shape == (2, 7, 8)
    assert out[1, 4:].abs().max().item() == 0.0
    torch.testing.assert_close(out[1, :4], alone[0], atol=1e-5, rtol=1e-5)


def test_utterance_norm_by_hand_and_offset_invariance():
    fe = front_end(utterance_norm=True)
    audio = torch.tensor([[[1.0], [3.0], [100.0]]])  # one feature, last frame padded
    mask = torch.tensor([[True, True, False]])
    normed = fe.normalise(audio, mask)  # mean 2, variance 1 over valid frames
    torch.testing.assert_close(normed[0, :2, 0], torch.tensor([-1.0, 1.0]) / math.sqrt(1.001))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 9, 5, generator=g)
    mask = full_mask(x)
    shifted = x + torch.randn(1, 1, 5, generator=g) * 4  # a per-feature offset (channel colour)
    louder = x * 2.5  # a gain: equal up to the 1e-3 variance floor
    with torch.no_grad():
        torch.testing.assert_close(fe(shifted, mask), fe(x, mask), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fe(louder, mask), fe(x, mask), atol=2e-3, rtol=0)
        plain = front_end(utterance_norm=False)
        assert (plain(shifted, mask) - plain(x, mask)).abs().max().item() > 1e-2


# ----------------------------------------------------------------------------- lip decoder
def toy_prepared() -> Prepared:
    """A mouth crop listed out of order, lips a subset in yet another order; PCA with a non-zero
    mean and a non-trivial normalisation, so every term of the decoding matters."""
    rng = np.random.default_rng(3)
    V, K = 20, 4
    crop = np.array([12, 3, 7, 15, 1, 9])
    lips = np.array([7, 1, 15])
    comps = np.linalg.qr(rng.normal(size=(3 * len(crop), K)))[0].T.astype(np.float32)  # (K, 3M)
    template = rng.normal(size=(V, 3)).astype(np.float32) * 0.05
    meta = {
        "fps": 30,
        "styles": ["A"],
        "template_names": ["A"],
        "region_source": "test",
        "n_vertices": V,
        "features": {"kind": "logmel"},
        "feature_dim": 10,
    }
    return Prepared(
        meta=meta,
        faces=np.zeros((0, 3), np.int32),
        templates=template[None],
        regions=Regions(crop, lips, np.array([0, 2]), "test"),
        crop=crop,
        pca_components=comps,
        pca_mean=(rng.normal(size=3 * len(crop)) * 1e-3).astype(np.float32),
        explained_variance_ratio=np.full(K, 0.25, np.float32),
        coef_mean=rng.normal(size=K).astype(np.float32),
        coef_std=(rng.uniform(1, 3, size=K) * 1e-3).astype(np.float32),
    )


def test_lip_positions_by_hand():
    crop = np.array([12, 3, 7, 15, 1, 9])
    np.testing.assert_array_equal(lip_positions(crop, np.array([7, 1, 15])), [2, 4, 3])
    np.testing.assert_array_equal(lip_positions(crop, crop), np.arange(6))
    for outside in ([7, 2], [100], [0]):  # 2, 100 and 0 are not in the crop
        with pytest.raises(VocaganError, match="lip vertices are not all inside the training crop"):
            lip_positions(crop, np.array(outside))


def test_lip_decoder_equals_prepared_decode_on_the_lip_columns_in_mm():
    p = toy_prepared()
    dec = LipDecoder.from_prepared(p)
    coefs = torch.randn(2, 5, p.motion_dim, generator=torch.Generator().manual_seed(4))
    ours = dec(coefs)
    assert ours.shape == (2, 5, 3, 3) and dec.n_lips == 3
    positions = [list(p.crop).index(v) for v in p.regions.lips]  # [2, 4, 3]
    ref = p.decode(coefs.numpy())[..., positions, :] * 1000.0  # metres -> mm
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_lip_decoder_refuses_lips_outside_the_crop():
    p = toy_prepared()
    p.regions = Regions(p.crop, np.array([7, 2]), np.array([0]), "test")  # vertex 2 is not in the crop
    with pytest.raises(VocaganError, match="not all inside the training crop"):
        LipDecoder.from_prepared(p)


# ----------------------------------------------------------------------------- mouth opening
def lip_cross():
    """Lips of 4 vertices (metres): upper-lip centre (0, +2 mm), lower-lip centre (0, -2 mm) and the
    mouth corners (+-25 mm, 0). The opening is measured between the two centres (the only lip
    vertices near the middle column, one above and one below the lips' mean height): 4 mm at rest,
    along +y. Mesh: 2 other vertices first; crop = [5, 0, 4, 2, 3] (listed out of order)."""
    template = np.zeros((6, 3), np.float32)
    template[2] = [0.0, 0.002, 0.01]  # upper centre
    template[3] = [0.0, -0.002, 0.01]  # lower centre
    template[4] = [0.025, 0.0, 0.0]  # corners
    template[5] = [-0.025, 0.0, 0.0]
    template[0] = [0.0, 0.05, 0.0]  # not lips (nose), inside the crop
    template[1] = [0.0, -0.05, 0.0]  # not lips, outside the crop
    return template, np.array([5, 0, 4, 2, 3]), np.array([2, 3, 4, 5])


def test_opening_weights_by_hand():
    template, crop, lips = lip_cross()
    w = opening_weights(crop, template, lips).reshape(len(crop), 3)
    expect = np.zeros((5, 3), np.float32)
    expect[3, 1] = 1.0  # crop position of vertex 2 (upper), y
    expect[4, 1] = -1.0  # crop position of vertex 3 (lower), y
    np.testing.assert_allclose(w, expect, atol=1e-7)
    flat = template.copy()
    flat[:, 1] = 0.0  # no vertical extent: no upper/lower lip
    assert opening_weights(crop, flat, lips) is None


def test_opening_weights_linearise_the_mouth_opening_metric():
    """Upper centre moves (0.1, 0.3, -0.2) mm, lower centre (0, -0.2, 0.1) mm, the corners a little:
    exact opening = |(0.1, 4.5, -0.3)| = sqrt(20.35) = 4.5111 mm, +0.5111 mm from rest; linearised
    along the rest direction (+y): 0.3 - (-0.2) = +0.5 mm (the rest is second order)."""
    template, crop, lips = lip_cross()
    w = opening_weights(crop, template, lips)
    offsets = np.zeros((len(crop), 3))
    offsets[3] = [0.1e-3, 0.3e-3, -0.2e-3]
    offsets[4] = [0.0, -0.2e-3, 0.1e-3]
    offsets[2] = [0.05e-3, 0.4e-3, 0.0]  # a corner: not part of the opening
    verts = template.astype(np.float64).copy()
    verts[crop] += offsets
    upper, lower = np.array([2]), np.array([3])
    rest = metrics.mouth_opening(template[None], upper, lower)[0]
    exact = metrics.mouth_opening(verts[None], upper, lower)[0] - rest
    linear = float(offsets.reshape(-1) @ w) * 1000.0
    assert rest == pytest.approx(4.0, abs=1e-6)
    assert exact == pytest.approx(math.sqrt(20.35) - 4.0, abs=1e-6)
    assert linear == pytest.approx(0.5, abs=1e-6)
    assert abs(linear - exact) < 0.012  # first-order agreement


# ----------------------------------------------------------------------------- vertex losses
def test_vertex_losses_by_hand():
    """Crop = 2 vertices, both lips; components = the x, y, z of vertex 0, coef_std 1 mm: a unit
    coefficient moves vertex 0 by 1 mm and vertex 1 never moves. Errors of vertex 0 on the two
    valid frames: (1, 2, 2) -> 9 mm^2 and (0, 3, 4) -> 25 mm^2 (the padded frame is ignored):
    lip = mean over frames and both vertices = (9 + 0 + 25 + 0) / 4 = 8.5; lip_max = (9 + 25) / 2 = 17."""
    comps = np.eye(3, 6, dtype=np.float32)
    dec = LipDecoder(
        comps, np.zeros(6, np.float32), np.zeros(3, np.float32), np.full(3, 1e-3, np.float32), np.array([0, 1])
    )
    target = torch.zeros(1, 3, 3)
    pred = torch.tensor([[[1.0, 2.0, 2.0], [0.0, 3.0, 4.0], [10.0, 10.0, 10.0]]])
    mask = torch.tensor([[True, True, False]])
    losses = vertex_losses(pred, target, mask, dec)
    assert losses["lip"].item() == pytest.approx(8.5, rel=1e-5)
    assert losses["lip_max"].item() == pytest.approx(17.0, rel=1e-5)
    shifted = vertex_losses(pred + 0.7, target + 0.7, mask, dec)  # only differences count
    assert shifted["lip"].item() == pytest.approx(8.5, rel=1e-4)
    zero = vertex_losses(pred, pred, mask, dec)
    assert zero["lip"].item() == 0.0 and zero["lip_max"].item() == 0.0
