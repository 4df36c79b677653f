#!/usr/bin/env bash
# Timers and file handles through the Io (docs/io.md), evented vs uring in
# one run (and a BEFORE binary's evented, to check for a regression):
#   100,000 task.sleep(0.001) in 1,000 tasks (100 each): CPU per sleep;
#   20,000 x (fs.open, file:read 4 KiB, file:stat, file:close), 64 tasks.
# Each measured process on core 0 (taskset -c 0), median of ROUNDS (3).
#   bash bench/sleep.sh [path/to/evo] [path/to/before/evo]
set -euo pipefail
evo=${1:-./build/evo}
before=${2:-}
here=$(dirname "$0")
rounds=${ROUNDS:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c 4096 /dev/urandom >"$dir/f"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

row() {  # row LABEL BIN MODE ARGS... -> prints the median line's figure
  local label=$1 bin=$2 mode=$3; shift 3
  local field=$1; shift
  local vals=()
  for _ in $(seq "$rounds"); do
    line=$(taskset -c 0 "$bin" --io="$mode" "$here/sleep.lua" "$@")
    vals+=("$(echo "$line" | sed -n "s/.* $field \([0-9.]*\).*/\1/p")")
  done
  m=$(printf '%s\n' "${vals[@]}" | median)
  printf '  %-18s %10s %s   (rounds: %s)\n' "$label" "$m" "$field" "${vals[*]}"
  echo "$m" >"$dir/$label"
}

echo "== sleeps: 100000 x task.sleep(0.001) in 1000 tasks, taskset -c 0, median of $rounds"
[ -n "$before" ] && row before-evented "$before" evented cpu_us_per_sleep sleeps 1000 100 0.001
row evented "$evo" evented cpu_us_per_sleep sleeps 1000 100 0.001
row uring "$evo" uring cpu_us_per_sleep sleeps 1000 100 0.001
python3 - "$dir" "$before" <<'PY'
import sys, os
d = sys.argv[1]
get = lambda k: float(open(os.path.join(d, k)).read())
if sys.argv[2]:
    print(f"  evented after/before: {get('evented') / get('before-evented'):.2f}x CPU per sleep")
print(f"  uring/evented: {get('uring') / get('evented'):.2f}x CPU per sleep")
PY

echo "== files: 20000 x (fs.open, read 4 KiB, stat, close), 64 tasks, taskset -c 0, median of $rounds"
[ -n "$before" ] && row before-files "$before" evented cpu_us_per_file files 20000 64 "$dir/f"
row evented-files "$evo" evented cpu_us_per_file files 20000 64 "$dir/f"
row uring-files "$evo" uring cpu_us_per_file files 20000 64 "$dir/f"
row evented-files-ops "$evo" evented ops_per_s files 20000 64 "$dir/f"
row uring-files-ops "$evo" uring ops_per_s files 20000 64 "$dir/f"
python3 - "$dir" "$before" <<'PY'
import sys, os
d = sys.argv[1]
get = lambda k: float(open(os.path.join(d, k)).read())
if sys.argv[2]:
    print(f"  evented after/before: {get('evented-files') / get('before-files'):.2f}x CPU per file")
print(f"  uring/evented: {get('uring-files') / get('evented-files'):.2f}x CPU per file, "
      f"{get('uring-files-ops') / get('evented-files-ops'):.2f}x files/s")
PY
