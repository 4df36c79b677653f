"""Python's http.server receiving request bodies, for the client's streamed
and JSON bodies: it decodes chunked bodies itself (BaseHTTPRequestHandler
does not) and answers with a JSON summary of what it got.

    body_server.py        prints "port N", then serves until killed
GET/POST/PUT /echo -> a Lua table {method, te, cl, ctype, size, sha256, chunks,
                      body (first 200 bytes)}
/json              -> the same as JSON, with the body decoded as JSON ("value")
/r307, /r303       -> redirects to /echo"""
import hashlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lualit import lua


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te and te.lower() == "chunked":
            data, chunks = bytearray(), 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data), chunks
                data += self.rfile.read(size)
                self.rfile.readline()
                chunks += 1
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), 0

    def answer(self):
        body, chunks = self.read_body()
        if self.path in ("/r307", "/r303"):
            self.send_response(int(self.path[2:]))
            self.send_header("Location", "/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        report = {
            "method": self.command, "te": self.headers.get("Transfer-Encoding"),
            "cl": self.headers.get("Content-Length"), "ctype": self.headers.get("Content-Type"),
            "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "chunks": chunks,
        }
        if self.path == "/json":
            report["value"] = json.loads(body)
            out, ctype = json.dumps(report).encode(), "application/json"
        else:
            report["body"] = body[:200]
            out, ctype = lua(report).encode("latin-1"), "text/x-lua"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = answer


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
