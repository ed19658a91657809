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
