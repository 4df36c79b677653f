"""A WebSocket client on Python's websockets (asyncio API, 10.x), driven by
a JSON script on stdin; prints a Lua report (see luareport.py).

Script: {"url", "compression": "deflate" | null, "subprotocols": [...],
"ca": PEM path (wss), "headers": {...}, "max_size": n, "steps": [...]}
Steps: ["send", text [, repeat]], ["sendbin", n] (luareport.pattern(n)),
["recv"], ["ping", data] (waits for the pong), ["close", code, reason],
["until_closed"] (receives until the connection closes), ["sleep", s].
Report: {subprotocol, extensions = {names}, headers = {response headers,
lower-case}, events = {{"text"|"binary", data} | {"pong", data} |
{"closed", code, reason}}, closeCode, closeReason, error = {type, message}}
"""
import asyncio
import json
import ssl
import sys

import websockets
import websockets.exceptions

from luareport import emit, pattern


async def main(config):
    report = {"events": []}
    events = report["events"]
    kwargs = {"compression": config.get("compression"), "open_timeout": 10, "close_timeout": 5}
    if config.get("subprotocols"):
        kwargs["subprotocols"] = config["subprotocols"]
    if config.get("headers"):
        kwargs["extra_headers"] = list(config["headers"].items())
    if config.get("max_size"):
        kwargs["max_size"] = config["max_size"]
    if config.get("ca"):
        ctx = ssl.create_default_context(cafile=config["ca"])
        kwargs["ssl"] = ctx
    try:
        ws = await websockets.connect(config["url"], **kwargs)
    except Exception as e:  # a failed handshake or connection
        report["error"] = {"type": type(e).__name__, "message": str(e),
                           "status": getattr(e, "status_code", None)}
        emit(report)
        return
    report["subprotocol"] = ws.subprotocol
    report["extensions"] = [e.name for e in ws.extensions]
    report["headers"] = {k.lower(): v for k, v in ws.response_headers.raw_items()}
    try:
        for step in config.get("steps", []):
            op = step[0]
            if op == "send":
                text = step[1] * (step[2] if len(step) > 2 else 1)
                await ws.send(text)
            elif op == "sendbin":
                await ws.send(pattern(step[1]))
            elif op == "recv":
                msg = await asyncio.wait_for(ws.recv(), 10)
                events.append(["text" if isinstance(msg, str) else "binary", msg])
            elif op == "ping":
                waiter = await ws.ping(step[1])
                await asyncio.wait_for(waiter, 10)
                events.append(["pong", step[1]])
            elif op == "close":
                await ws.close(step[1], step[2])
            elif op == "until_closed":
                try:
                    while True:
                        msg = await asyncio.wait_for(ws.recv(), 10)
                        events.append(["text" if isinstance(msg, str) else "binary", msg])
                except websockets.exceptions.ConnectionClosed:
                    events.append(["closed", ws.close_code, ws.close_reason])
            elif op == "sleep":
                await asyncio.sleep(step[1])
            else:
                raise ValueError("unknown step %r" % (op,))
    except websockets.exceptions.ConnectionClosed as e:
        events.append(["closed", ws.close_code, ws.close_reason])
    except asyncio.TimeoutError:
        events.append(["timeout"])
    await ws.close()
    report["closeCode"] = ws.close_code
    report["closeReason"] = ws.close_reason
    emit(report)


asyncio.run(main(json.loads(sys.stdin.read())))
