"""The training fast paths give the same numbers as the plain formulations they replace, bit for bit:
attention with dropout (torch's SDPA math path), the attention bias (its dense definition), the
packed GRU (torch's own), and the GAN generator step's critic call (one batched call over generated
and real motion, with the critic's weight gradients). Same seeds, so the same dropout masks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from vocagan.config import model_config
from vocagan.models import build
from vocagan.models.attention import alibi_slopes, attention_bias, attention_with_dropout
from vocagan.models.layers import LipDecoder
from vocagan.models.rnn import gru_packed

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def dense_bias(mask: torch.Tensor, slopes: torch.Tensor, band: int = 0) -> torch.Tensor:
    """The definition: -slope * |i - j|, -inf on padded keys and outside the band, 0 on rows with no
    valid key; one dense (B, H, T, T) tensor."""
    B, T = mask.shape
    pos = torch.arange(T)
    dist = (pos[None, :] - pos[:, None]).abs().float()
    bias = (-slopes[:, None, None] * dist).unsqueeze(0).expand(B, -1, -1, -1).clone()
    blocked = ~mask[:, None, None, :]
    if band > 0:
        blocked = blocked | (dist > band)[None, None]
    bias = bias.masked_fill(blocked, float("-inf"))
    return bias.masked_fill(torch.isinf(bias).all(-1, keepdim=True), 0.0)


def masks(B: int = 6, T: int = 17) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    padded = torch.arange(T)[None] < lengths[:, None]
    empty = padded.clone()
    empty[2] = False  # a sequence without frames
    return [torch.ones(B, T, dtype=torch.bool), padded, empty]


@pytest.mark.parametrize("band", [0, 1, 3, 40])
def test_attention_bias_equals_its_dense_definition(band):
    for mask in masks():
        fast, dense = attention_bias(mask, alibi_slopes(4), band), dense_bias(mask, alibi_slopes(4), band)
        assert fast.shape == dense.shape
        assert torch.equal(fast, dense)


@pytest.mark.parametrize("band", [0, 4])
def test_attention_with_dropout_is_torch_sdpa_bit_for_bit(band):
    B, H, T, D = 5, 4, 17, 8
    g = torch.Generator().manual_seed(1)
    qkv = [torch.randn(B, H, T, D, generator=g) for _ in range(3)]
    weight = torch.randn(B, H, T, D, generator=g)
    for mask in masks(B, T):
        bias = attention_bias(mask, alibi_slopes(H), band)
        outs = []
        for attend in (
            lambda q, k, v, b=bias: F.scaled_dot_product_attention(q, k, v, attn_mask=b.contiguous(), dropout_p=0.1),
            lambda q, k, v, b=bias: attention_with_dropout(q, k, v, b, 0.1),
        ):
            q, k, v = (x.clone().requires_grad_() for x in qkv)
            torch.manual_seed(7)
            y = attend(q, k, v)
            (y * weight).sum().backward()
            outs.append([y.detach(), q.grad, k.grad, v.grad, torch.get_rng_state()])
        for a, b in zip(*outs, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize(
    "layers,bidirectional,lengths",
    [(2, True, [9, 4, 9, 1, 6]), (1, False, [5, 5, 2]), (3, True, [7]), (2, True, [8, 8, 8])],
)
def test_packed_gru_is_torch_gru_bit_for_bit(layers, bidirectional, lengths):
    """Outputs and every gradient (inputs and weights), dropout between layers included."""
    torch.manual_seed(0)
    gru = nn.GRU(
        6, 5, num_layers=layers, batch_first=True, bidirectional=bidirectional, dropout=0.3 if layers > 1 else 0.0
    ).train()
    lengths_t = torch.tensor(lengths)
    x0 = torch.randn(len(lengths), int(lengths_t.max()), 6)
    results = []
    for run in (lambda p: gru(p)[0], lambda p: gru_packed(gru, p)):
        gru.zero_grad()
        x = x0.clone().requires_grad_()
        packed = pack_padded_sequence(x, lengths_t, batch_first=True, enforce_sorted=False)
        torch.manual_seed(3)
        y = run(packed)
        (y.data * torch.linspace(-1, 1, y.data.numel()).reshape(y.data.shape)).sum().backward()
        results.append([y.data.detach(), x.grad, *[p.grad for p in gru.parameters()], torch.get_rng_state()])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_gan_generator_step_equals_the_batched_critic_call():
    """The generator's loss with the critic frozen (real motion judged apart, without a graph) equals
    the single batched call over [generated, real]; the generator's gradients too; the critic's
    weights get no gradient from this step."""
    cfg = model_config("transformer_gan", {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_channels": 8})
    torch.manual_seed(0)
    model = build(cfg, 12, 6, 3)
    rng = np.random.default_rng(0)  # a decoder: the vertex-space losses and the critic's input scaling on
    model.set_decoder(
        LipDecoder(
            rng.normal(size=(6, 15)).astype(np.float32) * 1e-3,
            np.zeros(15, np.float32),
            np.zeros(6, np.float32),
            np.linspace(2.0, 0.5, 6).astype(np.float32),
            np.array([0, 2, 4]),
            opening=rng.normal(size=15).astype(np.float32) * 1e-2,
        )
    )
    model.train().set_epoch(50)
    reference = copy.deepcopy(model)
    g = torch.Generator().manual_seed(2)
    mask = torch.ones(4, 20, dtype=torch.bool)
    mask[1, 13:] = False
    batch = {
        "audio": torch.randn(4, 20, 12, generator=g),
        "motion": torch.randn(4, 20, 6, generator=g),
        "mask": mask,
        "style": torch.tensor([0, 1, 2, 0]),
    }

    torch.manual_seed(5)
    parts = model.loss(batch)
    parts["loss"].backward()

    torch.manual_seed(5)  # the plain formulation, written out
    m = reference
    pred = m._sample(batch)
    ref = m.reconstruction_losses(pred, batch["motion"], mask)
    total = m.weighted(ref)
    ((r, s, feats, _),) = m._judge(
        torch.cat([batch["audio"]] * 2), torch.cat([pred, batch["motion"]]), torch.cat([mask, mask])
    )
    B = 4
    adv = m._fool(r[:B], mask) + m._fool(s[:B], mask)
    fm = sum((f[:B] - f[B:].detach()).abs().mean() for f in feats) / len(feats)
    total = total + m.ramp() * (m.cfg.adv_weight * adv + m.cfg.fm_weight * fm)
    total.backward()

    assert torch.equal(parts["loss"].detach(), total.detach())
    assert torch.equal(parts["adv"].detach(), adv.detach()) and torch.equal(parts["fm"].detach(), fm.detach())
    for (name, a), b in zip(model.named_parameters(), reference.parameters(), strict=True):
        if name.startswith("discriminator."):
            assert a.grad is None and a.requires_grad
        else:
            assert torch.equal(a.grad, b.grad), name
    for a, b in zip(model.buffers(), reference.buffers(), strict=True):  # spectral norm: one power iteration
        assert torch.equal(a, b)
