#!/usr/bin/env bash
# Instructions per native event (a Timer's TIMER_FIRED handler re-arming it)
# and per luv timer callback, counted by callgrind (steady on a shared
# machine, unlike ns/event): the difference between a run of N+1000 events
# and one of 1000, divided by N, so start-up cancels out. Give one or more
# evo binaries to compare them. The second line keeps every payload (the
# handler stores it; the luv callback builds and stores the same table).
#   bash bench/events_instructions.sh [EVO...]     N=100000
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-100000}
command -v valgrind >/dev/null || { echo "events_instructions: valgrind not installed"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-evinstr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
count() {  # evo which events -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$1" "$here/events_count.lua" "$2" "$3" >/dev/null 2>&1
  grep -m1 '^summary:' "$tmp/out" | awk '{print $2}'
}
per() { echo $(( ($(count "$1" "$2" $((n + 1000))) - $(count "$1" "$2" 1000)) / n )); }
for evo in "${@:-./build/evo}"; do
  e=$(per "$evo" evo)
  l=$(per "$evo" luv)
  ep=$(per "$evo" evo-payload)
  lp=$(per "$evo" luv-payload)
  awk -v evo="$evo" -v e="$e" -v l="$l" -v ep="$ep" -v lp="$lp" 'BEGIN {
    printf "%s: evo Timer event %d, luv callback %d instructions per event; ratio %.2fx\n", evo, e, l, e / l
    printf "%s: payload kept: evo %d, luv + same table %d; ratio %.2fx (%.2fx the bare luv callback)\n", evo, ep, lp, ep / lp, ep / l
  }'
done
