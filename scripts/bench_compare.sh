#!/usr/bin/env bash
# The benchmark report (README, "Benchmark"): set up .venv, write the built-in benchmark corpus to
# data/bench (kept when it is already there from the current synthesiser), then compare the four
# models over 5 seeds plus the baselines under configs/bench.yaml, two runs at a time (one torch
# thread each), into runs/bench (report.md, compare.json, charts).
#   scripts/bench_compare.sh                  # defaults
#   scripts/bench_compare.sh --out DIR --seeds 3 --jobs 1 [other `vocagan compare` flags]
# Environment: BENCH_DATA (default data/bench) for the corpus folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
data="${BENCH_DATA:-data/bench}"
.venv/bin/vocagan synth --scale bench --reuse --out "$data"
exec .venv/bin/vocagan compare --config configs/bench.yaml --data "$data" --out runs/bench --seeds 5 --jobs 2 "$@"
