#!/usr/bin/env bash
# JSON decode and encode throughput: Evo's json against lua-cjson (Debian,
# under luajit) and Node's JSON.parse/JSON.stringify, in the same run, each
# process pinned to CPU 0. Three generated corpora (bench/json/corpus.py):
# a social-media timeline with Unicode text (twitter.json's shape), a
# catalogue keyed by small integers (citm_catalog.json's), a GeoJSON polygon
# of ~100,000 floats (canada.json's). MB/s is the corpus size (10^6 bytes)
# per second: decode of the text, encode of the decoded value; best of
# five batches over SECONDS_PER_RUN (default 1) seconds of CPU each.
#   bash bench/json.sh [path/to/evo]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evo=${1:-${EVO:-./build/evo}}
dir=$(mktemp -d /tmp/evo-json-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 "$here/json/corpus.py" "$dir"
files=("$dir/twitter.json" "$dir/citm.json" "$dir/canada.json")
for f in "${files[@]}"; do printf '  %-14s %8.2f MB\n' "$(basename "$f")" "$(echo "$(stat -c %s "$f") / 1000000" | bc -l)"; done

run() {  # run NAME COMMAND... -> "NAME corpus op MB/s" lines in $dir/results
  local name=$1
  shift
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
    echo "  skipped: $name ($1 not installed)"
    return
  fi
  taskset -c 0 "$@" "${files[@]}" | sed "s/^/$name /" >>"$dir/results" || echo "  $name failed"
}
: >"$dir/results"
run evo "$evo" "$here/json/bench.lua" json
LUA_CPATH="/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;" run cjson luajit "$here/json/bench.lua" cjson
run node node "$here/json/bench.js"

python3 - "$dir/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    impl, corpus, op, mbs = line.split()
    rows[(impl, corpus, op)] = float(mbs)
impls = ["evo", "cjson", "node"]
print()
print("  %-8s %-7s %10s %10s %10s   %-10s %-10s" % ("corpus", "op", "evo MB/s", "cjson", "node", "evo/cjson", "evo/node"))
missed = []
for corpus in ["twitter", "citm", "canada"]:
    for op in ["decode", "encode"]:
        vals = [rows.get((i, corpus, op)) for i in impls]
        def ratio(a, b):
            return "%.2fx" % (a / b) if a and b else "-"
        print("  %-8s %-7s %10s %10s %10s   %-10s %-10s" % (
            corpus, op, *["%.1f" % v if v else "-" for v in vals], ratio(vals[0], vals[1]), ratio(vals[0], vals[2])))
        if vals[0] and vals[1] and vals[0] < 2 * vals[1]:
            missed.append("%s %s: %.2fx lua-cjson (target >= 2x)" % (corpus, op, vals[0] / vals[1]))
        if vals[0] and vals[2] and vals[0] <= vals[2]:
            missed.append("%s %s: %.2fx Node (target > 1x)" % (corpus, op, vals[0] / vals[2]))
print()
print("  targets (faster than Node, >= 2x lua-cjson on every corpus): " + ("met" if not missed else "not met: " + "; ".join(missed)))
PY
