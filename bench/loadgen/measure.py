#!/usr/bin/env python3
"""Measuring for bench/ws.sh and bench/loadgen/vs_wrk.sh.

  measure.py run RESULTS LABEL SERVER_PID COMMAND...
      runs COMMAND (a load generator: evo_loadgen or wrk) and appends one JSON
      line to RESULTS: the rate it reports, the server's CPU time over the run
      (utime + stime of SERVER_PID and its children, from /proc; the
      stime part, the kernel's, also on its own), the
      generator's own CPU time, the CPU other processes took meanwhile, and
      the server's CPU time per request (message). Prints that line readably.
  measure.py summary RESULTS [BASE [TARGETS...]]
      medians per label over the rounds; with BASE (a label prefix, e.g.
      "evo"), the ratios of BASE's rate and CPU per request to every other
      label of the same scenario. TARGETS are "PEER:MAX" bounds on BASE/PEER
      CPU per request, printed beside the ratios (e.g. node:0.333 c:2);
      "SCENARIO/PEER:MAX" bounds only that scenario's ratio.
Labels are "SCENARIO/SERVER". Before each run it waits up to QUIET_WAIT seconds
(default 30) for a second in which the machine is nearly idle.
"""
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time


def tree(pid):
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
    """(utime + stime, stime) of pids, in clock ticks."""
    total = kernel = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            kernel += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total, kernel


def busy_ticks():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)
    guest = sum(cpu[8:10]) if len(cpu) > 9 else 0
    return sum(cpu) - idle - guest


def parse(text):
    """(rate, count, errors, p99_ms) from evo_loadgen's RESULT line or wrk's report."""
    m = re.search(r"^RESULT (.*)$", text, re.M)
    if m:
        f = dict(kv.split("=", 1) for kv in m.group(1).split())
        count = int(f.get("requests", f.get("messages", 0)))
        p99 = float(f["p99_ms"]) if f.get("p99_ms", "nan") != "nan" else None
        return float(f["rps"]), count, int(f["errors"]) + int(f.get("non2xx", 0)), p99
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        n = re.search(r"^\s+(\d+) requests in", text, re.M)
        errors = 0
        e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        if e:
            errors += sum(int(g) for g in e.groups())
        e = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        if e:
            errors += int(e.group(1))
        return float(m.group(1)), int(n.group(1)) if n else 0, errors, None
    return None, 0, None, None


def wait_quiet(limit_s):
    """Waits (up to limit_s) for a second in which the machine is nearly idle
    (under 10% of a CPU busy): the server is idle between runs, so what is busy
    then is other processes, which would skew the run."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit_s
    while True:
        b0 = busy_ticks()
        time.sleep(1)
        if 100 * (busy_ticks() - b0) / hz < 10 or time.monotonic() >= deadline:
            return


def run(results, label, server_pid, cmd):
    wait_quiet(float(os.environ.get("QUIET_WAIT", "30")))
    hz = os.sysconf("SC_CLK_TCK")
    pids = tree(server_pid)
    (s0, k0), m0, t0 = ticks(pids), busy_ticks(), time.monotonic()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    (s1, k1), m1, t1 = ticks(pids), busy_ticks(), time.monotonic()
    wall = t1 - t0
    server_s = (s1 - s0) / hz
    kernel_s = (k1 - k0) / hz
    gen_s = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    other = max(0.0, 100 * ((m1 - m0) / hz - server_s - gen_s) / wall)
    rate, count, errors, p99 = parse(out)
    r = {"label": label, "rate": rate, "count": count, "errors": errors, "p99_ms": p99,
         "server_pct": 100 * server_s / wall, "gen_pct": 100 * gen_s / wall, "other_pct": other,
         "server_us_per": 1e6 * server_s / count if count else None,
         "kernel_us_per": 1e6 * kernel_s / count if count else None,
         "gen_us_per": 1e6 * gen_s / count if count else None,
         "round": os.environ.get("ROUND") or None}
    if rate is None:
        r["problem"] = "no result: " + out.strip().splitlines()[-1] if out.strip() else "no output"
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(line(r), flush=True)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def line(r):
    s = (f"  {r['label']:24s} {fmt(r['rate'], '10.0f')}/s  CPU each: server {fmt(r['server_us_per'], '6.3f')} us"
         f" (kernel {fmt(r.get('kernel_us_per'), '6.3f')})"
         f" generator {fmt(r.get('gen_us_per'), '6.3f')} us"
         f"  cpu: server {r['server_pct']:3.0f}% generator {r['gen_pct']:3.0f}% others {r['other_pct']:3.0f}%")
    if r.get("p99_ms") is not None:
        s += f"  p99 {r['p99_ms']:.2f} ms"
    if r.get("errors"):
        s += f"  !! {r['errors']} errors"
    if r.get("problem"):
        s += f"  !! {r['problem']}"
    if r["gen_pct"] >= 90:
        s += "  !! generator saturated"
    if r["other_pct"] >= 10:
        s += "  (machine busy)"
    return s


def median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summary(results, base=None, targets=(), table=True):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    med = {}
    if table:
        print(f"  medians of {max(sum(1 for r in rows if r['label'] == l) for l in labels)} runs each:")
    for label in labels:
        rs = [r for r in rows if r["label"] == label]
        m = {k: median(rs, k) for k in ("rate", "server_us_per", "kernel_us_per", "gen_us_per", "server_pct", "gen_pct", "other_pct", "p99_ms")}
        m["label"] = label
        m["errors"] = sum(r.get("errors") or 0 for r in rs)
        med[label] = m
        if table:
            print(line(m))
    if not base:
        return
    bounds = dict(t.split(":", 1) for t in targets)
    print(f"  {base} relative to each peer (rate: higher is better; CPU per message: lower is better):")
    for label in labels:
        scenario, server = label.split("/", 1)
        if server != base:
            continue
        b = med[label]
        for other in labels:
            s2, peer = other.split("/", 1)
            if s2 != scenario or peer == base:
                continue
            o = med[other]
            rate = b["rate"] / o["rate"] if b["rate"] and o["rate"] else None
            cpu = b["server_us_per"] / o["server_us_per"] if b["server_us_per"] and o["server_us_per"] else None
            s = f"    {scenario:10s} {base}/{peer:8s} rate {fmt(rate, '5.2f')}x   CPU per message {fmt(cpu, '5.2f')}x"
            bound = bounds.get(f"{scenario}/{peer}", bounds.get(peer))
            limit = float(bound) if bound is not None else None
            if limit is not None and cpu is not None:
                s += f" (target <= {limit:g}x: {'met' if cpu <= limit else 'not met'})"
            s += round_ratios(rows, label, other, limit)
            print(s)


def round_ratios(rows, a, b, limit):
    """The CPU ratio a/b round by round: both runs of a round were minutes
    apart, so a slow spell of the machine weighs on both. Their range (and,
    with a target, in how many rounds it was met) says how far the median's
    ratio can be trusted. Runs are paired by their round (a server that
    failed to start in one leaves that round out)."""
    ra = {r.get("round"): r.get("server_us_per") for r in rows if r["label"] == a}
    rb = {r.get("round"): r.get("server_us_per") for r in rows if r["label"] == b}
    ratios = [ra[k] / rb[k] for k in ra if k is not None and ra[k] and rb.get(k)]
    if len(ratios) < 2:
        return ""
    s = f" [rounds {min(ratios):.2f}-{max(ratios):.2f}"
    if limit is not None:
        s += f", met in {sum(1 for q in ratios if q <= limit)} of {len(ratios)}"
    return s + "]"


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "summary":
        summary(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None, sys.argv[4:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "ratios":  # the ratios alone, no table
        summary(sys.argv[2], sys.argv[3], sys.argv[4:], table=False)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
