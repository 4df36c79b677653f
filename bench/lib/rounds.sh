# Sourced by the server-bound benchmarks (bench/ws.sh, bench/http_cpu.sh): CPU
# pinning, fresh servers on free ports, and rounds that alternate the servers'
# order, each measurement taken by bench/loadgen/measure.py (server CPU time
# per request or message from /proc).
# The sourcing script defines have NAME (0 when the server can run) and
# server_cmd NAME PORT (sets cmd=(...)), and sets here (its bench/ directory),
# rounds and servers before calling run_rounds SCENARIO_FUNCTION; the scenario
# function is called as SCENARIO_FUNCTION NAME once per server and round, with
# port and server_pid set for a fresh server, and calls measure LABEL ARGS....

source "$here/lib/pin.sh"
source "$here/lib/ports.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-bench.XXXXXX")
results=$tmp/results.jsonl
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME: a fresh server on a free port, waiting until it accepts
# connections (5 s at most). Sets server_pid and port.
start() {
  port=$(free_port)
  server_cmd "$1" "$port"
  "${server_pin[@]}" "${cmd[@]}" >"$tmp/$1.log" 2>&1 &
  server_pid=$!
  wait_port "$port" && return 0
  echo "  $1: failed to start (see log):"
  tail -n 8 "$tmp/$1.log" | sed 's/^/  | /'
  stop
  return 1
}
stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# measure LABEL GENERATOR_ARGS...: one measured run of the pinned generator
# (its row keeps the round, run_rounds' $round, to pair the servers' runs).
measure() {
  local label=$1
  shift
  ROUND=${round:-} python3 "$here/loadgen/measure.py" run "$results" "$label" "$server_pid" "${client_pin[@]}" "$@"
}

# run_rounds SCENARIO_FUNCTION: every available server in every round, the
# order reversed every other round; each call gets a fresh server.
run_rounds() {
  local s round i avail=() order
  for s in $servers; do
    if have "$s"; then avail+=("$s"); else echo "  skipped: $s (not installed or not built)"; fi
  done
  for round in $(seq "$rounds"); do
    echo "-- round $round"
    order=("${avail[@]}")
    if [ $((round % 2)) -eq 0 ]; then
      order=()
      for ((i = ${#avail[@]} - 1; i >= 0; i--)); do order+=("${avail[$i]}"); done
    fi
    for s in "${order[@]}"; do "$1" "$s"; done
  done
}
