"""The four models through the registry, on synthetic tensors at toy size (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocagan.config import load_config, model_config
from vocagan.errors import VocaganError
from vocagan.models import MODELS, build
from vocagan.models.layers import LipDecoder

AUDIO, MOTION, STYLES = 12, 6, 3
TINY = {
    "rnn": {"hidden": 16, "n_layers": 1, "style_dim": 4},
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "transformer_vae": {"d_model": 16, "n_heads": 2, "n_layers": 1, "latent_dim": 4},
    "transformer_gan": {
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "d_channels": 8,
        "d_layers": 2,
        "adv_start_epoch": 0,
    },
}
LONG_OK = {"transformer", "transformer_vae", "transformer_gan"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def tiny(name: str, **kw):
    torch.manual_seed(0)
    return build(model_config(name, {**TINY[name], **kw}), AUDIO, MOTION, STYLES)


def make_batch(B=3, T=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, T - 7 :] = False  # one padded sequence
    return {
        "audio": torch.randn(B, T, AUDIO, generator=g),
        "motion": torch.randn(B, T, MOTION, generator=g),
        "mask": mask,
        "style": torch.arange(B) % STYLES,
        "lengths": mask.sum(1),
    }


def toy_decoder():
    rng = np.random.default_rng(0)
    M = 5  # mouth crop vertices; lips are 3 of them
    return LipDecoder(
        rng.normal(size=(MOTION, 3 * M)).astype(np.float32) * 1e-3,
        np.zeros(3 * M, np.float32),
        np.zeros(MOTION, np.float32),
        np.ones(MOTION, np.float32),
        np.array([0, 2, 4]),
    )


def test_registry_has_the_four_models():
    assert set(MODELS) == {"rnn", "transformer", "transformer_vae", "transformer_gan"}


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_shape_and_padding_invariance(name):
    model = tiny(name).eval()
    batch = make_batch()
    out = model(batch["audio"], batch["style"], batch["mask"])
    assert out.shape == (3, 20, MOTION)
    assert torch.isfinite(out).all()
    # the padded sequence's prediction equals its prediction alone, unpadded
    alone = model(batch["audio"][1:2, :13], batch["style"][1:2])
    torch.testing.assert_close(out[1:2, :13], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_and_gradients_are_finite(name):
    model = tiny(name).train()
    model.set_decoder(toy_decoder())
    model.set_epoch(3)
    parts = model.loss(make_batch())
    assert {"loss", "recon", "mouth", "velocity", "lip", "lip_max"} <= set(parts)
    assert all(torch.isfinite(v).all() for v in parts.values())
    parts["loss"].backward()
    gen = model.configure_optimizers(load_config().train, 10)[-1].params  # the model's own step
    assert gen, "no trainable parameters"
    for n, p in model.named_parameters():
        if any(p is q for q in gen):
            assert p.grad is not None, f"{n} got no gradient"
            assert torch.isfinite(p.grad).all(), n
    if name == "transformer_vae":
        assert "kl" in parts and float(parts["kl"].detach()) >= 0
    if name == "transformer_gan":
        # adversarial terms active at epoch 3
        assert float(parts["adv"].detach()) > 0 and float(parts["fm"].detach()) > 0


def test_gan_discriminator_step_trains_only_the_discriminator():
    model = tiny("transformer_gan").train()
    critic, generator = model.configure_optimizers(load_config().train, 10)
    assert (critic.name, generator.name) == ("discriminator", "generator")
    assert {id(p) for p in critic.params} == {id(p) for p in model.discriminator.parameters()}
    assert not {id(p) for p in critic.params} & {id(p) for p in generator.params}
    assert len(critic.params) + len(generator.params) == len(list(model.parameters()))
    assert critic.optimizer.defaults["betas"] == (0.5, 0.9)
    parts = model.step_loss(make_batch(), "discriminator")
    assert {"loss", "real", "sync"} <= set(parts)
    parts["loss"].backward()
    for p in critic.params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert all(p.grad is None for p in generator.params)


def test_gan_multi_scale_critics_and_r1_penalty():
    """d_scales 3: three critics (1, 2 and 4 frames per step) in the critic's step, each judging
    pooled inputs; r1_weight: the penalty is logged, positive, and reaches the critics' weights."""
    model = tiny("transformer_gan", d_scales=3, r1_weight=2.0).train()
    model.set_epoch(5)
    critic, generator = model.configure_optimizers(load_config().train, 10)
    assert len(model.coarse_discriminators) == 2
    assert {id(p) for p in critic.params} == {
        id(p) for m in (model.discriminator, *model.coarse_discriminators) for p in m.parameters()
    }
    batch = make_batch(T=21)
    verdicts = model._judge(batch["audio"], batch["motion"], batch["mask"])
    assert [v[0].shape for v in verdicts] == [(3, 21), (3, 10), (3, 5)]
    assert bool(verdicts[1][3][1, :7].all()) and not bool(verdicts[1][3][1, 7:].any())  # frames 14+ padded
    parts = model.step_loss(batch, "discriminator")
    assert float(parts["r1"].detach()) > 0
    parts["loss"].backward()
    for p in critic.params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    gparts = model.step_loss(batch, "generator")
    gparts["loss"].backward()
    assert float(gparts["adv"].detach()) > 0 and float(gparts["fm"].detach()) > 0
    assert all(p.grad is not None for p in generator.params if p.requires_grad and p.dim() > 1)
    # a batch too short for the coarsest scale is judged by the others
    assert len(model._judge(batch["audio"][:, :3], batch["motion"][:, :3], batch["mask"][:, :3])) == 2


def test_gan_generator_starts_from_a_transformer():
    source = tiny("transformer")
    gan = tiny("transformer_gan")
    assert gan.warm_start(source.state_dict(), "transformer") == len(source.backbone.state_dict())
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(gan.generator.state_dict()[k], v)
    with pytest.raises(VocaganError, match="cannot start from a rnn checkpoint"):
        gan.warm_start(tiny("rnn").state_dict(), "rnn")
    with pytest.raises(VocaganError, match="weights do not fit"):
        gan.warm_start(tiny("transformer", n_layers=2).state_dict(), "transformer")
    assert source.warm_start(tiny("transformer").state_dict(), "transformer") == len(source.state_dict())


def test_models_without_a_critic_have_one_step_over_every_parameter():
    model = tiny("transformer")
    (step,) = model.configure_optimizers(load_config(overrides=["train.lr=0.002"]).train, 10)
    assert step.name == "model" and step.log_prefix == "train_" and len(step.params) == len(list(model.parameters()))
    assert step.optimizer.defaults["lr"] == 0.002
    assert step.scheduler.get_last_lr()[0] == pytest.approx(0.002 / 100)  # warm-up over 100 steps: step 1 of 100


def test_gan_discriminator_learns_audio_motion_sync():
    """A few D steps on data where motion = delayed audio energy: sync accuracy rises above chance."""
    model = tiny("transformer_gan", d_channels=16, shift_min=3, shift_max=6).train()
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=3e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(1)
    acc = []
    for _ in range(40):
        audio = torch.randn(8, 40, AUDIO, generator=g)
        motion = audio[..., :MOTION].roll(1, 1) * 0.8
        batch = {
            "audio": audio,
            "motion": motion,
            "mask": torch.ones(8, 40, dtype=torch.bool),
            "style": torch.zeros(8, dtype=torch.long),
        }
        parts = model.discriminator_loss(batch)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        acc.append(float(parts["sync_acc"]))
    assert np.mean(acc[-10:]) > 0.85, acc[-10:]


def test_gan_adversarial_warmup():
    model = tiny("transformer_gan", adv_start_epoch=2, adv_ramp_epochs=4)
    ramps = []
    for epoch in range(7):
        model.set_epoch(epoch)
        ramps.append(model.ramp())
    assert ramps == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    model.set_epoch(0)
    parts = model.loss(make_batch())
    assert float(parts["adv"]) == 0.0


def test_vae_kl_annealing():
    model = tiny("transformer_vae", kl_weight=0.1, kl_anneal_epochs=5)
    betas = []
    for epoch in range(6):
        model.set_epoch(epoch)
        betas.append(round(model.beta(), 6))
    assert betas == [0.02, 0.04, 0.06, 0.08, 0.1, 0.1]


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_any_length(name):
    model = tiny(name).eval()
    for T in (777, 3000) if name in LONG_OK else (777,):
        audio = torch.randn(1, T, AUDIO)
        out = model.predict(audio, torch.tensor([1]))
        assert out.shape == (1, 1, T, MOTION)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_samples(name):
    model = tiny(name).eval()
    audio, style = torch.randn(2, 30, AUDIO), torch.tensor([0, 2])
    one = model.predict(audio, style, n_samples=1)
    again = model.predict(audio, style, n_samples=1)
    torch.testing.assert_close(one, again)  # n_samples=1 is deterministic for every model
    many = model.predict(audio, style, n_samples=4)
    assert many.shape == (4, 2, 30, MOTION)
    spread = float(many.std(0).mean())
    if name in ("transformer_vae", "transformer_gan"):
        # untrained: the latent/noise path must still change the output
        assert spread > 0, "samples do not differ"
    else:
        assert spread == 0


def test_style_changes_output_and_bad_style_fails():
    model = tiny("transformer").eval()
    audio = torch.randn(1, 25, AUDIO)
    # make the style embeddings large enough to matter in an untrained model
    torch.nn.init.normal_(model.backbone.style.weight, std=1.0)
    a, b = model.predict(audio, torch.tensor([0])), model.predict(audio, torch.tensor([1]))
    assert float((a - b).abs().max()) > 1e-4
    with pytest.raises(VocaganError, match="style index out of range"):
        model.predict(audio, torch.tensor([STYLES]))
    with pytest.raises(VocaganError, match="audio features"):
        model.predict(torch.randn(1, 25, AUDIO + 1), torch.tensor([0]))


def test_unknown_model_lists_valid_names():
    with pytest.raises(VocaganError) as e:
        model_config("diffusion")
    for name in MODELS:
        assert name in str(e.value)


def test_unknown_hyper_parameter_lists_valid_keys():
    with pytest.raises(VocaganError) as e:
        model_config("transformer", {"d_modle": 64})
    assert "d_modle" in str(e.value) and "d_model" in str(e.value) and "n_heads" in str(e.value)


def test_hyper_parameter_types_are_checked():
    with pytest.raises(VocaganError, match="integer"):
        model_config("rnn", {"hidden": 12.5})
    with pytest.raises(VocaganError, match="d_model=30 must be a multiple of model.n_heads=4"):
        model_config("transformer", {"d_model": 30, "n_heads": 4})
    with pytest.raises(VocaganError, match="must be one of lsgan, hinge"):
        model_config("transformer_gan", {"adv_loss": "wgan"})
    with pytest.raises(VocaganError, match="shift_max"):
        model_config("transformer_gan", {"shift_min": 9, "shift_max": 4})
    model = build(model_config("transformer", {"d_model": "32", "dropout": "0.2"}), AUDIO, MOTION, STYLES)
    assert model.cfg.d_model == 32 and model.cfg.dropout == 0.2


@pytest.mark.parametrize("name", ["rnn", "transformer"])
def test_utterance_norm_ignores_per_sequence_feature_offsets(name):
    """A louder/differently coloured voice (a per-feature offset and gain over the whole utterance)
    gives the same motion when utterance_norm is on (the default)."""
    model = tiny(name).eval()
    audio, style = torch.randn(1, 40, AUDIO), torch.tensor([0])
    offset, gain = torch.randn(1, 1, AUDIO) * 3, 1.5
    torch.testing.assert_close(
        model.predict(audio * gain + offset, style), model.predict(audio, style), atol=1e-4, rtol=1e-3
    )
    plain = tiny(name, utterance_norm=False).eval()
    assert float((plain.predict(audio + offset, style) - plain.predict(audio, style)).abs().max()) > 1e-3


def test_training_augmentation_only_in_training():
    model = tiny("transformer", freq_masks=3, freq_mask_width=4, freq_shift=2)
    audio, style = torch.randn(2, 30, AUDIO), torch.tensor([0, 1])
    model.eval()
    torch.testing.assert_close(model(audio, style), model(audio, style))
    front = model.backbone.front
    front.train()
    torch.manual_seed(0)
    augmented = front.augment(audio)
    assert augmented.shape == audio.shape and not torch.equal(augmented, audio)
