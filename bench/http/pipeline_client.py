# A fixed number of 16-deep pipelined GETs on one connection, for counting
# the server's instructions per request (bench/http_instructions.sh). KIND:
# hello (default, wrk's request: one short header), curl (curl's three) or
# browser (Chromium's navigation: 15 headers, 581 bytes).
#   python3 bench/http/pipeline_client.py PORT N [KIND]
import os, socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]); depth = 16
kind = sys.argv[3] if len(sys.argv) > 3 else "hello"
# (The browser's headers after Host: bench/http/browser_headers.txt, which
# bench/http_cpu.sh's REQUEST=browser sends too.)
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "browser_headers.txt"), "rb") as f:
    browser = b"".join(line.rstrip(b"\n") + b"\r\n" for line in f if line.strip())
requests = {
    "hello": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "curl": b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "browser": b"GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\n" + browser + b"\r\n",
}
req = requests[kind]
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError: time.sleep(0.1)
got = 0; buf = b""
sent = 0
while got < n:
    k = min(depth, n - sent)
    if k > 0 and sent - got < depth:
        s.sendall(req * k); sent += k
    data = s.recv(1 << 16)
    if not data: break
    buf += data
    c = buf.count(b"HTTP/1.1 200")
    if c:
        got += c
        buf = buf[buf.rfind(b"HTTP/1.1 200") + 12:]
print(got)
