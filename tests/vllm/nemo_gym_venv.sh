#!/usr/bin/env bash
# A Python 3.13 venv with nemo-gym, for the real-client test (tests/vllm/test_rl_nemo_gym.py).
#
#   bash tests/vllm/nemo_gym_venv.sh install   # idempotent; prints the venv's python
#   bash tests/vllm/nemo_gym_venv.sh python    # prints the venv's python, or exits 1
#
# nemo-gym 0.5+ declares Requires-Python >=3.13.14; no such interpreter is on the image, so
# it installs on a CPython 3.13.x (pyenv's 3.13.0 here) with --ignore-requires-python
# (nemo_gym.md §e.1).
# About 4 minutes and 1.4 GB the first time (ray, mlflow, wandb, datasets come along).
# Cache: ${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}/nemo-gym-venv.
set -euo pipefail

CACHE="${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}"
VENV="$CACHE/nemo-gym-venv"
VERSION="${GYM_GATEWAY_NEMO_GYM_VERSION:-0.7.0}"
MARKER="$VENV/.gym-gateway-install-done"

log() { printf '[nemo_gym_venv] %s\n' "$*" >&2; }

# A Python 3.13, found by *running* each candidate: `command -v python3.13` may find a pyenv
# shim whose selected version is another one (it then fails when run). Candidates: an explicit
# GYM_GATEWAY_PYTHON313, whatever python3.13 PATH gives, pyenv's installed 3.13.x (its root
# from PYENV_ROOT, `pyenv root` or ~/.pyenv), the system's, and one uv installed before.
is_313() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }

candidates() {
  [ -n "${GYM_GATEWAY_PYTHON313:-}" ] && echo "$GYM_GATEWAY_PYTHON313"
  command -v python3.13 2>/dev/null || true
  local root
  for root in "${PYENV_ROOT:-}" "$(pyenv root 2>/dev/null || true)" "$HOME/.pyenv"; do
    [ -n "$root" ] && ls -d "$root"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV || true
  done
  ls -d /usr/bin/python3.13 /usr/local/bin/python3.13 2>/dev/null || true
  ls -d "$CACHE"/python313/*/bin/python3.13 2>/dev/null || true
}

pick_python() {
  local p
  while read -r p; do
    [ -n "$p" ] || continue
    if is_313 "$p"; then echo "$p"; return 0; fi
    log "skipping $p: it does not run as Python 3.13"
  done < <(candidates)
  return 1
}

# None on the machine: install one. uv fetches a standalone CPython (needs access to its
# download host); Debian's python3.13 package where the release has one.
install_python() {
  log "no Python 3.13 here; trying to install one"
  if python3 -m venv "$CACHE/uv-venv" >/dev/null 2>&1 \
    && "$CACHE/uv-venv/bin/pip" install -q --disable-pip-version-check uv >&2 \
    && "$CACHE/uv-venv/bin/uv" python install 3.13 --install-dir "$CACHE/python313" >&2; then
    pick_python && return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && apt-cache show python3.13-venv >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.13 python3.13-venv >&2 \
      && pick_python && return 0
  fi
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
      py="$(pick_python)" || py="$(install_python)" || {
        log "no Python 3.13 found (PATH, pyenv versions, /usr/bin) and none could be installed"
        exit 2
      }
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
