#!/usr/bin/env bash
# Server instructions per request for pipelined hello world, counted by
# callgrind (steady on a shared machine, unlike req/s): the difference
# between a run of N+2000 requests and one of 2000, divided by N, so start-up
# cancels out. Give one or more evo binaries to compare them. SCRIPT picks
# the server (default bench/http/evo_hello.lua, the task path; e.g.
# SCRIPT=bench/http/evo_events_hello.lua for the event-style HttpServer).
#   bash bench/http_instructions.sh OLD_EVO NEW_EVO     N=20000 PORT=18124 SCRIPT=...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-20000}
port=${PORT:-18124}
script=${SCRIPT:-$here/http/evo_hello.lua}
command -v valgrind >/dev/null || { echo "http_instructions: valgrind not installed"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-instr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
count() {  # evo requests -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$1" "$script" "$port" >/dev/null 2>&1 &
  local pid=$!
  /usr/bin/python3 "$here/http/pipeline_client.py" "$port" "$2" >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  grep -m1 '^summary:' "$tmp/out" | awk '{print $2}'
}
for evo in "$@"; do
  small=$(count "$evo" 2000)
  big=$(count "$evo" $((n + 2000)))
  echo "$evo: $(( (big - small) / n )) instructions per request"
done
