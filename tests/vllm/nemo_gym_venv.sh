#!/usr/bin/env bash
# A Python 3.13 venv with nemo-gym, for the real-client test (tests/vllm/test_rl_nemo_gym.py).
#
#   bash tests/vllm/nemo_gym_venv.sh install   # idempotent; prints the venv's python
#   bash tests/vllm/nemo_gym_venv.sh python    # prints the venv's python, or exits 1
#
# nemo-gym 0.5+ declares Requires-Python >=3.13.14; no such interpreter is on the image, so
# it installs on pyenv's CPython 3.13.0 with --ignore-requires-python (nemo_gym.md §e.1).
# About 4 minutes and 1.4 GB the first time (ray, mlflow, wandb, datasets come along).
# Cache: ${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}/nemo-gym-venv.
set -euo pipefail

CACHE="${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}"
VENV="$CACHE/nemo-gym-venv"
VERSION="${GYM_GATEWAY_NEMO_GYM_VERSION:-0.7.0}"
MARKER="$VENV/.gym-gateway-install-done"

log() { printf '[nemo_gym_venv] %s\n' "$*" >&2; }

pick_python() {
  local p
  for p in "${GYM_GATEWAY_PYTHON313:-}" python3.13 "$HOME/.pyenv/versions/3.13.0/bin/python3.13"; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return 0; fi
  done
  return 1
}

installed() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "nemo-gym==$VERSION" ] && [ -x "$VENV/bin/python" ]; }

case "${1:-install}" in
  python)
    installed && { echo "$VENV/bin/python"; exit 0; }
    exit 1
    ;;
  install)
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.nemo-gym-install.lock"
    flock 9
    if ! installed; then
      py="$(pick_python)" || { log "no Python 3.13 found (python3.13 or pyenv 3.13.0)"; exit 2; }
      log "installing nemo-gym==$VERSION into $VENV with $py"
      t0=$SECONDS
      rm -rf "$VENV"
      "$py" -m venv "$VENV"
      "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        --ignore-requires-python "nemo-gym==$VERSION" >&2
      echo "nemo-gym==$VERSION" > "$MARKER"
      log "installed in $((SECONDS - t0)) s"
    fi
    echo "$VENV/bin/python"
    ;;
  *)
    log "usage: $0 install|python"; exit 64
    ;;
esac
