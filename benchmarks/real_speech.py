"""The labelled real recordings of the acceptance check: where each one comes from, how to get it,
and its phone labels (ours, made by forced alignment; tests/data/real_speech/).

    from real_speech import recordings, audio_path
    for rec in recordings():                  # tests/data/real_speech/recordings.json, in order
        wav = audio_path(rec)                 # fetched (and checked against its sha256) on first use
        labels = rec.lab                      # tests/data/real_speech/<id>_phone.lab

Sources, all with a licence that allows this use (recordings.json names each one):
- `shared`: ../shared/data/audio (or $VOCAGAN_SHARED_DATA/audio): never copied into the project;
- `pypi:pocketsphinx==5.1.1`: members of the pocketsphinx source distribution on PyPI (its test
  data: LibriVox public-domain readings, CMU's own recordings), fetched once with
  `pip download --no-binary :all:` into $VOCAGAN_CACHE/real_speech (default ~/.cache/vocagan).

Raw 16-bit PCM members (`.raw`, 16 kHz mono, as in CMU's test data) are written out as .wav.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LABELS = REPO / "tests" / "data" / "real_speech"
SHARED = Path(os.environ.get("VOCAGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass(frozen=True)
class Recording:
    id: str
    source: str  # "shared" or "pypi:<name>==<version>"
    member: str  # path inside the source
    sha256: str  # of the audio as we use it (the .wav; for .raw members, of the raw bytes)
    text: str  # the transcript we aligned (CMU dictionary words)
    transcript: str  # where the transcript comes from
    licence: str
    speaker: str

    @property
    def lab(self) -> Path:
        return LABELS / f"{self.id}_phone.lab"


def recordings() -> list[Recording]:
    data = json.loads((LABELS / "recordings.json").read_text(encoding="utf-8"))
    return [Recording(**{k: r[k] for k in Recording.__dataclass_fields__}) for r in data["recordings"]]


def cache_root() -> Path:
    return Path(os.environ.get("VOCAGAN_CACHE") or Path.home() / ".cache" / "vocagan") / "real_speech"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sdist(spec: str) -> Path:
    """The source distribution `name==version` from PyPI (pip download), cached."""
    from vocagan.errors import VocaganError

    name, version = spec.split("==")
    folder = cache_root() / "sdist"
    found = sorted(folder.glob(f"{name}-{version}.tar.gz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    # pip prepares the sdist's metadata on the way (its build requirements, in an isolated environment)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        str(folder),
        spec,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob(f"{name}-{version}.tar.gz"))
    if done.returncode != 0 or not found:
        raise VocaganError(
            f"could not download the source distribution {spec} from PyPI "
            f"({(done.stderr or done.stdout).strip().splitlines()[-1:] or ['no output']})",
            folder,
        )
    return found[0]


def audio_path(rec: Recording) -> Path:
    """A .wav of the recording (fetched and verified on first use); VocaganError naming what is missing."""
    from vocagan.errors import VocaganError

    if rec.source == "shared":
        path = SHARED / rec.member
        if not path.is_file():
            raise VocaganError(f"recording {rec.id} lives in the shared reference files, which are absent", path)
    elif rec.source.startswith("pypi:"):
        spec = rec.source.split(":", 1)[1]
        out = cache_root() / spec.replace("==", "-") / Path(rec.member).with_suffix(".wav").name
        if not out.is_file():
            with tarfile.open(_sdist(spec)) as tar:
                name = f"{spec.replace('==', '-')}/{rec.member}"
                try:
                    data = tar.extractfile(name).read()
                except (KeyError, AttributeError):
                    raise VocaganError(f"{name} is not in the source distribution of {spec}") from None
            out.parent.mkdir(parents=True, exist_ok=True)
            if hashlib.sha256(data).hexdigest() != rec.sha256:
                raise VocaganError(f"{rec.member} of {spec} does not have the sha256 recordings.json records")
            tmp = out.with_suffix(".tmp.wav")
            if rec.member.endswith(".raw"):
                import numpy as np

                from vocagan.formats.audio import save_wav

                save_wav(tmp, np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 16000)
            else:
                tmp.write_bytes(data)
            tmp.replace(out)
        return out
    else:
        raise VocaganError(f"recording {rec.id}: unknown source '{rec.source}'", LABELS / "recordings.json")
    if _sha256(path) != rec.sha256:
        raise VocaganError(f"recording {rec.id} does not have the sha256 recordings.json records", path)
    return path


def available() -> list[tuple[Recording, Path | None, str]]:
    """Every recording with its audio path, or None and the reason it is unavailable."""
    from vocagan.errors import VocaganError

    out = []
    for rec in recordings():
        try:
            out.append((rec, audio_path(rec), ""))
        except VocaganError as e:
            out.append((rec, None, str(e)))
    return out
