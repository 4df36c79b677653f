#!/usr/bin/env bash
# Server instructions per WebSocket echo, counted by callgrind (steady on a
# shared machine, unlike messages/s): the difference between a run of N+2000
# messages and one of 2000, divided by N, so start-up and the handshakes
# cancel out. Servers: Evo (bench/http/evo_ws_echo.lua) for each evo binary
# given, and the C++ ceiling (libuv + ws_protocol, bench/loadgen). The
# generator is evo_loadgen: 50 connections, DEPTH messages in flight each.
#   bash bench/ws_instructions.sh [EVO...]      N=20000 DEPTH=1 SIZE=32 BUILD=./build
#   KEEP=dir keeps the callgrind files (callgrind_annotate dir/evo-1.big)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-20000}
depth=${DEPTH:-1}
size=${SIZE:-32}
build=${BUILD:-./build}
command -v valgrind >/dev/null || { echo "ws_instructions: valgrind not installed"; exit 0; }
if [ ! -x "$build/bench/loadgen/evo_loadgen" ] || [ ! -x "$build/bench/loadgen/evo_bench_ws_echo" ]; then
  cmake --build "$build" --target evo_loadgen evo_bench_ws_echo >/dev/null
fi
loadgen=$build/bench/loadgen/evo_loadgen
tmp=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/evo-ws-instr.XXXXXX")}
mkdir -p "$tmp"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
count() {  # name messages server-command... -> total instructions
  local name=$1 messages=$2 port pid
  shift 2
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$tmp/$name" "$@" "$port" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null || { echo "ws_instructions: $name: the server under valgrind exited" >&2; exit 1; }
  # The generator reconnects to a server that went away, as wrk does: one
  # that dies under valgrind mid-run ends the run here instead.
  "$loadgen" -c 50 -p "$depth" -s "$size" -n "$messages" -d 600 --no-latency "ws://127.0.0.1:$port/" >"$tmp/$name.loadgen" &
  local gen=$!
  while kill -0 "$gen" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { kill "$gen" 2>/dev/null || true; echo "ws_instructions: $name: the server under valgrind exited mid-run" >&2; exit 1; }
    sleep 0.2
  done
  wait "$gen" || true
  grep -q " errors=0 " "$tmp/$name.loadgen" || { echo "errors: $(tail -n 2 "$tmp/$name.loadgen")" >&2; }
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  grep -m1 '^summary:' "$tmp/$name" | awk '{print $2}'
}
per() {  # name server-command...
  local name=$1 small big
  shift
  small=$(count "$name.small" 2000 "$@")
  big=$(count "$name.big" $((n + 2000)) "$@")
  echo "  $name: $(((big - small) / n)) instructions per message"
}
echo "WebSocket echo, $size-byte text, 50 connections x $depth in flight, N=$n (callgrind)"
[ -n "${NO_C:-}" ] || per c "$build/bench/loadgen/evo_bench_ws_echo"
i=0
for evo in "${@:-$build/evo}"; do
  i=$((i + 1))
  per "evo-$i" "$evo" "$here/http/evo_ws_echo.lua"
done
