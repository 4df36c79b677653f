# A fixed number of 16-deep pipelined GETs on one connection, for counting
# the server's instructions per request (bench/http_instructions.sh).
#   python3 bench/http/pipeline_client.py PORT N
import socket, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]); depth = 16
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
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
