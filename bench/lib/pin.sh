# Sourced by the benchmarks that pin a server and its load generator: the
# server on the first CPU this process may use, the generator on the second.
# Sets cpu_server, cpu_client, server_pin=(...), client_pin=(...) and pinning
# (a line saying which), naming the generator ${pin_client_name:-load generator}.
read -r cpu_server cpu_client < <(python3 -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else "")')
if [ -n "$cpu_client" ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c "$cpu_server")
  client_pin=(taskset -c "$cpu_client")
  pinning="server on CPU $cpu_server, ${pin_client_name:-load generator} on CPU $cpu_client"
else
  server_pin=()
  client_pin=()
  pinning="not pinned: fewer than 2 CPUs or no taskset; figures are only indicative"
fi
