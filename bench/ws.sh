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

source "$here/lib/rounds.sh"
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

# one_server NAME: each scenario against a fresh server, after a 1 s warm-up.
one_server() {
  local scenario depth url
  for scenario in $scenarios; do
    depth=${scenario#p}
    start "$1" || continue
    url=ws://127.0.0.1:$port/
    "${client_pin[@]}" "$loadgen" -c "$conns" -p "$depth" -s "$size" -d 1 "$url" >/dev/null 2>&1 || true
    measure "$scenario/$1" "$loadgen" -c "$conns" -p "$depth" -s "$size" -d "$duration" "$url"
    stop
  done
}

echo "WebSocket echo: $conns connections, $size-byte text messages, ${duration} s per run, $rounds rounds, $pinning"
echo "evo: $evo"
echo "generator: $loadgen"
run_rounds one_server

echo
echo "== summary ($pinning; p1: one message in flight per connection, p16: sixteen)"
python3 "$here/loadgen/measure.py" summary "$results" evo node:0.333 c:2
