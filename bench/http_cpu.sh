#!/usr/bin/env bash
# HTTP hello world, server-bound: server CPU time per request (utime + stime
# from /proc over the run) and requests/s, the native load generator
# (bench/loadgen, evo_loadgen) against
#   evo-natural  Evo's http.serve with the handler users write: a new header table
#                per request (bench/http/evo_natural.lua),
#   evo-uring    the same under --io=uring (sockets on io_uring: one system call
#                a loop turn for every connection's reads and writes),
#   evo          the same with one shared header table (bench/http/evo_hello.lua),
#   evo-events   the event-style HttpServer with the same answer
#                (bench/http/evo_events_hello.lua; target 2: >= 0.9x evo's rate),
#   luv-naive    a naive LuaJIT + luv server doing no real parsing (bench/http/luv_naive.lua),
#   c            bare libuv in C, no parsing, one canned response per request
#                (bench/loadgen/raw_server.cpp): the ceiling.
# Scenarios: keepalive (-c50, one request in flight per connection) and
# pipelined (-p16, sixteen). Every measurement gets a fresh server and a 1 s
# warm-up; rounds alternate the servers' order; the summary gives medians and
# evo-natural's ratios with issue 13's targets: pipelined throughput >= 1.4x
# luv-naive's, i.e. CPU per request <= 0.714x; keep-alive CPU per request
# <= 1.2x C's. (bench/http.sh has the wider table with Node and nginx.)
# Each line gives the kernel's part of the server's CPU too: with pipelining
# most of what is left is the kernel's TCP work, the same for every server
# on epoll (the c row is that floor).
#   bench/http_cpu.sh [path/to/evo]        (or EVO=path/to/evo bench/http_cpu.sh)
#   DURATION=5 seconds per run, ROUNDS=3, CONNECTIONS=50, SCENARIOS="keepalive pipelined",
#   SERVERS="evo-natural evo-uring evo evo-events luv-naive c", LOADGEN=path/to/evo_loadgen, LUAJIT=luajit,
#   REQUEST=browser: every request with a browser's headers (Chromium's 13
#   after Host, bench/http/browser_headers.txt) instead of Host alone,
#   BASE=path/to/another/evo adds the server base-natural (evo_natural.lua on
#   that binary) to SERVERS: before/after in the same rounds (unless SERVERS
#   names base-natural or base-uring, the same under --io=uring, itself).
set -euo pipefail
evo=${1:-${EVO:-./build/evo}}
here=$(cd "$(dirname "$0")" && pwd)
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-50}
scenarios=${SCENARIOS:-keepalive pipelined}
servers=${SERVERS:-evo-natural evo-uring evo evo-events luv-naive c}
base=${BASE:-}
[ -n "$base" ] && [[ " $servers " != *" base-"* ]] && servers="base-natural $servers"
luajit=${LUAJIT:-luajit}
request_headers=()
if [ "${REQUEST:-hello}" = browser ]; then
  while IFS= read -r line; do
    [ -n "$line" ] && request_headers+=(-H "$line")
  done <"$here/http/browser_headers.txt"
fi

build=$(cd "$(dirname "$evo")" && pwd)
loadgen=${LOADGEN:-$build/bench/loadgen/evo_loadgen}
raw=${RAW_SERVER:-$build/bench/loadgen/evo_bench_raw_server}
if [ ! -x "$loadgen" ] || [ ! -x "$raw" ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    echo "building evo_loadgen and evo_bench_raw_server in $build"
    cmake --build "$build" --target evo_loadgen evo_bench_raw_server >/dev/null
  fi
fi
[ -x "$loadgen" ] || { echo "http_cpu: $loadgen not built (cmake --build build --target evo_loadgen)"; exit 0; }

source "$here/lib/rounds.sh"
have() {
  case "$1" in
    evo | evo-natural | evo-events | evo-uring) [ -x "$evo" ] ;;
    base-natural | base-uring) [ -x "$base" ] ;;
    luv-naive) command -v "$luajit" >/dev/null && "$luajit" -e 'require("luv")' 2>/dev/null ;;
    c) [ -x "$raw" ] ;;
  esac
}
server_cmd() {
  case "$1" in
    evo-natural) cmd=("$evo" "$here/http/evo_natural.lua" "$2") ;;
    evo-uring) cmd=("$evo" --io=uring "$here/http/evo_natural.lua" "$2") ;;
    base-natural) cmd=("$base" "$here/http/evo_natural.lua" "$2") ;;
    base-uring) cmd=("$base" --io=uring "$here/http/evo_natural.lua" "$2") ;;
    evo) cmd=("$evo" "$here/http/evo_hello.lua" "$2") ;;
    evo-events) cmd=("$evo" "$here/http/evo_events_hello.lua" "$2") ;;
    luv-naive) cmd=("$luajit" "$here/http/luv_naive.lua" "$2") ;;
    c) cmd=("$raw" "$2") ;;
  esac
}

# one_server NAME: each scenario against a fresh server, after a 1 s warm-up.
one_server() {
  local scenario opts url
  for scenario in $scenarios; do
    case "$scenario" in
      keepalive) opts=(-c "$conns") ;;
      pipelined) opts=(-c "$conns" -p 16 --batch) ;;
    esac
    opts+=("${request_headers[@]}")
    start "$1" || continue
    url=http://127.0.0.1:$port/
    "${client_pin[@]}" "$loadgen" "${opts[@]}" -d 1 "$url" >/dev/null 2>&1 || true
    measure "$scenario/$1" "$loadgen" "${opts[@]}" -d "$duration" "$url"
    stop
  done
}

echo "HTTP hello: $conns connections, ${duration} s per run, $rounds rounds, $pinning, request ${REQUEST:-hello}"
echo "evo: $evo"
echo "generator: $loadgen"
run_rounds one_server

echo
echo "== summary ($pinning; keepalive: one request in flight per connection, pipelined: sixteen, sent together)"
echo "   targets: pipelined CPU per request <= 0.714x luv-naive's (1.4x its rate); keepalive <= 1.2x c's"
python3 "$here/loadgen/measure.py" summary "$results" evo-natural pipelined/luv-naive:0.714 keepalive/c:1.2
echo "   the same handler under --io=uring"
python3 "$here/loadgen/measure.py" ratios "$results" evo-uring pipelined/luv-naive:0.714 keepalive/c:1.2
echo "   target: the event-style HttpServer >= 0.9x the task path (same handler), CPU per request <= 1.111x evo's"
python3 "$here/loadgen/measure.py" ratios "$results" evo-events evo:1.111
