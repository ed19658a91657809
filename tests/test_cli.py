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
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vocagan " + command in capsys.readouterr().out


def test_parser_lists_every_command():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted(COMMANDS)


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
