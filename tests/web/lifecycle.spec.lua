-- How TLS and WebSocket connections end: timeouts before a handshake, a
-- WebSocket accepted in a handler, close codes, graceful server closes.
local W = require("webkit")
local http = require("http")
local net = require("net")
local ws = require("ws")
local task = require("task")

describe("connection lifecycle", function()
  local cert
  before(function() cert = W.makeCert() end)
  after(function() W.rmTree(cert.dir) end)

  it("drops an https client that never starts its handshake at the header timeout", function()
    local server = assert(http.serve({port = 0, headerTimeout = 0.3, tls = {cert = cert.cert, key = cert.key}},
      function(req, res) res:send(200, "x") end))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    c:settimeout(3)
    local started = task.now()
    local data, err = c:read()
    assert.isNil(data)
    assert.isNil(err, "a clean close, not a timeout on our side")
    assert.truthy(task.now() - started < 1.5, "closed at the header timeout")
    c:close()
    task.sleep(0.05)
    assert.equal(server:connections(), 0)
    assert.equal(server:close(), true)
  end, 15)

  it("applies net.connect's timeout to the TLS handshake too", function()
    local silent = assert(net.listen({port = 0}, function(s) task.sleep(2) end))
    local started = task.now()
    local c, err = net.connect({host = "127.0.0.1", port = silent.port, timeout = 0.4, tls = {verify = false}})
    assert.isNil(c)
    assert.equal(err.code, "Timeout")
    assert.truthy(task.now() - started < 1.5, "gave up at the timeout")
    local r, herr = http.get("https://127.0.0.1:" .. silent.port .. "/", {timeout = 0.4, verify = false})
    assert.isNil(r)
    assert.equal(herr.code, "Timeout")
    silent:close()
  end, 15)

  it("drops a TLS client of net.listen that never completes its handshake", function()
    local served = 0
    local server = assert(net.listen({port = 0, handshakeTimeout = 0.3, tls = {cert = cert.cert, key = cert.key}},
      function(s) served = served + 1 end))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    c:settimeout(3)
    local started = task.now()
    assert.isNil(c:read())
    assert.truthy(task.now() - started < 1.5)
    assert.equal(served, 0, "the handler never saw it")
    c:close()
    server:close()
  end, 15)

  it("closes a WebSocket when the handler that accepted it returns", function()
    local server = assert(http.serve({port = 0}, function(req, res)
      local conn = assert(ws.accept(req, res))
      conn:send("bye")
    end))
    local c = assert(ws.connect("ws://127.0.0.1:" .. server.port .. "/", {timeout = 3}))
    assert.equal(c:receive(), "bye")
    local data, err = c:receive()
    assert.isNil(data)
    assert.equal(err.closeCode, 1000)
    server:close()
  end, 15)

  it("refuses close codes that may not be sent", function()
    local server = assert(http.serve({port = 0}, function(req, res)
      local conn = assert(ws.accept(req, res))
      conn:receive()
    end))
    local c = assert(ws.connect("ws://127.0.0.1:" .. server.port .. "/"))
    for _, code in ipairs({999, 1004, 1005, 1006, 1015, 2999, 5000}) do
      local ok, err = pcall(c.close, c, code)
      assert.falsy(ok, "close(" .. code .. ") refused")
      assert.match(tostring(err), "bad argument #1 to 'close'")
    end
    assert.truthy(c:close(4000, "custom"))
    server:close()
  end, 15)

  it("cuts off a peer that never answers a close within 2 s", function()
    local WebSocketServer = require("WebSocketServer")
    local s = WebSocketServer()
    assert(s:StartListening(0))
    -- A raw client: upgrades, then never reads or answers again.
    local raw = assert(net.connect({host = "127.0.0.1", port = s.port}))
    raw:write("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert.match(raw:readLine(), "^HTTP/1.1 101")
    task.sleep(0.1)
    local closed = false
    function s:WEBSOCKET_CONNECTION_CLOSED() closed = true end
    local started = task.now()
    s:StopListening()
    while not closed and task.now() - started < 5 do task.sleep(0.05) end
    assert.truthy(closed, "the connection was closed")
    assert.truthy(task.now() - started < 3.5, "within the 2 s bound")
    raw:close()
  end, 15)
end)
