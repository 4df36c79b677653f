#!/usr/bin/env bash
# The Io implementations side by side (issue 14, docs/io.md): the same evo
# binary under --io=evented and --io=uring, in one run.
#   files: 100,000 fs.readFile of a 4 KiB file, 64 in flight (bench/io_files.lua),
#          evo pinned to core 0 (its thread pool too); reads/s and CPU seconds
#          per 100k reads (all threads)
#   hello: bench/http/evo_hello.lua's server under wrk -t1 -c50, keep-alive and 16-deep
#          pipelined (bench/http/pipeline.lua); the server pinned to core 0, wrk to
#          core 1; req/s and the server's CPU microseconds per request
#          (utime+stime from /proc/PID/stat), median of ROUNDS runs
#   10k:   bench/http/io_server.lua's hello under evo_loadgen -c 10000 -R 10000: 10,000
#          keep-alive connections each making a request a second, spread evenly over
#          the second (open loop), counted after a warm-up that opens them; server on
#          core 0, generator on core 1; req/s achieved, server CPU us/request, p99
#          latency, server RSS with the connections open. Both processes hold 10,000
#          descriptors: the script raises `ulimit -n` to the hard limit (needs 10,100+)
#   large: a 100 MB file served by http.static, downloaded DOWNLOADS (20) times over 4
#          keep-alive connections by evo_loadgen (it reads the bodies, checks their
#          framing, discards them), after one warm-up download; MB/s and server CPU
#          seconds per GB
#   The hello and 10k rows also run uring with the ring as the outer waiter
#   (uring-ring: EVO_URING_WAIT=ring, the default) and with libuv's epoll as the
#   outer waiter (uring-epoll: EVO_URING_WAIT=epoll); MODES="evented uring" leaves
#   them out, MODES="evented uring-ring-libuv uring-ring" compares the ring wait with
#   and without its turns outside libuv's loop (EVO_URING_LOOP=libuv).
#   bash bench/io.sh [evo]          ROUNDS=3 DURATION=3 (SKIP_FILES=1 SKIP_HELLO=1 SKIP_10K=1
#                                   SKIP_LARGE=1 leave rows out) CONNS=10000 DURATION_10K=5 DOWNLOADS=20
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evo=${1:-$here/../build/evo}
rounds=${ROUNDS:-3}
duration=${DURATION:-3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-bench-io.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
modes=${MODES:-evented uring-epoll uring-ring}
# evo_in MODE ARGS... &: evo under that Io on core 0 (uring-WAIT: --io=uring,
# EVO_URING_WAIT=WAIT; uring-WAIT-LOOP: EVO_URING_LOOP=LOOP too, e.g. uring-ring-libuv,
# the ring wait giving every wait a turn of libuv's loop), in place of the background
# subshell (exec), so $! is evo's pid
evo_in() {
  local mode=$1; shift
  case $mode in
    uring-*-*) local w=${mode#uring-}
      EVO_URING_WAIT=${w%%-*} EVO_URING_LOOP=${w#*-} exec taskset -c 0 "$evo" --io=uring "$@" ;;
    uring-*) EVO_URING_WAIT=${mode#uring-} exec taskset -c 0 "$evo" --io=uring "$@" ;;
    *) exec taskset -c 0 "$evo" --io="$mode" "$@" ;;
  esac
}

if [ -z "${SKIP_FILES:-}" ]; then
echo "== files: 100000 x 4 KiB fs.readFile, 64 in flight, taskset -c 0, median of $rounds"
declare -A rps cpu
for mode in evented uring; do
  for _ in $(seq "$rounds"); do
    taskset -c 0 "$evo" --io=$mode "$here/io_files.lua" 100000 64
  done >"$tmp/files-$mode"
  rps[$mode]=$(awk '{print $1}' "$tmp/files-$mode" | median)
  cpu[$mode]=$(awk '{print $3}' "$tmp/files-$mode" | median)
  printf '  %-8s %8s reads/s  %6s CPU s per 100k reads\n' "$mode" "${rps[$mode]}" "${cpu[$mode]}"
done
awk -v u="${rps[uring]}" -v e="${rps[evented]}" -v cu="${cpu[uring]}" -v ce="${cpu[evented]}" \
  'BEGIN {printf "  uring/evented: %.2fx reads/s (target >= 1.2x), %.2fx CPU per read\n", u / e, cu / ce}'
fi

port_of() { sed -n 's/^listening on \([0-9]*\)$/\1/p' "$1" 2>/dev/null; }

if [ -z "${SKIP_HELLO:-}" ]; then
if ! command -v wrk >/dev/null; then echo "wrk not installed: no hello figures"; else
echo
echo "== hello: wrk -t1 -c50 -d${duration}s, server on core 0, wrk on core 1, median of $rounds"
# evo_hello.lua on a free port, its "listening on PORT" line flushed at once
printf 'io.stdout:setvbuf("line")\narg = {[0] = "%s", "0"}\ndofile("%s")\n' \
  "$here/http/evo_hello.lua" "$here/http/evo_hello.lua" >"$tmp/hello.lua"
declare -A hr hu
for scenario in keepalive pipelined; do
  opts=()
  [ "$scenario" = pipelined ] && opts=(-s "$here/http/pipeline.lua")
  for mode in $modes; do
    : >"$tmp/rps" ; : >"$tmp/us"
    for _ in $(seq "$rounds"); do
      evo_in "$mode" "$tmp/hello.lua" >"$tmp/out" 2>&1 &
      server_pid=$!
      for _ in $(seq 50); do [ -n "$(port_of "$tmp/out")" ] && break; sleep 0.05; done
      port=$(port_of "$tmp/out")
      url="http://127.0.0.1:$port/"
      taskset -c 1 wrk -t1 -c50 -d1s "${opts[@]}" "$url" >/dev/null 2>&1 || true  # warm-up
      t0=$(ticks "$server_pid")
      taskset -c 1 wrk -t1 -c50 -d"${duration}s" "${opts[@]}" "$url" >"$tmp/wrk" 2>&1 || echo "wrk failed against $mode" >&2
      t1=$(ticks "$server_pid")
      kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
      reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk")
      awk '/Requests\/sec/ {printf "%.0f\n", $2}' "$tmp/wrk" >>"$tmp/rps"
      awk -v t=$((t1 - t0)) -v n="$reqs" -v hz="$hz" 'BEGIN {printf "%.2f\n", t / hz * 1e6 / n}' >>"$tmp/us"
    done
    r=$(median <"$tmp/rps"); u=$(median <"$tmp/us")
    hr[$mode]=$r; hu[$mode]=$u
    printf '  %-9s %-11s %8s req/s  %6s server CPU us/request   (rounds: %s us)\n' "$scenario" "$mode" "$r" "$u" \
      "$(paste -sd' ' "$tmp/us")"
  done
  for mode in $modes; do
    [ "$mode" = evented ] && continue
    awk -v ru="${hr[$mode]}" -v re="${hr[evented]}" -v uu="${hu[$mode]}" -v ue="${hu[evented]}" -v s="$scenario" -v m="$mode" \
      'BEGIN {printf "  %s %s/evented: %.2fx req/s, %.2fx CPU per request\n", s, m, ru / re, uu / ue}'
  done
done
fi
fi

# ---------------------------------------------------------------- evo_loadgen rows
[ -n "${SKIP_10K:-}" ] && [ -n "${SKIP_LARGE:-}" ] && exit 0
loadgen=$(dirname "$evo")/bench/loadgen/evo_loadgen
if [ ! -x "$loadgen" ]; then
  cmake --build "$(dirname "$evo")" --target evo_loadgen >/dev/null 2>&1 || true
fi
[ -x "$loadgen" ] || { echo "no $loadgen (cmake --build build --target evo_loadgen): no 10k and large-file figures"; exit 0; }
conns=${CONNS:-10000}
downloads=${DOWNLOADS:-20}
duration_10k=${DURATION_10K:-5}
# Each side holds one descriptor per connection.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=$((conns + 1000))
if [ "$hard" -lt $((conns + 100)) ]; then
  echo "$conns connections need $((conns + 100)) descriptors; the hard limit (ulimit -Hn) is $hard"
  exit 1
fi
ulimit -n "$hard"
head -c 100000000 /dev/urandom >"$tmp/big.bin"
# start_server MODE: bench/http/io_server.lua on core 0 serving $tmp, sets server_pid and port
start_server() {
  evo_in "$1" "$here/http/io_server.lua" "$tmp" >"$tmp/out" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do [ -n "$(port_of "$tmp/out")" ] && break; sleep 0.05; done
  port=$(port_of "$tmp/out")
  [ -n "$port" ] || { echo "the server did not start:"; cat "$tmp/out"; exit 1; }
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }
# field NAME FILE: a field of evo_loadgen's RESULT line
field() { sed -n "s/^RESULT .*\b$1=\([^ ]*\).*/\1/p" "$2"; }

declare -A k l
if [ -z "${SKIP_10K:-}" ]; then
echo
echo "== 10k: $conns keep-alive connections, one request a second each (evo_loadgen -R $conns, ${duration_10k}s after a 4 s warm-up),"
echo "   server on core 0, evo_loadgen on core 1, ulimit -n $hard, median of $rounds"
for mode in $modes; do
  : >"$tmp/k"
  for _ in $(seq "$rounds"); do
    start_server "$mode"
    taskset -c 1 "$loadgen" -c "$conns" -R "$conns" --warmup 4 -d "$duration_10k" --pid "$server_pid" \
      "http://127.0.0.1:$port/" >"$tmp/lg" 2>&1 || { echo "evo_loadgen failed against $mode:"; cat "$tmp/lg"; }
    stop_server
    if [ "$(field errors "$tmp/lg")" != 0 ] || [ "$(field skipped "$tmp/lg")" != 0 ]; then
      grep -E 'errors|missed' "$tmp/lg" | sed "s/^/  $mode: /"
    fi
    awk -v r="$(field rps "$tmp/lg")" -v n="$(field requests "$tmp/lg")" -v c="$(field server_cpu_s "$tmp/lg")" \
      -v p="$(field p99_ms "$tmp/lg")" -v m="$(field server_rss_kib "$tmp/lg")" \
      'BEGIN {printf "%.0f %.2f %.3f %.1f\n", r, c * 1e6 / n, p, m / 1024}' >>"$tmp/k"
  done
  for i in 1 2 3 4; do k[$mode$i]=$(awk -v i=$i '{print $i}' "$tmp/k" | median); done
  printf '  %-11s %6s req/s  %6s server CPU us/request  p99 %6s ms  server RSS %6s MiB   (rounds: %s us)\n' \
    "$mode" "${k[${mode}1]}" "${k[${mode}2]}" "${k[${mode}3]}" "${k[${mode}4]}" "$(awk '{printf "%s%s", (NR > 1 ? " " : ""), $2}' "$tmp/k")"
done
for mode in $modes; do
  [ "$mode" = evented ] && continue
  awk -v ue="${k[evented2]}" -v uu="${k[${mode}2]}" -v re="${k[evented1]}" -v ru="${k[${mode}1]}" -v m="$mode" \
    'BEGIN {printf "  10k %s/evented: %.2fx req/s, %.2fx CPU per request (%.2fx requests per CPU second; target >= 1.2x)\n", m, ru / re, uu / ue, ue / uu}'
done
fi

if [ -z "${SKIP_LARGE:-}" ]; then
echo
echo "== large: 100 MB file by http.static, $downloads downloads over 4 connections (evo_loadgen),"
echo "   server on core 0, evo_loadgen on core 1, median of $rounds, the modes alternating each round"
echo "   (splice: --io=uring with EVO_URING_SPLICE=1, the file moved by IORING_OP_SPLICE)"
large_modes="evented uring splice"
for mode in $large_modes; do : >"$tmp/l-$mode"; done
for _ in $(seq "$rounds"); do
  for mode in $large_modes; do
    if [ "$mode" = splice ]; then EVO_URING_SPLICE=1 start_server uring; else start_server "$mode"; fi
    taskset -c 1 "$loadgen" -c 1 -n 1 --no-latency "http://127.0.0.1:$port/big.bin" >/dev/null 2>&1 || true  # warm-up
    taskset -c 1 "$loadgen" -c 4 -n "$downloads" --pid "$server_pid" \
      "http://127.0.0.1:$port/big.bin" >"$tmp/lg" 2>&1 || { echo "evo_loadgen failed against $mode:"; cat "$tmp/lg"; }
    stop_server
    [ "$(field errors "$tmp/lg")" = 0 ] || grep errors "$tmp/lg" | sed "s/^/  $mode: /"
    awk -v n="$(field requests "$tmp/lg")" -v s="$(field seconds "$tmp/lg")" -v c="$(field server_cpu_s "$tmp/lg")" \
      'BEGIN {printf "%.0f %.3f\n", n * 100 / s, c / (n * 0.1)}' >>"$tmp/l-$mode"
  done
done
for mode in $large_modes; do
  for i in 1 2; do l[$mode$i]=$(awk -v i=$i '{print $i}' "$tmp/l-$mode" | median); done
  printf '  %-8s %6s MB/s  %6s server CPU s per GB   (rounds: %s)\n' "$mode" "${l[${mode}1]}" "${l[${mode}2]}" \
    "$(awk '{printf "%s%s MB/s %s s/GB", (NR > 1 ? ", " : ""), $1, $2}' "$tmp/l-$mode")"
done
awk -v me="${l[evented1]}" -v mu="${l[uring1]}" -v ce="${l[evented2]}" -v cu="${l[uring2]}" \
  'BEGIN {printf "  large uring/evented: %.2fx MB/s, %.2fx CPU per GB\n", mu / me, cu / ce}'
awk -v ms="${l[splice1]}" -v mu="${l[uring1]}" -v cs="${l[splice2]}" -v cu="${l[uring2]}" \
  'BEGIN {printf "  large splice/sendfile (both uring): %.2fx MB/s, %.2fx CPU per GB\n", ms / mu, cs / cu}'
fi
