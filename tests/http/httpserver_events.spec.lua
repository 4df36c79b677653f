-- HttpServer's whole-request path (lib/HttpServer.lua runRequestEvent: one
-- task runs a complete request's STARTED then FINISHED handler, looked up in
-- Lua) and the answered-id memory of the server core: the behaviours the
-- fast path must keep.
local K = require("httpkit")
local HttpServer = require("HttpServer")
local events = require("events")

local function serve(s)
  assert.equal(s:StartListening(0), s)
  K.onCleanup(function() if s.native then s:StopListening() end end)
  return "http://127.0.0.1:" .. s.port
end

describe("HttpServer whole requests", function()
  afterEach(K.cleanup)

  it("runs STARTED then FINISHED, in one order, with the payloads of each", function()
    local s, seen = HttpServer(), {}
    function s:HTTP_REQUEST_STARTED(event, p)
      seen[#seen + 1] = {event, p.requestID, p.method, p.path, p.query, p.headers, p.body}
    end
    function s:HTTP_REQUEST_FINISHED(event, p)
      seen[#seen + 1] = {event, p.requestID, p.method, p.path, p.query, p.headers.host ~= nil, p.body}
      self:SendResponse(p.requestID, "ok")
    end
    local url = serve(s)
    assert.equal(K.curl("-s", url .. "/a?b=c"), "ok")
    assert.equal(#seen, 2)
    assert.equal(seen[1][1], "HTTP_REQUEST_STARTED")
    assert.equal({seen[1][3], seen[1][4], seen[1][5], seen[1][6], seen[1][7]}, {"GET", "/a", "b=c", nil, nil})
    assert.equal(seen[2][1], "HTTP_REQUEST_FINISHED")
    assert.equal(seen[2][2], seen[1][2])
    assert.equal({seen[2][3], seen[2][4], seen[2][5], seen[2][6], seen[2][7]}, {"GET", "/a", "b=c", true, ""})
  end, 15)

  it("skips FINISHED when STARTED answered", function()
    local s, finished = HttpServer(), 0
    function s:HTTP_REQUEST_STARTED(_, p) self:SendResponse(p.requestID, "early") end
    function s:HTTP_REQUEST_FINISHED() finished = finished + 1 end
    local url = serve(s)
    assert.equal(K.curl("-s", url .. "/", url .. "/"), "earlyearly")
    assert.equal(finished, 0)
  end, 15)

  it("finds handlers on a subclass, its parent's, and through an __index function", function()
    local Mid = HttpServer:extend("MidServer")
    function Mid:HTTP_REQUEST_FINISHED(_, p) self:SendResponse(p.requestID, "mid " .. p.path) end
    local Leaf = Mid:extend("LeafServer")
    local url = serve(Leaf())
    assert.equal(K.curl("-s", url .. "/x"), "mid /x")
    -- A class whose __index is a function is asked through it.
    local Odd = HttpServer:extend("OddServer")
    Odd.__index = function(_, k)
      if k == "HTTP_REQUEST_FINISHED" then
        return function(self, _, p) self:SendResponse(p.requestID, "via __index") end
      end
      return Odd[k]
    end
    url = serve(Odd())
    assert.equal(K.curl("-s", url .. "/"), "via __index")
  end, 15)

  it("reports an __index function that raises as the handler's error, and goes on", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/s.lua", [[
      local HttpServer = require("HttpServer")
      local http = require("http")
      local Odd = HttpServer:extend("OddServer")
      Odd.__index = function(_, k)
        if k == "HTTP_REQUEST_STARTED" then error("lookup failed") end
        return Odd[k]
      end
      local odd = Odd()
      odd.HTTP_REQUEST_FINISHED = function(self, _, p) self:SendResponse(p.requestID, "after") end
      odd:StartListening(0)
      local res = assert(http.get("http://127.0.0.1:" .. odd.port .. "/"))
      print(res.status, res.body)
      odd:StopListening()
    ]])
    local r = K.run(K.evo, {dir .. "/s.lua"})
    K.rmrf(dir)
    assert.equal(r.out, "200\tafter\n", r.err)
    assert.match(r.err, "error in OddServer:HTTP_REQUEST_STARTED handler: .*lookup failed")
  end, 15)

  it("prints the default handler's events when debugging", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/s.lua", [[
      local HttpServer = require("HttpServer")
      local http = require("http")
      local s = HttpServer()
      function s:HTTP_REQUEST_FINISHED(_, p) self:SendResponse(p.requestID, "x") end
      s:StartListening(0)
      local res = assert(http.get("http://127.0.0.1:" .. s.port .. "/dbg"))
      print(res.body)
      s:StopListening()
    ]])
    local r = K.run(K.evo, {"--debug", dir .. "/s.lua"})
    K.rmrf(dir)
    assert.equal(r.out, "x\n", r.err)
    assert.match(r.err, "%[HttpServer%] HTTP_REQUEST_STARTED")
    assert.match(r.err, "/dbg")
  end, 15)
end)

describe("HttpServer answered ids", function()
  afterEach(K.cleanup)

  it("tells AlreadySent from Closed, with Lua's number text in the message", function()
    local s, r = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      r.first = {self:SendResponse(p.requestID, "one")}
      r.again = {self:SendResponse(p.requestID, "two")}
      r.float = {self:SendResponse(p.requestID + 0.5, "three")}
      r.id = p.requestID
    end
    local url = serve(s)
    assert.equal(K.curl("-s", url .. "/"), "one")
    assert.equal(r.first, {true})
    assert.equal(r.again[2].code, "AlreadySent")
    assert.equal(r.again[2].message, ("the response to request %s was already sent"):format(tostring(r.id)))
    assert.equal(r.float[2].code, "Closed", "no answered request has that id")
  end, 15)

  it("keeps misuse errors as they were", function()
    local s = HttpServer()
    assert.throws(function() s.WriteStatus(42, 1, 200) end,
      "bad argument #1 to 'WriteStatus' %(HttpServer expected, got number%)")
    assert.throws(function() s:WriteStatus("x", 200) end,
      "bad argument #1 to 'WriteStatus' %(number expected, got string%)")
    assert.throws(function() s:WriteHeader(1, 2, "v") end,
      "bad argument #2 to 'WriteHeader' %(string expected, got number%)")
    assert.throws(function() s:WriteHeader(1, "n", true) end,
      "bad argument #3 to 'WriteHeader' %(string expected, got boolean%)")
    assert.throws(function() s:SendResponse(1, {}) end,
      "bad argument #2 to 'SendResponse' %(string expected, got table%)")
    assert.throws(function() s:SendResponse(1, "x") end, "SendResponse: the server is not listening")
    local ok, err = pcall(function() s:WriteStatus(1, 200) end)
    assert.falsy(ok)
    assert.match(err, "^[^:]*httpserver_events%.spec%.lua:%d+: WriteStatus: the server is not listening",
      "blames the caller's line")
  end)
end)

-- WriteStatus, WriteHeader and SendResponse answer the common case through
-- the FFI (src/bind/http.cpp, namespace fast) and leave the rest to the
-- natives: both must give the same bytes, results and errors.
describe("HttpServer answers through the FFI and the natives alike", function()
  afterEach(K.cleanup)

  local task = require("task")

  -- The same answer, given at once (the FFI path) or after a sleep (the
  -- connection's parse loop is over: the natives).
  local function answer(self, id, later)
    if later then task.sleep(0.01) end
    assert.equal(self:WriteStatus(id, "201 Made Here"), true)
    assert.equal(self:WriteStatus(id, 202), true, "a number keeps the reason given before")
    assert.equal(self:WriteHeader(id, "x-a", "1"), true)
    assert.equal(self:WriteHeader(id, "x-n", 7), true)
    assert.equal(self:WriteHeader(id, "set-cookie", {"a=1", "b=2"}), true)
    assert.equal(self:SendResponse(id, "body " .. id), true)
    local ok, err = self:SendResponse(id, "again")
    assert.equal({ok, err.code}, {nil, "AlreadySent"})
    ok, err = self:WriteStatus(id, 200)
    assert.equal({ok, err.code}, {nil, "Closed"})
  end

  it("gives the same response at once and later, and the same results after it", function()
    local s, ids = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      ids[#ids + 1] = p.requestID
      answer(self, p.requestID, p.path == "/later")
    end
    serve(s)
    local rep = K.raw(s.port, K.req("GET", "/now") .. K.req("GET", "/later") .. K.req("GET", "/now", {"Connection: close"}), 5)
    local list = K.parse(rep.data)
    assert.equal(#list, 3)
    for i, r in ipairs(list) do
      local lines = {}
      for _, line in ipairs(r.lines) do
        if not line:lower():find("^date:") then lines[#lines + 1] = line end
      end
      assert.equal({r.status, r.reason, r.body}, {202, "Made Here", "body " .. ids[i]})
      local want = {"Content-Length: " .. #r.body, "x-a: 1", "x-n: 7", "set-cookie: a=1", "set-cookie: b=2"}
      if i == 3 then table.insert(want, 2, "Connection: close") end
      assert.equal(lines, want)
    end
  end, 15)

  it("answers HTTP/1.0 and Connection: close requests (the natives' cases) the same way", function()
    local s = HttpServer()
    function s:HTTP_REQUEST_FINISHED(_, p)
      self:WriteStatus(p.requestID, "200 OK")
      self:WriteHeader(p.requestID, "content-type", "text/plain")
      self:SendResponse(p.requestID, "hi " .. p.path)
    end
    serve(s)
    local r10 = K.raw(s.port, "GET /ten HTTP/1.0\r\nHost: x\r\n\r\n", 5)
    local one = K.parse1(r10.data)
    assert.equal({one.version, one.status, one.body}, {"1.1", 200, "hi /ten"})
    local rc = K.raw(s.port, K.req("GET", "/a") .. K.req("GET", "/b", {"Connection: close"}), 5)
    local list = K.parse(rc.data)
    assert.equal({#list, list[1].body, list[2].body, list[2].headers.connection}, {2, "hi /a", "hi /b", "close"})
  end, 15)

  it("raises the natives' errors for refused values, and adds nothing then", function()
    local s, errs = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      local id = p.requestID
      errs.reason = select(2, pcall(self.WriteStatus, self, id, "200 O\rK"))
      errs.code = select(2, pcall(self.WriteStatus, self, id, 99))
      errs.line = select(2, pcall(self.WriteStatus, self, id, "2x0 OK"))
      errs.name = select(2, pcall(self.WriteHeader, self, id, "bad name", "v"))
      errs.value = select(2, pcall(self.WriteHeader, self, id, "x-v", "a\r\nb"))
      errs.fraction = {self:WriteStatus(id + 0.5, 200)}
      self:SendResponse(id, "done")
      errs.after = {self:WriteHeader(id, "x-late", "v")}
    end
    serve(s)
    local r = K.parse1(K.raw(s.port, K.req("GET", "/", {"Connection: close"}), 5).data)
    assert.equal({r.status, r.body, r.headers["x-v"], r.headers["bad name"]}, {200, "done", nil, nil})
    assert.match(errs.reason, "bad argument #2 to 'WriteStatus' %(the reason must not contain CR, LF or NUL%)")
    assert.match(errs.code, "bad argument #2 to 'WriteStatus' %(status must be 100..999%)")
    assert.match(errs.line, "bad argument #2 to 'WriteStatus' %(expected a status like \"404 Not Found\"%)")
    assert.match(errs.name, "header")
    assert.match(errs.value, "header")
    assert.equal(errs.fraction, {true}, "the natives take an id with a fraction as its integer part")
    assert.equal(errs.after[2].code, "Closed")
  end, 15)

  -- (WriteHeader's FFI path checks and copies in one pass, as res:send's
  -- headers: the same fields it accepts and refuses as the native.)
  it("takes and refuses the framing headers as the native does", function()
    local s, errs = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      local id = p.requestID
      errs.empty = select(2, pcall(self.WriteHeader, self, id, "", "v"))
      errs.length = select(2, pcall(self.WriteHeader, self, id, "Content-Length", "1x"))
      errs.blank = select(2, pcall(self.WriteHeader, self, id, "content-length", ""))
      assert.equal(self:WriteHeader(id, "Content-Length", "4"), true)
      assert.equal(self:WriteHeader(id, "transfer-encoding", "gzip"), true)
      assert.equal(self:WriteHeader(id, "x-ok", "a\tb"), true)
      self:SendResponse(id, "done")
    end
    serve(s)
    local r = K.parse1(K.raw(s.port, K.req("GET", "/", {"Connection: close"}), 5).data)
    assert.equal({r.status, r.body, r.headers["content-length"], r.headers["transfer-encoding"], r.headers["x-ok"]},
      {200, "done", "4", nil, "a\tb"})
    assert.match(errs.empty, "header")
    assert.match(errs.length, "Content%-Length")
    assert.match(errs.blank, "Content%-Length")
  end, 15)

  it("answers 300 pipelined requests in order, each at once", function()
    local s = HttpServer()
    function s:HTTP_REQUEST_FINISHED(_, p)
      self:WriteStatus(p.requestID, 200)
      self:SendResponse(p.requestID, p.path)
    end
    serve(s)
    local parts = {}
    for i = 1, 300 do parts[i] = K.req("GET", "/" .. i, i == 300 and {"Connection: close"} or nil) end
    local list = K.parse(K.raw(s.port, table.concat(parts), 10).data)
    assert.equal(#list, 300)
    for i = 1, 300 do assert.equal(list[i].body, "/" .. i) end
  end, 20)

  it("keeps payload.headers after the answer, in the handler and in a later task", function()
    local s, seen = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      self:SendResponse(p.requestID, "ok")
      seen.now = p.headers["x-h"]
      task.concurrent(function()
        task.sleep(0.02)
        seen.later = p.headers["x-h"]
      end)
    end
    serve(s)
    K.parse1(K.raw(s.port, K.req("GET", "/", {"X-H: v1", "Connection: close"}), 5).data)
    K.waitFor(function() return seen.later ~= nil end, 5)
    assert.equal({seen.now, seen.later}, {"v1", "v1"})
  end, 15)
end)
