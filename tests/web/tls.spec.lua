-- TLS against real peers: curl, the openssl CLI and Python's ssl module,
-- with a self-signed certificate made by openssl when the file runs. Evo's
-- own client against Evo's server, in both Io modes.
local W = require("webkit")
local http = require("http")
local ws = require("ws")
local net = require("net")
local task = require("task")
local fs = require("fs")
local WebSocketServer = require("WebSocketServer")

local cert      -- {dir, cert, key}: for localhost and 127.0.0.1
local server    -- http.serve over TLS
local port
local seen      -- what the handler saw of the last request

local function handler(req, res)
  if req.path == "/ws" then
    local conn = ws.accept(req, res)
    if not conn then return end
    while true do
      local data, kind = conn:receive()
      if not data then return end
      conn:send("tls echo: " .. data, kind)
    end
  end
  local body = req:body()
  seen = {method = req.method, path = req.path, length = #body, body = body,
    te = req.headers["transfer-encoding"], httpVersion = req.httpVersion}
  if req.path == "/echo" then
    return res:send(200, body, {["content-type"] = "application/octet-stream"})
  end
  res:send(200, "hello over tls " .. req.path, {["content-type"] = "text/plain"})
end

describe("TLS", function()
  before(function()
    cert = W.makeCert()
    server = assert(http.serve({port = 0, tls = {cert = cert.cert, key = cert.key}}, handler))
    port = server.port
    assert.truthy(server.secure)
  end)
  after(function()
    http.closeIdle()
    if server then server:close() end
    if cert then W.rmTree(cert.dir) end
  end)

  local function base(host) return "https://" .. (host or "localhost") .. ":" .. port end

  describe("curl -> http.serve{tls}", function()
    it("gets a page with --cacert", function()
      local out, err, code = W.curl("--cacert", cert.cert, base() .. "/")
      assert.equal(code, 0, err)
      assert.equal(out, "hello over tls /")
    end, 20)

    it("reuses the connection for two URLs, with ALPN http/1.1", function()
      -- (--http1.1: curl would take h2, which http.serve offers under TLS)
      local out, err, code = W.curl("-v", "--http1.1", "--cacert", cert.cert, base() .. "/a", base() .. "/b")
      assert.equal(code, 0, err)
      assert.equal(out, "hello over tls /ahello over tls /b")
      assert.match(err, "Re%-using existing connection")
      assert.match(err, "ALPN: server accepted http/1%.1")
      assert.match(err, "SSL connection using TLSv1%.[23]")
      local _, connects = err:gsub("Connected to localhost", "")
      assert.equal(connects, 1, "one TCP connection")
    end, 20)

    it("posts a body", function()
      local out, err, code = W.curl("--cacert", cert.cert, "--data-binary", "name=evo&lang=lua", base() .. "/echo")
      assert.equal(code, 0, err)
      assert.equal(out, "name=evo&lang=lua")
      assert.equal({seen.method, seen.length, seen.te}, {"POST", 17, nil})
    end, 20)

    it("uploads a chunked body of 300 KB", function()
      local dir = W.tempDir()
      local payload = W.pattern(300 * 1000)
      assert(fs.writeFile(dir .. "/up.bin", payload))
      local out, err, code = W.curl("--http1.1", "--cacert", cert.cert, "-H", "Transfer-Encoding: chunked",
        "-H", "Content-Type: application/octet-stream", "--data-binary", "@" .. dir .. "/up.bin", base() .. "/echo")
      W.rmTree(dir)
      assert.equal(code, 0, err)
      assert.equal(seen.te, "chunked")
      assert.equal(seen.length, #payload)
      assert.truthy(seen.body == payload, "the server got the upload intact")
      assert.truthy(out == payload, "the echo came back intact")
    end, 20)

    it("gets no answer over plain HTTP, and the server carries on", function()
      local out, err, code = W.curl("http://127.0.0.1:" .. port .. "/plain")
      assert.truthy(code == 52 or code == 56, "curl exit " .. tostring(code) .. ": " .. err)
      assert.equal(out, "")
      local out2, err2, code2 = W.curl("--cacert", cert.cert, base() .. "/after")
      assert.equal(code2, 0, err2)
      assert.equal(out2, "hello over tls /after")
    end, 20)

    it("fails verification without --cacert (exit 60)", function()
      local _, err, code = W.curl(base() .. "/")
      assert.equal(code, 60, err)
      assert.match(err, "certificate")
    end, 20)
  end)

  describe("openssl s_client -> http.serve{tls}", function()
    it("negotiates ALPN http/1.1 and verifies", function()
      local r = W.run("openssl", {"s_client", "-connect", "127.0.0.1:" .. port, "-alpn", "http/1.1",
        "-servername", "localhost", "-CAfile", cert.cert, "-ign_eof"},
        {input = "GET /sclient HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", timeout = 20})
      assert.equal(r.code, 0, r.err)
      assert.match(r.out, "ALPN protocol: http/1%.1")
      assert.match(r.out, "Verify return code: 0 %(ok%)")
      assert.match(r.out, "HTTP/1%.1 200 OK")
      assert.match(r.out, "hello over tls /sclient")
    end, 20)

    it("negotiates h2 when it offers only h2 (http.serve offers h2, http/1.1)", function()
      local r = W.run("openssl", {"s_client", "-connect", "127.0.0.1:" .. port, "-alpn", "h2",
        "-servername", "localhost", "-CAfile", cert.cert, "-ign_eof"},
        {input = "", timeout = 20})
      assert.match(r.out, "ALPN protocol: h2")
    end, 20)

    it("gets no ALPN protocol when it offers only h2 to a server with http2 = false", function()
      local plain = assert(http.serve({port = 0, http2 = false, tls = {cert = cert.cert, key = cert.key}}, handler))
      local r = W.run("openssl", {"s_client", "-connect", "127.0.0.1:" .. plain.port, "-alpn", "h2",
        "-servername", "localhost", "-CAfile", cert.cert, "-ign_eof"},
        {input = "GET /noalpn HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", timeout = 20})
      plain:close()
      assert.match(r.out, "No ALPN negotiated")
      assert.match(r.out, "hello over tls /noalpn")
    end, 20)
  end)

  describe("Evo's https client", function()
    it("gets a page with ca", function()
      local res, err = http.get(base("127.0.0.1") .. "/client", {ca = cert.cert, timeout = 10})
      assert(res, tostring(err))
      assert.equal({res.status, res.body}, {200, "hello over tls /client"})
      local res2 = assert(http.get(base("localhost") .. "/byname", {ca = cert.cert, timeout = 10}))
      assert.equal(res2.body, "hello over tls /byname")
    end, 20)

    it("posts a body", function()
      local body = string.rep("evo ", 30000)
      local res = assert(http.request({method = "POST", url = base("127.0.0.1") .. "/echo", body = body,
        ca = cert.cert, timeout = 10}))
      assert.equal(res.status, 200)
      assert.truthy(res.body == body)
      assert.equal(seen.length, #body)
    end, 20)

    it("fails with TLSVerifyFailed without ca", function()
      local res, err = http.get(base("127.0.0.1") .. "/", {timeout = 10})
      assert.isNil(res)
      assert.equal(err.code, "TLSVerifyFailed")
    end, 20)

    it("fails with TLSVerifyFailed when the name does not match", function()
      local s, err = net.connect({host = "127.0.0.1", port = port, timeout = 10,
        tls = {servername = "example.com", ca = cert.cert}})
      assert.isNil(s)
      assert.equal(err.code, "TLSVerifyFailed")
      local c, werr = ws.connect("wss://127.0.0.1:" .. port .. "/ws", {ca = cert.cert, timeout = 10})
      assert(c, tostring(werr))  -- the certificate names 127.0.0.1 too
      c:close()
    end, 20)

    it("refuses a certificate for localhost only at 127.0.0.1, accepts it at localhost", function()
      local dir = W.tempDir()
      local r = W.run("openssl", {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", dir .. "/key.pem", "-out", dir .. "/cert.pem", "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost"})
      assert.equal(r.code, 0, r.err)
      local other = assert(http.serve({port = 0, tls = {cert = dir .. "/cert.pem", key = dir .. "/key.pem"}},
        function(_, res) res:send(200, "localhost only") end))
      local res, err = http.get("https://127.0.0.1:" .. other.port .. "/", {ca = dir .. "/cert.pem", timeout = 10})
      assert.isNil(res)
      assert.equal(err.code, "TLSVerifyFailed")
      local ok = assert(http.get("https://localhost:" .. other.port .. "/", {ca = dir .. "/cert.pem", timeout = 10}))
      assert.equal(ok.body, "localhost only")
      http.closeIdle()
      other:close()
      W.rmTree(dir)
    end, 20)

    it("talks to openssl s_server (https and a raw TLS stream with ALPN)", function()
      local peer = W.startPeer("openssl", {"s_server", "-accept", "127.0.0.1:0", "-cert", cert.cert, "-key", cert.key,
        "-www", "-alpn", "http/1.1"}, "^ACCEPT 127%.0%.0%.1:(%d+)$")
      local res, err = http.get("https://localhost:" .. peer.port .. "/", {ca = cert.cert, timeout = 10})
      if res then http.closeIdle() end
      local s, serr = net.connect({host = "localhost", port = peer.port, timeout = 10,
        tls = {ca = cert.cert, alpn = {"h2", "http/1.1"}}})
      local info = s and s:tlsInfo()
      if s then s:close() end
      peer.stop()
      assert(res, tostring(err))
      assert.equal(res.status, 200)
      assert.match(res.body, "s_server")
      assert(s, tostring(serr))
      assert.equal(info.alpn, "http/1.1")
    end, 20)

    it("fails with TLSError against a server that does not speak TLS", function()
      local peer = W.startPeer(W.python, {"-u", "-m", "http.server", "0", "--bind", "127.0.0.1"},
        "^Serving HTTP on 127%.0%.0%.1 port (%d+)")
      local s, err = net.connect({host = "127.0.0.1", port = peer.port, timeout = 10, tls = {ca = cert.cert}})
      local res, herr = http.get("https://127.0.0.1:" .. peer.port .. "/", {ca = cert.cert, timeout = 10})
      peer.stop()
      assert.isNil(s)
      assert.equal(err.code, "TLSError")
      assert.isNil(res)
      assert.equal(herr.code, "TLSError")
    end, 20)

    it("works with verify = false", function()
      local res, err = http.get(base("127.0.0.1") .. "/unverified", {verify = false, timeout = 10})
      assert(res, tostring(err))
      assert.equal(res.body, "hello over tls /unverified")
    end, 20)
  end)

  describe("net.listen{tls} and net.connect{tls}", function()
    it("echoes lines, with ALPN on both ends", function()
      local serverAlpn = task.queue()
      local echo = assert(net.listen({host = "127.0.0.1", port = 0,
        tls = {cert = cert.cert, key = cert.key, alpn = {"echo/1"}}}, function(conn)
        serverAlpn:put(conn:tlsInfo() or false)
        while true do
          local line = conn:readLine()
          if not line then return end
          conn:write(line, "\n")
        end
      end))
      local c = assert(net.connect({host = "127.0.0.1", port = echo.port, timeout = 10,
        tls = {ca = cert.cert, alpn = {"echo/1"}}}))
      assert.equal(c:tlsInfo().alpn, "echo/1")
      assert.equal(W.get(serverAlpn), {alpn = "echo/1", servername = ""}, "no SNI for an IP address")
      c:write("over tls\n")
      assert.equal(c:readLine(), "over tls")
      local big = string.rep("abcdefghij", 100000)
      c:write(big, "\n")
      assert.truthy(c:readLine() == big, "a megabyte came back intact")
      c:close()
      -- by name, with SNI
      local c2 = assert(net.connect({host = "localhost", port = echo.port, timeout = 10, tls = {ca = cert.cert}}))
      assert.equal(W.get(serverAlpn).servername, "localhost")
      c2:write("by name\n")
      assert.equal(c2:readLine(), "by name")
      c2:close()
      echo:close()
    end, 20)

    it("accept() returns an error for a plain-text client and goes on; s_client sees SNI and close_notify", function()
      local listener = assert(net.listen({host = "127.0.0.1", port = 0, tls = {cert = cert.cert, key = cert.key}}))
      local plain = task.async(W.curl, "http://127.0.0.1:" .. listener.port .. "/")
      local conn, err = listener:accept()
      assert.isNil(conn)
      assert.equal(err.code, "TLSError")
      local _, _, curlCode = plain:await()
      assert.truthy(curlCode ~= 0)
      local client = task.async(W.run, "openssl", {"s_client", "-connect", "127.0.0.1:" .. listener.port,
        "-servername", "sni.test", "-CAfile", cert.cert, "-ign_eof"}, {input = "", timeout = 20})
      local c = assert(listener:accept())
      c:write("hello, ", c:tlsInfo().servername, "\n")
      assert.truthy(c:shutdown())
      local r = client:await()
      c:close()
      listener:close()
      assert.equal(r.code, 0, r.err)
      assert.match(r.out, "hello, sni%.test")
      assert.match(r.out, "Verify return code: 0 %(ok%)")
      assert.isNil(r.err:find("unexpected eof", 1, true), "s_client saw close_notify: " .. r.err)
    end, 20)

    it("gives the same results from a child evo in both Io modes", function()
      local echo = assert(net.listen({host = "127.0.0.1", port = 0,
        tls = {cert = cert.cert, key = cert.key, alpn = {"echo/1"}}}, function(conn)
        while true do
          local line = conn:readLine()
          if not line then return end
          conn:write(line, "\n")
        end
      end))
      local function lines(mode)
        local r = W.run(W.evo, {"--io=" .. mode, W.dir .. "/fixtures/tls_client.lua", tostring(echo.port),
          tostring(port), cert.cert}, {timeout = 30})
        assert.equal(r.code, 0, r.err)
        return r.out
      end
      local expected = table.concat({
        "alpn echo/1", "echo first line", "echo second line", "big 200000 true",
        "without ca TLSVerifyFailed", "wrong name TLSVerifyFailed", "verify=false unverified",
        "https 200 hello over tls /hello", "https without ca TLSVerifyFailed", ""}, "\n")
      local blocking = lines("blocking")
      assert.equal(blocking, "mode blocking\n" .. expected)
      local evented = lines("evented")
      assert.equal(evented, "mode evented\n" .. expected)
      echo:close()
    end, 40)
  end)

  describe("a child evo making one https request", function()
    -- A script ends when its work is done; an idle pooled keep-alive
    -- connection is no work (the server here would keep it for 5 s).
    for _, mode in ipairs({"evented", "blocking"}) do
      it("ends promptly in the " .. mode .. " mode", function()
        local script = ("local http = require('http'); local res, err = http.get('https://127.0.0.1:%d/quick', " ..
          "{ca = '%s', timeout = 10}); print(res and res.body or tostring(err))"):format(port, cert.cert)
        local t0 = task.now()
        local r = W.run(W.evo, {"--io=" .. mode, "-e", script}, {timeout = 30})
        local took = task.now() - t0
        assert.equal({r.code, r.out}, {0, "hello over tls /quick\n"}, r.err)
        assert.truthy(took < 2.5, ("the process lingered %.1f s after its request"):format(took))
      end, 40)
    end
  end)

  describe("wss", function()
    it("ws.connect wss://localhost with ca", function()
      local c, err = ws.connect("wss://localhost:" .. port .. "/ws", {ca = cert.cert, timeout = 10})
      assert(c, tostring(err))
      c:send("secret")
      assert.equal({c:receive()}, {"tls echo: secret", "text"})
      local bin = W.pattern(70000)
      c:send(bin, "binary")
      local data, kind = c:receive()
      assert.equal(kind, "binary")
      assert.truthy(data == "tls echo: " .. bin)
      assert.truthy(c:close())
      local none, verr = ws.connect("wss://localhost:" .. port .. "/ws", {timeout = 10})
      assert.isNil(none)
      assert.equal(verr.code, "TLSVerifyFailed")
    end, 20)

    it("a Python websockets client over TLS", function()
      local r = W.wsClient({url = "wss://localhost:" .. port .. "/ws", ca = cert.cert, compression = "deflate",
        steps = {{"send", "from python"}, {"recv"}, {"sendbin", 1000}, {"recv"}, {"close", 1000, "tls bye"}}})
      assert.isNil(r.error)
      assert.equal(r.events[1], {"text", "tls echo: from python"})
      assert.equal(r.events[2][1], "binary")
      assert.truthy(r.events[2][2] == "tls echo: " .. W.pattern(1000))
      assert.equal(r.extensions, {"permessage-deflate"})
      assert.equal(r.closeCode, 1000)
    end, 20)

    it("WebSocketServer{tls} with a Python client, which refuses it without the CA", function()
      local wss = WebSocketServer({tls = {cert = cert.cert, key = cert.key}})
      local got = task.queue()
      function wss:WEBSOCKET_MESSAGE_RECEIVED(_, p)
        got:put(p.data)
        self:Send(p.connectionID, "ack " .. p.data)
      end
      assert(wss:StartListening(0))
      local r = W.wsClient({url = "wss://localhost:" .. wss.port .. "/", ca = cert.cert,
        steps = {{"send", "event style"}, {"recv"}, {"close", 1000, ""}}})
      assert.equal(r.events, {{"text", "ack event style"}})
      assert.equal(W.get(got), "event style")
      local bad = W.wsClient({url = "wss://localhost:" .. wss.port .. "/", steps = {}})
      assert.truthy(bad.error, "the client without the CA refused the certificate")
      assert.match(bad.error.message, "CERTIFICATE_VERIFY_FAILED")
      wss:StopListening()
    end, 20)
  end)
end)
