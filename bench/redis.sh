#!/usr/bin/env bash
# Redis GET/SET with 50 concurrent callers on one connection: Evo's client
# (automatic pipelining) vs Node's ioredis (npm, installed into a temporary
# directory; without and with enableAutoPipelining) and redis-benchmark (the
# C ceiling: one connection, 50 commands in flight). redis-server is pinned
# to core 1, every client to core 0, in the same run.
# Usage: bench/redis.sh [evo] [ops]
set -euo pipefail
EVO=${1:-./build/evo}
OPS=${2:-200000}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/evo-redis-bench.XXXXXX)
port=$(( 20000 + RANDOM % 20000 ))
taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --logfile "$dir/log" --daemonize no &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

evo=$(taskset -c 0 "$EVO" "$here/redis.lua" "$port" "$OPS" | awk '{print $2}')
ceiling=$(taskset -c 0 redis-benchmark -p "$port" -c 1 -P 50 -n "$OPS" -t set,get --csv -q |
  awk -F'"' '/"(SET|GET)"/ {sum += $4; n++} END {printf "%.0f", sum / n}')
echo "  evo redis (50 tasks, 1 connection)           $evo ops/s"
echo "  redis-benchmark (-c 1 -P 50, SET/GET mean)   $ceiling ops/s   evo/ceiling $(awk "BEGIN{printf \"%.2f\", $evo/$ceiling}")"

nodedir=/tmp/evo-bench-ioredis
if [ ! -d "$nodedir/node_modules/ioredis" ]; then
  mkdir -p "$nodedir" && (cd "$nodedir" && npm init -y >/dev/null && npm install --silent ioredis >/dev/null 2>&1) || true
fi
if [ -d "$nodedir/node_modules/ioredis" ]; then
  for auto in 0 1; do
    node=$(NODE_PATH="$nodedir/node_modules" taskset -c 0 node "$here/redis_node.js" "$port" "$OPS" "$auto" |
      awk '{print $2}')
    echo "  node ioredis (50 promises, autoPipelining=$auto)  $node ops/s   evo/node $(awk "BEGIN{printf \"%.2f\", $evo/$node}")"
  done
else
  echo "  node ioredis: npm install failed, skipped"
fi
