#!/usr/bin/env bash
# The benchmark in one command, from a clean clone:
#
#   bash bench/run.sh            # full run: direct, gateway, nginx (~10 min)
#   bash bench/run.sh --litellm  # plus LiteLLM (installed once into ~/.cache/gym-gateway)
#   bash bench/run.sh --peers    # plus vllm-router 0.1.17 and SMG 1.13 (installed once)
#   bash bench/run.sh --quick    # smoke run (~1 min)
#
# Creates .venv with the project when it is missing; nginx is installed with apt-get when
# missing (nginx-light). Results: bench/results/. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import gateway, aiohttp, uvloop" 2>/dev/null; then
  echo "== creating .venv with the project (pip install -e .)"
  python3 -m venv .venv
  .venv/bin/pip install -q -e .
fi
exec .venv/bin/python bench/run.py "$@"
