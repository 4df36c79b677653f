-- ngx.socket: cosockets as lua-resty-* drivers use them, against real peers.
-- The drivers cannot be vendored here, so each peer gets a driver-shaped
-- client written the way their documentation describes: a lua-resty-redis
-- shaped client (array sends, "*l" + receive(n), the connection pool)
-- against Debian's redis-server, an HTTP/1.1 client (receiveuntil, chunked
-- bodies, keep-alive) against Python's http.server, TLS through sslhandshake
-- against `openssl s_server`, and a length-prefixed protocol (as MySQL's and
-- memcached's) against an Evo net server. Runs in both Io modes; the Evo
-- server and the concurrent parts need the evented one.
require("ngx")
local process = require("process")
local task = require("task")
local net = require("net")
local fs = require("fs")
local servers = require("servers")
local helpers = require("helpers")

local evented = task.mode() ~= "blocking"

-- Waits until something listens on port (or gives up after 5 s).
local function waitPort(port)
  return servers.listening(port) or error("nothing listens on port " .. port)
end

----------------------------------------------------------------- a tiny lua-resty-redis

local Redis = {}
Redis.__index = Redis

local function redisConnect(port, opts)
  local sock = ngx.socket.tcp()
  sock:settimeout(2000)
  local ok, err = sock:connect("127.0.0.1", port, opts)
  if not ok then return nil, err end
  return setmetatable({sock = sock}, Redis)
end

local function readReply(sock)
  local line, err = sock:receive()
  if not line then return nil, err end
  local prefix, rest = line:sub(1, 1), line:sub(2)
  if prefix == "+" then return rest end
  if prefix == "-" then return false, rest end
  if prefix == ":" then return tonumber(rest) end
  if prefix == "$" then
    local size = tonumber(rest)
    if size < 0 then return ngx.null end
    local data, rerr = sock:receive(size + 2)  -- the bulk and its CRLF, as lua-resty-redis reads it
    if not data then return nil, rerr end
    return data:sub(1, -3)
  end
  if prefix == "*" then
    local n = tonumber(rest)
    if n < 0 then return ngx.null end
    local vals = {}
    for i = 1, n do
      local v, verr = readReply(sock)
      if v == nil then return nil, verr end
      vals[i] = v
    end
    return vals
  end
  return nil, "bad reply: " .. line
end

function Redis:call(...)
  local req = {"*", select("#", ...), "\r\n"}
  for i = 1, select("#", ...) do
    local a = tostring((select(i, ...)))
    req[#req + 1] = {"$", #a, "\r\n", a, "\r\n"}  -- nested arrays, as the driver builds them
  end
  local bytes, err = self.sock:send(req)
  if not bytes then return nil, err end
  return readReply(self.sock)
end

describe("ngx.socket.tcp against redis-server (a lua-resty-redis shaped driver)", function()
  local srv
  before(function() srv = servers.redis() end)
  after(function()
    ngx.evo.closeIdle()
    if srv then srv:stop() end
  end)

  it("sends nested arrays, reads *l and receive(n), maps nil replies to ngx.null", function()
    local r = assert(redisConnect(srv.port))
    assert.equal(r:call("SET", "k", "v\r\nwith crlf"), "OK")
    assert.equal(r:call("GET", "k"), "v\r\nwith crlf")
    assert.equal(r:call("GET", "missing"), ngx.null)
    assert.equal(r:call("INCRBY", "n", 41), 41)
    assert.equal(r:call("RPUSH", "l", "a", "", "c"), 3)
    assert.same(r:call("LRANGE", "l", 0, -1), {"a", "", "c"})
    local ok, msg = r:call("INCR", "k")
    assert.equal(ok, false)
    assert.match(msg, "^ERR")
    local big = string.rep("x", 300000)
    assert.equal(r:call("SET", "big", big), "OK")
    assert.equal(r:call("GET", "big"), big)
    assert.equal(r.sock:close(), 1)
    assert.same({r.sock:close()}, {nil, "closed"})
    assert.same({r.sock:send("PING\r\n")}, {nil, "closed"})
    assert.same({r.sock:receive()}, {nil, "closed"})
  end)

  it("returns connections to a per-key pool: getreusedtimes counts, pools are separate", function()
    local r1 = assert(redisConnect(srv.port))
    assert.equal(r1.sock:getreusedtimes(), 0)
    assert.equal(r1:call("CLIENT", "SETNAME", "first"), "OK")
    assert.equal(r1.sock:setkeepalive(10000, 10), 1)
    assert.same({r1.sock:getreusedtimes()}, {nil, "closed"})  -- the object let go of it

    local r2 = assert(redisConnect(srv.port))
    assert.equal(r2.sock:getreusedtimes(), 1)
    assert.equal(r2:call("CLIENT", "GETNAME"), "first")  -- the same server connection
    assert.equal(r2.sock:setkeepalive(10000, 10), 1)
    local r3 = assert(redisConnect(srv.port))
    assert.equal(r3.sock:getreusedtimes(), 2)

    -- another pool name: a new connection
    local r4 = assert(redisConnect(srv.port, {pool = "other"}))
    assert.equal(r4.sock:getreusedtimes(), 0)
    assert.equal(r4:call("CLIENT", "GETNAME"), ngx.null)
    r3.sock:close()
    r4.sock:close()
  end)

  it("closes the least recently kept connection when a pool is full, and idle ones after their timeout", function()
    local socks = {}
    for i = 1, 3 do
      local r = assert(redisConnect(srv.port, {pool = "small"}))
      assert.equal(r:call("CLIENT", "SETNAME", "c" .. i), "OK")
      socks[i] = r
    end
    for i = 1, 3 do assert.equal(socks[i].sock:setkeepalive(10000, 2), 1) end
    -- the pool holds 2: c1 was closed; the warmest (c3) comes out first
    local a = assert(redisConnect(srv.port, {pool = "small"}))
    local b = assert(redisConnect(srv.port, {pool = "small"}))
    local c = assert(redisConnect(srv.port, {pool = "small"}))
    assert.equal(a:call("CLIENT", "GETNAME"), "c3")
    assert.equal(b:call("CLIENT", "GETNAME"), "c2")
    assert.equal(c.sock:getreusedtimes(), 0)
    a.sock:close(); b.sock:close(); c.sock:close()

    local d = assert(redisConnect(srv.port, {pool = "short"}))
    assert.equal(d.sock:setkeepalive(50), 1)  -- 50 ms
    task.sleep(0.15)
    local e = assert(redisConnect(srv.port, {pool = "short"}))
    assert.equal(e.sock:getreusedtimes(), 0)
    e.sock:close()
  end)

  it("refuses to pool a connection with unread data, and keeps it open, as nginx does", function()
    local r = assert(redisConnect(srv.port))
    assert(r.sock:send("PING\r\nPING\r\n"))
    task.sleep(0.05)  -- both replies arrive: the first receive reads them together
    assert.equal(r.sock:receive(), "+PONG")
    assert.same({r.sock:setkeepalive()}, {nil, "unread data in buffer"})
    assert.equal(r.sock:receive(), "+PONG")  -- still connected
    assert.equal(r.sock:setkeepalive(), 1)
  end)

  it("refuses a connection whose peer spoke while it was idle: 'connection in dubious state', closed", function()
    local r = assert(redisConnect(srv.port))
    assert.equal(r:call("PING"), "PONG")
    assert(r.sock:send("PING\r\n"))  -- the reply arrives after the last receive
    task.sleep(0.05)
    assert.same({r.sock:setkeepalive()}, {nil, "connection in dubious state"})
    assert.same({r.sock:close()}, {nil, "closed"})
  end)

  it("times out with 'timeout' and the connection stays usable", function()
    local r = assert(redisConnect(srv.port))
    r.sock:settimeout(100)
    local t0 = ngx.now()
    assert.same({r.sock:receive()}, {nil, "timeout", ""})
    assert.truthy(ngx.now() - t0 >= 0.09)
    assert.equal(r:call("PING"), "PONG")
    -- BLPOP blocks on the server: the read times out
    r.sock:settimeouts(1000, 1000, 100)
    assert.same({r:call("BLPOP", "nothing", 0)}, {nil, "timeout"})
    r.sock:close()
  end)

  it("reports 'closed' with the partial data when the server goes away", function()
    local r = assert(redisConnect(srv.port))
    assert(r.sock:send("*1\r\n$4\r\nQUIT\r\n"))
    assert.equal(r.sock:receive(), "+OK")
    assert.same({r.sock:receive()}, {nil, "closed", ""})
    assert.same({r.sock:receive()}, {nil, "closed"})  -- closed after the error
  end)

  it("connects with ngx.socket.connect, refuses with OpenResty's strings", function()
    local s = assert(ngx.socket.connect("127.0.0.1", srv.port))
    assert(s:send("PING\r\n"))
    assert.equal(s:receive("*l"), "+PONG")
    s:close()
    assert.same({ngx.socket.tcp():connect("127.0.0.1", servers.freePort())}, {nil, "connection refused"})
    assert.same({ngx.socket.connect("no-such-host.invalid", 80)},
      {nil, "no-such-host.invalid could not be resolved (3: Host not found)"})
    assert.same({ngx.socket.tcp():connect("unix:/nonexistent/sock")}, {nil, "no such file or directory"})
  end)

  it("sets socket options", function()
    local s = assert(ngx.socket.connect("127.0.0.1", srv.port))
    assert.equal(s:setoption("keepalive", true), true)
    assert.equal(s:getoption("keepalive"), 1)
    assert.equal(s:setoption("tcp-nodelay", true), true)
    assert.equal(s:setoption("sndbuf", 65536), true)
    assert.truthy(s:getoption("sndbuf") >= 65536)
    helpers.raisesMatching("unsupported option", s.setoption, s, "nope", 1)
    s:close()
    assert.same({s:setoption("keepalive", true)}, {nil, "closed"})
  end)

  it("takes what lua-nginx-module's connect takes: no port, bad ports, pool names", function()
    local s = ngx.socket.tcp()
    assert.same({s:connect("127.0.0.1")}, {nil, "missing the port number"})
    assert.same({s:connect("127.0.0.1", nil, {pool = "p"})}, {nil, "missing the port number"})
    assert.same({s:connect("127.0.0.1", 70000)}, {nil, "bad port number: 70000"})
    assert.same({s:connect("127.0.0.1", -1)}, {nil, "bad port number: -1"})
    -- a number is a pool name too; other types raise
    assert.equal(s:connect("127.0.0.1", srv.port, {pool = 42}), 1)
    assert.equal(s:setkeepalive(), 1)
    assert.equal(s:connect("127.0.0.1", srv.port, {pool = "42"}), 1)
    assert.equal(s:getreusedtimes(), 1)
    s:close()
    helpers.raisesMatching('bad "pool" option type: table', s.connect, s, "127.0.0.1", srv.port, {pool = {}})
    helpers.raisesMatching('bad "pool_size" option type: string', s.connect, s, "127.0.0.1", srv.port,
      {pool_size = "x"})
    helpers.raisesMatching('bad "backlog" option value: %-1', s.connect, s, "127.0.0.1", srv.port, {backlog = -1})
  end)

  it("sends what lua-nginx-module's send takes: nil and booleans alone, arrays of strings and numbers", function()
    local s = assert(ngx.socket.connect("127.0.0.1", srv.port))
    -- a redis inline command built of every accepted type
    assert.equal(s:send({"ECHO ", 1.5, " ", {"x", {7}}, " "}), 12)
    assert.equal(s:send(true), 4)
    assert.equal(s:send(nil), 3)
    assert.equal(s:send("\r\n"), 2)
    assert.equal(s:receive(), "-ERR wrong number of arguments for 'echo' command")
    helpers.raisesMatching("bad argument #1 to 'send' %(bad data type boolean found%)", s.send, s, {"a", true})
    helpers.raisesMatching("bad argument #1 to 'send' %(bad data type userdata found%)", s.send, s, {ngx.null})
    helpers.raisesMatching("bad argument #1 to 'send' %(non%-array table found%)", s.send, s, {a = 1})
    helpers.raisesMatching("bad argument #1 to 'send' %(string, number, boolean, nil, or array table expected, got function%)",
      s.send, s, print)
    s:close()
  end)

  it("treats nil and 0 timeouts as the default and refuses negative ones", function()
    local s = assert(ngx.socket.connect("127.0.0.1", srv.port))
    s:settimeouts(nil, nil, 100)
    assert.same({s:receive()}, {nil, "timeout", ""})
    s:settimeouts(0, 0, 100)
    assert.same({s:receive()}, {nil, "timeout", ""})
    helpers.raisesMatching("bad timeout value", s.settimeout, s, -1)
    helpers.raisesMatching("bad timeout value", s.settimeouts, s, 1, -1, 1)
    s:close()
  end)

  it("raises on misuse, naming the method", function()
    local s = ngx.socket.tcp()
    helpers.raisesMatching("bad argument #1 to 'connect' %(string expected, got nil%)", s.connect, s)
    helpers.raisesMatching("bad argument #1 to 'send' %(ngx.socket.tcp expected", s.send, {}, "x")
    helpers.raisesMatching("bad pattern argument", s.receive, s, "*x")
    helpers.raisesMatching("bad data type function", s.send, s, {"a", print})
  end)

  if evented then
    it("runs 50 tasks on a pool of 10 without mixing replies", function()
      local r0 = assert(redisConnect(srv.port))
      assert.equal(r0:call("FLUSHALL"), "OK")
      r0.sock:close()
      local g = task.group()
      for i = 1, 50 do
        g:async(function()
          for j = 1, 10 do
            local r = assert(redisConnect(srv.port, {pool_size = 10}))
            local key = "k" .. i .. ":" .. j
            assert.equal(r:call("SET", key, key), "OK")
            assert.equal(r:call("GET", key), key)
            assert.equal(r.sock:setkeepalive(10000, 10), 1)
          end
        end)
      end
      g:await()
      local r = assert(redisConnect(srv.port))
      assert.truthy(r.sock:getreusedtimes() > 0)
      assert.equal(r:call("DBSIZE"), 500)
      r.sock:close()
    end)
  end
end)

----------------------------------------------------------------- HTTP/1.1 against Python

local pyServer = [[
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in [b"hello, ", b"chunked ", b"world" * 1000]:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = ("path=" + self.path).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Test", "yes")
            self.end_headers()
            self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
]]

-- An HTTP/1.1 client as lua-resty-http reads a response: the head with
-- receiveuntil("\r\n\r\n"), a sized body with receive(n), a chunked one
-- with "*l" sizes.
local function httpGet(sock, path)
  assert(sock:send({"GET ", path, " HTTP/1.1\r\n", "Host: localhost\r\n", "\r\n"}))
  local head = assert(sock:receiveuntil("\r\n\r\n")())
  local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:]+): ([^\r]*)") do headers[name:lower()] = value end
  local body
  if headers["content-length"] then
    body = assert(sock:receive(tonumber(headers["content-length"])))
  else
    local parts = {}
    while true do
      local size = tonumber(assert(sock:receive("*l")), 16)
      if size == 0 then
        assert.equal(sock:receive("*l"), "")
        break
      end
      parts[#parts + 1] = assert(sock:receive(size))
      assert.equal(sock:receive(2), "\r\n")
    end
    body = table.concat(parts)
  end
  return status, headers, body
end

describe("ngx.socket.tcp against Python's http.server (an HTTP/1.1 client)", function()
  local child, port
  before(function()
    port = servers.freePort()
    child = assert(process.spawn("/usr/bin/python3", {"-c", pyServer, tostring(port)},
      {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
    waitPort(port)
  end)
  after(function()
    ngx.evo.closeIdle()
    child:kill("KILL")
    child:wait()
  end)

  it("reads heads with receiveuntil, sized and chunked bodies, on one kept-alive connection", function()
    local sock = ngx.socket.tcp()
    sock:settimeout(2000)
    assert.equal(sock:connect("127.0.0.1", port), 1)
    local status, headers, body = httpGet(sock, "/a?b=1")
    assert.equal(status, 200)
    assert.equal(headers["x-test"], "yes")
    assert.equal(body, "path=/a?b=1")
    status, headers, body = httpGet(sock, "/chunked")
    assert.equal(headers["transfer-encoding"], "chunked")
    assert.equal(body, "hello, chunked " .. string.rep("world", 1000))
    assert.equal(sock:setkeepalive(), 1)
    assert.equal(sock:connect("127.0.0.1", port), 1)
    assert.equal(sock:getreusedtimes(), 1)
    status, headers, body = httpGet(sock, "/again")
    assert.equal(body, "path=/again")
    sock:close()
  end)

  it("reads with receiveany and *a", function()
    local sock = assert(ngx.socket.connect("127.0.0.1", port))
    assert(sock:send("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    local first = assert(sock:receiveany(5))
    assert.equal(first, "HTTP/")
    local rest = assert(sock:receive("*a"))
    assert.match(first .. rest, "\r\n\r\npath=/x$")
    assert.equal(sock:receive("*a"), "")  -- *a at the end: an empty string, not an error
    sock:close()
  end)
end)

----------------------------------------------------------------- TLS against openssl s_server

describe("sslhandshake against openssl s_server", function()
  local dir, child, port
  before(function()
    dir = assert(fs.mkdtemp("/tmp/evo-ngx-tls-"))
    local _, err, code = process.exec("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes" ..
      " -keyout " .. dir .. "/key.pem -out " .. dir .. "/cert.pem -days 2 -subj /CN=localhost" ..
      " -addext subjectAltName=DNS:localhost,IP:127.0.0.1")
    assert.equal(code, 0, err)
    port = servers.freePort()
    child = assert(process.spawn("openssl", {"s_server", "-accept", tostring(port), "-cert", dir .. "/cert.pem",
      "-key", dir .. "/key.pem", "-www", "-quiet"}, {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
    waitPort(port)
  end)
  after(function()
    ngx.evo.sslTrustedCertificate(nil)
    child:kill("KILL")
    child:wait()
    fs.rm(dir, {recursive = true})
  end)

  local function get(verify, name)
    local sock = ngx.socket.tcp()
    sock:settimeout(3000)
    assert.equal(sock:connect("127.0.0.1", port), 1)
    local session, err = sock:sslhandshake(nil, name, verify)
    if not session then return nil, err end
    assert(sock:send("GET / HTTP/1.0\r\n\r\n"))
    local data = assert(sock:receive("*a"))
    sock:close()
    return session, data
  end

  it("handshakes without verification, and verifies against the trusted certificate", function()
    local session, data = get(false, "localhost")
    assert.truthy(session)
    assert.match(data, "^HTTP/1%.0 200")
    assert.same({get(true, "localhost")}, {nil, "18: self-signed certificate"})
    ngx.evo.sslTrustedCertificate(dir .. "/cert.pem")
    session, data = get(true, "localhost")
    assert.truthy(session)
    assert.match(data, "s_server")
    assert.same({get(true, "example.com")}, {nil, "certificate host mismatch"})
    -- reused_session = false returns true instead of a session
    local sock = assert(ngx.socket.connect("127.0.0.1", port))
    assert.equal(sock:sslhandshake(false, "localhost", true), true)
    sock:close()
    -- on a connection already encrypted: the session given back, or true for false
    sock = assert(ngx.socket.connect("127.0.0.1", port))
    local sess = assert(sock:sslhandshake(nil, "localhost", false))
    assert.equal(sock:sslhandshake(sess), sess)
    assert.equal(sock:sslhandshake(false), true)
    assert.equal(type(sock:sslhandshake()), "userdata")
    sock:close()
  end)

  it("verifies the chain alone when verify is on and no server name is given, as nginx does", function()
    -- (pgmoon's ssl_verify passes no name; nginx then checks the chain, not a name)
    ngx.evo.sslTrustedCertificate(nil)
    assert.same({get(true, nil)}, {nil, "18: self-signed certificate"})
    ngx.evo.sslTrustedCertificate(dir .. "/cert.pem")
    local session, data = get(true, nil)
    assert.truthy(session, data)
    assert.match(data, "s_server")
    -- a name, when given, is still checked
    assert.same({get(true, "example.com")}, {nil, "certificate host mismatch"})
  end)

  it("fails the handshake against a plain-text peer", function()
    local plain = servers.freePort()
    local py = assert(process.spawn("/usr/bin/python3", {"-c", pyServer, tostring(plain)},
      {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
    waitPort(plain)
    local sock = assert(ngx.socket.connect("127.0.0.1", plain))
    sock:settimeout(2000)
    local ok, err = sock:sslhandshake(nil, "localhost", false)
    assert.falsy(ok)
    assert.equal(err, "handshake failed")
    py:kill("KILL")
    py:wait()
  end)
end)

----------------------------------------------------------------- a length-prefixed protocol

if evented then
  describe("a length-prefixed protocol (MySQL-shaped packets) against an Evo net server", function()
    local server
    before(function()
      -- packets: 3-byte little-endian length, 1-byte sequence, payload; the
      -- server answers each with the payload reversed, same framing.
      server = assert(net.listen({port = 0}, function(conn)
        while true do
          local head = conn:read(4)
          if not head then return end
          local len = head:byte(1) + head:byte(2) * 256 + head:byte(3) * 65536
          local payload = conn:read(len)
          if payload == "quit" then return end
          local out = payload:reverse()
          conn:write(string.char(#out % 256, math.floor(#out / 256) % 256, math.floor(#out / 65536), head:byte(4) + 1),
            out)
        end
      end))
    end)
    after(function()
      ngx.evo.closeIdle()
      server:close()
    end)

    local function packet(seq, payload)
      local n = #payload
      return {string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536), seq), payload}
    end
    local function readPacket(sock)
      local head, err = sock:receive(4)
      if not head then return nil, err end
      local len = head:byte(1) + head:byte(2) * 256 + head:byte(3) * 65536
      local payload, perr = sock:receive(len)
      if not payload then return nil, perr end
      return payload, head:byte(4)
    end

    it("sends framed packets and reads them back with receive(n)", function()
      local sock = assert(ngx.socket.connect("127.0.0.1", server.port))
      assert.equal(sock:send(packet(0, "hello")), 9)
      assert.same({readPacket(sock)}, {"olleh", 1})
      local big = string.rep("0123456789", 20000)
      assert(sock:send(packet(7, big)))
      assert.same({readPacket(sock)}, {big:reverse(), 8})
      assert(sock:send(packet(0, "quit")))
      local data, err, partial = sock:receive(4)
      assert.same({data, err, partial}, {nil, "closed", ""})
    end)

    it("gives the partial data of a truncated read", function()
      local truncating = assert(net.listen({port = 0}, function(conn)
        conn:read(1)
        conn:write("abc")
      end))
      local sock = assert(ngx.socket.connect("127.0.0.1", truncating.port))
      assert(sock:send("x"))
      assert.same({sock:receive(10)}, {nil, "closed", "abc"})
      truncating:close()
    end)

    it("reads with receiveuntil in pieces of a given size, as OpenResty's documentation shows", function()
      local peer = assert(net.listen({port = 0}, function(conn)
        conn:write("hello, world! -agentzh\r\n--abcedhb blah blah")
        for i = 1, 20 do conn:write("x") task.sleep(0.001) end  -- the pattern split across reads
        conn:write("BOUNDARYtail\r\n")
        conn:read(1)
      end))
      local sock = assert(ngx.socket.connect("127.0.0.1", peer.port))
      local reader = sock:receiveuntil("\r\n--abcedhb")
      local chunks = {}
      while true do
        local data, err = reader(4)
        assert.equal(err, nil)
        if not data then break end
        chunks[#chunks + 1] = data
      end
      assert.same(chunks, {"hell", "o, w", "orld", "! -a", "gent", "zh"})
      assert.equal(sock:receive(10), " blah blah")
      assert.equal(sock:receiveuntil("BOUNDARY")(), string.rep("x", 20))
      assert.equal(sock:receiveuntil("\r\n", {inclusive = true})(), "tail\r\n")
      sock:settimeout(50)
      assert.same({sock:receiveuntil("never")()}, {nil, "timeout", ""})
      sock:close()
      peer:close()
    end)

    it("returns nil, 'closed', partial when the stream ends before the pattern", function()
      local peer = assert(net.listen({port = 0}, function(conn) conn:write("no pattern here") end))
      local sock = assert(ngx.socket.connect("127.0.0.1", peer.port))
      assert.same({sock:receiveuntil("--")()}, {nil, "closed", "no pattern here"})
      peer:close()
    end)

    it("reads lines: *l drops every CR, the last unterminated line is a partial", function()
      local peer = assert(net.listen({port = 0}, function(conn) conn:write("a\r\nb\rc\n\nlast") end))
      local sock = assert(ngx.socket.connect("127.0.0.1", peer.port))
      assert.equal(sock:receive(), "a")
      assert.equal(sock:receive("*l"), "bc")
      assert.equal(sock:receive(), "")
      assert.same({sock:receive()}, {nil, "closed", "last"})
      peer:close()
    end)

    it("closes only the reading side after a read error, as nginx does", function()
      local peer = assert(net.listen({port = 0}, function(conn)
        conn:write("ab\rc")
        conn:shutdown()
        conn:read(1)
        task.sleep(0.1)
      end))
      local sock = assert(ngx.socket.connect("127.0.0.1", peer.port))
      -- the partial line has its CRs dropped too
      assert.same({sock:receive()}, {nil, "closed", "abc"})
      assert.same({sock:receive(1)}, {nil, "closed"})
      assert.same({sock:receiveuntil("x")()}, {nil, "closed"})
      assert.equal(sock:getreusedtimes(), 0)   -- still a connection: the writing side is open
      assert.equal(sock:send("y"), 1)
      assert.same({sock:setkeepalive()}, {nil, "closed"})
      assert.equal(sock:close(), 1)
      assert.same({sock:close()}, {nil, "closed"})
      assert.same({sock:getreusedtimes()}, {nil, "closed"})
      peer:close()
    end)

    it("receiveuntil as lua-nginx-module: empty patterns, size 0, a pattern at a piece's end", function()
      local peer = assert(net.listen({port = 0}, function(conn)
        conn:write("abcd--efgh--ij--")
        conn:read(1)
      end))
      local sock = assert(ngx.socket.connect("127.0.0.1", peer.port))
      assert.same({sock:receiveuntil("")}, {nil, "pattern is empty"})
      local it = sock:receiveuntil("--")
      -- the data before the pattern fills the piece exactly: an empty last piece, then the end
      assert.equal(it(4), "abcd")
      assert.equal(it(4), "")
      local n = select("#", it(4))
      assert.equal(n, 3)
      -- size 0 (or less) reads the whole of it, as no size does
      assert.equal(it(0), "efgh")
      assert.equal(it(-1), "ij")
      sock:close()
      peer:close()
    end)

    it("cancels a waiting receive; the socket stays usable", function()
      local sock = assert(ngx.socket.connect("127.0.0.1", server.port))
      local reader = task.concurrent(function() return sock:receive(4) end)
      task.sleep(0.02)
      local _, err = reader:cancel()
      assert.equal(err.code, "Canceled")
      assert(sock:send(packet(0, "abc")))
      assert.equal(sock:receive(4), "\3\0\0\1")
      assert.equal(sock:receive(3), "cba")
      sock:close()
    end)

    it("talks over a Unix socket", function()
      local path = os.tmpname()
      os.remove(path)
      local unix = assert(net.listen({path = path}, function(conn)
        for line in conn:lines() do conn:write(line:upper(), "\n") end
      end))
      local sock = ngx.socket.tcp()
      assert.equal(sock:connect("unix:" .. path), 1)
      assert(sock:send("unix\n"))
      assert.equal(sock:receive(), "UNIX")
      assert.equal(sock:setkeepalive(), 1)
      assert.equal(sock:connect("unix:" .. path), 1)
      assert.equal(sock:getreusedtimes(), 1)
      sock:close()
      unix:close()
    end)
  end)
end

----------------------------------------------------------------- a MySQL handshake

-- lua-resty-mysql's connect, as its source makes it: the pool named
-- user:database:host:port, getreusedtimes() > 0 skipping the handshake,
-- receive(4) + receive(len) per packet, the bit module and ngx.sha1_bin for
-- mysql_native_password's token, then COM_QUERY and a text result set.
-- The server is an Evo net server speaking the protocol's packet formats
-- (initial handshake v10, OK, ERR with SQLSTATE, column definition, EOF,
-- rows) and checking the token the way a MySQL server does.
if evented then
  describe("a lua-resty-mysql shaped client against an Evo server speaking MySQL's handshake", function()
    local bit = require("bit")
    local crypto = require("crypto")
    local band, bor, bxor, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift
    local strchar, strbyte, sub = string.char, string.byte, string.sub

    local function byte3(n) return strchar(band(n, 0xff), band(rshift(n, 8), 0xff), band(rshift(n, 16), 0xff)) end
    local function byte4(n) return byte3(n) .. strchar(band(rshift(n, 24), 0xff)) end
    local function get2(d, i) local a, b = strbyte(d, i, i + 1) return bor(a, lshift(b, 8)), i + 2 end
    local function get3(d, i) local a, b, c = strbyte(d, i, i + 2) return bor(a, lshift(b, 8), lshift(c, 16)), i + 3 end
    local function xor(a, b)
      local out = {}
      for i = 1, #a do out[i] = strchar(bxor(strbyte(a, i), strbyte(b, i))) end
      return table.concat(out)
    end
    local function lenc(s) return strchar(#s) .. s end  -- a length-coded string (short)

    ---------------------------------------------------------- the server
    local PASSWORD, SCRAMBLE = "s3cret", "abcdefgh" .. "ijklmnopqrst"
    local function sha1(s) return crypto.hash("sha1", s, "raw") end
    local stage2 = sha1(sha1(PASSWORD))  -- what mysql.user keeps

    local handshakes = 0
    local server
    local function serve(conn)
      local function out(seq, payload) conn:write(byte3(#payload), strchar(seq), payload) end
      local function inp()
        local head = conn:read(4)
        if not head then return nil end
        return conn:read((get3(head, 1))), strbyte(head, 4)
      end
      handshakes = handshakes + 1
      out(0, table.concat({
        "\10", "8.0.36-evo\0", byte4(handshakes), sub(SCRAMBLE, 1, 8), "\0",
        "\255\255", "\33", "\2\0", "\255\129", "\21", string.rep("\0", 10),
        sub(SCRAMBLE, 9), "\0", "mysql_native_password\0"}))
      local auth, seq = inp()
      if not auth then return end
      local pos = 4 + 4 + 1 + 23 + 1
      local user_end = auth:find("\0", pos, true)
      local user = sub(auth, pos, user_end - 1)
      local tlen = strbyte(auth, user_end + 1)
      local token = sub(auth, user_end + 2, user_end + 1 + tlen)
      local db = sub(auth, user_end + 2 + tlen, -2)
      -- the server's check: SHA1(token XOR SHA1(scramble .. stage2)) == stage2
      if tlen ~= 20 or sha1(xor(token, sha1(SCRAMBLE .. stage2))) ~= stage2 or db ~= "test" then
        out(seq + 1, "\255" .. strchar(1045 % 256, 1045 / 256 - 1045 / 256 % 1) .. "#28000" ..
          "Access denied for user '" .. user .. "'@'localhost' (using password: YES)")
        return
      end
      out(seq + 1, "\0\0\0\2\0\0\0")
      while true do
        local cmd = inp()
        if not cmd or strbyte(cmd) == 1 then return end  -- COM_QUIT
        local sql = sub(cmd, 2)
        local value = sql:match("^SELECT '(.*)'$")
        if not value then
          out(1, "\255" .. strchar(1064 % 256, 4) .. "#42000You have an error in your SQL syntax")
        else
          out(1, "\1")
          out(2, lenc("def") .. lenc("") .. lenc("") .. lenc("") .. lenc("v") .. lenc("") ..
            "\12\33\0" .. byte4(1024) .. "\253" .. "\0\0" .. "\31" .. "\0\0")
          out(3, "\254\0\0\2\0")
          out(4, lenc(value) .. "\251")  -- the value, then a NULL
          out(5, "\254\0\0\2\0")
        end
      end
    end
    before(function() server = assert(net.listen({port = 0}, serve)) end)
    after(function()
      ngx.evo.closeIdle()
      server:close()
    end)

    ---------------------------------------------------------- the client
    local function recvPacket(sock)
      local head, err = sock:receive(4)
      if not head then return nil, "failed to receive packet header: " .. err end
      local len = get3(head, 1)
      local data, rerr = sock:receive(len)
      if not data then return nil, "failed to read packet content: " .. rerr end
      local first = strbyte(data, 1)
      return data, first == 0 and "OK" or first == 0xff and "ERR" or first == 0xfe and "EOF" or "DATA", strbyte(head, 4)
    end
    local function parseErr(p)
      local errno = get2(p, 2)
      return nil, sub(p, 10), errno, sub(p, 5, 9)  -- errno, "#", SQLSTATE, the message
    end
    local function token(password, scramble)
      local stage1 = ngx.sha1_bin(password)
      return xor(ngx.sha1_bin(scramble .. ngx.sha1_bin(stage1)), stage1)
    end

    local function connect(opts)
      local sock = ngx.socket.tcp()
      sock:settimeout(2000)
      local ok, err = sock:connect("127.0.0.1", server.port, {pool = opts.user .. ":test:127.0.0.1:" .. server.port})
      if not ok then return nil, "failed to connect: " .. err end
      local db = {sock = sock}
      local reused = sock:getreusedtimes()
      if reused and reused > 0 then return db, reused end
      local packet, typ, seq = recvPacket(sock)
      if not packet then return nil, typ end
      assert.equal(typ, "DATA")
      assert.equal(strbyte(packet), 10)
      local version_end = packet:find("\0", 2, true)
      db.version = sub(packet, 2, version_end - 1)
      local pos = version_end + 1 + 4
      local scramble = sub(packet, pos, pos + 7)
      pos = pos + 9
      local caps = get2(packet, pos)
      pos = pos + 2 + 1 + 2
      caps = bor(caps, lshift(get2(packet, pos), 16))
      db.caps = caps
      pos = pos + 2 + 1 + 10
      scramble = scramble .. sub(packet, pos, pos + 11)
      local tok = token(opts.password, scramble)
      local req = byte4(0x3f7cf) .. byte4(1024 * 1024) .. "\0" .. string.rep("\0", 23) ..
        opts.user .. "\0" .. strchar(#tok) .. tok .. "test\0"
      local bytes, serr = sock:send(byte3(#req) .. strchar(seq + 1) .. req)
      if not bytes then return nil, "failed to send client authentication packet: " .. serr end
      local res, rtyp = recvPacket(sock)
      if not res then return nil, rtyp end
      if rtyp == "ERR" then return parseErr(res) end
      assert.equal(rtyp, "OK")
      db.token = tok
      db.scramble = scramble
      return db, 0
    end

    local function query(db, sql)
      local sock = db.sock
      assert(sock:send({byte3(#sql + 1), "\0", "\3", sql}))
      local head, typ = recvPacket(sock)
      if not head then return nil, typ end
      if typ == "ERR" then return parseErr(head) end
      local cols = {}
      for i = 1, strbyte(head) do
        local col = assert(recvPacket(sock))
        local p = 1
        for _ = 1, 4 do p = p + 1 + strbyte(col, p) end
        cols[i] = sub(col, p + 1, p + strbyte(col, p))
      end
      assert.equal(select(2, recvPacket(sock)), "EOF")
      local rows = {}
      while true do
        local row, rtyp = assert(recvPacket(sock))
        if rtyp == "EOF" then break end
        local r, p = {}, 1
        for i = 1, #cols + 1 do
          local n = strbyte(row, p)
          if n == 251 then r[i], p = ngx.null, p + 1 else r[i], p = sub(row, p + 1, p + n), p + 1 + n end
        end
        rows[#rows + 1] = r
      end
      return rows, cols
    end

    it("authenticates with ngx.sha1_bin and bit, queries, pools the connection", function()
      local db, reused = assert(connect({user = "app", password = PASSWORD}))
      assert.equal(reused, 0)
      assert.equal(db.version, "8.0.36-evo")
      assert.equal(band(db.caps, 0x0800), 0x0800)  -- CLIENT_SSL offered, as servers do
      -- the token as Python's hashlib computes it
      local py = "import hashlib,sys\n" ..
        "p=sys.argv[1].encode(); s=bytes.fromhex(sys.argv[2])\n" ..
        "h=lambda b: hashlib.sha1(b).digest(); s1=h(p)\n" ..
        "print(bytes(a^b for a,b in zip(h(s+h(s1)),s1)).hex())"
      local hex = function(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
      local out, _, code = process.exec("/usr/bin/python3 -c '" .. py .. "' " .. PASSWORD .. " " .. hex(db.scramble))
      assert.equal(code, 0)
      assert.equal(out:gsub("%s+$", ""), hex(db.token))
      local rows, cols = assert(query(db, "SELECT 'hello'"))
      assert.same(cols, {"v"})
      assert.same(rows, {{"hello", ngx.null}})
      assert.same({query(db, "DROP")}, {nil, "You have an error in your SQL syntax", 1064, "42000"})
      assert.equal(db.sock:setkeepalive(10000, 10), 1)
      -- the next connect to the same pool skips the handshake
      local again, n = assert(connect({user = "app", password = PASSWORD}))
      assert.equal(n, 1)
      assert.same(assert(query(again, "SELECT 'again'")), {{"again", ngx.null}})
      assert(again.sock:send({byte3(1), "\0", "\1"}))  -- COM_QUIT
      assert.same({again.sock:receive(1)}, {nil, "closed", ""})
      again.sock:close()
    end)

    it("reports a bad password as MySQL's ERR packet: message, errno, SQLSTATE", function()
      local before = handshakes
      assert.same({connect({user = "eve", password = "wrong"})},
        {nil, "Access denied for user 'eve'@'localhost' (using password: YES)", 1045, "28000"})
      assert.equal(handshakes, before + 1)
    end)
  end)
end

----------------------------------------------------------------- udp

describe("ngx.socket.udp", function()
  it("exchanges datagrams with a peer, times out with 'timeout'", function()
    local peer = net.udp()
    assert(peer:bind({host = "127.0.0.1", port = 0}))
    local u = ngx.socket.udp()
    assert.same({u:send("x")}, {nil, "closed"})
    assert.equal(u:setpeername("127.0.0.1", peer.port), 1)
    assert.equal(u:send({"pi", "ng"}), 1)
    local data, host, port = peer:receive()
    assert.equal(data, "ping")
    assert(peer:send("pong", host, port))
    assert.equal(u:receive(), "pong")
    u:settimeout(50)
    assert.same({u:receive()}, {nil, "timeout"})
    assert.equal(u:close(), 1)
    assert.same({u:close()}, {nil, "closed"})
    peer:close()
  end)
end)
