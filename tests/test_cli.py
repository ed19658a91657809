"""The one CLI: every command documents itself, errors are one line with exit status 1, and the
seed's entry points keep their flags."""

import subprocess
import sys

import pytest

from vocagan.cli import build_parser, main

COMMANDS = [
    "synth",
    "convert",
    "prepare",
    "train",
    "evaluate",
    "compare",
    "animate",
    "render",
    "export",
    "export-html",
    "serve",
    "pipeline",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_a_person_can_act_on(command, capsys):
    """A one-line description, examples, and help with its default for every flag."""
    import argparse

    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: vocagan " + command in text and "examples:\n  vocagan " + command in text
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    assert sub.description and "\n" not in sub.description
    for action in sub._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        flag = action.option_strings[0]
        assert action.help and len(action.help) > 10, f"{command} {flag} has no help"
        shown = sub.formatter_class(prog="x")._get_help_string(action) % vars(action)
        if not (action.default is None or action.default is False or action.default == []):
            assert "default" in shown, f"{command} {flag}: default {action.default} not shown"


def test_help_answers_the_questions_users_asked(capsys):
    assert main(["convert", "--help"]) == 0
    text = capsys.readouterr().out
    assert "vertices_npy/<subject>_<sentence>.npy" in text and "<subject>/<sentence>/*.ply" in text  # layouts
    assert main(["compare", "--help"]) == 0
    assert "a count" in " ".join(capsys.readouterr().out.split())  # --seeds is how many, not which
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert all(c in top for c in COMMANDS)


def test_parser_lists_every_command():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted(COMMANDS)


def test_bad_flag_value_is_one_line_with_exit_2(capsys):
    """A value outside the range declared with the config field (once) is refused before any work."""
    assert main(["train", "--data", "x", "--out", "y", "--epochs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: vocagan train: argument --epochs: must be in [1, 1000000], got 0 (see vocagan train --help)"]
    assert main(["render", "--vertices", "v.npy", "--out", "o.mp4", "--size", "abc"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_user_error_is_one_line_with_exit_1(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["prepare", "--data", str(missing), "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nowhere" in err[0]


def test_data_flags_accept_both_spellings():
    parser = build_parser()
    a = parser.parse_args(["prepare", "--data_verts_path", "v.npy", "--idx-map-path", "i.pkl"])
    assert a.data_verts_path == "v.npy" and a.idx_map_path == "i.pkl"


@pytest.mark.parametrize("model", ["rnn", "transformer", "transformer_vae", "transformer_gan"])
def test_seed_scripts_keep_their_flags(model, repo):
    """`python main_<model>.py --help` lists exactly the seed's flags (run as a user would)."""
    proc = subprocess.run(
        [sys.executable, str(repo / f"main_{model}.py"), "--help"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in [
        "--data_verts_path",
        "--audio_pkl_path",
        "--idx_map_path",
        "--template_path",
        "--template_ply_path",
        "--epochs",
        "--batch_size",
        "--output_model",
    ]:
        assert flag in proc.stdout
