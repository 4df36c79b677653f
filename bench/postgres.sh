#!/usr/bin/env bash
# Postgres from 50 concurrent callers on a pool of 10 connections: `SELECT $1`
# and a 100-row select. Evo's client (automatic pipelining on each pooled
# connection) vs Node's `pg` (pg.Pool) and `postgres` (postgres.js), both from
# npm, installed into a temporary directory. A fresh PostgreSQL 15 cluster
# (Debian's) runs pinned to core 1, every client pinned to core 0, in the same
# run. As root the cluster runs as the postgres user (runuser).
# Usage: bench/postgres.sh [evo] [ops]
set -euo pipefail
EVO=${1:-./build/evo}
OPS=${2:-100000}
here=$(cd "$(dirname "$0")" && pwd)
bin=/usr/lib/postgresql/15/bin
dir=$(mktemp -d /tmp/evo-pg-bench.XXXXXX)
port=$(( 20000 + RANDOM % 20000 ))
as=()
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; as=(runuser -u postgres --); fi
"${as[@]}" "$bin/initdb" -D "$dir/data" -U bench --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
taskset -c 1 "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
  "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=50" \
  start >/dev/null
trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
url="postgres://bench@127.0.0.1:$port/postgres?sslmode=disable"

evo=$(taskset -c 0 "$EVO" "$here/postgres.lua" "$url" "$OPS")
e1=$(echo "$evo" | awk '/select1/ {print $2}')
e100=$(echo "$evo" | awk '/rows100/ {print $2}')
c1=$(echo "$evo" | awk '/select1/ {print $3}')
c100=$(echo "$evo" | awk '/rows100/ {print $3}')
echo "  queries/s, and the client's CPU time per query (the server has one core: when it is"
echo "  saturated the rates converge, and CPU per query is what tells the clients apart)"
printf "  %-28s SELECT \$1 %7s q/s %6s us/q   100 rows %6s q/s %7s us/q\n" "evo (50 tasks, pool of 10)" "$e1" "$c1" "$e100" "$c100"

nodedir=/tmp/evo-bench-pg
if [ ! -d "$nodedir/node_modules/pg" ] || [ ! -d "$nodedir/node_modules/postgres" ]; then
  mkdir -p "$nodedir" && (cd "$nodedir" && npm init -y >/dev/null && npm install --silent pg postgres >/dev/null 2>&1) || true
fi
for lib in pg postgres; do
  if [ -d "$nodedir/node_modules/$lib" ]; then
    node=$(NODE_PATH="$nodedir/node_modules" taskset -c 0 node "$here/postgres_node.js" "$url" "$OPS" "$lib")
    n1=$(echo "$node" | awk '/select1/ {print $2}')
    n100=$(echo "$node" | awk '/rows100/ {print $2}')
    d1=$(echo "$node" | awk '/select1/ {print $3}')
    d100=$(echo "$node" | awk '/rows100/ {print $3}')
    printf "  %-28s SELECT \$1 %7s q/s %6s us/q   100 rows %6s q/s %7s us/q\n" "node $lib (50 promises, max 10)" "$n1" "$d1" "$n100" "$d100"
    printf "    evo/node: rate %s, CPU per query %s (SELECT \$1); rate %s, CPU per query %s (100 rows)\n" \
      "$(awk "BEGIN{printf \"%.2fx\", $e1/$n1}")" "$(awk "BEGIN{printf \"%.2fx less\", $d1/$c1}")" \
      "$(awk "BEGIN{printf \"%.2fx\", $e100/$n100}")" "$(awk "BEGIN{printf \"%.2fx less\", $d100/$c100}")"
  else
    echo "  node $lib: npm install failed, skipped"
  fi
done
