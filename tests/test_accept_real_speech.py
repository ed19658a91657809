"""benchmarks/accept_real_speech.py: label parsing, per-phone frames, the verdict, and a run of the
whole check (the real inference path) on a toy checkpoint; the real CMU ARCTIC labels when present."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocagan.errors import VocaganError


@pytest.fixture(scope="module")
def accept(repo):
    spec = importlib.util.spec_from_file_location("accept_real_speech", repo / "benchmarks" / "accept_real_speech.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["accept_real_speech"] = module
    spec.loader.exec_module(module)
    return module


def write_lab(path: Path, phones: list[tuple[float, float, str]]) -> Path:
    path.write_text("".join(f"{int(round(a * 1e7))} {int(round(b * 1e7))} {p}\n" for a, b, p in phones))
    return path


def test_read_lab_plain_and_full_context(accept, tmp_path):
    full = tmp_path / "full.lab"
    full.write_text(
        "0 1300000 x^x-sil+hh=iy@x_x/A:0_0_0\n1300000 2050000 x^sil-hh+iy=t@1_2/A:0\n\n"
        "2050000 2700000 sil^hh-iy+t=er@2_1/B:1-1-2\n"
    )
    assert accept.read_lab(full) == [(0.0, 0.13, "sil"), (0.13, 0.205, "hh"), (0.205, 0.27, "iy")]
    plain = write_lab(tmp_path / "plain.lab", [(0.0, 0.1, "pau"), (0.1, 0.25, "AA1"), (0.25, 0.3, "m")])
    labels = accept.read_lab(plain)
    assert [p for *_, p in labels] == ["pau", "AA1", "m"]
    assert [accept.phone_kind(p) for *_, p in labels] == ["silence", "vowel", "bilabial"]
    bad = tmp_path / "bad.lab"
    bad.write_text("0 abc sil\n")
    with pytest.raises(VocaganError, match="bad.lab: line 1"):
        accept.read_lab(bad)


def test_phone_rows_take_the_frames_inside_each_phone(accept):
    opening = np.arange(10, dtype=float)  # frame i opens i mm, 10 fps
    rows = accept.phone_rows(opening, [(0.0, 0.25, "aa"), (0.25, 0.27, "b"), (0.3, 0.6, "m")], fps=10)
    assert rows[0].frames == [0, 1, 2] and rows[0].mean == 1.0 and rows[0].kind == "vowel"
    assert rows[1].frames == [3]  # shorter than a frame: the nearest one (0.26 s)
    assert rows[2].frames == [3, 4, 5] and rows[2].min == 3.0 and rows[2].max == 5.0


def test_verdict_needs_every_bilabial_closed_and_vowels_open(accept):
    def row(phone, mean, low):
        return accept.PhoneRow(phone, accept.phone_kind(phone), 0, 1, [0], mean, low, mean)

    good = [row("aa", 4.0, 3.0), row("iy", 3.0, 2.0), row("p", 0.6, -0.5), row("b", 0.8, 0.4), row("sil", 0.1, 0.0)]
    v = accept.verdict(good, closed_mm=0.5, margin_mm=1.0)
    assert v["passed"] and v["vowel_mean_mm"] == 3.5 and v["bilabial_mean_mm"] == pytest.approx(0.7)
    assert v["worst_bilabial_min_mm"] == 0.4 and v["vowels_above_bilabial_mean"] == 2
    one_open = good[:3] + [row("b", 0.8, 0.6)]
    assert not accept.verdict(one_open, 0.5, 1.0)["closes"]
    flat = [row("aa", 1.2, 1.0), row("p", 0.6, 0.0)]
    assert accept.verdict(flat, 0.5, 1.0)["closes"] and not accept.verdict(flat, 0.5, 1.0)["opens"]
    assert not accept.verdict([row("aa", 3.0, 2.0)], 0.5, 1.0)["passed"]  # no bilabial: nothing shown


def test_check_runs_animate_and_writes_report_and_plot(accept, tmp_path, capsys, toy_checkpoint, speech_like):
    ckpt = toy_checkpoint(tmp_path / "toy.pt")
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech_like(1.5, 22050), 22050)
    lab = write_lab(
        tmp_path / "speech_phone.lab",
        [(0, 0.2, "sil"), (0.2, 0.45, "aa"), (0.45, 0.6, "b"), (0.6, 0.9, "iy"), (0.9, 1.05, "m"), (1.05, 1.5, "sil")],
    )
    code = accept.main(["--checkpoint", str(ckpt), "--audio", str(wav), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code in (0, 3) and ("PASS" in out) == (code == 0)
    report = json.loads((tmp_path / "out" / "accept.json").read_text())
    assert report["lab"] == str(lab) and report["passed"] == (code == 0)
    ((style, r),) = report["styles"].items()
    assert style == "SubjA" and len(r["opening_mm"]) == 45 and r["n_bilabials"] == 2 and r["n_vowels"] == 2
    assert r["phones"][2]["frames"] == [14, 15, 16, 17]  # 0.45 <= i/30 < 0.6
    assert (tmp_path / "out" / "accept.png").read_bytes()[:4] == b"\x89PNG"
    code = accept.main(
        ["--checkpoint", str(ckpt), "--audio", str(wav), "--style", "all", "--out", str(tmp_path / "all")]
    )
    assert set(json.loads((tmp_path / "all" / "accept.json").read_text())["styles"]) == {"SubjA", "SubjB", "SubjC"}


def test_missing_files_are_one_clear_line(accept, tmp_path, capsys, toy_checkpoint):
    ckpt = toy_checkpoint(tmp_path / "toy.pt")
    assert accept.main(["--checkpoint", str(ckpt), "--audio", str(tmp_path / "none.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "none.wav: audio file not found" in err and "\n" not in err


def test_real_arctic_labels(accept, shared_data):
    labels = accept.read_lab(shared_data / "audio" / "cmu_arctic_a0009_phone.lab")
    assert len(labels) == 40 and labels[0][2] == "sil" and labels[-1][1] == pytest.approx(3.075)
    kinds = [accept.phone_kind(p) for *_, p in labels]
    assert [p for (*_, p), k in zip(labels, kinds, strict=True) if k == "bilabial"] == ["p", "b"]
    assert kinds.count("vowel") == 13
