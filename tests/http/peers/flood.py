"""Pipelining without reading, for the HTTP hardening specs.

    flood.py PORT CONNS BYTES HOLD
Opens CONNS connections, sends on each about BYTES of pipelined
`GET /big` requests (the last one asks to close) without reading, prints
"sent" and waits HOLD seconds (the spec measures the server meanwhile),
then reads every connection to its end. Report (a Lua table): requests per
connection, and for each connection the count of complete responses and
how it ended."""
import select
import socket
import sys
import time

from lualit import lua


def main():
    port, conns, nbytes, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    one = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    n = max(1, nbytes // len(one))
    payload = one * (n - 1) + last
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        socks.append([s, memoryview(payload)])
    deadline = time.monotonic() + 10
    while any(v for _, v in socks) and time.monotonic() < deadline:
        _, w, _ = select.select([], [s for s, v in socks if v], [], 0.5)
        for item in socks:
            if item[0] in w and item[1]:
                try:
                    k = item[0].send(item[1][:65536])
                    item[1] = item[1][k:]
                except BlockingIOError:
                    pass
    sys.stdout.write("sent\n")
    sys.stdout.flush()
    time.sleep(hold)
    report = {"requests": n, "connections": []}
    for s, _ in socks:
        s.setblocking(True)
        s.settimeout(20)
        count, ending, buf = 0, "timeout", b""
        marker = b"HTTP/1.1 200 OK\r\n"
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    ending = "eof"
                    break
                buf = buf[-len(marker):] + chunk
                count += buf.count(marker)
                buf = buf[-len(marker):]
        except ConnectionResetError:
            ending = "reset"
        except socket.timeout:
            ending = "timeout"
        report["connections"].append({"responses": count, "ending": ending})
        s.close()
    sys.stdout.write(lua(report))


main()
