"""Untrusted files: a pickle or checkpoint crafted to run code when loaded must not run it.

Every payload here is real: unpickled by the standard library, it would create a marker file
(`os.system("touch ...")`, or `open(...).write` via `builtins.eval` / `exec`). Each test feeds the
payload to the real readers (and the CLI) and asserts that the marker never appears and that the
load fails with one clear line naming the file.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from vocagan.cli import main
from vocagan.errors import VocaganError

VOCASET_PICKLES = [
    "subj_seq_to_idx.pkl",
    "templates.pkl",
    "processed_audio_deepspeech.pkl",
    "raw_audio_fixed.pkl",
    "region_masks.pkl",
    "FLAME_masks.pkl",
]


class _System:
    """Unpickling this runs os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Eval:
    """Unpickling this runs builtins.eval(code) (a different global than os.system)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        import builtins

        return builtins.eval, (self.code,)


def _payloads(marker: Path) -> dict[str, bytes]:
    """name -> pickle bytes that create `marker` when loaded with pickle.load."""
    touch = f"touch {marker}"
    write = f"open({str(marker)!r}, 'w').write('pwned')"
    nested = {"FaceTalk_170728_03272_TA": {"sentence01": {"audio": _System(touch), "sample_rate": 16000}}}
    return {
        "os.system, protocol 2": pickle.dumps(_System(touch), protocol=2),
        "os.system, protocol 0": pickle.dumps(_System(touch), protocol=0),
        "os.system, protocol 5": pickle.dumps(_System(touch), protocol=5),
        "builtins.eval": pickle.dumps(_Eval(write), protocol=2),
        "nested in a valid structure": pickle.dumps(nested, protocol=2),
        # hand-written opcodes: GLOBAL 'builtins exec' + REDUCE, no Python class involved
        "raw opcodes exec": b"cbuiltins\nexec\n(V" + write.encode() + b"\ntR.",
    }


def test_payloads_are_real(tmp_path):
    """Sanity check of the test itself: plain pickle.loads DOES create the marker."""
    for i, data in enumerate(_payloads(tmp_path / "m").values()):
        marker = tmp_path / f"real{i}"
        (tmp_path / "m").unlink(missing_ok=True)
        pickle.loads(data)
        assert (tmp_path / "m").exists()
        (tmp_path / "m").rename(marker)


@pytest.mark.parametrize("name", VOCASET_PICKLES)
def test_malicious_pickle_is_refused_by_safe_load(name, tmp_path):
    from vocagan.formats.pickles import safe_load_pickle

    marker = tmp_path / "pwned"
    path = tmp_path / name
    for what, data in _payloads(marker).items():
        path.write_bytes(data)
        with pytest.raises(VocaganError) as err:
            safe_load_pickle(path)
        msg = str(err.value)
        assert not marker.exists(), f"{what}: the payload ran"
        assert msg.startswith(f"{path}: refusing to unpickle"), (what, msg)
        assert "\n" not in msg


@pytest.mark.parametrize(
    "name",
    [
        "subj_seq_to_idx.pkl",
        "templates.pkl",
        "processed_audio_deepspeech.pkl",
        "raw_audio_fixed.pkl",
        "region_masks.pkl",
    ],
)
def test_malicious_pickle_in_a_vocaset_folder(name, tiny_corpus, tmp_path, capsys):
    """The real entry points (open_vocaset, `vocagan prepare`) refuse it; exit 1, one stderr line. The
    DeepSpeech pickle is read (and refused) only by a run that uses DeepSpeech features."""
    from vocagan.config import DataConfig
    from vocagan.formats.vocaset import open_vocaset

    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    marker = tmp_path / "pwned"
    (root / name).write_bytes(_payloads(marker)["os.system, protocol 2"])
    with pytest.raises(VocaganError, match="refusing to unpickle"):
        open_vocaset(DataConfig(root=str(root)))
    capsys.readouterr()
    kind = ["--set", "features.kind=deepspeech"] if name == "processed_audio_deepspeech.pkl" else []
    assert main(["prepare", "--data", str(root), "--cache-dir", str(tmp_path / "cache"), *kind]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {root / name}: refusing to unpickle"), err
    assert not marker.exists()
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    if kind:  # log-mel features never open it: prepare succeeds, nothing runs
        assert main(["prepare", "--data", str(root), "--cache-dir", str(tmp_path / "cache")]) == 0
        assert not marker.exists()


def test_malicious_flame_masks_given_explicitly(tiny_corpus, tmp_path, capsys):
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    marker = tmp_path / "pwned"
    masks = tmp_path / "FLAME_masks.pkl"
    masks.write_bytes(_payloads(marker)["builtins.eval"])
    assert main(["prepare", "--data", str(root), "--masks", str(masks), "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {masks}: refusing to unpickle __builtin__.eval"), err
    assert not marker.exists()


# ----------------------------------------------------------------------------- checkpoints
def _malicious_checkpoint(path: Path, marker: Path, valid_payload: dict | None = None) -> Path:
    """A real torch.save file whose pickle runs os.system on a plain torch.load(weights_only=False)."""
    payload = dict(valid_payload or {"format": "vocagan-checkpoint", "version": 1})
    payload["extra"] = {"note": _System(f"touch {marker}")}
    torch.save(payload, path)
    return path


def test_malicious_checkpoint_payload_is_real(tmp_path):
    marker = tmp_path / "pwned"
    path = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_checkpoint_is_refused(tmp_path, tiny_corpus, capsys):
    from vocagan.checkpoint import load_checkpoint, read_checkpoint

    marker = tmp_path / "pwned"
    path = _malicious_checkpoint(tmp_path / "best.pt", marker)
    for load in (read_checkpoint, load_checkpoint):
        with pytest.raises(VocaganError) as err:
            load(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: not a readable vocagan checkpoint") and "\n" not in msg
        assert f"{os.system.__module__}.system" in msg  # names what was refused...
        assert "weights_only" not in msg  # ...without torch's advice to load it unsafely
    wav = next((tiny_corpus / "wav").glob("*.wav"))
    for argv in (
        ["animate", "--checkpoint", str(path), "--audio", str(wav), "--out", str(tmp_path / "anim"), "--no-video"],
        ["evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "eval")],
    ):
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {path}: not a readable vocagan checkpoint"), (argv, err)
    assert not marker.exists()
    assert not (tmp_path / "anim").exists() or not any((tmp_path / "anim").iterdir())


def test_malicious_last_pt_is_refused_on_resume(tmp_path, tiny_corpus, capsys):
    """`train --resume` reads RUN_DIR/last.pt: a planted one must not run either."""
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    _malicious_checkpoint(run / "last.pt", marker)
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny_corpus),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--model",
                "rnn",
                "--epochs",
                "1",
                "--out",
                str(run),
                "--resume",
            ]
        )
        == 1
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith(
        f"error: {run / 'last.pt'}: not a readable vocagan checkpoint"
    ), errors
    assert not marker.exists()
    assert not (run / "best.pt").exists()
