"""One registry (`vocagan.models.MODELS`): the CLI's choices, the report labels, the seed scripts and the
configs all follow it, so adding a model is one file, one registry line and one YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vocagan import cli
from vocagan.config import load_config
from vocagan.models import MODELS, build, label, model_name

REPO = Path(__file__).resolve().parents[2]


def _choices(command: str, flag: str) -> list[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    action = next(a for a in sub._actions if flag in a.option_strings)
    return list(action.choices)


@pytest.mark.parametrize(
    "command, flag", [("train", "--model"), ("pipeline", "--model"), ("compare", "--models"), ("compare", "--focus")]
)
def test_cli_choices_are_the_registry(command, flag):
    assert _choices(command, flag) == list(MODELS)


def test_seed_scripts_are_the_registry():
    scripts = sorted(p.stem.removeprefix("main_") for p in REPO.glob("main_*.py"))
    assert scripts == sorted(MODELS)
    bodies = {p.read_text().split('"""', 2)[2] for p in REPO.glob("main_*.py")}
    assert len(bodies) == 1, "the seed scripts differ beyond their docstrings"


def test_seed_script_refuses_a_name_that_is_no_model(capsys):
    assert cli.seed_script("main_nomodel.py", []) == 2
    assert "names no model" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_has_a_config_file_a_label_and_builds_from_it(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.model_name == name and model_name(cfg.model) == name
    assert label(name) == MODELS[name].label and label(name) != name
    model = build(cfg.model, audio_dim=8, motion_dim=4, n_styles=2)
    assert model.name == name
    assert {"name": name, **model.describe()["config"]} == cfg.to_dict()["model"]  # every field recorded


def test_labels_are_distinct_and_baselines_keep_their_names():
    assert len({label(n) for n in MODELS}) == len(MODELS)
    assert label("ridge") == "ridge"
