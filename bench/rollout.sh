#!/usr/bin/env bash
# The rollout routing benchmark in one command, from a clean clone:
#
#   bash bench/rollout.sh [--replicas N] [--prompts P] [--group G] [--turns T] [--seed S]
#                         [--only NAME...] [--stream] [--kv-tokens K] [--speed X]
#
# Creates .venv with the project when it is missing, and installs the peer routers from PyPI
# (vllm-router 0.1.17, smg 1.13.0) once into their own venv,
# ${GYM_GATEWAY_CACHE:-~/.cache/gym-gateway}/bench-peers/venv. Results:
# bench/results/rollout-latest.{json,md,html}. See docs/performance.md ("Rollout routing").
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import gateway, aiohttp, uvloop" 2>/dev/null; then
  echo "== creating .venv with the project (pip install -e .)"
  python3 -m venv .venv
  .venv/bin/pip install -q -e .
fi

PEERS="${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}/bench-peers"
if [ ! -x "$PEERS/venv/bin/vllm-router" ] || [ ! -x "$PEERS/venv/bin/smg" ]; then
  echo "== installing vllm-router 0.1.17 and smg 1.13.0 into $PEERS/venv"
  mkdir -p "$PEERS"
  python3 -m venv "$PEERS/venv"
  "$PEERS/venv/bin/pip" install -q "vllm-router==0.1.17" "smg==1.13.0" \
    || echo "== peer install failed: the run goes on without them (the report says so)"
fi
exec .venv/bin/python bench/rollout.py "$@"
