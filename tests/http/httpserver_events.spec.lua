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
