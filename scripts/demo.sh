#!/usr/bin/env bash
# The main job on the built-in corpus: set up .venv, then synthesise the corpus -> prepare -> train
# Transformer+GAN -> evaluate on the test split -> plots -> a result video with sound.
# Results land in runs/demo (override: scripts/demo.sh --out DIR; extra flags go to `vocagan pipeline`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/vocagan pipeline --model transformer_gan --config configs/demo.yaml --out runs/demo "$@"
