# Shared by tests/vllm/vllm_server.sh and tests/sglang/sglang_server.sh: start an engine in
# its own process group, wait for it with stall detection and retries, stop the whole group,
# report status. Source it after defining what differs between engines:
#
#   ENGINE          name in messages ("vLLM")
#   TAG             log prefix and file prefix under $CACHE ("vllm" -> vllm-PORT.log/.pid)
#   DEFAULT_PORT    CACHE  VENV  MODEL_NAME
#   HEALTH_TIMEOUT  s one start may take before it counts as failed
#   STALL_TIMEOUT   s without log growth before a start counts as stalled
#   START_ATTEMPTS  starts tried when one stalls or times out
#   healthy PORT    exit 0 once the server answers
#   do_install      venv + model into $CACHE (idempotent)
#   engine_command PORT   set the array ENGINE_CMD: the command that serves on PORT
# Optional: log_milestones (stdin: new log lines; stdout: those worth showing as they come).
#
# Then call `engine_main "$@"`.

PROGRESS_EVERY=15

log() { printf '[%s_server] %s\n' "$TAG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pidfile() { echo "$CACHE/$TAG-$1.pid"; }
logfile() { echo "$CACHE/$TAG-$1.log"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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

# One start: 0 healthy, 1 the engine exited (a retry would fail the same way), 2 stalled
# (no log growth for STALL_TIMEOUT s) or over HEALTH_TIMEOUT. Prints progress as it waits.
launch_once() {
  local port=$1 pf lf t0=$SECONDS
  pf="$(pidfile "$port")"
  lf="$(logfile "$port")"
  log "starting $ENGINE on 127.0.0.1:$port (log $lf)"
  rm -f "$pf"
  : >"$lf"
  engine_command "$port"
  # New session => own process group, so stop can signal the whole tree.
  # The inner shell writes its own pid, then execs the engine under that pid.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "${ENGINE_CMD[@]}" </dev/null >>"$lf" 2>&1 &
  local i pid
  for i in $(seq 50); do [ -s "$pf" ] && break; sleep 0.1; done
  pid="$(read_pid "$port")"
  [ -n "$pid" ] || { log "could not read pid file $pf"; return 1; }

  local size=0 grown_at=$SECONDS said_at=$SECONDS now_size shown=0 lines
  until healthy "$port"; do
    if ! alive "$pid"; then
      log "$ENGINE (pid $pid) exited during start-up; last log lines:"
      tail -n 60 "$lf" >&2 || true
      return 1
    fi
    now_size=$(stat -c %s "$lf" 2>/dev/null || echo 0)
    if [ "$now_size" != "$size" ]; then
      size=$now_size
      grown_at=$SECONDS
      if declare -F log_milestones >/dev/null; then
        lines=$(wc -l <"$lf")
        sed -n "$((shown + 1)),${lines}p" "$lf" | log_milestones | cut -c1-160 \
          | sed "s/^/[${TAG}_server] +$((SECONDS - t0))s log: /" >&2 || true
        shown=$lines
      fi
    fi
    if [ $((SECONDS - grown_at)) -ge "$STALL_TIMEOUT" ]; then
      log "no progress in the log for $STALL_TIMEOUT s (pid $pid); last log lines:"
      tail -n 20 "$lf" >&2 || true
      return 2
    fi
    if [ $((SECONDS - t0)) -ge "$HEALTH_TIMEOUT" ]; then
      log "$ENGINE did not become healthy within $HEALTH_TIMEOUT s; last log lines:"
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

do_start() {
  local port=${1:-$DEFAULT_PORT} t0=$SECONDS
  local pf lf pid
  pf="$(pidfile "$port")"
  lf="$(logfile "$port")"

  pid="$(read_pid "$port")"
  if port_open "$port"; then
    if healthy "$port" && serves_our_model "$port"; then
      if alive "$pid"; then
        log "reusing $ENGINE already running on 127.0.0.1:$port (pid $pid)"
      else
        log "reusing a server on 127.0.0.1:$port that serves '$MODEL_NAME' (not started by this script: no live pid file $pf)"
      fi
      return 0
    fi
    die "port $port is already in use by something that is not a healthy '$MODEL_NAME' $ENGINE server; stop it or choose another port"
  fi
  if alive "$pid"; then
    log "stale $ENGINE process $pid for port $port (port closed); stopping it first"
    do_stop "$port"
  fi

  do_install

  local attempt outcome
  for attempt in $(seq "$START_ATTEMPTS"); do
    launch_once "$port" && outcome=0 || outcome=$?
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
  log "$ENGINE ready on http://127.0.0.1:$port/v1 (model '$MODEL_NAME', pid $pid) in $((SECONDS - t0)) s"
}

do_stop() {
  local port=${1:-$DEFAULT_PORT}
  local pf pid pids
  pf="$(pidfile "$port")"
  pid="$(read_pid "$port")"
  if alive "$pid"; then
    pids="$pid $(descendants "$pid" | tr '\n' ' ')"
    log "stopping $ENGINE on port $port (pids $pids)"
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
    log "no live $ENGINE pid recorded for port $port"
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
  local port=${1:-$DEFAULT_PORT} pid
  pid="$(read_pid "$port")"
  if alive "$pid" && healthy "$port"; then
    echo "running: pid $pid, http://127.0.0.1:$port/v1"
  elif port_open "$port"; then
    echo "port $port in use (pid file: ${pid:-none})"; return 1
  else
    echo "not running"; return 1
  fi
}

engine_main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    install) do_install ;;
    start) do_start "$@" ;;
    stop) do_stop "$@" ;;
    status) do_status "$@" ;;
    *) echo "usage: $0 install | start [PORT] | stop [PORT] | status [PORT]" >&2; exit 2 ;;
  esac
}
