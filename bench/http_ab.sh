#!/usr/bin/env bash
# Two Evo builds serving at the same time, to tell a small change from this
# machine's noise: both servers on one CPU, each with its own native load
# generator (evo_loadgen) on another (lib/pin.sh: CPU 0 and 1 here), for the
# same seconds. Whatever the host
# does to the CPU meanwhile (the CPU time of one request drifts by 30% and
# more from minute to minute on this VM) it does to both, so their ratio
# holds where timings taken one after the other do not: an A/A run gives
# ratios within 1%. Prints, per round, each server's CPU time per request
# (utime + stime from /proc, and the user part) and NEW/OLD; then the median
# ratio. Below 1: NEW spends less CPU per request.
#   bench/http_ab.sh OLD_EVO NEW_EVO
#   ROUNDS=5, DURATION=5 seconds a round, PIPELINE=16 (1: keep-alive, one
#   request in flight a connection), CONNECTIONS=50 each, SCRIPT=a server
#   script taking its port (default bench/http/evo_natural.lua),
#   OLD_ARGS / NEW_ARGS: options before the script (e.g. NEW_ARGS=--io=uring),
#   OLD_SCRIPT / NEW_SCRIPT: one side's own script (default SCRIPT): e.g.
#   OLD_SCRIPT=bench/http/luv_naive.lua with luajit as OLD_EVO puts issue 13's
#   naive luv server beside Evo,
#   REQUEST=browser: every request with a browser's headers, as
#   bench/http_cpu.sh. LOADGEN=path/to/evo_loadgen.
# The two servers share a core, so each runs at about half its rate, and
# every switch between them costs both: the figures are for comparing two
# builds, not for a server's speed (bench/http_cpu.sh gives that). Layout
# matters as well: a build can be ~8% faster or slower from where the linker
# put its code (docs/performance.md, "Measuring here"); a change smaller
# than that needs more than one build a side.
set -euo pipefail
old=${1:?usage: bench/http_ab.sh OLD_EVO NEW_EVO}
new=${2:?usage: bench/http_ab.sh OLD_EVO NEW_EVO}
here=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-5}
duration=${DURATION:-5}
pipeline=${PIPELINE:-16}
conns=${CONNECTIONS:-50}
script=${SCRIPT:-$here/http/evo_natural.lua}
old_script=${OLD_SCRIPT:-$script}
new_script=${NEW_SCRIPT:-$script}
read -r -a old_args <<<"${OLD_ARGS:-}"
read -r -a new_args <<<"${NEW_ARGS:-}"
old=$(command -v "$old" || echo "$old")
new=$(command -v "$new" || echo "$new")
build=$(cd "$(dirname "$new")" && pwd)
loadgen=${LOADGEN:-$build/bench/loadgen/evo_loadgen}
if [ ! -x "$loadgen" ] && [ -f "$build/CMakeCache.txt" ]; then
  cmake --build "$build" --target evo_loadgen >/dev/null
fi
[ -x "$loadgen" ] || { echo "http_ab: $loadgen not built (cmake --build build --target evo_loadgen)"; exit 0; }
request_headers=()
if [ "${REQUEST:-hello}" = browser ]; then
  while IFS= read -r line; do
    [ -n "$line" ] && request_headers+=(-H "$line")
  done <"$here/http/browser_headers.txt"
fi
opts=(-c "$conns" -p "$pipeline" --no-latency "${request_headers[@]}")
[ "$pipeline" -gt 1 ] && opts+=(--batch)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

source "$here/lib/pin.sh"
source "$here/lib/ports.sh"
started() { wait_port "$1" || { echo "http_ab: no server on port $1" >&2; exit 1; }; }
cpu() { cut -d' ' -f14,15 "/proc/$1/stat"; }  # utime stime (ticks)

echo "old: $old ${old_args[*]:-} $old_script"
echo "new: $new ${new_args[*]:-} $new_script"
echo "both servers together, their generators together ($pinning); $conns connections each, pipeline $pipeline, ${duration} s a round"
for round in $(seq "$rounds"); do
  po=$(free_port)
  pn=$(free_port)
  "${server_pin[@]}" "$old" "${old_args[@]}" "$old_script" "$po" >/dev/null 2>&1 &
  pids=($!)
  "${server_pin[@]}" "$new" "${new_args[@]}" "$new_script" "$pn" >/dev/null 2>&1 &
  pids+=($!)
  started "$po"
  started "$pn"
  # A second of warm-up each (traces compiled, buffers grown), then the run.
  "${client_pin[@]}" "$loadgen" "${opts[@]}" -d 1 "http://127.0.0.1:$po/" >/dev/null 2>&1 &
  g=$!
  "${client_pin[@]}" "$loadgen" "${opts[@]}" -d 1 "http://127.0.0.1:$pn/" >/dev/null 2>&1
  wait "$g"
  o1=$(cpu "${pids[0]}")
  n1=$(cpu "${pids[1]}")
  "${client_pin[@]}" "$loadgen" "${opts[@]}" -d "$duration" "http://127.0.0.1:$po/" >"$tmp/old" 2>&1 &
  g=$!
  "${client_pin[@]}" "$loadgen" "${opts[@]}" -d "$duration" "http://127.0.0.1:$pn/" >"$tmp/new" 2>&1
  wait "$g"
  o2=$(cpu "${pids[0]}")
  n2=$(cpu "${pids[1]}")
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  python3 - "$tmp" "$o1" "$o2" "$n1" "$n2" <<'EOF' | tee -a "$tmp/ratios"
import os, re, sys
tmp, o1, o2, n1, n2 = sys.argv[1:]
tick = 1e9 / os.sysconf("SC_CLK_TCK")
def per_request(label, a, b):
    text = open(f"{tmp}/{label}").read()
    m = re.search(r"requests=(\d+)", text)
    if not m or int(m.group(1)) == 0:
        sys.exit(f"http_ab: the {label} server's generator reported no requests:\n{text}")
    n = int(m.group(1))
    (ua, sa), (ub, sb) = map(int, a.split()), map(int, b.split())
    return ((ub - ua) + (sb - sa)) * tick / n, (ub - ua) * tick / n, n
old, old_user, n_old = per_request("old", o1, o2)
new, new_user, n_new = per_request("new", n1, n2)
print(f"  old {old:6.0f} ns/request (user {old_user:4.0f}, {n_old} requests)"
      f"   new {new:6.0f} ns/request (user {new_user:4.0f}, {n_new} requests)   new/old {new / old:.3f}")
EOF
done
python3 - "$tmp/ratios" <<'EOF'
import statistics, sys
r = [float(line.rsplit(" ", 1)[1]) for line in open(sys.argv[1]) if "new/old" in line]
print(f"new/old CPU per request: median {statistics.median(r):.3f} of {len(r)} rounds "
      f"(range {min(r):.3f}-{max(r):.3f}; below 1: new spends less)")
EOF
