"""A WebSocket client on a raw socket that builds every frame by hand, for
protocol violations; driven by a JSON script on stdin, prints a Lua report.

Script: {"port", "path", "headers": {name: value | null (left out)}, "steps"}
The handshake goes first; when the answer is not 101 the report has the
status, headers and body, and the steps do not run.
Steps: ["frame", {"opcode", "fin" (true), "rsv" (0..7), "mask" (true),
"text" | "hex", "code" (a close code put before the payload), "deflate"
(compress the payload and set RSV1)}],
["frames", [spec, ...]] (several frames in one send, so the server reads them together),
["read"] (one frame), ["until_close"] (frames until a close frame or EOF),
["sleep", s].
Report: {status, headers, body, frames = {{opcode, fin, rsv, masked, data,
code, reason, compressed (the size on the wire when RSV1 was set: data is
inflated)} | {eof = true} | {timeout = true} | {reset = true}}}
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import zlib

from luareport import emit


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError()
        self.buf += data

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode("latin-1")

    def frame(self):
        b0, b1 = self.take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.take(8))[0]
        key = self.take(4) if b1 & 0x80 else None
        data = self.take(n)
        if key:
            data = bytes(c ^ key[i % 4] for i, c in enumerate(data))
        f = {"opcode": b0 & 0x0F, "fin": bool(b0 & 0x80), "rsv": (b0 >> 4) & 7,
             "masked": key is not None, "data": data}
        if f["rsv"] & 4:  # a compressed message in one frame
            f["compressed"] = len(data)
            f["data"] = data = zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")
        if f["opcode"] == 8 and len(data) >= 2:
            f["code"] = struct.unpack("!H", data[:2])[0]
            f["reason"] = data[2:]
        return f


def build(spec):
    payload = spec["text"].encode("utf-8") if "text" in spec else bytes.fromhex(spec.get("hex", ""))
    if "code" in spec:
        payload = struct.pack("!H", spec["code"]) + payload
    rsv = spec.get("rsv", 0)
    if spec.get("deflate"):  # permessage-deflate: raw DEFLATE without the final empty block's tail
        c = zlib.compressobj(wbits=-15)
        payload = (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        rsv |= 4
    b0 = (0x80 if spec.get("fin", True) else 0) | (rsv << 4) | spec["opcode"]
    mask = spec.get("mask", True)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if mask:
        key = os.urandom(4)
        payload = key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + payload


def main(config):
    report = {"frames": []}
    frames = report["frames"]
    sock = socket.create_connection(("127.0.0.1", config["port"]), timeout=10)
    conn = Conn(sock)
    headers = {
        "Host": "127.0.0.1:%d" % config["port"],
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for k, v in (config.get("headers") or {}).items():
        if v is None:
            headers.pop(k, None)
        else:
            headers[k] = v
    request = "GET %s HTTP/1.1\r\n" % config.get("path", "/")
    request += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    sock.sendall(request.encode("latin-1"))
    lines = conn.head().split("\r\n")
    report["status"] = int(lines[0].split(" ")[1])
    report["headers"] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        report["headers"][name.strip().lower()] = value.strip()
    if report["status"] != 101:
        length = int(report["headers"].get("content-length", "0"))
        report["body"] = conn.take(length)
        emit(report)
        return
    try:
        for step in config.get("steps", []):
            op = step[0]
            if op == "frame":
                sock.sendall(build(step[1]))
            elif op == "frames":
                sock.sendall(b"".join(build(spec) for spec in step[1]))
            elif op == "read":
                frames.append(conn.frame())
            elif op == "until_close":
                while True:
                    f = conn.frame()
                    frames.append(f)
                    if f["opcode"] == 8:
                        break
            elif op == "sleep":
                time.sleep(step[1])
            else:
                raise ValueError("unknown step %r" % (op,))
    except EOFError:
        frames.append({"eof": True})
    except socket.timeout:
        frames.append({"timeout": True})
    except ConnectionResetError:
        frames.append({"reset": True})
    emit(report)


main(json.loads(sys.stdin.read()))
