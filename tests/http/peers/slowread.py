"""A client that reads slowly, for the HTTP hardening specs.

    slowread.py PORT PATH RATE [PAUSE [shut|tls]]
Sends `GET PATH` on a keep-alive connection with a small receive buffer,
waits PAUSE seconds (default 0) before reading anything, then reads at about
RATE bytes per second until the response is complete (by its Content-Length)
or the server closes (shut: half-close right after the request; tls: over
TLS, the certificate not checked). Report (a Lua table): bytes of body received, how it
ended ("complete", "eof", "reset", "timeout"), seconds taken."""
import socket
import sys
import time

from lualit import lua


def main():
    port, path, rate = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    if len(sys.argv) > 5 and sys.argv[5] == "tls":
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    start = time.monotonic()
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    if len(sys.argv) > 5 and sys.argv[5] == "shut":
        s.shutdown(socket.SHUT_WR)
    time.sleep(pause)
    head, length, got, ending = b"", None, 0, "timeout"
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                ending = "eof"
                break
            if length is None:
                head += chunk
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    continue
                for line in head[:end].split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                got = len(head) - end - 4
            else:
                got += len(chunk)
            if length is not None and got >= length:
                ending = "complete"
                break
            want = start + pause + got / rate
            now = time.monotonic()
            if want > now:
                time.sleep(want - now)
    except ConnectionResetError:
        ending = "reset"
    except socket.timeout:
        ending = "timeout"
    s.close()
    sys.stdout.write(lua({"bytes": got, "ending": ending, "elapsed": time.monotonic() - start}))


main()
