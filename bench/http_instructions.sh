#!/usr/bin/env bash
# Server instructions per request for pipelined hello world, counted by
# callgrind (steady on a shared machine, unlike req/s): the difference
# between a run of N+2000 requests and one of 2000, divided by N, so start-up
# cancels out. Give one or more evo binaries to compare them. SCRIPT picks
# the server (default bench/http/evo_hello.lua, the task path; e.g.
# SCRIPT=bench/http/evo_events_hello.lua for the event-style HttpServer).
# MODE=keepalive counts keep-alive requests instead (50 connections, one
# request in flight on each, from the native generator bench/loadgen): what
# a request costs when every read brings one, the loop turn, the read and
# the write included. A binary not named evo or evo-* (e.g. the raw C server
# build/bench/loadgen/evo_bench_raw_server) is run as BINARY PORT.
# REQUEST picks the pipelined request (bench/http/pipeline_client.py): hello
# (default: wrk's, one short header), curl (three headers) or browser
# (Chromium's navigation, 15 headers, 581 bytes).
#   bash bench/http_instructions.sh OLD_EVO NEW_EVO     N=20000 PORT=(free) SCRIPT=... MODE=pipelined|keepalive REQUEST=hello
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-20000}
# A free port per run unless PORT is given: other runs on the machine may hold
# a fixed one (and a generator would then count a stranger's server).
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
script=${SCRIPT:-$here/http/evo_hello.lua}
mode=${MODE:-pipelined}
command -v valgrind >/dev/null || { echo "http_instructions: valgrind not installed"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-instr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
loadgen() {  # the generator next to the first binary's build, or LOADGEN
  local build
  build=$(cd "$(dirname "$1")" && pwd)
  [ "$(basename "$build")" = loadgen ] && build=$(cd "$build/../.." && pwd)
  echo "${LOADGEN:-$build/bench/loadgen/evo_loadgen}"
}
count() {  # binary requests -> total instructions
  local port=${PORT:-$(free_port)}
  local args=("$port")
  case "$(basename "$1")" in evo | evo-*) args=("$script" "$port") ;; esac
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$1" "${args[@]}" >/dev/null 2>&1 &
  local pid=$!
  if [ "$mode" = keepalive ]; then
    for _ in $(seq 200); do
      /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null && break
      sleep 0.1
    done
    "$(loadgen "$1")" -c 50 -n "$2" -d 600 --no-latency "http://127.0.0.1:$port/" >/dev/null
  else
    /usr/bin/python3 "$here/http/pipeline_client.py" "$port" "$2" "${REQUEST:-hello}" >/dev/null
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  grep -m1 '^summary:' "$tmp/out" | awk '{print $2}'
}
for evo in "$@"; do
  small=$(count "$evo" 2000)
  big=$(count "$evo" $((n + 2000)))
  echo "$evo: $(( (big - small) / n )) instructions per request ($mode${REQUEST:+, $REQUEST})"
done
