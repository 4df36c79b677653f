#!/usr/bin/env bash
# SQLite: Evo's sqlite module against Python's sqlite3 (the same Debian
# libsqlite3) and Node's better-sqlite3@12.11.1 (its own SQLite, 3.53, built
# with better-sqlite3's options), in the same run, each pinned to core 0.
#   bench/sqlite.sh [path/to/evo] [rows = 100000] [rounds = 3]
# Measures, on a WAL file in /tmp: N inserts through a prepared statement in
# one transaction, and 5N point selects by primary key (a prepared statement
# returning one row as a keyed table / object / tuple). CPU time of the
# process, best of the rounds. Node is skipped when better-sqlite3 cannot be
# installed: it goes to $BSQ_DIR (default /tmp/evo-bench-better-sqlite3)
# with npm, never into the repository.
set -euo pipefail
evo=${1:-./build/evo}
rows=${2:-100000}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
pin=(taskset -c 0)
command -v taskset >/dev/null || pin=()
bsq=${BSQ_DIR:-/tmp/evo-bench-better-sqlite3}
out=$(mktemp -d /tmp/evo-bench-sqlite.XXXXXX)
trap 'rm -rf "$out"' EXIT

node_ok=0
if command -v node >/dev/null; then
  if [ ! -d "$bsq/node_modules/better-sqlite3" ]; then
    mkdir -p "$bsq"
    (cd "$bsq" && npm install --no-audit --no-fund better-sqlite3@12.11.1 >/dev/null 2>&1) || true
  fi
  if NODE_PATH="$bsq/node_modules" node -e 'require("better-sqlite3")' 2>/dev/null; then node_ok=1; fi
fi

for _ in $(seq "$rounds"); do
  "${pin[@]}" "$evo" "$here/sqlite/evo.lua" "$out/evo.db" "$rows" >> "$out/evo"
  "${pin[@]}" /usr/bin/python3 "$here/sqlite/py.py" "$out/py.db" "$rows" >> "$out/python"
  if [ "$node_ok" = 1 ]; then
    NODE_PATH="$bsq/node_modules" "${pin[@]}" node "$here/sqlite/node.js" "$out/node.db" "$rows" >> "$out/node"
  fi
done

/usr/bin/python3 - "$out" "$rows" <<'PY'
import os, sys
out, rows = sys.argv[1], sys.argv[2]
def load(name):
    p = os.path.join(out, name)
    best = {}
    if os.path.exists(p):
        for line in open(p):
            if line.strip():
                key, value, unit = line.split()
                best[key] = max(best.get(key, 0.0), float(value))
    return best
evo, node, py = load("evo"), load("node"), load("python")
nan = float("nan")
print(f"  {rows} rows, WAL file in /tmp; CPU time, each runtime pinned to core 0; best of the rounds")
print(f"  {'measure':<15}{'evo':>14}{'node':>14}{'python':>14}   evo/node  evo/python")
for key in ["insert", "select", "select-cached"]:
    e = evo.get(key, nan); n = node.get(key if key != "select-cached" else "select", nan); p = py.get(key if key != "select-cached" else "select", nan)
    print(f"  {key:<15}{e:>10.0f} op/s{n:>10.0f} op/s{p:>10.0f} op/s   {e / n:6.2f}x   {e / p:6.2f}x")
print("  (select-cached: Evo's db:get(sql, id) through the statement cache, against the others' prepared select)")
PY
