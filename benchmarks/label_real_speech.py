#!/usr/bin/env python3
"""Label the real recordings of the acceptance check with phone timings by forced alignment.

    .venv/bin/python benchmarks/label_real_speech.py --out runs/labels [--write]

For every recording of tests/data/real_speech/recordings.json: fetch it (benchmarks/real_speech.py),
align its transcript with PocketSphinx (`vocagan.prep.phonetic.align`: CMU's US-English acoustic
model and dictionary from the pocketsphinx wheel), and draw a spectrogram with the phone
boundaries over it (OUT/<id>.png, 3 s per row, bilabials in cyan) to check the labels by eye.
`--write` stores the labels as tests/data/real_speech/<id>_phone.lab (HTK: start end phone, 100 ns
units). Where a reference labelling exists (CMU ARCTIC's own for arctic_a0009) the boundaries are
compared and the differences printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_speech

BILABIALS = {"m", "b", "p"}


def write_lab(path: Path, labels) -> None:
    from vocagan.utils import atomic_write_text

    atomic_write_text(path, "".join(f"{int(round(s * 1e7))} {int(round(e * 1e7))} {p}\n" for s, e, p, *_ in labels))


def plot(path: Path, x: np.ndarray, sr: int, labels, title: str, row_s: float = 3.0) -> Path:
    from matplotlib.figure import Figure

    from vocagan.plotting import save_figure

    duration = len(x) / sr
    rows = max(1, int(np.ceil(duration / row_s)))
    fig = Figure(figsize=(14, 2.8 * rows), dpi=80)
    for r in range(rows):
        ax = fig.add_subplot(rows, 1, r + 1)
        a, b = r * row_s, min(duration, (r + 1) * row_s)
        seg = x[int(a * sr) : int(b * sr)].astype(np.float64) + 1e-7
        ax.specgram(seg, NFFT=int(0.025 * sr), Fs=sr, noverlap=int(0.019 * sr), cmap="magma", xextent=(a, b))
        ax.set_xlim(a, a + row_s)
        ax.set_ylim(0, min(8000, sr / 2))
        for s, e, p, *_ in labels:
            if e < a or s > b:
                continue
            c = "cyan" if p in BILABIALS else "white"
            ax.axvline(s, color=c, lw=0.8)
            ax.text(0.5 * (s + e), 0.93 * min(8000, sr / 2), p, color=c, ha="center", fontsize=9, weight="bold")
        ax.set_ylabel("Hz")
        if r == 0:
            ax.set_title(title, fontsize=9)
    fig.axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return save_figure(fig, path)


def boundary_errors(ours, reference) -> np.ndarray:
    """|our boundary - nearest reference boundary| (s) for every inner boundary of ours."""
    ref = np.array(sorted({round(s, 4) for s, *_ in reference[1:]}))
    mine = np.array([s for s, *_ in ours[1:]])
    return np.abs(mine[:, None] - ref[None]).min(1)


def main(argv=None) -> int:
    from vocagan.errors import VocaganError
    from vocagan.formats.audio import load_audio
    from vocagan.prep.phonetic import align

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the spectrogram PNGs")
    ap.add_argument("--write", action="store_true", help="store the labels in tests/data/real_speech/")
    args = ap.parse_args(argv)
    status = 0
    for rec, path, why in real_speech.available():
        if path is None:
            print(f"{rec.id}: skipped ({why})")
            status = 1
            continue
        try:
            x, sr = load_audio(path)
            labels = align(x, sr, rec.text)
        except VocaganError as e:
            print(f"{rec.id}: error: {e}")
            status = 1
            continue
        n_bil = sum(p in BILABIALS for _, _, p, _ in labels)
        png = plot(args.out / f"{rec.id}.png", x, sr, labels, f"{rec.id}: {rec.text}")
        line = f"{rec.id}: {len(x) / sr:.2f} s, {len(labels)} phones, {n_bil} bilabials -> {png}"
        if rec.id == "cmu_arctic_a0009":
            ref_lab = path.with_name(path.stem + "_phone.lab")
            if ref_lab.is_file():
                import accept_real_speech as acc

                err = boundary_errors(labels, acc.read_lab(ref_lab)) * 1000
                line += (
                    f"; vs CMU ARCTIC's labels: boundary error median {np.median(err):.0f} ms, "
                    f"90th percentile {np.percentile(err, 90):.0f} ms, max {err.max():.0f} ms"
                )
        if args.write:
            write_lab(rec.lab, labels)
            line += f"; wrote {rec.lab}"
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
