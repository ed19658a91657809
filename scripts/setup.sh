#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the pinned requirements.
# Usage: scripts/setup.sh [--test]     (--test also installs the test requirements)
# Reinstalls only when a requirements file changed (a stamp file records their hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)" >&2
    "$PY" -m venv .venv
fi
files="requirements.txt pyproject.toml"
# --test: the optional extras too (speech encoders, PocketSphinx), so their tests run in CI
[ $want_test = 1 ] && files="$files requirements-test.txt requirements-encoders.txt requirements-phonetic.txt"
stamp=.venv/.vocagan-stamp-$want_test
hash=$(cat $files | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
    echo "[setup] installing pinned requirements into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    [ $want_test = 1 ] && .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt \
        -r requirements-encoders.txt -r requirements-phonetic.txt
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$hash" > "$stamp"
fi
# The web-viewer test drives headless Chromium (Debian package); install it once when absent.
if [ $want_test = 1 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian chromium for the viewer test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "[setup] could not install chromium; the viewer test will be skipped" >&2
fi
# The glTF tests check exports with the Khronos glTF-Validator (npm, pinned) in .venv/node; skipped without npm.
if [ $want_test = 1 ] && [ ! -d .venv/node/node_modules/gltf-validator ] && command -v npm >/dev/null 2>&1; then
    echo "[setup] installing the Khronos glTF-Validator (npm gltf-validator@2.0.0-dev.3.10) into .venv/node" >&2
    npm install --silent --no-save --prefix .venv/node gltf-validator@2.0.0-dev.3.10 >/dev/null 2>&1 \
        || echo "[setup] could not install gltf-validator; the validator tests will be skipped" >&2
fi
# The corpus's optional Festival voices (vocagan synth --voices festival) are Debian packages: --test
# installs them once when absent, so their tests run (they skip without them).
if [ $want_test = 1 ] && ! command -v festival >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
        && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian festival voices for the corpus-voice tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq festival festvox-kallpc16k \
        festvox-kdlpc16k festvox-us-slt-hts >/dev/null) \
        || echo "[setup] could not install festival; the Festival-voice tests will be skipped" >&2
fi
# The torch we run must be the pinned CPU build (an unpinned install would pull a CUDA build).
.venv/bin/python - <<'PY'
import sys, torch
if not torch.__version__.startswith("2.13.0"):
    sys.exit(f"[setup] expected torch 2.13.0, found {torch.__version__}")
PY
