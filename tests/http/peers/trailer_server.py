"""Python's http.server sending what the HTTP/1.1 client must handle around
a response: trailers after a chunked body and informational (1xx)
responses before the final one. http.server has no API for either, so the
bytes are written by hand on its connection.

    trailer_server.py     prints "port N", then serves until killed
GET /trailers      chunked body "hello world" (two chunks), trailers
                   X-Checksum: 5eb63bbe, X-Multi: a, X-Multi: b
GET /none          chunked body "plain", no trailers
GET /length        "sized" with Content-Length (nothing can follow it)
GET /early         103 Early Hints (Link), 100 Continue, 102 Processing, then
                   200 "final" with trailers X-After: 1xx
GET /many-early    40 interim responses, then 200 (over the client's limit)
GET /big-trailer   a chunked body whose trailers are 70 KiB (over the
                   client's 64 KiB header limit)
GET /bad-trailer   a trailer line with no colon (malformed)
POST /echo         reads a chunked body with its trailers and answers, as a
                   Lua table, what it got: {size, trailers = {name = value}}"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lualit import lua


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def chunked(self, status, chunks, trailers, extra=b""):
        head = b"HTTP/1.1 %d OK\r\nTransfer-Encoding: chunked\r\n" % status + extra + b"\r\n"
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
        self.raw(head + body + b"0\r\n" + b"".join(trailers) + b"\r\n")

    def do_GET(self):
        p = self.path
        if p == "/trailers":
            self.chunked(200, [b"hello ", b"world"],
                         [b"X-Checksum: 5eb63bbe\r\n", b"X-Multi: a\r\n", b"X-Multi: b\r\n"],
                         b"Trailer: X-Checksum, X-Multi\r\n")
        elif p == "/none":
            self.chunked(200, [b"plain"], [])
        elif p == "/length":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsized")
        elif p == "/early":
            self.raw(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            self.raw(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.raw(b"HTTP/1.1 102 Processing\r\n\r\n")
            self.chunked(200, [b"final"], [b"X-After: 1xx\r\n"])
        elif p == "/many-early":
            self.raw(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 40)
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif p == "/big-trailer":
            self.chunked(200, [b"x"], [b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(70)])
        elif p == "/bad-trailer":
            self.chunked(200, [b"x"], [b"no colon here\r\n"])
        else:
            self.raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def do_POST(self):
        size, trailers = 0, {}
        while True:
            n = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if n == 0:
                break
            size += len(self.rfile.read(n))
            self.rfile.readline()
        while True:
            line = self.rfile.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            trailers[name.strip().lower()] = value.strip()
        body = lua({"size": size, "trailers": trailers}).encode()
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
