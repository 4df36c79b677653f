#!/usr/bin/env bash
# Databases, Evo against the clients a Node user would pick, in one run:
#   Redis GET/SET, 50 tasks on one connection vs ioredis (50 promises) and
#     redis-benchmark (the C ceiling)                        (bench/redis.sh)
#   Postgres SELECT $1 and a 100-row select, 50 tasks on a pool of 10 vs
#     Node's pg and postgres (50 promises, pool of 10)       (bench/postgres.sh)
#   SQLite inserts in one transaction and point selects vs better-sqlite3
#     and Python's sqlite3                                   (bench/sqlite.sh)
# Each script starts its own server on a free port in a temporary directory
# and pins server and clients to different cores; Node packages go to /tmp.
#   bench/db.sh [evo]
set -uo pipefail
evo=${1:-./build/evo}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for part in redis postgres sqlite; do
  echo "== $part"
  bash "$here/$part.sh" "$evo" || status=1
done
exit $status
