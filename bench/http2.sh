#!/usr/bin/env bash
# HTTP/2 hello world under h2load, Evo against its peers in the same run (issue 12):
#   h2load -c CONNECTIONS -m 100 (100 streams in flight per connection) over h2c, against
#   Evo's http.serve{http2 = true}, nginx with `listen ... http2` (one worker, `return 200`)
#   and Node's http2 module. Server pinned to one CPU, h2load to another, as bench/http.sh.
# Prints req/s, the server's and h2load's CPU use, and evo/peer ratios (target from the
# issue: evo >= 2x nginx). While Evo's server does not speak HTTP/2, it prints
# "evo: no HTTP/2 yet" and still measures the peers.
#   bench/http2.sh [path/to/evo]          (or EVO=path/to/evo bench/http2.sh)
#   DURATION=10 seconds per measurement, CONNECTIONS=10, STREAMS=100
#
# Reading the nginx row. nginx was seen at 40-55% of its CPU with h2load far from
# saturated too: that is not its configuration (worker_connections 4096 > 10 connections;
# http2_max_concurrent_streams defaults to 128 >= -m 100; keepalive_requests is unbounded
# here; 1, 10 or 50 connections and 10 or 100 streams change nothing) but the machine:
# on a 2-CPU box shared with other jobs (builds), taskset pins our processes without
# reserving the CPUs, and top showed compilers taking the rest of both. On a quiet
# machine nginx and h2load both run at 95-99% of their CPUs (~88,000 req/s): h2load,
# single-threaded, then needs about as much CPU per request as nginx, so nginx's req/s is
# bound by the client as much as by itself. The "other load" column says how busy the
# server's CPU was with other processes during the run; CPU time per request is the
# figure to compare servers by, req/s only when other load is near 0.
set -euo pipefail
evo=${1:-${EVO:-./build/evo}}
here=$(cd "$(dirname "$0")" && pwd)
duration=${DURATION:-10}
conns=${CONNECTIONS:-10}
streams=${STREAMS:-100}

for tool in h2load curl python3; do
  command -v "$tool" >/dev/null || { echo "http2: $tool not installed (scripts/install-deps bench)"; exit 0; }
done

pin_client_name=h2load
source "$here/lib/pin.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-bench-http2.XXXXXX")
chmod 755 "$tmp"  # nginx workers run as nobody when started by root
results=$tmp/results.txt
: >"$results"
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# cpu_ticks PID: utime + stime of a process and its live children (nginx's worker), in
# clock ticks
cpu_ticks() {
  local p total=0 t
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

# start NAME PORT COMMAND...: starts the server pinned, waits until curl gets an HTTP/2
# answer (5 s); returns 1 (and says why) if it does not.
start() {
  local name=$1 port=$2 version
  shift 2
  "${server_pin[@]}" "$@" >"$tmp/$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    version=$(curl -s --http2-prior-knowledge --max-time 1 -o /dev/null -w '%{http_version}' "http://127.0.0.1:$port/" || true)
    [ "$version" = 2 ] && return 0
    sleep 0.1
  done
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  return 1
}
stop() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# cpu_busy N: busy clock ticks of CPU N since boot (all processes), from /proc/stat
cpu_busy() {
  awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# measure NAME PORT: a 1 s warm-up, then h2load for DURATION s; appends
# "NAME req/s server-cpu% h2load-cpu% failed" to the results and prints it, with the
# share of the server's CPU that other processes took meanwhile (a shared machine).
measure() {
  local name=$1 port=$2 url out rps t0 t1 s0 s1 b0 b1 load_cpu server_cpu failed other
  url=http://127.0.0.1:$port/
  "${client_pin[@]}" h2load -c "$conns" -m "$streams" -t 1 -D 1 "$url" >/dev/null 2>&1 || true
  s0=$(cpu_ticks "$server_pid")
  b0=$(cpu_busy "$cpu_server")
  t0=$(date +%s%N)
  out=$(/usr/bin/time -f 'h2load-cpu %P' "${client_pin[@]}" h2load -c "$conns" -m "$streams" -t 1 -D "$duration" "$url" 2>&1)
  t1=$(date +%s%N)
  s1=$(cpu_ticks "$server_pid")
  b1=$(cpu_busy "$cpu_server")
  rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
  failed=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p')
  load_cpu=$(echo "$out" | sed -n 's/^h2load-cpu \([0-9]*\)%.*/\1/p')
  server_cpu=$(python3 -c "import os; print(round(($s1 - $s0) / os.sysconf('SC_CLK_TCK') / (($t1 - $t0) / 1e9) * 100))")
  other=$(python3 -c "import os; print(max(0, round(($b1 - $b0 - ($s1 - $s0)) / os.sysconf('SC_CLK_TCK') / (($t1 - $t0) / 1e9) * 100)))")
  if [ -z "$rps" ]; then
    echo "  $name: h2load gave no figure:"
    echo "$out" | tail -5 | sed 's/^/    /'
    return
  fi
  echo "$name $rps $server_cpu ${load_cpu:-?} ${failed:-?}" >>"$results"
  printf '  %-8s %12.0f req/s   server CPU %4s%% (%s us/request)   h2load CPU %4s%%   other load %3s%%   failed %s\n' \
    "$name" "$rps" "$server_cpu" "$(python3 -c "print(round($server_cpu / 100 / $rps * 1e6, 2))")" "${load_cpu:-?}" \
    "$other" "${failed:-?}"
}

nginx_conf() {
  local port=$1 dir=$tmp/nginx
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000000;  # (also bounds HTTP/2 requests per connection since 1.19.7)
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port http2;
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
CONF
  echo "$dir"
}

echo "HTTP/2 hello world: h2load -c$conns -m$streams -t1 -D$duration over h2c; $pinning"
echo "evo: $evo"
nginx_bin=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)

port=$(free_port)
if start evo "$port" "$evo" "$here/http2/evo_hello.lua" "$port"; then
  measure evo "$port"
  stop
else
  echo "  evo: no HTTP/2 yet (curl --http2-prior-knowledge got no HTTP/2 answer)"
fi

if [ -n "$nginx_bin" ]; then
  port=$(free_port)
  dir=$(nginx_conf "$port")
  if start nginx "$port" "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"; then
    measure nginx "$port"
    stop
  else
    echo "  nginx: did not start"; tail -3 "$dir/error.log" 2>/dev/null || true
  fi
else
  echo "  nginx: not installed"
fi

if command -v node >/dev/null; then
  port=$(free_port)
  if start node "$port" node "$here/http2/node_hello.js" "$port"; then
    measure node "$port"
    stop
  else
    echo "  node: did not start"
  fi
else
  echo "  node: not installed"
fi

echo
echo "== summary ($pinning)"
python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, server_cpu, load_cpu, failed = line.split()
    rows[name] = (float(rps), server_cpu, load_cpu)
# server CPU per request: steadier than req/s on a shared machine, where the server may
# not get its whole CPU
def us(name):
    rps, server_cpu, _ = rows[name]
    return int(server_cpu) / 100 / rps * 1e6 if int(server_cpu) > 0 else float("nan")
for name, (rps, server_cpu, load_cpu) in rows.items():
    note = ""
    if load_cpu not in ("?",) and int(load_cpu) >= 95:
        note = "  (h2load's CPU at %s%%: saturated, the server may be faster than this)" % load_cpu
    print("  %-8s %12.0f req/s  %6.2f us of server CPU per request%s" % (name, rps, us(name), note))
if "evo" in rows:
    for peer in ("nginx", "node"):
        if peer in rows:
            target = "  (target >= 2x)" if peer == "nginx" else ""
            print("  evo/%s: %.2fx req/s, %.2fx less CPU per request%s" % (peer, rows["evo"][0] / rows[peer][0],
                                                                     us(peer) / us("evo"), target))
else:
    print("  evo: no HTTP/2 yet, no ratios")
if "nginx" in rows and "node" in rows:
    print("  nginx/node: %.2fx req/s, %.2fx less CPU per request" % (rows["nginx"][0] / rows["node"][0],
                                                                   us("node") / us("nginx")))
PY
