"""Config layering (defaults <- YAML <- overrides) and loud failures on bad keys/values."""

import pytest

from vocagan.config import Config, config_from_dict, load_config, model_config
from vocagan.errors import VocaganError


def test_defaults_follow_the_standard_split():
    cfg = load_config()
    assert len(cfg.data.train_subjects) == 8 and len(cfg.data.val_subjects) == 2
    assert cfg.data.test_subjects == ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"]
    assert cfg.data.train_sentences == list(range(1, 41))
    assert cfg.data.test_sentences == list(range(21, 41))
    assert cfg.data.fps == 30 and cfg.data.source_fps == 60
    assert cfg.model_name == "transformer_gan" and cfg.model == model_config("transformer_gan")


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 0.01\nmodel:\n  name: rnn\n  hidden: 32\n")
    cfg = load_config(path, overrides=["train.lr=3e-4", "data.fps=60", "model.hidden=64"])
    assert cfg.train.epochs == 7
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.data.fps == 60
    assert cfg.model_name == "rnn" and cfg.model == model_config("rnn", {"hidden": 64})


def test_override_keeps_default_model_name():
    cfg = load_config(overrides=["model.d_model=64"])
    assert cfg.model_name == "transformer_gan" and cfg.model.d_model == 64


def test_every_field_of_the_model_is_resolved_and_recorded():
    """config.yaml and checkpoints hold every hyper-parameter with its value, not only those set."""
    d = load_config(overrides=["model.name=transformer_gan"]).to_dict()
    assert d["model"]["name"] == "transformer_gan"
    assert d["model"]["adv_weight"] == 0.1 and d["model"]["opening_weight"] == 1.0 and "d_model" in d["model"]


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.batch_size=0", "train.batch_size must be in [1, "),
        ("train.lr=-1", "train.lr must be in (0, 10]"),
        ("train.lr=nan", "train.lr must be finite"),
        ("train.epochs=0", "train.epochs must be in [1, "),
        ("model.d_model=0", "model.d_model must be in [1, "),
        ("model.dropout=1", "model.dropout must be in [0, 1)"),
        ("features.kind=wav2vec2", "features.kind must be one of logmel, deepspeech"),
        ("prep.region=lips", "prep.region must be one of mouth, face"),
        ("data.fps=7", "data.fps=7 must divide data.source_fps=60"),
        ("features.fmin=9000", "features.fmin=9000.0 must be below features.fmax=8000.0"),
    ],
)
def test_out_of_range_values_fail_with_the_admissible_range(override, needle):
    with pytest.raises(VocaganError) as e:
        load_config(overrides=[override])
    assert needle in str(e.value)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.epoch=5", "train.epoch"),
        ("trian.epochs=5", "trian"),
        ("train.epochs=abc", "must be a number"),
        ("train.epochs=2.5", "must be an integer"),
        ("prep.normalize=maybe", "true/false"),
        ("noequals", "section.key=value"),
    ],
)
def test_bad_overrides_fail_loudly(override, needle):
    with pytest.raises(VocaganError, match=needle.replace(".", r"\.")):
        load_config(overrides=[override])


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(VocaganError, match="bad.yaml"):
        load_config(path)
    with pytest.raises(VocaganError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict():
    cfg = load_config(overrides=["train.epochs=3", "model.name=transformer"])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again, Config)


def test_train_config_carries_vtlp():
    assert load_config(None, ["train.vtlp=0.1"]).train.vtlp == pytest.approx(0.1)
    assert load_config(None, []).train.vtlp == 0.0  # off by default
