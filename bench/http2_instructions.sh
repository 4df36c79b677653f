#!/usr/bin/env bash
# Server instructions per HTTP/2 request for hello world, counted by callgrind
# (steady on a shared machine, unlike req/s; the HTTP/1.1 twin is
# bench/http_instructions.sh): h2load -c 1 -m STREAMS drives a fixed number of
# requests over h2c at the server (bench/http2/evo_hello.lua) running under
# valgrind; the difference between a run of N+2000 requests and one of 2000,
# divided by N, so start-up cancels out. Give one or more evo binaries to
# compare them.
#   bash bench/http2_instructions.sh OLD_EVO NEW_EVO    N=20000 STREAMS=100 PORT=18125
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-20000}
streams=${STREAMS:-100}
port=${PORT:-18125}
for tool in valgrind h2load curl; do
  command -v "$tool" >/dev/null || { echo "http2_instructions: $tool not installed"; exit 0; }
done
[ $# -gt 0 ] || set -- ./build/evo
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-instr2.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
count() {  # evo requests -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$1" "$here/http2/evo_hello.lua" "$port" >/dev/null 2>&1 &
  local pid=$! version=
  for _ in $(seq 200); do  # valgrind starts slowly
    version=$(curl -s --http2-prior-knowledge --max-time 2 -o /dev/null -w '%{http_version}' "http://127.0.0.1:$port/" || true)
    [ "$version" = 2 ] && break
    sleep 0.1
  done
  h2load -n "$2" -c 1 -m "$streams" -t 1 "http://127.0.0.1:$port/" >"$tmp/h2load.txt" 2>&1 || true
  grep -q " 0 failed, 0 errored" "$tmp/h2load.txt" || { echo "h2load failed:" >&2; cat "$tmp/h2load.txt" >&2; }
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  grep -m1 '^summary:' "$tmp/out" | awk '{print $2}'
}
for evo in "$@"; do
  small=$(count "$evo" 2000)
  big=$(count "$evo" $((n + 2000)))
  echo "$evo: $(( (big - small) / n )) instructions per HTTP/2 request (h2load -c1 -m$streams)"
done
