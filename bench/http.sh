#!/usr/bin/env bash
# HTTP servers against their peers, measured in the same run:
#   hello world with wrk (plain keep-alive, and 16-deep pipelining): Evo's http.serve (with a
#     shared header table, and "natural": a new one per request, as users write it, also
#     under --io=uring) and its event-style HttpServer vs a naive LuaJIT + luv server (the anchor), Node's http,
#     nginx + its Lua module, plain nginx;
#   WebSocket echo of 32-byte messages: Evo's ws vs Node's ws package;
#   a 1 MiB static file: Evo's http.static vs plain nginx and a Node static handler.
# Servers run on one CPU, the load generator on another. A peer that is not installed is
# skipped; an Evo server that does not start is reported and the peers still run.
# Targets from the issue are printed beside the ratios; a missed target never fails this.
#   bench/http.sh [path/to/evo]          (or EVO=path/to/evo bench/http.sh)
#   DURATION=10 seconds per measurement, CONNECTIONS=50, LOADGEN=native|wrk (hello world's
#   generator: bench/loadgen's evo_loadgen by default), ROWS=hello,ws,static (which
#   benchmarks: ROWS=static,ws runs only those two; hello includes the two-CPU rows)
set -euo pipefail
evo=${1:-${EVO:-./build/evo}}
here=$(cd "$(dirname "$0")" && pwd)
duration=${DURATION:-10}
conns=${CONNECTIONS:-50}
depth=16
static_size=$((1024 * 1024))
rows=",${ROWS:-hello,ws,static},"
want() { [[ $rows == *",$1,"* ]]; }

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "http: $tool not installed (scripts/install-deps bench)"; exit 0; }
done
# The hello-world rows' load generator: LOADGEN=native (default: bench/loadgen's
# evo_loadgen, built here from evo's build directory when missing) or LOADGEN=wrk.
generator=${LOADGEN:-native}
loadgen=${EVO_LOADGEN:-$(cd "$(dirname "$evo")" && pwd)/bench/loadgen/evo_loadgen}
if [ "$generator" = native ] && [ ! -x "$loadgen" ] && [ -f "$(dirname "$evo")/CMakeCache.txt" ]; then
  cmake --build "$(dirname "$evo")" --target evo_loadgen >/dev/null 2>&1 || true
fi
if [ "$generator" = native ] && [ ! -x "$loadgen" ]; then
  echo "http: $loadgen not built: hello-world rows use wrk (cmake --build build --target evo_loadgen)"
  generator=wrk
fi
report() { python3 "$here/http/report.py" "$@"; }

# Server on the first CPU we may use, load generator on the second.
source "$here/lib/pin.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evo-bench-http.XXXXXX")
chmod 755 "$tmp"   # nginx workers run as nobody when started by root
results=$tmp/results.jsonl
static_dir=$tmp/static
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
alive() { [ -e "/proc/$1" ] && [ "$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" != Z ]; }

# start_server NAME URL CHECK COMMAND... : starts COMMAND on the server CPU and waits up
# to 5 s until URL answers (CHECK=http: any HTTP response; CHECK=tcp: the connection is
# accepted, for WebSocket-only servers). Sets server_pid; on failure prints why with the
# log's tail, stops the server and returns 1.
start_server() {
  local name=$1 url=$2 check=$3 rc deadline
  shift 3
  server_log=$tmp/$name.log
  "${server_pin[@]}" "$@" >"$server_log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  deadline=$(($(now_ns) + 5000000000))
  while :; do
    if ! alive "$server_pid"; then
      echo "  $name: failed to start (see log): it exited"
      break
    fi
    rc=0
    curl -s -o /dev/null --max-time 1 "$url" || rc=$?
    if [ "$rc" -eq 0 ] || { [ "$check" = tcp ] && [ "$rc" -ne 7 ]; }; then
      return 0
    fi
    if [ "$(now_ns)" -ge "$deadline" ]; then
      echo "  $name: failed to start (see log): no answer on $url within 5 s"
      break
    fi
    sleep 0.05
  done
  echo "  --- tail of the log ($*):"
  tail -n 12 "$server_log" | sed 's/^/  | /'
  stop_server
  return 1
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  local p rest=()
  for p in "${pids[@]}"; do [ "$p" = "$server_pid" ] || rest+=("$p"); done
  pids=("${rest[@]}")
}

# check_hello URL: the response is 200, text/plain, "Hello, World!".
check_hello() {
  local out
  out=$(curl -s --max-time 2 -o "$tmp/body" -w '%{http_code} %{content_type}' "$1" || true)
  case "$out" in 200\ text/plain*) ;; *) echo "status/content-type '$out'"; return 1 ;; esac
  [ "$(cat "$tmp/body")" = "Hello, World!" ] || { echo "body '$(head -c 60 "$tmp/body")'"; return 1; }
}
# check_static URL: the response is 200 and the whole file.
check_static() {
  local out
  out=$(curl -s --max-time 5 -o "$tmp/body" -w '%{http_code}' "$1" || true)
  [ "$out" = 200 ] || { echo "status '$out'"; return 1; }
  cmp -s "$tmp/body" "$static_dir/file.bin" || { echo "body differs from the file ($(stat -c %s "$tmp/body") bytes)"; return 1; }
}

# busy_again "SERVER CLIENT OTHERS" ATTEMPT: when other processes took 10% of a CPU or more
# during a measurement, says so and succeeds (measure again) unless that was the last try.
busy_again() {
  local others=${1##* }
  [ "${others%.*}" -ge 10 ] && [ "$2" -lt 3 ] || return 1
  echo "  (other processes took ${others}% of a CPU meanwhile: measuring again)"
}

# wrk_run GROUP NAME SCENARIO URL: 1 s warm-up, then the measured run, then one result line.
# The hello-world rows use the native generator unless LOADGEN=wrk (gen_cmd).
wrk_run() {
  local group=$1 name=$2 scenario=$3 url=$4 cpu
  gen_cmd "$group" "$scenario" "$url" 1
  "${client_pin[@]}" "${gen[@]}" >/dev/null 2>&1 || true
  gen_cmd "$group" "$scenario" "$url" "$duration"
  for attempt in 1 2 3; do
    cpu=$(report measure "$server_pid" "$tmp/wrk.txt" "${client_pin[@]}" "${gen[@]}")
    busy_again "$cpu" "$attempt" || break
  done
  # shellcheck disable=SC2086 # three numbers
  report wrk "$results" "$group" "$name" "$scenario" "$tmp/wrk.txt" "$(report rss "$server_pid")" $cpu "$static_size"
}

# gen_cmd GROUP SCENARIO URL SECONDS: sets gen to the load generator's command line:
# evo_loadgen for the hello-world rows (pipelined: 16 requests in one write, the next
# 16 once all are answered, as http/pipeline.lua does with wrk), wrk otherwise.
gen_cmd() {
  if [ "$generator" = native ] && [ "$1" = hello ]; then
    gen=("$loadgen" -c "$conns" -d "$4" "$3")
    [ "$2" = pipelined ] && gen+=(-p "$depth" --batch)
  else
    gen=(wrk -t1 -c"$conns" -d"${4}s" --latency "$3")
    [ "$2" = pipelined ] && gen+=(-s "$here/http/pipeline.lua" -- "$depth")
  fi
  return 0
}

# bench_server GROUP NAME SCENARIO CHECK PORT COMMAND...: a fresh server for each
# measurement (so each RSS peak is that scenario's own), its response checked with CHECK,
# then wrk_run. Returns 1 if the server did not start.
bench_server() {
  local group=$1 name=$2 scenario=$3 check=$4 port=$5 url why
  shift 5
  url=http://127.0.0.1:$port/
  [ "$group" = static ] && url=${url}file.bin
  if ! start_server "$name" "$url" http "$@"; then
    report failed "$results" "$group" "$name" "$scenario" "failed to start"
    return 1
  fi
  if ! why=$($check "$url"); then
    echo "  $name: unexpected response ($why), not measured"
    report failed "$results" "$group" "$name" "$scenario" "unexpected response"
  else
    wrk_run "$group" "$name" "$scenario" "$url"
  fi
  stop_server
}

# ---- peers: what is installed
have_node=no
command -v node >/dev/null && have_node=yes
nginx_bin=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
nginx_modules=${NGINX_MODULES:-/usr/lib/nginx/modules}
have_nginx_lua=no
[ -n "$nginx_bin" ] && [ -f "$nginx_modules/ndk_http_module.so" ] && [ -f "$nginx_modules/ngx_http_lua_module.so" ] && have_nginx_lua=yes
have_node_ws=no
[ $have_node = yes ] && NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH} node -e 'require("ws")' 2>/dev/null && have_node_ws=yes
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}

# nginx_conf KIND PORT [WORKERS]: writes an nginx prefix (one worker unless WORKERS) for
# KIND (lua, plain, static) and prints its directory.
nginx_conf() {
  local kind=$1 port=$2 workers=${3:-1} dir location modules=""
  dir=$(mktemp -d "$tmp/nginx-$kind.XXXXXX")
  chmod 755 "$dir"
  case "$kind" in
    lua)
      modules="load_module $nginx_modules/ndk_http_module.so;
load_module $nginx_modules/ngx_http_lua_module.so;"
      location='location / { content_by_lua_block { ngx.header["content-type"] = "text/plain"; ngx.print("Hello, World!") } }' ;;
    plain)
      location='location / { default_type text/plain; return 200 "Hello, World!"; }' ;;
    static)
      location="location / { root $static_dir; }" ;;
  esac
  cat >"$dir/nginx.conf" <<EOF
$modules
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    $location
  }
}
EOF
  echo "$dir"
}
# server_cmd NAME PORT: sets cmd to the command line of server NAME on PORT.
server_cmd() {
  local dir
  case "$1" in
    evo) cmd=("$evo" "$here/http/evo_hello.lua" "$2") ;;
    evo-natural) cmd=("$evo" "$here/http/evo_natural.lua" "$2") ;;
    evo-uring) cmd=("$evo" --io=uring "$here/http/evo_natural.lua" "$2") ;;
    luv-naive) cmd=(luajit "$here/http/luv_naive.lua" "$2") ;;
    evo-workers2) cmd=("$evo" --workers 2 "$here/http/evo_hello.lua" "$2") ;;
    evo-events) cmd=("$evo" "$here/http/evo_events_hello.lua" "$2") ;;
    evo-static) cmd=("$evo" "$here/http/evo_static.lua" "$static_dir" "$2") ;;
    evo-ws) cmd=("$evo" "$here/http/evo_ws_echo.lua" "$2") ;;
    node) cmd=(node "$here/http/node_hello.js" "$2") ;;
    node-static) cmd=(node "$here/http/node_static.js" "$static_dir" "$2") ;;
    node-ws) cmd=(node "$here/http/node_ws_echo.js" "$2") ;;
    nginx-workers2) dir=$(nginx_conf plain "$2" 2); cmd=("$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf") ;;
    nginx+lua | nginx | nginx-static)
      case "$1" in nginx+lua) dir=$(nginx_conf lua "$2") ;; nginx) dir=$(nginx_conf plain "$2") ;; *) dir=$(nginx_conf static "$2") ;; esac
      cmd=("$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf") ;;
  esac
}
# missing NAME: prints why peer NAME cannot run here, if it cannot.
missing() {
  case "$1" in
    node | node-static) [ $have_node = yes ] || echo "node not installed" ;;
    luv-naive) luajit -e 'require("luv")' 2>/dev/null || echo "luajit or its luv module not installed (luajit, lua-luv)" ;;
    node-ws) [ $have_node_ws = yes ] || echo "node or node-ws not installed" ;;
    nginx+lua) [ $have_nginx_lua = yes ] || echo "nginx's Lua module not installed (nginx, libnginx-mod-http-lua)" ;;
    nginx | nginx-static | nginx-workers2) [ -n "$nginx_bin" ] || echo "nginx not installed" ;;
  esac
}

echo "HTTP benchmarks: ${duration} s per measurement, $conns connections, $pinning"
echo "evo: $evo"

# ---- 1. hello world
want hello && {
echo
if [ "$generator" = native ]; then
  echo "== hello world: evo_loadgen -c$conns -d$duration; pipelined: -p$depth --batch ($depth requests per write)"
else
  echo "== hello world: wrk -t1 -c$conns -d${duration}s --latency; pipelined: $depth requests per write (bench/http/pipeline.lua)"
fi
for name in evo evo-natural evo-uring evo-events luv-naive node nginx+lua nginx; do
  why=$(missing "$name")
  [ -z "$why" ] || { echo "  skipped: $why"; continue; }
  for scenario in plain pipelined; do
    port=$(free_port)
    server_cmd "$name" "$port"
    if ! bench_server hello "$name" "$scenario" check_hello "$port" "${cmd[@]}"; then
      # a server that did not start will not start for the next scenario either
      [ "$scenario" = plain ] && report failed "$results" hello "$name" pipelined "failed to start"
      break
    fi
  done
done

# ---- 1b. hello world on both CPUs: `evo --workers 2` (docs/workers.md) and nginx with
# two workers. This machine may have only 2 CPUs: the servers then share them with wrk
# (the server is not pinned, wrk stays on its CPU), so these rows understate what two
# dedicated cores give; the summary adds a paper estimate from the per-request CPU.
if [ -n "$cpu_client" ]; then
  saved_pin=("${server_pin[@]}")
  [ ${#server_pin[@]} -gt 0 ] && server_pin=(taskset -c "$cpu_server,$cpu_client")
  for name in evo-workers2 nginx-workers2; do
    why=$(missing "$name")
    [ -z "$why" ] || { echo "  skipped: $why"; continue; }
    port=$(free_port)
    server_cmd "$name" "$port"
    bench_server hello "$name" plain check_hello "$port" "${cmd[@]}" || true
  done
  server_pin=("${saved_pin[@]}")
fi
}

# ---- 2. WebSocket echo
want ws && {
echo
echo "== WebSocket echo: $conns connections, 32-byte text messages, one in flight per connection, ${duration} s (bench/http/ws_echo.js)"
if [ $have_node_ws = no ]; then
  echo "  skipped: node or node-ws not installed (the load generator needs both)"
else
  for name in evo node; do
    why=$(missing "$name-ws")
    [ -z "$why" ] || { echo "  skipped: $why"; continue; }
    port=$(free_port)
    server_cmd "$name-ws" "$port"
    # a WebSocket-only server may answer a plain GET with an error or not at all: wait
    # for it to accept connections; ws_echo.js then checks every echo
    if ! start_server "$name" "http://127.0.0.1:$port/" tcp "${cmd[@]}"; then
      report failed "$results" ws "$name" echo "failed to start"
      continue
    fi
    gen=("${client_pin[@]}" node "$here/http/ws_echo.js" "ws://127.0.0.1:$port/" "$conns")
    "${gen[@]}" 1 >/dev/null 2>&1 || true
    for attempt in 1 2 3; do
      cpu=$(report measure "$server_pid" "$tmp/ws.json" "${gen[@]}" "$duration")
      busy_again "$cpu" "$attempt" || break
    done
    # shellcheck disable=SC2086 # three numbers
    report ws "$results" "$name" "$tmp/ws.json" "$(report rss "$server_pid")" $cpu
    stop_server
  done
fi
}

# ---- 3. a 1 MiB static file
want static && {
echo
echo "== 1 MiB static file: wrk -t1 -c$conns -d${duration}s GET /file.bin (nginx: sendfile on)"
mkdir -p "$static_dir"
head -c "$static_size" /dev/urandom >"$static_dir/file.bin"
chmod 755 "$static_dir"
chmod 644 "$static_dir/file.bin"
for name in evo nginx node; do
  why=$(missing "$name-static")
  [ -z "$why" ] || { echo "  skipped: $why"; continue; }
  port=$(free_port)
  server_cmd "$name-static" "$port"
  bench_server static "$name" get check_static "$port" "${cmd[@]}" || true
done
}

echo
echo "== summary ($pinning)"
report summary "$results"
