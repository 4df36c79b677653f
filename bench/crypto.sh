#!/usr/bin/env bash
# sha256 and gzip throughput: Evo (crypto, evo.zlib) against Node (crypto,
# zlib) and Python (hashlib, zlib) in the same run, each pinned to core 0,
# on the same 1 MiB of text (compressible ~3x, like JSON or HTML).
#   bench/crypto.sh [path/to/evo] [seconds per measure = 1] [rounds = 3]
# The runtimes take turns for `rounds` rounds and each measure keeps its
# best round, so a neighbour's burst on the shared core skews no one.
# Measures: sha256 of 1 MiB (MB/s), sha256 of 64 bytes to hex (calls/s: the
# per-call cost of the binding), gzip level 6 and gunzip of 1 MiB (MB/s).
set -euo pipefail
evo=${1:-./build/evo}
seconds=${2:-1}
rounds=${3:-3}
here=$(dirname "$0")
pin=(taskset -c 0)
command -v taskset >/dev/null || pin=()
input=$(mktemp /tmp/evo-bench-crypto.XXXXXX)
out=$(mktemp -d /tmp/evo-bench-crypto-out.XXXXXX)
trap 'rm -rf "$input" "$out"' EXIT

# 1 MiB of words from a fixed seed: the same bytes for every runtime.
/usr/bin/python3 - "$input" <<'PY'
import random, sys
rng = random.Random(9)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(2000)]
text, size = [], 0
while size < 1 << 20:
    w = rng.choice(words) + (' ' if rng.random() < 0.9 else ',\n')
    text.append(w)
    size += len(w)
open(sys.argv[1], 'w').write(''.join(text)[: 1 << 20])
PY

for _ in $(seq "$rounds"); do
  "${pin[@]}" "$evo" "$here/crypto.lua" "$input" "$seconds" >> "$out/evo"
  if command -v node >/dev/null; then "${pin[@]}" node "$here/node_crypto.js" "$input" "$seconds" >> "$out/node"; fi
  "${pin[@]}" /usr/bin/python3 "$here/py_crypto.py" "$input" "$seconds" >> "$out/python"
done

/usr/bin/python3 - "$out" <<'PY'
import os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return {}
    best = {}
    for line in open(p):
        if line.strip():
            key, value, unit = line.split()
            if key not in best or float(value) > best[key][0]:
                best[key] = (float(value), unit)
    return best
evo, node, py = load("evo"), load("node"), load("python")
print(f"  1 MiB of text, compresses {evo['ratio'][0]:.2f}x; each runtime pinned to core 0; best of the rounds")
print(f"  {'measure':<13}{'evo':>17}{'node':>17}{'python':>17}   evo/node  evo/python")
for key in ["sha256-1MiB", "sha256-64B", "gzip", "gunzip"]:
    e, unit = evo[key]
    n = node.get(key, (float('nan'), unit))[0]
    p = py.get(key, (float('nan'), unit))[0]
    print(f"  {key:<13}{e:>11.1f} {unit:<5}{n:>11.1f} {unit:<5}{p:>11.1f} {unit:<5}   {e / n:6.2f}x   {e / p:6.2f}x")
print("  (higher is better; a ratio above 1 means Evo is faster)")
PY
