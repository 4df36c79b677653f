#!/usr/bin/env python3
"""Measuring and bookkeeping for bench/http.sh.

  report.py measure SERVER_PID OUTPUT COMMAND...
      run COMMAND (the load generator) with its output in OUTPUT; print the CPU used
      meanwhile, in % of one CPU: by the server's processes, by the generator, and by
      everything else on the machine (a busy machine makes the figures noisy)
  report.py rss SERVER_PID
      peak resident set (VmHWM) of the server's processes, kB, summed
  report.py wrk RESULTS GROUP SERVER SCENARIO WRK_OUTPUT RSS_KB CPU... BODY_BYTES
      parse one wrk --latency run, append it to RESULTS (JSON lines), print one line
  report.py ws RESULTS SERVER GENERATOR_JSON RSS_KB CPU...
      the same for one run of ws_echo.js
  report.py failed RESULTS GROUP SERVER SCENARIO REASON
      note a server that did not run, so that the tables and ratios say so
  report.py summary RESULTS
      the tables and Evo's ratios to each peer, with the issue's targets
(CPU... is the three figures `measure` printed.)
"""
import json
import os
import re
import resource
import subprocess
import sys
import time

TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}

# (group, scenario, peer) -> minimum evo/peer ratio the issue asks for
# (group, scenario, Evo server, peer) -> the target ratio. evo-natural is the
# handler a user writes (a new header table per request; issue 13's targets),
# luv-naive the anchor: plain LuaJIT + luv with no real parsing; evo-uring is
# evo-natural under --io=uring.
TARGETS = {
    ("hello", "pipelined", "evo", "nginx+lua"): 3.0,
    ("hello", "pipelined", "evo", "node"): 8.0,
    ("hello", "plain", "evo", "nginx+lua"): 1.0,
    ("hello", "pipelined", "evo-natural", "luv-naive"): 1.4,
    ("hello", "pipelined", "evo-natural", "nginx+lua"): 4.0,
    ("hello", "pipelined", "evo-natural", "node"): 10.0,
    ("hello", "pipelined", "evo-uring", "luv-naive"): 1.4,
}
GENERATOR_SATURATED = 90   # % of a CPU
MACHINE_BUSY = 10          # % of a CPU used by other processes during a measurement


# ---- measuring

def tree(pid):
    """pid and its descendants (nginx's worker)."""
    pids, todo = [], [str(pid)]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(f.read().split())
        except OSError:
            pass
    return pids


def ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy_ticks():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)        # idle + iowait
    guest = sum(cpu[8:10]) if len(cpu) > 9 else 0         # already inside user/nice
    return sum(cpu) - idle - guest


def measure(server_pid, output, cmd):
    hz = os.sysconf("SC_CLK_TCK")
    pids = tree(server_pid)
    s0, m0, t0 = ticks(pids), machine_busy_ticks(), time.monotonic()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(output, "w") as out:
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1, m1, t1 = ticks(pids), machine_busy_ticks(), time.monotonic()
    wall = t1 - t0
    server = 100 * (s1 - s0) / hz / wall
    client = 100 * ((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)) / wall
    other = max(0.0, 100 * (m1 - m0) / hz / wall - server - client)
    print(f"{server:.1f} {client:.1f} {other:.1f}")


def rss(server_pid):
    total = 0
    for p in tree(server_pid):
        try:
            with open(f"/proc/{p}/status") as f:
                m = re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M)
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    print(total)


# ---- results

def parse_wrk(text):
    out = {"rps": None, "p99_ms": None, "non2xx": 0, "socket_errors": 0}
    m = re.search(r"^RESULT (.*)$", text, re.M)  # bench/loadgen's evo_loadgen
    if m:
        f = dict(kv.split("=", 1) for kv in m.group(1).split())
        out["rps"] = float(f["rps"])
        out["p99_ms"] = float(f["p99_ms"]) if f["p99_ms"] != "nan" else None
        out["non2xx"] = int(f["non2xx"])
        out["socket_errors"] = int(f["errors"])
        return out
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if m:
        # wrk prints 0 when its coordinated-omission correction pushed samples below the
        # histogram's minimum (seen with pipelining): no figure rather than a wrong one
        out["p99_ms"] = float(m.group(1)) * TIME_UNITS[m.group(2)] or None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
    return out


def cpu_problems(r):
    problems = []
    if r.get("client_cpu") is not None and r["client_cpu"] >= GENERATOR_SATURATED:
        problems.append("load generator saturated: a lower bound")
    if r.get("other_cpu") is not None and r["other_cpu"] >= MACHINE_BUSY:
        problems.append(f"machine busy ({r['other_cpu']:.0f}% of a CPU used by others): noisy")
    return problems


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def line(r):
    unit = "msg/s" if r["group"] == "ws" else "req/s"
    scenario = "" if r["group"] == "ws" else f"{r['scenario']:9s} "
    if r["rps"] is None and r.get("server_cpu") is None:
        return f"  {r['server']:10s} {scenario}       - {unit}  !! {r['problem']}"
    s = f"  {r['server']:10s} {scenario}{fmt(r['rps'], '8.0f')} {unit}  p99 {fmt(r['p99_ms'], '6.2f')} ms"
    if r["group"] == "static":
        s += f"  {fmt(r.get('mib_s'), '5.0f')} MiB/s"
    s += f"  RSS {fmt(r['rss_kb'] / 1024 if r['rss_kb'] else None, '5.1f')} MiB"
    s += (f"  cpu: server {fmt(r.get('server_cpu'), '3.0f')}%"
          f" generator {fmt(r.get('client_cpu'), '3.0f')}% others {fmt(r.get('other_cpu'), '2.0f')}%")
    if r.get("problem"):
        s += f"  !! {r['problem']}"
    return s


def append(results, r):
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(line(r))


def record_wrk(results, group, server, scenario, path, rss_kb, scpu, ccpu, ocpu, body_bytes):
    with open(path, errors="replace") as f:
        parsed = parse_wrk(f.read())
    r = {"group": group, "server": server, "scenario": scenario,
         "rps": parsed["rps"], "p99_ms": parsed["p99_ms"], "rss_kb": int(rss_kb),
         "server_cpu": float(scpu), "client_cpu": float(ccpu), "other_cpu": float(ocpu)}
    if group == "static" and parsed["rps"] is not None:
        r["mib_s"] = parsed["rps"] * int(body_bytes) / 2**20
    problems = []
    if parsed["rps"] is None:
        problems.append("wrk printed no result")
    if parsed["non2xx"]:
        problems.append(f"{parsed['non2xx']} non-2xx responses")
    if parsed["socket_errors"]:
        problems.append(f"{parsed['socket_errors']} socket errors")
    r["problem"] = ", ".join(problems + cpu_problems(r))
    append(results, r)


def record_ws(results, server, path, rss_kb, scpu, ccpu, ocpu):
    try:
        with open(path) as f:
            g = json.loads(f.read().strip().splitlines()[-1])
    except (ValueError, IndexError):
        g = {"failed": "the generator printed no result"}
    r = {"group": "ws", "server": server, "scenario": "echo",
         "rps": g.get("messagesPerSecond"), "p99_ms": g.get("p99Ms"), "rss_kb": int(rss_kb),
         "server_cpu": float(scpu), "client_cpu": float(ccpu), "other_cpu": float(ocpu)}
    problems = []
    if g.get("failed"):
        problems.append(g["failed"])
    if g.get("mismatches"):
        problems.append(f"{g['mismatches']} wrong echoes")
    if g.get("errors"):
        problems.append(f"{g['errors']} connection errors")
    r["problem"] = ", ".join(problems + cpu_problems(r))
    append(results, r)


def record_failed(results, group, server, scenario, reason):
    r = {"group": group, "server": server, "scenario": scenario, "rps": None,
         "p99_ms": None, "rss_kb": 0, "problem": reason}
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")


def workers_estimate(rows):
    """`evo --workers 2` against one process, and the paper estimate: N cores of the
    single-process per-request CPU (server CPU seconds per request), which is what
    workers give when they do not share their cores with the load generator."""
    one = next((r for r in rows if r["server"] == "evo" and r["scenario"] == "plain" and r["rps"]), None)
    two = next((r for r in rows if r["server"] == "evo-workers2" and r["rps"]), None)
    if not one or not two:
        return
    per_request_us = one["server_cpu"] / 100 / one["rps"] * 1e6
    print()
    print(f"  --workers 2: {two['rps']:.0f} req/s = {two['rps'] / one['rps']:.2f}x one process "
          f"({one['rps']:.0f} req/s), server CPU {two['server_cpu']:.0f}% vs {one['server_cpu']:.0f}%;")
    print(f"  wrk shared the same CPUs here (generator {two['client_cpu']:.0f}%), so this is not the scaling.")
    print(f"  Paper estimate: one process spends {per_request_us:.1f} us of CPU per request, so N dedicated")
    print(f"  cores serve about N x {1e6 / per_request_us:.0f} req/s (2: {2e6 / per_request_us:.0f}, "
          f"8: {8e6 / per_request_us:.0f}) if the")
    print("  load generator and the network keep up (the workers share nothing but the sockets).")


def summary(results):
    try:
        with open(results) as f:
            rows = [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        rows = []
    titles = {
        "hello": "HTTP hello world (wrk; plain: one request per round trip, pipelined: 16)",
        "ws": "WebSocket echo (32-byte text messages, one in flight per connection)",
        "static": "1 MiB static file (wrk)",
    }
    for group in ("hello", "ws", "static"):
        grows = [r for r in rows if r["group"] == group]
        print()
        print(f"-- {titles[group]}")
        if not grows:
            print("  (nothing measured)")
            continue
        for r in grows:
            print(line(r))
        by = {(r["server"], r["scenario"]): r["rps"] for r in grows if r["rps"]}
        scenarios = list(dict.fromkeys(r["scenario"] for r in grows))
        servers = list(dict.fromkeys(r["server"] for r in grows))
        evos = [s for s in servers if s.startswith("evo")]
        peers = [s for s in servers if not s.startswith("evo")]
        if not peers or not evos:
            print(f"  (no {'peer' if not peers else 'Evo server'} measured: no ratios)")
            continue
        print("  Evo's throughput relative to each peer (higher is better for Evo):")
        for evo in evos:
            for peer in peers:
                parts = []
                for sc in scenarios:
                    e, p = by.get((evo, sc)), by.get((peer, sc))
                    label = "" if len(scenarios) == 1 else f"{sc} "
                    if e is None:
                        text = f"{label}n/a ({evo} did not run)"
                    elif p is None:
                        text = f"{label}n/a ({peer} did not run)"
                    else:
                        text = f"{label}{e / p:.2f}x"
                    target = TARGETS.get((group, sc, evo, peer))
                    if target is not None:
                        verdict = "n/a" if e is None or p is None else "met" if e / p >= target else "not met"
                        text += f" (target >= {target:g}x: {verdict})"
                    parts.append(text)
                print(f"    {evo + '/' + peer:21s} " + "   ".join(parts))
    workers_estimate(rows)
    if any(r["group"] == "hello" and r["scenario"] == "pipelined" for r in rows):
        print()
        print("  pipelined p99: wrk times a whole 16-request batch and applies its coordinated-omission")
        print("  correction as if each sample were one request, so it overstates the tail; compare")
        print("  servers with it, not with the plain figures.")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "measure" and len(argv) >= 5:
        measure(argv[2], argv[3], argv[4:])
    elif cmd == "rss" and len(argv) == 3:
        rss(argv[2])
    elif cmd == "wrk" and len(argv) == 12:
        record_wrk(*argv[2:])
    elif cmd == "ws" and len(argv) == 9:
        record_ws(*argv[2:])
    elif cmd == "failed" and len(argv) == 7:
        record_failed(*argv[2:])
    elif cmd == "summary" and len(argv) == 3:
        summary(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
