#!/usr/bin/env bash
# The async core against raw luv (same process) and Node.js (same run):
#   1,000,000 task.yield() hops vs a luv idle chain and Node's setImmediate;
#   spawn+await of a trivial task;
#   100,000 reads of a 4 KiB file, 64 in flight, vs raw luv callbacks and
#   Node's fs.promises.readFile.
#   bench/async.sh [path/to/evo]
set -euo pipefail
evo=${1:-./build/evo}
here=$(dirname "$0")

echo "== task hops and spawn+await"
"$evo" "$here/tasks.lua" 1000000 200000 | tee /tmp/evo-bench-tasks.txt
if command -v node >/dev/null; then
  node_ns=$(node "$here/node_immediate.js" 1000000 | python3 -c 'import json,sys; print(json.load(sys.stdin)["nsPerHop"])')
  evo_ns=$(sed -n 's/.*task.yield() hops *\([0-9.]*\) ns\/hop.*/\1/p' /tmp/evo-bench-tasks.txt)
  python3 - "$evo_ns" "$node_ns" <<'PY'
import sys
evo, node = float(sys.argv[1]), float(sys.argv[2])
print(f"  node setImmediate hops       {node:8.1f} ns/hop")
print(f"  evo is {node / evo:.2f}x faster than Node's setImmediate (target: faster)")
PY
else
  echo "  (node not installed: no Node comparison)"
fi

echo
echo "== 100,000 reads of a 4 KiB file, 64 in flight"
"$evo" "$here/readfile.lua" 100000 64 | tee /tmp/evo-bench-readfile.txt
if command -v node >/dev/null; then
  node_rps=$(node "$here/node_readfile.js" 100000 64 | python3 -c 'import json,sys; print(json.load(sys.stdin)["readsPerSecond"])')
  evo_rps=$(sed -n 's/.*evo fs.readFile in tasks *\([0-9]*\) reads.*/\1/p' /tmp/evo-bench-readfile.txt)
  python3 - "$evo_rps" "$node_rps" <<'PY'
import sys
evo, node = float(sys.argv[1]), float(sys.argv[2])
print(f"  node fs.promises.readFile  {node:7.0f} reads/s")
print(f"  evo is {evo / node:.2f}x faster than Node (target: faster)")
PY
fi
rm -f /tmp/evo-bench-tasks.txt /tmp/evo-bench-readfile.txt
