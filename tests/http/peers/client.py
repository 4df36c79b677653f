"""Python's http.client against 127.0.0.1:PORT: every request over one
HTTPConnection (it reconnects by itself only if the server closed), reported
as a Lua list.

    client.py PORT             requests on stdin, one per line:
      METHOD PATH [H<hex of "Name: value">]... [B<hex body>]

Report: {{status = 200, reason = "OK", version = 11,
          headers = {{name, value}, ...}, body = "..."}, ...}"""
import http.client
import sys

from lualit import lua


def main():
    port = int(sys.argv[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    results = []
    for line in sys.stdin.read().splitlines():
        if not line.strip():
            continue
        parts = line.split()
        method, path = parts[0], parts[1]
        headers, body = [], None
        for p in parts[2:]:
            raw = bytes.fromhex(p[1:]).decode("latin-1")
            if p[0] == "H":
                name, _, value = raw.partition(":")
                headers.append((name.strip(), value.strip()))
            elif p[0] == "B":
                body = raw.encode("latin-1")
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        results.append({
            "status": resp.status,
            "reason": resp.reason,
            "version": resp.version,
            "headers": [[k, v] for k, v in resp.getheaders()],
            "body": resp.read(),
        })
    conn.close()
    sys.stdout.write(lua(results))


main()
