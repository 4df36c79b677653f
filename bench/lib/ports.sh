# Sourced by the benchmarks that start servers on fresh ports (lib/rounds.sh,
# http_ab.sh, scripts/pgo-train): free_port prints a port nobody listens
# on; wait_port PORT [PID] waits until something accepts connections there
# (5 s at most), false if nothing does, or at once when process PID has
# exited.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}
