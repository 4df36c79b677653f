#!/usr/bin/env bash
# Memory of N idle keep-alive HTTP connections, Evo against Node.js in the same run.
# Each server (Evo: tests/load/idle_server.lua, Node: http/node_idle_server.js; hello
# world, 120 s keep-alive) runs on one CPU with its descriptor limit raised to the hard
# limit; an Evo client (http/idle_client.lua) on another CPU opens N connections, 200 at
# a time, makes one request on each and keeps them open. One second after they are all
# open the server's VmRSS and VmHWM are read from /proc, and a new request (curl) must
# still be served.
#   bench/http_idle.sh [path/to/evo]          (or EVO=path/to/evo bench/http_idle.sh)
#   CONNECTIONS=10000
set -euo pipefail
evo=${1:-${EVO:-./build/evo}}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
n=${CONNECTIONS:-10000}
ready_timeout=60

command -v curl >/dev/null || { echo "http_idle: curl not installed (scripts/install-deps bench)"; exit 0; }
[ -x "$evo" ] || { echo "http_idle: $evo is not an executable (build it, or pass its path)"; exit 1; }

# Descriptors: each side holds N of them.
fds=$(ulimit -Hn)
[ "$fds" = unlimited ] && fds=$((n + 1000))
if [ "$fds" -lt $((n + 100)) ]; then
  echo "http_idle: $n connections need $((n + 100)) descriptors, the hard limit (ulimit -Hn) is $fds"
  exit 1
fi

pin_client_name=client
source "$here/lib/pin.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-bench-idle.XXXXXX")
server=""
client=""
cleanup() {
  [ -z "$client" ] || kill "$client" 2>/dev/null || true
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
alive() { [ -e "/proc/$1" ] && [ "$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" != Z ]; }
# status_kib PID FIELD: VmRSS or VmHWM of PID, in KiB.
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%6.1f MiB", k / 1024 }'; }
# prefix raising the descriptor limit, then exec'ing the command (so $! is its pid)
# shellcheck disable=SC2016 # $1 and $@ are the inner shell's
raise_fds=(bash -c 'ulimit -n "$1" && shift && exec "$@"' http_idle "$fds")
# stop PID: kills and reaps it
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
tail_log() { tail -n 8 "$1" | sed 's/^/  | /'; }

# measure NAME COMMAND...: starts the server, opens the connections, prints its row and
# sets start_kib and idle_kib; returns 1 (after saying why) when something failed.
measure() {
  local name=$1 log=$tmp/$1.log clog=$tmp/$1-client.log port deadline t0 opened_ms body code why served
  shift
  start_kib=""
  idle_kib=""
  "${server_pin[@]}" "${raise_fds[@]}" "$@" >"$log" 2>&1 &
  server=$!
  deadline=$(($(now_ms) + 5000))
  port=""
  while [ -z "$port" ]; do
    port=$(head -n 1 "$log" | grep -E '^[0-9]+$' || true)
    if [ -z "$port" ] && { ! alive "$server" || [ "$(now_ms)" -ge "$deadline" ]; }; then
      alive "$server" && why="did not print its port within 5 s" || why="exited"
      echo "  $name: the server $why (log:)"
      tail_log "$log"
      stop "$server"
      return 1
    fi
    [ -n "$port" ] || sleep 0.05
  done
  sleep 0.2
  start_kib=$(status_kib "$server" VmRSS)

  t0=$(now_ms)
  "${client_pin[@]}" "${raise_fds[@]}" "$evo" "$here/http/idle_client.lua" "$port" "$n" >"$clog" 2>&1 &
  client=$!
  deadline=$((t0 + ready_timeout * 1000))
  until grep -q '^ready$' "$clog"; do
    if ! alive "$client" || [ "$(now_ms)" -ge "$deadline" ]; then
      alive "$client" && why="not ready within $ready_timeout s" || why="the client exited"
      echo "  $name: $why (client log:)"
      tail_log "$clog"
      stop "$client"
      stop "$server"
      return 1
    fi
    sleep 0.05
  done
  opened_ms=$(($(now_ms) - t0))
  sleep 1
  idle_kib=$(status_kib "$server" VmRSS)
  local hwm_kib open_fds
  hwm_kib=$(status_kib "$server" VmHWM)
  open_fds=$(find "/proc/$server/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)

  # a new request is still served while the N connections are open
  code=$(curl -s --max-time 5 -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$port/" || true)
  body=$(cat "$tmp/body" 2>/dev/null || true)
  if [ "$code" = 200 ] && [ "$body" = hello ]; then served="new request served"; else served="!! new request: status '$code' body '$body'"; fi
  alive "$client" || served="$served; !! the client exited"

  printf '  %-5s start %s   %d idle: %s (peak %s)   %6.2f KiB/connection   %d fds   opened in %.1f s   %s\n' \
    "$name" "$(mib "$start_kib")" "$n" "$(mib "$idle_kib")" "$(mib "$hwm_kib")" \
    "$(awk -v a="$idle_kib" -v b="$start_kib" -v n="$n" 'BEGIN { print (a - b) / n }')" \
    "$open_fds" "$(awk -v m="$opened_ms" 'BEGIN { print m / 1000 }')" "$served"
  stop "$client"
  stop "$server"
  client=""
  server=""
}

echo "Idle keep-alive HTTP connections: $n per server, opened 200 at a time, one GET each; $pinning; ulimit -n $fds"
echo "evo: $evo"
measure evo "$evo" "$root/tests/load/idle_server.lua" 10 || true
evo_start=$start_kib evo_idle=$idle_kib

if ! command -v node >/dev/null; then
  echo "  node: skipped, node not installed"
  exit 0
fi
measure node node "$here/http/node_idle_server.js" || true
node_start=$start_kib node_idle=$idle_kib

if [ -n "$evo_idle" ] && [ -n "$node_idle" ]; then
  awk -v es="$evo_start" -v ei="$evo_idle" -v ns="$node_start" -v ni="$node_idle" -v n="$n" 'BEGIN {
    printf "  node/evo: RSS with %d connections %.2fx, per connection %.2fx (evo %.2f KiB, node %.2f KiB)\n",
      n, ni / ei, (ni - ns) / (ei - es), (ei - es) / n, (ni - ns) / n }'
fi
