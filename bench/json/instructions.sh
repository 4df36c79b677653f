#!/usr/bin/env bash
# Instructions per json.decode / json.encode call, counted by callgrind: a
# figure a shared machine does not disturb, for comparing two builds.
#   bash bench/json/instructions.sh [path/to/evo]
# For each corpus (bench/json/corpus.py), runs a script that decodes it N
# times (or decodes it once and encodes the value N times) and prints
# (Ir(N) - Ir(0)) / N, so start-up and reading the file cancel out. The
# count moves by about 1.5% from run to run (LuaJIT's allocator places
# objects differently). Needs valgrind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evo=${1:-${EVO:-./build/evo}}
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
dir=$(mktemp -d /tmp/evo-json-instr-XXXXXX)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 "$here/corpus.py" "$dir"
cat >"$dir/run.lua" <<'LUA'
local json = require("json")
local op, path, n = arg[1], arg[2], tonumber(arg[3])
local f = assert(io.open(path, "rb"))
local text = f:read("*a")
f:close()
if op == "decode" then
  for _ = 1, n do json.decode(text) end
else
  local value = json.decode(text)
  for _ = 1, n do json.encode(value) end
end
LUA
count() {  # count OP FILE N -> instructions
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$evo" "$dir/run.lua" "$1" "$2" "$3" 2>&1 |
    sed -n 's/.*Collected : //p'
}
for corpus in twitter citm canada; do
  n=10
  [ "$corpus" = twitter ] && n=20
  [ "$corpus" = canada ] && n=4
  for op in decode encode; do
    base=$(count "$op" "$dir/$corpus.json" 0)
    total=$(count "$op" "$dir/$corpus.json" "$n")
    printf '  %-8s %-7s %12d instructions per call\n' "$corpus" "$op" $(((total - base) / n))
  done
done
