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
#   bash bench/io.sh [evo]          ROUNDS=3 DURATION=3
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

command -v wrk >/dev/null || { echo "wrk not installed: no HTTP figures"; exit 0; }
echo
echo "== hello: wrk -t1 -c50 -d${duration}s, server on core 0, wrk on core 1, median of $rounds"
port_of() { sed -n 's/^listening on \([0-9]*\)$/\1/p' "$1"; }
# evo_hello.lua on a free port, its "listening on PORT" line flushed at once
printf 'io.stdout:setvbuf("line")\narg = {[0] = "%s", "0"}\ndofile("%s")\n' \
  "$here/http/evo_hello.lua" "$here/http/evo_hello.lua" >"$tmp/hello.lua"
for scenario in keepalive pipelined; do
  opts=()
  [ "$scenario" = pipelined ] && opts=(-s "$here/http/pipeline.lua")
  for mode in evented uring; do
    : >"$tmp/rps" ; : >"$tmp/us"
    for _ in $(seq "$rounds"); do
      taskset -c 0 "$evo" --io=$mode "$tmp/hello.lua" >"$tmp/out" 2>&1 &
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
    eval "h_${scenario}_${mode}_rps=$r; h_${scenario}_${mode}_us=$u"
    printf '  %-9s %-8s %8s req/s  %6s server CPU us/request\n' "$scenario" "$mode" "$r" "$u"
  done
  eval "re=\$h_${scenario}_evented_rps ru=\$h_${scenario}_uring_rps ue=\$h_${scenario}_evented_us uu=\$h_${scenario}_uring_us"
  awk -v ru="$ru" -v re="$re" -v uu="$uu" -v ue="$ue" -v s="$scenario" \
    'BEGIN {printf "  %s uring/evented: %.2fx req/s, %.2fx CPU per request\n", s, ru / re, uu / ue}'
done
