# bench/scripts/broker.sh: sourced by the A/B scripts here. Starts and
# stops one sluice broker alone on CPU 1, as BENCHMARKING.md measures it.
#
#   start_broker BINARY DATA_DIR LOG [FLUSH]
#       `serve --cores 1` pinned to CPU 1 (SLUICE_LOG__FLUSH=FLUSH when
#       given), on two loopback ports free a moment before (both held while
#       picked, so they differ); returns once the Kafka port accepts. Sets
#       PID, PORT (Kafka) and ADMIN_PORT.
#   stop_broker    SIGTERM, then waits for the exit; sets STOPPED (seconds).
#   ticks PID      user+system clock ticks of a process, all its threads.
#   settle         waits until the broker used under 3% of a core over a
#                  second (at most 300 s).
#   cleanup_broker stops a broker still running (for an EXIT trap).
PID=""
free_ports() { python3 -c 'import socket; s=[socket.socket() for _ in range(2)]; [x.bind(("127.0.0.1",0)) for x in s]; print(*[x.getsockname()[1] for x in s])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
start_broker() {
  local bin=$1 data=$2 log=$3 flush=${4:-}
  read -r PORT ADMIN_PORT < <(free_ports)
  if [ -n "$flush" ]; then
    SLUICE_LOG__FLUSH=$flush taskset -c 1 "$bin" serve --data-dir "$data" \
      --kafka-addr "127.0.0.1:$PORT" --admin-addr "127.0.0.1:$ADMIN_PORT" --cores 1 > "$log" 2>&1 &
  else
    taskset -c 1 "$bin" serve --data-dir "$data" \
      --kafka-addr "127.0.0.1:$PORT" --admin-addr "127.0.0.1:$ADMIN_PORT" --cores 1 > "$log" 2>&1 &
  fi
  PID=$!
  for _ in $(seq 300); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
}
stop_broker() {
  local t0
  t0=$(date +%s.%N); kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  STOPPED=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
}
settle() {
  local t
  for _ in $(seq 300); do
    t=$(ticks "$PID"); sleep 1
    [ $(( $(ticks "$PID") - t )) -le 3 ] && break
  done
}
cleanup_broker() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
