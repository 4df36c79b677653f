-- WebSockets against a real peer: Python's websockets package (Debian's
-- python3-websockets) as client and server, and a raw-socket Python peer
-- that builds frames by hand for protocol violations.
local W = require("webkit")
local http = require("http")
local ws = require("ws")
local net = require("net")
local task = require("task")
local WebSocketServer = require("WebSocketServer")

local UTF8 = "héllo wörld ✓ — Ελληνικά 日本語 😀"

-- An Evo server whose handler reports what it sees to the current test's
-- queue. Paths: /echo (deflate on), /nodeflate, /small (maxMessage 1024),
-- /goaway (the server closes with 1001 at once), /longascii and /longutf8
-- (the server closes with a 200-byte reason), /greet (the server speaks
-- first, then echoes).
local function evoServer()
  local S = {events = task.queue()}
  S.server = assert(http.serve({port = 0}, function(req, res)
    local q = S.events
    local path = req.path
    local opts = {protocols = {"chat"}}
    if path == "/nodeflate" then opts.deflate = false end
    if path == "/small" then opts.maxMessage = 1024 end
    local conn, err = ws.accept(req, res, opts)
    if not conn then
      q:put({"rejected", err and err.code})
      return
    end
    q:put({"open", path, conn.protocol, conn.headers["user-agent"]})
    if path == "/goaway" then
      conn:close(1001, "going away")
      q:put({"closed by us"})
      return
    end
    if path == "/longascii" or path == "/longutf8" then
      conn:close(4003, path == "/longascii" and string.rep("r", 200) or string.rep("é", 100))
      return
    end
    if path == "/greet" then conn:send("welcome") end
    while true do
      local data, kind = conn:receive()
      if not data then
        q:put({"closed", kind.code, kind.closeCode, kind.reason})
        return
      end
      q:put({"message", data, kind})
      conn:send(data, kind)
    end
  end))
  S.port = S.server.port
  S.url = "ws://127.0.0.1:" .. S.port
  return S
end

describe("Python websockets client -> Evo ws.accept", function()
  local S
  before(function() S = evoServer() end)
  after(function() S.server:close() end)
  beforeEach(function() S.events = task.queue() end)

  -- the handler's first report: the upgrade, from Python's websockets
  -- (nil userAgent: from the raw peer, which sends none)
  local function expectOpen(path, protocol, userAgent)
    local e = W.get(S.events)
    assert.equal({e[1], e[2], e[3]}, {"open", path, protocol})
    if userAgent == nil then
      assert.match(e[4], "^Python/.* websockets/10")
    else
      assert.equal(e[4], userAgent or nil)
    end
  end

  it("echoes text, including UTF-8, and the handler sees it as text", function()
    local r = W.wsClient({url = S.url .. "/echo", compression = nil,
      steps = {{"send", "hello"}, {"recv"}, {"send", UTF8}, {"recv"}, {"send", ""}, {"recv"}, {"close", 1000, "bye"}}})
    assert.isNil(r.error)
    assert.equal(r.events, {{"text", "hello"}, {"text", UTF8}, {"text", ""}})
    expectOpen("/echo", nil)
    assert.equal(W.get(S.events), {"message", "hello", "text"})
    assert.equal(W.get(S.events), {"message", UTF8, "text"})
    assert.equal(W.get(S.events), {"message", "", "text"})
    assert.equal(W.get(S.events), {"closed", "Closed", 1000, "bye"})
    assert.equal(r.closeCode, 1000)
  end, 20)

  for _, compression in ipairs({"deflate", "none"}) do
    it("echoes 100 KB of binary with compression=" .. compression, function()
      local payload = W.pattern(100 * 1024)
      local r = W.wsClient({url = S.url .. "/echo", compression = compression == "deflate" and "deflate" or nil,
        steps = {{"sendbin", #payload}, {"recv"}, {"send", "x", 50000}, {"recv"}, {"close", 1000, ""}}})
      assert.isNil(r.error)
      assert.equal(#r.events, 2)
      assert.equal(r.events[1][1], "binary")
      assert.truthy(r.events[1][2] == payload, "the binary echo differs")
      assert.equal(r.events[2][1], "text")
      assert.truthy(r.events[2][2] == string.rep("x", 50000), "the text echo differs")
      if compression == "deflate" then
        assert.equal(r.extensions, {"permessage-deflate"})
        assert.match(r.headers["sec-websocket-extensions"], "^permessage%-deflate")
      else
        assert.equal(r.extensions, {})
        assert.isNil(r.headers["sec-websocket-extensions"])
      end
      expectOpen("/echo", nil)
      local m = W.get(S.events)
      assert.equal({m[1], #m[2], m[3]}, {"message", #payload, "binary"})
      assert.truthy(m[2] == payload)
    end, 20)
  end

  it("does not negotiate permessage-deflate when the server turns it off", function()
    local r = W.wsClient({url = S.url .. "/nodeflate", compression = "deflate",
      steps = {{"send", "plain"}, {"recv"}, {"close", 1000, ""}}})
    assert.equal(r.extensions, {})
    assert.equal(r.events, {{"text", "plain"}})
  end, 20)

  it("compresses on the wire when deflate is negotiated (RSV1 frames both ways)", function()
    local text = string.rep("compress me please ", 500)
    local r = W.wsRaw(S.port, {
      {"frame", {opcode = 1, text = text, deflate = true}},
      {"read"},
      {"frame", {opcode = 8, code = 1000}},
      {"until_close"},
    }, {path = "/echo", headers = {["Sec-WebSocket-Extensions"] = "permessage-deflate"}})
    assert.equal(r.status, 101)
    assert.match(r.headers["sec-websocket-extensions"], "^permessage%-deflate")
    local f = r.frames[1]
    assert.equal({f.opcode, f.fin, f.rsv, f.masked}, {1, true, 4, false})
    assert.truthy(f.data == text, "the inflated echo differs")
    assert.truthy(f.compressed < #text / 10, "the echo went compressed: " .. tostring(f.compressed) .. " bytes")
    assert.equal({r.frames[2].opcode, r.frames[2].code}, {8, 1000})
    expectOpen("/echo", nil, false)
    assert.equal(W.get(S.events), {"message", text, "text"})
  end, 20)

  it("answers pings with pongs and keeps going", function()
    local r = W.wsClient({url = S.url .. "/echo",
      steps = {{"ping", "are you there"}, {"send", "after ping"}, {"recv"}, {"ping", ""}, {"close", 1000, ""}}})
    assert.equal(r.events, {{"pong", "are you there"}, {"text", "after ping"}, {"pong", ""}})
  end, 20)

  it("negotiates a subprotocol: offered x and chat, supports chat", function()
    local r = W.wsClient({url = S.url .. "/echo", subprotocols = {"x", "chat"},
      steps = {{"send", "hi"}, {"recv"}, {"close", 1000, ""}}})
    assert.equal(r.subprotocol, "chat")
    assert.equal(r.headers["sec-websocket-protocol"], "chat")
    expectOpen("/echo", "chat")
    local r2 = W.wsClient({url = S.url .. "/echo", subprotocols = {"x"}, steps = {{"close", 1000, ""}}})
    assert.isNil(r2.error)
    assert.isNil(r2.subprotocol, "none in common: none chosen")
  end, 20)

  it("gives the handler the client's close code 4000 and reason", function()
    local r = W.wsClient({url = S.url .. "/echo", steps = {{"close", 4000, "custom reason ✓"}}})
    assert.equal(r.closeCode, 4000, "the server echoed the code")
    expectOpen("/echo", nil)
    local e = W.get(S.events)
    assert.equal(e, {"closed", "Closed", 4000, "custom reason ✓"})
  end, 20)

  it("closes with 1001 from the server, seen by Python", function()
    local r = W.wsClient({url = S.url .. "/goaway", steps = {{"until_closed"}}})
    assert.equal(r.events, {{"closed", 1001, "going away"}})
    expectOpen("/goaway", nil)
    assert.equal(W.get(S.events), {"closed by us"})
  end, 20)

  it("cuts a long close reason to 123 bytes, on a UTF-8 character boundary", function()
    local r = W.wsClient({url = S.url .. "/longascii", steps = {{"until_closed"}}})
    assert.equal(r.events, {{"closed", 4003, string.rep("r", 123)}})
    -- 100 two-byte characters: 123 bytes would end inside the 62nd
    local r2 = W.wsClient({url = S.url .. "/longutf8", steps = {{"until_closed"}}})
    assert.equal(r2.events, {{"closed", 4003, string.rep("é", 61)}})
  end, 20)

  it("reports 1005 for a Close without a code", function()
    local r = W.wsRaw(S.port, {{"frame", {opcode = 8}}, {"until_close"}}, {path = "/echo"})
    assert.equal(r.status, 101)
    assert.equal(r.frames[1].opcode, 8)
    assert.equal(#r.frames[1].data, 0, "the echo has no code either")
    assert.equal(W.get(S.events)[1], "open")
    assert.equal(W.get(S.events), {"closed", "Closed", 1005, ""})
  end, 20)

  it("speaks first, then echoes", function()
    local r = W.wsClient({url = S.url .. "/greet", steps = {{"recv"}, {"send", "and you"}, {"recv"}, {"close", 1000, ""}}})
    assert.equal(r.events, {{"text", "welcome"}, {"text", "and you"}})
  end, 20)

  it("closes with 1009 when a message exceeds maxMessage", function()
    local r = W.wsClient({url = S.url .. "/small", compression = nil,
      steps = {{"send", "fits"}, {"recv"}, {"send", "y", 2000}, {"until_closed"}}})
    assert.equal(r.events[1], {"text", "fits"})
    assert.equal(r.events[2][1], "closed")
    assert.equal(r.events[2][2], 1009)
    expectOpen("/small", nil)
    assert.equal(W.get(S.events), {"message", "fits", "text"})
    local e = W.get(S.events)
    assert.equal({e[1], e[3]}, {"closed", 1009})
  end, 20)

  it("closes with 1009 when a compressed message inflates beyond maxMessage", function()
    local r = W.wsRaw(S.port, {
      {"frame", {opcode = 1, text = string.rep("z", 5000), deflate = true}},
      {"until_close"},
    }, {path = "/small", headers = {["Sec-WebSocket-Extensions"] = "permessage-deflate"}})
    assert.equal(r.status, 101)
    local last = r.frames[#r.frames]
    assert.equal({last.opcode, last.code}, {8, 1009})
  end, 20)

  -- protocol violations, with frames made by hand
  local function violation(steps)
    local r = W.wsRaw(S.port, steps, {path = "/echo"})
    assert.equal(r.status, 101)
    local last = r.frames[#r.frames]
    return last, r
  end

  it("closes with 1007 on invalid UTF-8 in a text message", function()
    local last = violation({{"frame", {opcode = 1, hex = "48c328ff"}}, {"until_close"}})
    assert.equal({last.opcode, last.code}, {8, 1007})
  end, 20)

  it("closes with 1007 on invalid UTF-8 split across fragments", function()
    local last = violation({
      {"frame", {opcode = 1, fin = false, hex = "e282"}},  -- the start of U+20AC ...
      {"frame", {opcode = 0, fin = true, hex = "41"}},     -- ... cut short
      {"until_close"},
    })
    assert.equal({last.opcode, last.code}, {8, 1007})
  end, 20)

  it("accepts a UTF-8 character split across fragments", function()
    local _, r = violation({
      {"frame", {opcode = 1, fin = false, hex = "e282"}},
      {"frame", {opcode = 0, fin = true, hex = "ac"}},
      {"read"},
      {"frame", {opcode = 8, code = 1000}},
      {"until_close"},
    })
    assert.equal({r.frames[1].opcode, r.frames[1].data}, {1, "€"})
  end, 20)

  it("closes with 1002 on an unmasked client frame", function()
    local last = violation({{"frame", {opcode = 1, text = "naked", mask = false}}, {"until_close"}})
    assert.equal({last.opcode, last.code}, {8, 1002})
  end, 20)

  it("closes with 1002 on a reserved opcode", function()
    local last = violation({{"frame", {opcode = 3, text = "what"}}, {"until_close"}})
    assert.equal({last.opcode, last.code}, {8, 1002})
  end, 20)

  it("closes with 1002 on RSV bits without an extension", function()
    local last = violation({{"frame", {opcode = 1, rsv = 2, text = "rsv"}}, {"until_close"}})
    assert.equal({last.opcode, last.code}, {8, 1002})
  end, 20)

  it("closes with 1002 on a fragmented control frame and on an unexpected continuation", function()
    local last = violation({{"frame", {opcode = 9, fin = false, text = "p"}}, {"until_close"}})
    assert.equal({last.opcode, last.code}, {8, 1002})
    last = violation({{"frame", {opcode = 0, text = "orphan"}}, {"until_close"}})
    assert.equal({last.opcode, last.code}, {8, 1002})
  end, 20)

  -- Two messages and a violation in one TCP send: both messages reach the
  -- handler before the close with the violation's code.
  for _, case in ipairs({
    {"a reserved opcode", {opcode = 3, text = "what"}, 1002},
    {"invalid UTF-8", {opcode = 1, hex = "48c328ff"}, 1007},
    {"a message over maxMessage", {opcode = 1, text = string.rep("x", 2000)}, 1009},
  }) do
    it("delivers the messages read with " .. case[1] .. " before closing with " .. case[3], function()
      local r = W.wsRaw(S.port, {
        {"frames", {{opcode = 1, text = "one"}, {opcode = 2, hex = "0102"}, case[2]}},
        {"until_close"},
      }, {path = "/small"})
      assert.equal(r.status, 101)
      local last = r.frames[#r.frames]
      assert.equal({last.opcode, last.code}, {8, case[3]})
      assert.equal(W.get(S.events)[1], "open")
      assert.equal(W.get(S.events), {"message", "one", "text"})
      assert.equal(W.get(S.events), {"message", "\1\2", "binary"})
      local e = W.get(S.events)
      assert.equal({e[1], e[2], e[3]}, {"closed", "Closed", case[3]})
    end, 20)
  end

  it("reassembles a fragmented message with a ping in between", function()
    local _, r = violation({
      {"frame", {opcode = 1, fin = false, text = "Hel"}},
      {"frame", {opcode = 9, text = "in between"}},
      {"frame", {opcode = 0, fin = false, text = "lo, "}},
      {"frame", {opcode = 0, fin = true, text = "world"}},
      {"read"},
      {"read"},
      {"frame", {opcode = 2, fin = false, hex = "0001"}},
      {"frame", {opcode = 0, fin = true, hex = "0203"}},
      {"read"},
      {"frame", {opcode = 8, code = 1000, text = "done"}},
      {"until_close"},
    })
    local f = r.frames
    assert.equal({f[1].opcode, f[1].data, f[1].masked}, {10, "in between", false})
    assert.equal({f[2].opcode, f[2].fin, f[2].data}, {1, true, "Hello, world"})
    assert.equal({f[3].opcode, f[3].data}, {2, "\0\1\2\3"})
    assert.equal({f[4].opcode, f[4].code}, {8, 1000})
    assert.equal(W.get(S.events)[1], "open")
    assert.equal(W.get(S.events), {"message", "Hello, world", "text"})
    assert.equal(W.get(S.events), {"message", "\0\1\2\3", "binary"})
    assert.equal(W.get(S.events), {"closed", "Closed", 1000, "done"})
  end, 20)

  it("answers a plain GET with 400 and a wrong version with 426", function()
    local out, err, code = W.curl("-i", S.url:gsub("^ws", "http") .. "/echo")
    assert.equal(code, 0, err)
    assert.match(out, "^HTTP/1%.1 400 ")
    local r = W.wsRaw(S.port, {}, {path = "/echo", headers = {["Sec-WebSocket-Version"] = "8"}})
    assert.equal(r.status, 426)
    assert.equal(r.headers["sec-websocket-version"], "13")
    local r2 = W.wsRaw(S.port, {}, {path = "/echo", headers = {["Sec-WebSocket-Key"] = "too-short"}})
    assert.equal(r2.status, 400)
    local rejected = {}
    for i = 1, 3 do rejected[i] = W.get(S.events) end
    assert.equal(rejected, {{"rejected", "BadHandshake"}, {"rejected", "BadHandshake"}, {"rejected", "BadHandshake"}})
  end, 20)
end)

describe("Evo ws.connect -> Python websockets.serve", function()
  local peer, url
  local nextId = 0
  before(function()
    peer = W.startPeer(W.python, {W.peers .. "/ws_server.py", "--subprotocols", "chat"})
    url = "ws://127.0.0.1:" .. peer.port
  end)
  after(function() if peer then peer.stop() end end)

  -- connect(path, opts) -> conn, id: the id tags the peer's log lines
  local function connect(path, opts)
    nextId = nextId + 1
    local id = "t" .. nextId
    opts = opts or {}
    opts.headers = {["X-Test-Id"] = id}
    opts.timeout = 10
    local conn, err = ws.connect(url .. path, opts)
    assert(conn, tostring(err))
    return conn, id
  end

  it("echoes text, UTF-8 and 100 KB of binary without deflate", function()
    local c, id = connect("/plainecho")
    assert.equal({peer.waitFor("^open " .. id .. " (%S+) (%S+) (%S+)$")}, {"/plainecho", "-", "no"})
    assert.truthy(c:send("hello"))
    assert.equal({c:receive()}, {"hello", "text"})
    assert.truthy(c:send(UTF8, "text"))
    assert.equal({c:receive()}, {UTF8, "text"})
    local payload = W.pattern(100 * 1024)
    assert.truthy(c:send(payload, "binary"))
    local data, kind = c:receive()
    assert.equal(kind, "binary")
    assert.truthy(data == payload, "the binary echo differs")
    assert.truthy(c:send("__info"))
    assert.equal({c:receive()}, {"subprotocol=- deflate=no", "text"})
    assert.isNil(c.headers["sec-websocket-extensions"])
    c:close()
  end, 20)

  it("negotiates permessage-deflate when it offers it", function()
    local c, id = connect("/deflate", {deflate = true})
    assert.match(c.headers["sec-websocket-extensions"], "^permessage%-deflate")
    assert.equal({peer.waitFor("^open " .. id .. " %S+ %S+ (%S+)$")}, {"yes"})
    assert.truthy(c:send("__info"))
    assert.equal({c:receive()}, {"subprotocol=- deflate=yes", "text"})
    local payload = W.pattern(100 * 1024)
    assert.truthy(c:send(payload, "binary"))
    local data, kind = c:receive()
    assert.equal(kind, "binary")
    assert.truthy(data == payload, "the binary echo differs")
    local text = string.rep(UTF8, 2000)
    assert.truthy(c:send(text))
    assert.truthy(select(1, c:receive()) == text, "the text echo differs")
    c:close()
  end, 20)

  it("takes the subprotocol the server chose", function()
    local c, id = connect("/sub", {protocols = {"x", "chat"}})
    assert.equal(c.protocol, "chat")
    assert.equal({peer.waitFor("^open " .. id .. " %S+ (%S+)")}, {"chat"})
    c:send("__info")
    assert.equal(c:receive(), "subprotocol=chat deflate=no")
    c:close()
  end, 20)

  it("gets pongs for its pings", function()
    local c = connect("/ping")
    local pongs = {}
    c.onPong = function(data) pongs[#pongs + 1] = data end
    assert.truthy(c:ping("evo ping"))
    c:send("after")
    assert.equal(c:receive(), "after")
    assert.equal(pongs, {"evo ping"})
    c:close()
  end, 20)

  it("completes the closing handshake: Python sees 1000 and the reason", function()
    local c, id = connect("/close")
    c:send("one")
    assert.equal(c:receive(), "one")
    assert.truthy(c:close(1000, "done here"))
    assert.equal({peer.waitFor("^closed " .. id .. " (%d+) (.*)$")}, {"1000", "done here"})
    assert.truthy(c:isClosed())
    local data, err = c:receive()
    assert.isNil(data)
    assert.equal(err.code, "Closed")
    local ok, serr = c:send("too late")
    assert.isNil(ok)
    assert.equal(serr.code, "Closed")
  end, 20)

  it("receives the server's close code and reason", function()
    local c, id = connect("/serverclose")
    c:send("__close 4002 server says bye")
    local data, err = c:receive()
    assert.isNil(data)
    assert.equal({err.code, err.closeCode, err.reason}, {"Closed", 4002, "server says bye"})
    assert.equal({peer.waitFor("^closed " .. id .. " (%d+)")}, {"4002"}, "the client echoed the code")
    assert.truthy(c:isClosed())
  end, 20)

  it("closes with 1009 when the server's message exceeds its maxMessage", function()
    local c, id = connect("/limit", {maxMessage = 1000})
    c:send("__big 1000")
    assert.equal(#c:receive(), 1000, "a message of exactly maxMessage fits")
    c:send("__big 1001")
    local data, err = c:receive()
    assert.isNil(data)
    assert.equal(err.closeCode, 1009)
    assert.equal({peer.waitFor("^closed " .. id .. " (%d+)")}, {"1009"})
  end, 20)

  it("times out a handshake the server never answers", function()
    local silent = assert(net.listen({host = "127.0.0.1", port = 0}))  -- never accepts: the kernel does
    local t0 = task.now()
    local c, err = ws.connect("ws://127.0.0.1:" .. silent.port .. "/", {timeout = 0.5})
    assert.isNil(c)
    assert.equal(err.code, "Timeout")
    assert.truthy(task.now() - t0 < 3)
    silent:close()
  end, 20)

  it("fails with BadHandshake against a plain HTTP answer", function()
    local c, err = ws.connect(url .. "/plain", {timeout = 10})
    assert.isNil(c)
    assert.equal(err.code, "BadHandshake")
    assert.match(err.message, "200")
  end, 20)

  it("fails with ECONNREFUSED on a closed port", function()
    local probe = assert(net.listen({host = "127.0.0.1", port = 0}))
    local port = probe.port
    probe:close()
    task.sleep(0.05)
    local c, err = ws.connect("ws://127.0.0.1:" .. port .. "/", {timeout = 5})
    assert.isNil(c)
    assert.equal(err.code, "ECONNREFUSED")
  end, 20)
end)

describe("ws.connect against a raw server", function()
  -- serve(answer) -> url; answer(key) -> the bytes the server sends after the request head
  local servers = {}
  after(function() for _, s in ipairs(servers) do s:close() end end)
  local function serve(answer)
    local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(s)
      local head = s:readUntil("\r\n\r\n")
      local key = head and head:match("\r\n[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: ([^\r]+)")
      s:write(answer(key))
      s:flush()
      task.sleep(0.5)
      s:close()
    end))
    servers[#servers + 1] = server
    return "ws://127.0.0.1:" .. server.port .. "/"
  end

  it("receives frames the server sent right behind the 101, in the same packet", function()
    local url = serve(function(key)
      return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Accept: " .. require("evo.ws").acceptKey(key) .. "\r\n\r\n\129\5hello\130\2hi"
    end)
    local c = assert(ws.connect(url, {timeout = 5}))
    assert.equal({c:receive()}, {"hello", "text"})
    assert.equal({c:receive()}, {"hi", "binary"})
  end, 20)

  it("fails with BadHandshake on a malformed response, EOF on a cut-short one", function()
    for _, case in ipairs({{"HTTP/1.1 101 Switching\r\nUpgrade: websocket\rX: y\r\n\r\n", "BadHandshake"},
        {"NOT HTTP\r\n\r\n", "BadHandshake"}, {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs", "EOF"}}) do
      local c, err = ws.connect(serve(function() return case[1] end), {timeout = 5})
      assert.isNil(c)
      assert.equal(err.code, case[2], case[1])
    end
  end, 20)

  it("refuses URLs and headers that would inject into the handshake, before connecting", function()
    local reached = 0
    local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(s)
      reached = reached + 1
      s:close()
    end))
    servers[#servers + 1] = server
    local base = "ws://127.0.0.1:" .. server.port
    local bad = {
      {base .. "/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /y", nil, "BadUrl"},
      {base .. "/x\ny", nil, "BadUrl"},
      {"ws://127.0.0.1\r\nX-Injected: 1/", nil, "BadUrl"},
      {"ws://127.0.0.1:99999/", nil, "BadUrl"},
      {base .. "/", {headers = {["X-A"] = "v\r\nX-Injected: 1"}}, "BadHeader"},
      {base .. "/", {headers = {["X-A\r\nX-Injected"] = "1"}}, "BadHeader"},
      {base .. "/", {protocols = {"chat\r\nX-Injected: 1"}}, "BadHeader"},
    }
    for i, case in ipairs(bad) do
      local ok, c, err = pcall(ws.connect, case[1], case[2])
      assert.truthy(ok, "case " .. i .. " raised: " .. tostring(c))
      assert.isNil(c, "case " .. i .. " connected")
      assert.equal(err.code, case[3], "case " .. i)
    end
    task.sleep(0.05)
    assert.equal(reached, 0, "nothing reached the server")
  end, 20)
end)

describe("WebSocketServer", function()
  local function newServer(opts)
    local server = WebSocketServer(opts)
    local q = task.queue()
    server.queue = q
    function server:WEBSOCKET_CONNECTION_ESTABLISHED(event, p) q:put({event, p}) end
    function server:WEBSOCKET_MESSAGE_RECEIVED(event, p) q:put({event, p}) end
    function server:WEBSOCKET_CONNECTION_CLOSED(event, p) q:put({event, p}) end
    function server:SERVER_STOPPED_LISTENING(event, p) q:put({event, p}) end
    assert(server:StartListening(0, "127.0.0.1"))
    assert.truthy(server.port > 0)
    return server, q
  end

  it("reports connections, messages and closes; Send answers one client", function()
    local server, q = newServer({protocols = {"chat"}})
    local c = assert(ws.connect("ws://127.0.0.1:" .. server.port .. "/room?x=1",
      {protocols = {"chat"}, headers = {["X-Who"] = "tester"}, timeout = 10}))
    local e = W.get(q)
    assert.equal(e[1], "WEBSOCKET_CONNECTION_ESTABLISHED")
    local p = e[2]
    assert.equal({p.path, p.protocol, p.remoteAddress, p.headers["x-who"]}, {"/room", "chat", "127.0.0.1", "tester"})
    assert.type(p.connectionID, "number")
    local id = p.connectionID
    c:send("text message")
    c:send("\0\255binary", "binary")
    e = W.get(q)
    assert.equal(e, {"WEBSOCKET_MESSAGE_RECEIVED", {connectionID = id, data = "text message", binary = false}})
    e = W.get(q)
    assert.equal(e, {"WEBSOCKET_MESSAGE_RECEIVED", {connectionID = id, data = "\0\255binary", binary = true}})
    assert.truthy(server:Send(id, "just for you"))
    assert.truthy(server:Send(id, "\1\2", "binary"))
    assert.equal({c:receive()}, {"just for you", "text"})
    assert.equal({c:receive()}, {"\1\2", "binary"})
    c:close(4100, "leaving")
    e = W.get(q)
    assert.equal(e, {"WEBSOCKET_CONNECTION_CLOSED", {connectionID = id, code = 4100, reason = "leaving"}})
    local ok, err = server:Send(id, "gone")
    assert.isNil(ok)
    assert.truthy(err)
    server:StopListening()
  end, 20)

  it("reports the messages read with a protocol violation before closing with 1002", function()
    local server, q = newServer()
    local r = W.wsRaw(server.port, {
      {"frames", {{opcode = 1, text = "first"}, {opcode = 1, text = "second"}, {opcode = 3, text = "bad"}}},
      {"until_close"},
    })
    assert.equal(r.status, 101)
    local last = r.frames[#r.frames]
    assert.equal({last.opcode, last.code}, {8, 1002})
    local e = W.get(q)
    assert.equal(e[1], "WEBSOCKET_CONNECTION_ESTABLISHED")
    local id = e[2].connectionID
    assert.equal(W.get(q), {"WEBSOCKET_MESSAGE_RECEIVED", {connectionID = id, data = "first", binary = false}})
    assert.equal(W.get(q), {"WEBSOCKET_MESSAGE_RECEIVED", {connectionID = id, data = "second", binary = false}})
    e = W.get(q)
    assert.equal(e[1], "WEBSOCKET_CONNECTION_CLOSED")
    assert.equal({e[2].connectionID, e[2].code}, {id, 1002})
    server:StopListening()
  end, 20)

  it("broadcasts to three clients and closes one by id", function()
    local server, q = newServer()
    local url = "ws://127.0.0.1:" .. server.port .. "/"
    local clients, ids = {}, {}
    for i = 1, 3 do
      clients[i] = assert(ws.connect(url, {timeout = 10}))
      local e = W.get(q)
      assert.equal(e[1], "WEBSOCKET_CONNECTION_ESTABLISHED")
      ids[i] = e[2].connectionID
    end
    assert.truthy(ids[1] ~= ids[2] and ids[2] ~= ids[3] and ids[1] ~= ids[3], "distinct ids")
    assert.equal(server:Broadcast("to everyone"), 3)
    for i = 1, 3 do assert.equal({clients[i]:receive()}, {"to everyone", "text"}) end
    -- Close(id, code, reason): the client sees them, the server reports the close
    local closer = task.async(function() return server:Close(ids[2], 4001, "kicked") end)
    local data, err = clients[2]:receive()
    assert.isNil(data)
    assert.equal({err.closeCode, err.reason}, {4001, "kicked"})
    assert.truthy(closer:await())
    local e = W.get(q)
    assert.equal(e[1], "WEBSOCKET_CONNECTION_CLOSED")
    assert.equal(e[2].connectionID, ids[2])
    assert.equal(e[2].code, 4001)
    assert.equal(server:Broadcast("to the rest", "binary"), 2)
    assert.equal({clients[1]:receive()}, {"to the rest", "binary"})
    assert.equal({clients[3]:receive()}, {"to the rest", "binary"})
    clients[1]:close()
    clients[3]:close()
    server:StopListening()
  end, 20)

  it("StopListening closes a Python client with 1001 and stops accepting", function()
    local server, q = newServer()
    local port = server.port
    local client = task.async(W.wsClient, {url = "ws://127.0.0.1:" .. port .. "/", steps = {{"until_closed"}}})
    local e = W.get(q, 15)
    assert.equal(e[1], "WEBSOCKET_CONNECTION_ESTABLISHED")
    local id = e[2].connectionID
    server:StopListening()
    local r = client:await()
    assert.equal(r.events, {{"closed", 1001, "server shutting down"}})
    local seen = {}
    for _ = 1, 2 do
      local ev = W.get(q)
      seen[ev[1]] = ev[2]
    end
    assert.equal(seen.WEBSOCKET_CONNECTION_CLOSED, {connectionID = id, code = 1001, reason = "server shutting down"})
    assert.equal(seen.SERVER_STOPPED_LISTENING, {port = port, host = "127.0.0.1"})
    local c, err = ws.connect("ws://127.0.0.1:" .. port .. "/", {timeout = 5})
    assert.isNil(c)
    assert.equal(err.code, "ECONNREFUSED")
  end, 20)

  it("serves static files to plain requests and 404 without static", function()
    local dir = W.tempDir()
    local f = assert(io.open(dir .. "/index.html", "w"))
    f:write("<p>static page</p>\n")
    f:close()
    local server = newServer({static = dir})
    local res = assert(http.get("http://127.0.0.1:" .. server.port .. "/"))
    assert.equal({res.status, res.body}, {200, "<p>static page</p>\n"})
    assert.match(res.headers["content-type"], "^text/html")
    http.closeIdle()
    server:StopListening()
    local bare = newServer()
    local res2 = assert(http.get("http://127.0.0.1:" .. bare.port .. "/"))
    assert.equal(res2.status, 404)
    http.closeIdle()
    bare:StopListening()
    W.rmTree(dir)
  end, 20)

  it("StopListening returns promptly while a client keeps an idle keep-alive connection", function()
    local dir = W.tempDir()
    assert(require("fs").writeFile(dir .. "/index.html", "idle\n"))
    local server = newServer({static = dir})
    local res = assert(http.get("http://127.0.0.1:" .. server.port .. "/"))  -- pooled afterwards
    assert.equal(res.body, "idle\n")
    local t0 = task.now()
    server:StopListening()
    local took = task.now() - t0
    http.closeIdle()
    W.rmTree(dir)
    assert.truthy(took < 1, ("StopListening took %.2f s with one idle connection"):format(took))
  end, 20)
end)
