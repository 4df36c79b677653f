#!/usr/bin/env bash
# Start-up time: `evo -e ''` against `luajit -e 'require"luv"'` (the closest peer:
# LuaJIT with luv loaded) and `node -e ''`, measured in the same run by hyperfine,
# each pinned to one CPU (taskset -c 0); wall time and CPU time (user + system).
# Then idle memory: VmRSS of a process sleeping on a timer (evo: task.sleep,
# luajit: a luv timer, node: setTimeout), median of 3.
#   bench/startup.sh [path/to/evo]
set -euo pipefail
evo=${1:-./build/evo}
command -v hyperfine >/dev/null || { echo "startup: hyperfine not installed (scripts/install-deps bench)"; exit 0; }
# hyperfine itself is pinned and the commands inherit it: no taskset process in the timing.
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cmds=("$evo -e ''")
names=("evo")
if command -v luajit >/dev/null; then cmds+=("luajit -e 'require\"luv\"'"); names+=("luajit+luv"); fi
if command -v node >/dev/null; then cmds+=("node -e ''"); names+=("node"); fi
"${pin[@]}" hyperfine -N --warmup 5 --runs 50 --export-json "$out" "${cmds[@]}" >/dev/null 2>&1
echo "start-up (50 runs, hyperfine, pinned: ${pin[*]:-no})   wall: median ± stddev   CPU (user+sys): mean"
python3 - "$out" "$evo" "${names[@]}" <<'PY'
import json, os, statistics, subprocess, sys, time
data = json.load(open(sys.argv[1]))["results"]
evo, names = sys.argv[2], sys.argv[3:]
def cpu(r): return r["user"] + r["system"]
e = data[0]
for name, r in zip(names, data):
    rel = "" if name == "evo" else f"   evo/{name}: wall {e['median'] / r['median']:.2f}x, CPU {cpu(e) / cpu(r):.2f}x"
    print(f"  {name:12s} {r['median'] * 1000:7.2f} ms ± {r['stddev'] * 1000:.2f}   {cpu(r) * 1000:7.2f} ms{rel}")

idle = {
    "evo": [evo, "-e", 'require("task").sleep(3)'],
    "luajit+luv": ["luajit", "-e", 'local uv = require"luv"; uv.new_timer():start(3000, 0, function() end); uv.run()'],
    "node": ["node", "-e", "setTimeout(() => {}, 3000)"],
}
def rss_kib(cmd):
    p = subprocess.Popen(cmd)
    time.sleep(0.7)
    with open(f"/proc/{p.pid}/status") as f:
        kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    p.kill()
    p.wait()
    return kib
print("idle RSS (VmRSS of a process sleeping on a timer, median of 3)")
got = {}
for name in names:
    got[name] = statistics.median(rss_kib(idle[name]) for _ in range(3))
    rel = "" if name == "evo" else f"   evo/{name}: {got['evo'] / got[name]:.2f}x"
    print(f"  {name:12s} {got[name] / 1024:6.2f} MiB{rel}")
PY
