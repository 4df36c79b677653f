"""A WebSocket echo server on Python's websockets (asyncio API, 10.x).

Usage: ws_server.py [--compression deflate|none] [--subprotocols a,b]
Prints "port N", then one line per event, tagged with the connection's
X-Test-Id request header:
  open ID PATH SUBPROTOCOL DEFLATE(yes|no)
  closed ID CODE REASON
Messages are echoed as they came (text or binary), except for commands:
"__info" is answered with "subprotocol=P deflate=yes|no"; "__close CODE
REASON" closes the connection so; "__big N" is answered with N bytes of
text. GET /plain is a plain HTTP 200 response (not a WebSocket).
"""
import argparse
import asyncio
import http
import sys

import websockets
import websockets.exceptions


def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


async def handler(ws):
    tag = ws.request_headers.get("X-Test-Id", "-")
    deflate = "yes" if any(e.name == "permessage-deflate" for e in ws.extensions) else "no"
    say("open", tag, ws.path, ws.subprotocol or "-", deflate)
    try:
        async for msg in ws:
            if msg == "__info":
                await ws.send("subprotocol=%s deflate=%s" % (ws.subprotocol or "-", deflate))
            elif isinstance(msg, str) and msg.startswith("__close "):
                _, code, reason = msg.split(" ", 2)
                await ws.close(int(code), reason)
            elif isinstance(msg, str) and msg.startswith("__big "):
                await ws.send("b" * int(msg.split(" ")[1]))
            else:
                await ws.send(msg)
    except websockets.exceptions.ConnectionClosed:
        pass
    await ws.wait_closed()
    say("closed", tag, ws.close_code, ws.close_reason)


async def plain(path, headers):
    if path == "/plain":
        return http.HTTPStatus.OK, [("Content-Type", "text/plain")], b"just HTTP\n"
    return None


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--compression", default="deflate")
    p.add_argument("--subprotocols", default="")
    a = p.parse_args()
    kwargs = {"compression": None if a.compression == "none" else a.compression, "process_request": plain}
    if a.subprotocols:
        kwargs["subprotocols"] = a.subprotocols.split(",")
    async with websockets.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        say("port", server.sockets[0].getsockname()[1])
        await asyncio.Future()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
