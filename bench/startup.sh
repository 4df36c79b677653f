#!/usr/bin/env bash
# Start-up time: `evo -e ''` against `luajit -e 'require"luv"'` (the closest peer:
# LuaJIT with luv loaded) and `node -e ''`, measured in the same run by hyperfine.
#   bench/startup.sh [path/to/evo]
set -euo pipefail
evo=${1:-./build/evo}
command -v hyperfine >/dev/null || { echo "startup: hyperfine not installed (scripts/install-deps bench)"; exit 0; }
out=$(mktemp)
cmds=("$evo -e ''")
names=("evo")
if command -v luajit >/dev/null; then cmds+=("luajit -e 'require\"luv\"'"); names+=("luajit+luv"); fi
if command -v node >/dev/null; then cmds+=("node -e ''"); names+=("node"); fi
hyperfine -N --warmup 5 --runs 50 --export-json "$out" "${cmds[@]}" >/dev/null
echo "start-up time (mean of 50 runs, hyperfine):"
python3 - "$out" "${names[@]}" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
evo = data[0]["mean"]
for name, r in zip(names, data):
    ratio = "" if name == "evo" else f"   evo is {r['mean'] / evo:.2f}x faster" if r['mean'] > evo else f"   evo is {evo / r['mean']:.2f}x slower"
    print(f"  {name:12s} {r['mean'] * 1000:7.2f} ms ± {r['stddev'] * 1000:.2f}{ratio}")
PY
rm -f "$out"
