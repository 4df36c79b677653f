# A fixed number of 16-deep pipelined GETs on one connection, for counting
# the server's instructions per request (bench/http_instructions.sh). KIND:
# hello (default, wrk's request: one short header), curl (curl's three) or
# browser (Chromium's navigation: 15 headers, 581 bytes).
#   python3 bench/http/pipeline_client.py PORT N [KIND]
import socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]); depth = 16
kind = sys.argv[3] if len(sys.argv) > 3 else "hello"
requests = {
    "hello": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "curl": b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "browser": b"GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="156", "Not A(Brand";v="24"\r\nsec-ch-ua-mobile: ?0\r\n'
    b'sec-ch-ua-platform: "Linux"\r\nUpgrade-Insecure-Requests: 1\r\n'
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/156.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    b"Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\nSec-Fetch-Dest: document\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n",
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
