#!/usr/bin/env bash
# Two Evo binaries side by side in the same run (a change against the commit
# before it), alternating ROUNDS times so drift hits both alike:
#   HTTP hello world with wrk, plain keep-alive and 16-deep pipelined;
#   a 1 MiB static file (http.static, sendfile); for each of these also the
#   server's CPU time per request (*_cpu_us, lower is better);
#   task.yield() hops and spawn+await (bench/tasks.lua);
#   100,000 reads of a 4 KiB file, 64 in flight (bench/readfile.lua).
# Servers run on one CPU, wrk on the other. Prints the median of each and
# new/old (higher is better for rates, lower for ns).
#   bench/compare.sh OLD_EVO NEW_EVO        ROUNDS=3 DURATION=5 CONNECTIONS=50
set -euo pipefail
if [ $# -lt 2 ]; then  # (make bench runs every script with one binary)
  echo "compare: bench/compare.sh OLD_EVO NEW_EVO puts two Evo binaries side by side (skipped: give both)"
  exit 0
fi
old=$1
new=$2
here=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-3}
duration=${DURATION:-5}
conns=${CONNECTIONS:-50}
command -v wrk >/dev/null || { echo "compare: wrk not installed (scripts/install-deps bench)"; exit 0; }

read -r cpu_server cpu_client < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')
pin_server=(taskset -c "$cpu_server")
pin_client=(taskset -c "$cpu_client")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-compare.XXXXXX")
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/static"
head -c $((1024 * 1024)) /dev/urandom >"$tmp/static/1m.bin"
results=$tmp/results.txt

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# serve EVO SCRIPT ARGS...: starts the server pinned; waits until it answers.
serve() {
  local evo=$1
  shift
  "${pin_server[@]}" "$evo" "$@" >"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.05
  done
  echo "compare: $evo $* did not start" >&2
  cat "$tmp/server.log" >&2
  return 1
}
stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# server_cpu: the server's user + system CPU time so far, in clock ticks.
server_cpu() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }
tick=$(getconf CLK_TCK)

# rps NAME WRK_ARGS...: one measured wrk run (after a 1 s warm-up) recorded
# as NAME (requests per second) and NAME_cpu_us (the server's CPU time per
# request: steadier than the rate on a shared machine, where the rate also
# counts the time a neighbour took the server's core).
rps() {
  local name=$1
  shift
  "${pin_client[@]}" wrk -t1 -c"$conns" -d1s "$@" >/dev/null 2>&1 || true
  local c0 out c1
  c0=$(server_cpu)
  out=$("${pin_client[@]}" wrk -t1 -c"$conns" -d"${duration}s" "$@" 2>/dev/null)
  c1=$(server_cpu)
  echo "$which $name $(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')" >>"$results"
  echo "$which ${name}_cpu_us $(echo "$out" | awk -v c="$((c1 - c0))" -v t="$tick" \
    '/requests in/ { printf "%.4f", c / t * 1e6 / $1 }')" >>"$results"
}

for round in $(seq "$rounds"); do
  for which in old new; do
    evo=${!which}
    port=$(free_port)
    serve "$evo" "$here/http/evo_hello.lua" "$port"
    rps hello_plain "http://127.0.0.1:$port/"
    rps hello_pipelined -s "$here/http/pipeline.lua" "http://127.0.0.1:$port/" -- 16
    stop
    port=$(free_port)
    serve "$evo" "$here/http/evo_static.lua" "$tmp/static" "$port"
    rps static_1m "http://127.0.0.1:$port/1m.bin"
    stop
    "${pin_server[@]}" "$evo" "$here/tasks.lua" 1000000 200000 >"$tmp/tasks.txt"
    echo "$which yield_ns $(sed -n 's/.*task.yield() hops *\([0-9.]*\) ns\/hop.*/\1/p' "$tmp/tasks.txt")" >>"$results"
    echo "$which spawn_await_ns $(sed -n 's/.*spawn+await *\([0-9.]*\) ns.*/\1/p' "$tmp/tasks.txt")" >>"$results"
    "${pin_server[@]}" "$evo" "$here/readfile.lua" 100000 64 >"$tmp/readfile.txt"
    echo "$which readfile_rps $(sed -n 's/.*evo fs.readFile in tasks *\([0-9]*\) reads.*/\1/p' "$tmp/readfile.txt")" >>"$results"
  done
  echo "round $round of $rounds done" >&2
done

python3 - "$results" "$old" "$new" "$rounds" "$duration" <<'PY'
import statistics, sys
path, old, new, rounds, duration = sys.argv[1:6]
values = {}
for line in open(path):
    parts = line.split()
    if len(parts) == 3 and parts[2]:
        values.setdefault((parts[0], parts[1]), []).append(float(parts[2]))
print(f"old: {old}\nnew: {new}\n{rounds} alternating rounds, {duration} s per wrk run; medians")
print(f"{'measure':22} {'old':>12} {'new':>12} {'new/old':>8}")
for name, lower_better in [("hello_plain", False), ("hello_plain_cpu_us", True),
                           ("hello_pipelined", False), ("hello_pipelined_cpu_us", True),
                           ("static_1m", False), ("static_1m_cpu_us", True),
                           ("yield_ns", True), ("spawn_await_ns", True), ("readfile_rps", False)]:
    o, n = values.get(("old", name)), values.get(("new", name))
    if not o or not n:
        print(f"{name:22} (missing)")
        continue
    mo, mn = statistics.median(o), statistics.median(n)
    ratio = mn / mo
    better = (ratio <= 1) if lower_better else (ratio >= 1)
    note = "" if better or abs(ratio - 1) <= 0.05 else "  (worse by more than 5%)"
    print(f"{name:22} {mo:12.3f} {mn:12.3f} {ratio:8.3f}{note}" if name.endswith("_cpu_us") else
          f"{name:22} {mo:12.1f} {mn:12.1f} {ratio:8.3f}{note}")
PY
