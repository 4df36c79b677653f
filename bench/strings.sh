#!/usr/bin/env bash
# String creation under Evo against luajit, the same Lua file (bench/strings.lua) in
# the same run: each workload runs in a fresh process, pinned to one CPU
# (taskset -c 0), ROUNDS times alternating between the runtimes; the figure is the
# median of the CPU time the workload took (os.clock), and the ratio evo/luajit.
#   bench/strings.sh [evo] [other-evo...]    (several evo binaries: one column each)
#   N=1000000 ROUNDS=5 WORKLOADS="tostring garbage concat format keys join"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- ./build/evo
n=${N:-1000000}
rounds=${ROUNDS:-5}
workloads=${WORKLOADS:-tostring garbage concat format keys join}
command -v luajit >/dev/null || { echo "strings: luajit not installed (scripts/install-deps bench)"; exit 0; }
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
runtimes=(luajit "$@")

# ms RUNTIME WORKLOAD: the CPU milliseconds one run reports
ms() { "${pin[@]}" "$1" "$here/strings.lua" "$2" "$n" | awk '{ print $2 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "string workloads, N=$n, CPU ms (median of $rounds runs, alternating), pinned: ${pin[*]:-no}"
header=$(printf '  %-9s %10s' workload luajit)
for evo in "$@"; do label=$evo; [ ${#label} -le 24 ] || label=...${label: -21}; header+=$(printf ' %24s' "$label"); done
echo "$header"
for w in $workloads; do
  declare -A got=()
  for ((r = 0; r < rounds; r++)); do
    for i in "${!runtimes[@]}"; do got[$i]+="$(ms "${runtimes[$i]}" "$w") "; done
  done
  base=$(tr ' ' '\n' <<<"${got[0]}" | grep . | median)
  row=$(printf '  %-9s %10.1f' "$w" "$base")
  for ((i = 1; i < ${#runtimes[@]}; i++)); do
    m=$(tr ' ' '\n' <<<"${got[$i]}" | grep . | median)
    row+=$(printf ' %10.1f (%5.2fx luajit)' "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN { print a / b }')")
  done
  echo "$row"
  unset got
done
