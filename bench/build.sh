#!/usr/bin/env bash
# One-file executables (docs/build.md): start-up of a built app against
# `evo app.lua` (the same script from files), in the same run, pinned to core
# 0, by hyperfine; and the sizes with and without --strip. A second evo
# (say one linked with -DEVO_STATIC_DEPS=OFF) may be given for comparison.
#   bench/build.sh [path/to/evo] [path/to/other-evo]
set -euo pipefail
evo=${1:-./build/evo}
other=${2:-}
command -v hyperfine >/dev/null || { echo "build: hyperfine not installed (scripts/install-deps bench)"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# A script with one module of its own and one built-in: the usual shape.
printf 'local m = require("greet")\nlocal json = require("json")\nprint(m.hello(json.encode({1})))\n' > "$dir/app.lua"
printf 'return {hello = function(s) return "hello " .. s end}\n' > "$dir/greet.lua"
"$evo" build "$dir/app.lua" -o "$dir/app" >/dev/null
"$evo" build "$dir/app.lua" -o "$dir/app-stripped" --strip >/dev/null
out="$dir/results.json"
cmds=("taskset -c 0 $evo $dir/app.lua" "taskset -c 0 $dir/app" "taskset -c 0 $dir/app-stripped")
names=("evo app.lua" "built app" "built --strip")
if [ -n "$other" ]; then cmds+=("taskset -c 0 $other $dir/app.lua"); names+=("other evo app.lua"); fi
hyperfine -N --warmup 5 --runs 50 --export-json "$out" "${cmds[@]}" >/dev/null
echo "start-up of a hello app (mean of 50 runs, hyperfine, taskset -c 0):"
python3 - "$out" "${names[@]}" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = data[0]["mean"]
for name, r in zip(names, data):
    ratio = "" if r is data[0] else f"   {r['mean'] / base:.2f}x evo app.lua"
    print(f"  {name:18s} {r['mean'] * 1000:7.2f} ms ± {r['stddev'] * 1000:.2f}{ratio}")
PY
echo "sizes:"
for f in "$evo" "$dir/app" "$dir/app-stripped" ${other:+"$other"}; do
  printf '  %-40s %10d bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
