"""Awkward servers for bench/loadgen's spec (tests/lua/loadgen.spec.lua): each
mode answers evo_loadgen in a way it must handle (or report) correctly.

    loadgen_peer.py MODE      prints "listening on PORT", serves until killed

HTTP modes (every "\\r\\n\\r\\n" ends a GET):
  chunked     chunked responses with a chunk extension and a trailer, written
              a few bytes at a time (heads, sizes and CRLFs split anywhere)
  mixed       in turn: 200 with Content-Length, 404, 204, chunked 200, 1xx then 200
  close       200 with "Connection: close", then the connection is closed
  malformed   a 200 whose Content-Length is not a number
  unframed    a 200 with neither Content-Length nor chunked coding
WebSocket modes (the handshake read and answered by hand):
  ws-split    echoes each message as two fragments (text/binary, then a
              continuation), with a ping between them, a few bytes per write
  ws-corrupt  echoes every third message with its last byte changed
  ws-badkey   answers the handshake with a wrong Sec-WebSocket-Accept
"""
import base64
import hashlib
import socket
import socketserver
import struct
import sys
import threading

MODE = sys.argv[1]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BODY = b"Hello, World!"


def dribble(sock, data, step=3):
    for i in range(0, len(data), step):
        sock.sendall(data[i:i + step])


def http_response(n):
    if MODE == "chunked":
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nHello\r\n8\r\n, World!\r\n0\r\nX-Trailer: yes\r\n\r\n")
    if MODE == "close":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n" + BODY
    if MODE == "malformed":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n" + BODY
    if MODE == "unframed":
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY
    kind = n % 5  # mixed
    if kind == 0:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" + BODY
    if kind == 1:
        return b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found"
    if kind == 2:
        return b"HTTP/1.1 204 No Content\r\n\r\n"
    if kind == 3:
        return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nd\r\nHello, World!\r\n0\r\n\r\n"
    return b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def serve_http(sock):
    buf = b""
    n = 0
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        while b"\r\n\r\n" in buf:
            _, buf = buf.split(b"\r\n\r\n", 1)
            out = http_response(n)
            n += 1
            if MODE in ("chunked", "mixed"):
                dribble(sock, out, 1 + n % 4)
            else:
                sock.sendall(out)
            if MODE == "close":
                return


def frame(opcode, payload, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def read_exact(sock, n, buf):
    while len(buf[0]) < n:
        data = sock.recv(65536)
        if not data:
            raise EOFError
        buf[0] += data
    out, buf[0] = buf[0][:n], buf[0][n:]
    return out


def serve_ws(sock):
    buf = [b""]
    while b"\r\n\r\n" not in buf[0]:
        data = sock.recv(65536)
        if not data:
            return
        buf[0] += data
    head, buf[0] = buf[0].split(b"\r\n\r\n", 1)
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if MODE == "ws-badkey":
        accept = base64.b64encode(hashlib.sha1(b"not the key").digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    n = 0
    while True:
        b0, b1 = read_exact(sock, 2, buf)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", read_exact(sock, 2, buf))[0]
        elif length == 127:
            length = struct.unpack("!Q", read_exact(sock, 8, buf))[0]
        mask = read_exact(sock, 4, buf) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(read_exact(sock, length, buf)))
        opcode = b0 & 0x0F
        n += 1
        if MODE == "ws-corrupt":
            if n % 3 == 0 and payload:
                payload = payload[:-1] + bytes([payload[-1] ^ 1])
            sock.sendall(frame(opcode, payload))
        else:
            half = len(payload) // 2
            out = frame(opcode, payload[:half], fin=False) + frame(9, b"hi") + frame(0, payload[half:])
            dribble(sock, out, 1 + n % 5)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            (serve_ws if MODE.startswith("ws-") else serve_http)(self.request)
        except (EOFError, OSError):
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Handler)
print("listening on", server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Event().wait()
