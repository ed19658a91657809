"""Dependencies are what the package uses: each one pyproject.toml declares is imported by vocagan/, and
requirements.txt pins every one of them (so an unused package, like safetensors once, cannot linger)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
IMPORT_NAME = {"pyyaml": "yaml", "pillow": "PIL", "imageio-ffmpeg": "imageio_ffmpeg"}


def _declared() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]


def _imported() -> set[str]:
    names = set()
    for path in (REPO / "vocagan").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_declared_dependency_is_used():
    unused = [d for d in _declared() if IMPORT_NAME.get(d, d) not in _imported()]
    assert not unused, f"declared in pyproject.toml but never imported by vocagan/: {unused}"


def test_every_declared_dependency_is_pinned():
    pins = {
        line.split("==")[0].strip().lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    assert not set(_declared()) - pins, f"not pinned in requirements.txt: {set(_declared()) - pins}"


def test_optional_extras_are_pinned_in_their_requirements_files():
    """`pip install vocagan[encoders]` / `[phonetic]`: the same exact versions as the pinned trees that
    scripts/setup.sh --test installs (requirements-encoders.txt, requirements-phonetic.txt)."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("encoders", "phonetic"):
        pins = {
            line.strip().lower()
            for line in (REPO / f"requirements-{extra}.txt").read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")
        }
        assert {d.lower() for d in extras[extra]} <= pins, f"vocagan[{extra}] and requirements-{extra}.txt differ"
        used = _imported()
        assert all(re.split(r"[=<>]", d)[0] in used for d in extras[extra]), f"vocagan[{extra}] is not imported"
