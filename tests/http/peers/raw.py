"""A raw TCP client for the HTTP specs: runs a script of steps against
127.0.0.1:PORT and reports, as a Lua table, every byte received and how the
connection ended.

    raw.py PORT [TIMEOUT [tls]]  steps on stdin, one per line (tls: over TLS,
                               the server's certificate not checked):
      send HEX                 send these bytes (hex-encoded)
      drip SECONDS HEX         send them one byte at a time, SECONDS apart,
                               stopping early if the server closes
      sleep SECONDS            wait, collecting whatever arrives
      shut                     half-close (no more sending)
      reset                    abort the connection (RST) and report at once
    then read until the server closes, or TIMEOUT seconds (default 5) since
    the start.

Report: {data = all bytes received, ending = "eof" | "reset" | "timeout",
elapsed = seconds at the end, firstByte = seconds when the first byte
arrived, sendError = text when a send failed, marks = {bytes received when
each step began}}."""
import select
import socket
import ssl
import struct
import sys
import time

from lualit import lua


def main():
    port = int(sys.argv[1])
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    steps = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    start = time.monotonic()
    report = {"data": b"", "ending": None, "elapsed": None, "firstByte": None, "sendError": None, "marks": []}
    data = bytearray()

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if len(sys.argv) > 3 and sys.argv[3] == "tls":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname="localhost")

    def pending():
        """Decrypted bytes TLS holds already (select cannot see them)."""
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def recv():
        """What arrived, never blocking on TLS: a readable TLS socket may
        hold only a record without data (a session ticket), where a blocking
        recv would wait for data the server is not going to send: None."""
        if not isinstance(sock, ssl.SSLSocket):
            return sock.recv(65536)
        sock.settimeout(0)
        try:
            return sock.recv(65536)
        except ssl.SSLWantReadError:
            return None
        finally:
            sock.settimeout(timeout)

    def now():
        return time.monotonic() - start

    def take():
        """Adds what arrived to data; False once the peer closed or reset."""
        try:
            chunk = recv()
        except (ConnectionResetError, ssl.SSLError):
            report["ending"] = "reset"
            return False
        if chunk is None:  # a TLS record without data
            return True
        if not chunk:
            report["ending"] = "eof"
            return False
        if report["firstByte"] is None:
            report["firstByte"] = now()
        data.extend(chunk)
        return True

    def pump(wait):
        """Collects what arrives within `wait` seconds; False once the peer closed."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left < 0:
                left = 0
            r = pending() or select.select([sock], [], [], left)[0]
            if not r:
                return True
            if not take():
                return False
            if left == 0:
                return True

    def send(payload):
        """Sends everything, reading meanwhile (a server may stop reading
        until its answers are read); False if sending failed or the peer closed."""
        view = memoryview(payload)
        while view:
            r, w, _ = select.select([sock], [sock], [], timeout)
            r = r or pending()
            if r and not take():
                return False
            if w:
                try:
                    n = sock.send(view[:65536])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    n = 0
                except OSError as e:
                    report["sendError"] = "%s" % e
                    return False
                view = view[n:]
            if not r and not w:
                report["sendError"] = "timed out sending"
                return False
        return True

    open_ = True
    for step in steps:
        report["marks"].append(len(data))
        op = step[0]
        if op == "send":
            if not send(bytes.fromhex(step[1] if len(step) > 1 else "")):
                open_ = report["ending"] is None
                break
            open_ = pump(0)
        elif op == "drip":
            delay = float(step[1])
            for b in bytes.fromhex(step[2]):
                if not send(bytes([b])):
                    open_ = report["ending"] is None
                    break
                open_ = pump(delay)
                if not open_:
                    break
        elif op == "sleep":
            open_ = pump(float(step[1]))
        elif op == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            report["ending"] = "reset-sent"
            report["elapsed"] = now()
            report["data"] = bytes(data)
            sys.stdout.write(lua(report))
            return
        elif op == "shut":
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                report["sendError"] = "%s" % e
        else:
            raise SystemExit("raw.py: unknown step %r" % op)
        if not open_:
            break

    while open_ and report["ending"] is None:
        left = timeout - now()
        if left <= 0:
            report["ending"] = "timeout"
            break
        open_ = pump(min(left, 0.05))
    report["elapsed"] = now()
    report["data"] = bytes(data)
    sock.close()
    sys.stdout.write(lua(report))


main()
