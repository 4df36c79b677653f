#!/usr/bin/env bash
# The native load generator against wrk, on the same server with the same
# pinning (server on one CPU, generator on the other), alternating, ROUNDS
# times: keep-alive (-c50, one request in flight) and 16-deep pipelining
# (wrk with bench/http/pipeline.lua; evo_loadgen -p16 --batch, the same
# pattern, and -p16, refilled as answers arrive). Prints each generator's
# req/s, its own CPU use and the server's, and the server's CPU per request:
# a generator that measures the server leaves itself idle time while the
# server's CPU is full.
#   bench/loadgen/vs_wrk.sh [SERVER_COMMAND...]   (the port is appended; default:
#                                                   the raw libuv server, evo_bench_raw_server)
#   DURATION=5 ROUNDS=3 BUILD=./build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-./build}
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
command -v wrk >/dev/null || { echo "vs_wrk: wrk not installed"; exit 0; }
if [ ! -x "$build/bench/loadgen/evo_loadgen" ] || [ ! -x "$build/bench/loadgen/evo_bench_raw_server" ]; then
  cmake --build "$build" --target evo_loadgen evo_bench_raw_server >/dev/null
fi
loadgen=$build/bench/loadgen/evo_loadgen
if [ $# -eq 0 ]; then set -- "$build/bench/loadgen/evo_bench_raw_server"; fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-vs-wrk.XXXXXX")
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 "$@" "$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
url=http://127.0.0.1:$port/
measure() { python3 "$here/measure.py" run "$tmp/results.jsonl" "$1" "$server_pid" "${@:2}"; }
echo "server: $* (CPU 0), generators on CPU 1, ${duration} s per run, $rounds rounds"
for round in $(seq "$rounds"); do
  echo "-- round $round"
  measure plain/wrk taskset -c 1 wrk -t1 -c50 -d"${duration}s" "$url"
  measure plain/loadgen taskset -c 1 "$loadgen" -c50 -d"$duration" "$url"
  measure pipe16/wrk taskset -c 1 wrk -t1 -c50 -d"${duration}s" -s "$here/../http/pipeline.lua" "$url" -- 16
  measure pipe16/loadgen-batch taskset -c 1 "$loadgen" -c50 -p16 --batch -d"$duration" "$url"
  measure pipe16/loadgen taskset -c 1 "$loadgen" -c50 -p16 -d"$duration" "$url"
done
echo
python3 "$here/measure.py" summary "$tmp/results.jsonl"
