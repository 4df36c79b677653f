"""An HTTP/2 client on Python's h2 state machine (Debian's python3-h2, not
nghttp2), for the trailer and 1xx specs: one request over h2c by prior
knowledge, optionally with a body and request trailers; prints, as a Lua
table, every header block it received in order (informational responses,
the response, the trailers) and the body.

    h2trailers.py PORT METHOD PATH [BODY [TRAILER...]]   TRAILER: "name: value"

Report: {blocks = {{kind = "informational"|"response"|"trailers",
fields = {{name, value}...}}...}, body = "...", reset = code or nil}"""
import os
import socket
import sys

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "http", "peers"))
from lualit import lua  # noqa: E402


def main():
    port, method, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    body = sys.argv[4].encode() if len(sys.argv) > 4 else None
    trailers = [tuple(t.split(": ", 1)) for t in sys.argv[5:]]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    headers = [(":method", method), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port), (":path", path)]
    conn.send_headers(sid, headers, end_stream=body is None)
    if body is not None:
        conn.send_data(sid, body, end_stream=not trailers)
        if trailers:
            conn.send_headers(sid, trailers, end_stream=True)
    sock.sendall(conn.data_to_send())
    report = {"blocks": [], "body": b"", "reset": None}
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.InformationalResponseReceived):
                report["blocks"].append({"kind": "informational", "fields": [list(h) for h in ev.headers]})
            elif isinstance(ev, h2.events.ResponseReceived):
                report["blocks"].append({"kind": "response", "fields": [list(h) for h in ev.headers]})
            elif isinstance(ev, h2.events.TrailersReceived):
                report["blocks"].append({"kind": "trailers", "fields": [list(h) for h in ev.headers]})
            elif isinstance(ev, h2.events.DataReceived):
                report["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
            elif isinstance(ev, h2.events.StreamReset):
                report["reset"] = int(ev.error_code)
                done = True
        sock.sendall(conn.data_to_send())
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    print(lua(report))


main()
