#!/usr/bin/env bash
# WebSocket echo, server-bound: the native load generator (bench/loadgen,
# evo_loadgen) against
#   evo   Evo's http.serve + ws.accept (bench/http/evo_ws_echo.lua),
#   node  Node and the `ws` package (bench/http/node_ws_echo.js; Debian's node-ws),
#   c     libuv + Evo's own sans-I/O WebSocket engine (bench/loadgen/ws_echo_server.cpp),
#         the C++ ceiling;
#   evo-batched  an experiment: Evo on the engine's internal natives, writing the echoes
#         of one read with one write (bench/http/evo_ws_echo_batched.lua); since
#         stream writes are corked (docs/performance.md), conn:send() per message
#         gets the same single write per read, and the two rows should be close.
# Each server runs pinned to one CPU and the generator to another; every
# measurement gets a fresh server and a 1 s warm-up. Rounds alternate the
# servers; the summary gives medians, messages/s and the server's CPU time per
# message (utime + stime from /proc over the run), and Evo's ratios to the
# peers with the issue's targets (CPU per message <= 1/3 of Node's, <= 2x C's).
#   bench/ws.sh [path/to/evo]             (or EVO=path/to/evo bench/ws.sh)
#   DURATION=5 seconds per run, ROUNDS=3, CONNECTIONS=50, SIZE=32 bytes,
#   SCENARIOS="p1 p16" (messages in flight per connection), SERVERS="evo node c evo-batched",
#   LOADGEN=path/to/evo_loadgen, WS_ECHO=path/to/evo_bench_ws_echo
set -euo pipefail
evo=${1:-${EVO:-./build/evo}}
here=$(cd "$(dirname "$0")" && pwd)
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-50}
size=${SIZE:-32}
scenarios=${SCENARIOS:-p1 p16}
servers=${SERVERS:-evo node c evo-batched}

# The tools are optional CMake targets of the build evo comes from: built
# here when missing.
build=$(cd "$(dirname "$evo")" && pwd)
loadgen=${LOADGEN:-$build/bench/loadgen/evo_loadgen}
ws_echo=${WS_ECHO:-$build/bench/loadgen/evo_bench_ws_echo}
if [ ! -x "$loadgen" ] || [ ! -x "$ws_echo" ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    echo "building evo_loadgen and evo_bench_ws_echo in $build"
    cmake --build "$build" --target evo_loadgen evo_bench_ws_echo >/dev/null
  fi
fi
[ -x "$loadgen" ] || { echo "ws: $loadgen not built (cmake --build build --target evo_loadgen)"; exit 0; }

read -r cpu_server cpu_client < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else "")')
if [ -n "$cpu_client" ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c "$cpu_server")
  client_pin=(taskset -c "$cpu_client")
  pinning="server on CPU $cpu_server, load generator on CPU $cpu_client"
else
  server_pin=()
  client_pin=()
  pinning="not pinned: fewer than 2 CPUs or no taskset; figures are only indicative"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-bench-ws.XXXXXX")
results=$tmp/results.jsonl
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
have() {
  case "$1" in
    evo | evo-batched) [ -x "$evo" ] ;;
    node) command -v node >/dev/null && node -e 'require("ws")' 2>/dev/null ;;
    c) [ -x "$ws_echo" ] ;;
  esac
}
server_cmd() {
  case "$1" in
    evo) cmd=("$evo" "$here/http/evo_ws_echo.lua" "$2") ;;
    evo-batched) cmd=("$evo" "$here/http/evo_ws_echo_batched.lua" "$2") ;;
    node) cmd=(node "$here/http/node_ws_echo.js" "$2") ;;
    c) cmd=("$ws_echo" "$2") ;;
  esac
}

# start NAME: a fresh server on a free port, waiting until it accepts
# connections (5 s at most). Sets server_pid and port.
start() {
  port=$(free_port)
  server_cmd "$1" "$port"
  "${server_pin[@]}" "${cmd[@]}" >"$tmp/$1.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "  $1: failed to start (see log):"
  tail -n 8 "$tmp/$1.log" | sed 's/^/  | /'
  stop
  return 1
}
stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

echo "WebSocket echo: $conns connections, $size-byte text messages, ${duration} s per run, $rounds rounds, $pinning"
echo "evo: $evo"
echo "generator: $loadgen"
avail=()
for s in $servers; do
  if have "$s"; then avail+=("$s"); else echo "  skipped: $s (not installed or not built)"; fi
done
for round in $(seq "$rounds"); do
  echo "-- round $round"
  # alternate the order from one round to the next
  order=("${avail[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#avail[@]} - 1; i >= 0; i--)); do order+=("${avail[$i]}"); done
  fi
  for s in "${order[@]}"; do
    for scenario in $scenarios; do
      depth=${scenario#p}
      start "$s" || continue
      url=ws://127.0.0.1:$port/
      "${client_pin[@]}" "$loadgen" -c "$conns" -p "$depth" -s "$size" -d 1 "$url" >/dev/null 2>&1 || true
      python3 "$here/loadgen/measure.py" run "$results" "$scenario/$s" "$server_pid" \
        "${client_pin[@]}" "$loadgen" -c "$conns" -p "$depth" -s "$size" -d "$duration" "$url"
      stop
    done
  done
done

echo
echo "== summary ($pinning; p1: one message in flight per connection, p16: sixteen)"
python3 "$here/loadgen/measure.py" summary "$results" evo node:0.333 c:2
