-- res:send's headers go through the FFI fast path, which remembers the
-- (name, value) pairs the engine accepted so that a handler's constant
-- headers are not checked byte by byte again (lib/http.lua, addHeader). A
-- remembered pair must mean exactly what it meant the first time, and
-- nothing else may pass for one.
local K = require("httpkit")
local ffi = require("ffi")

-- GET /close (answered "c" with a Connection: close header pair) then
-- another path on one connection, three times: each answer closes its
-- connection, so the second request is never answered.
local function closesEveryTime(port, after)
  for _ = 1, 3 do
    local got = K.parse(K.raw(port, {{"send", K.req("GET", "/close") .. K.req("GET", after)}}, 5).data)
    assert.equal(#got, 1)
    assert.equal({got[1].status, got[1].body, got[1].headers.connection}, {200, "c", "close"})
  end
end

describe("res:send's remembered header pairs", function()
  afterEach(K.cleanup)

  it("answer the same every time, special names included", function()
    local server = K.serve({}, function(req, res)
      local p = req.path
      if p == "/type" then
        res:send(200, "t", {["content-type"] = "text/plain"})
      elseif p == "/other" then
        res:send(200, "o", {["content-type"] = "text/html"})  -- the same name, another value
      elseif p == "/length" then
        res:send(200, "hello", {["content-length"] = "5"})
      elseif p == "/close" then
        res:send(200, "c", {connection = "close"})
      end
    end)
    -- One read of many requests (the FFI path answers them all); the same
    -- pairs come again and again, and alternate.
    local paths = {}
    for i = 1, 6 do paths[#paths + 1] = i % 2 == 0 and "/other" or "/type" end
    for _ = 1, 3 do paths[#paths + 1] = "/length" end
    paths[#paths + 1] = "/type"  -- (it closes: the end of the read)
    local r = K.parse(K.raw(server.port, K.pipeline(paths), 5).data)
    assert.equal(#r, #paths)
    for i = 1, 6 do
      local html = i % 2 == 0
      assert.equal(r[i].headers["content-type"], html and "text/html" or "text/plain")
      assert.equal(r[i].body, html and "o" or "t")
    end
    for i = 7, 9 do
      assert.equal(r[i].headers["content-length"], "5")  -- once: the engine's, from the pair
      assert.equal(#r[i].lines, #r[7].lines)
      assert.equal(r[i].body, "hello")
    end
    -- connection: close closes every time, on every connection.
    closesEveryTime(server.port, "/type")
    server:close()
  end, 30)

  it("act on framing names in any case every time (never sent as a remembered line)", function()
    -- A plain pair goes as its whole remembered line; one the engine acts on
    -- must reach it every time, whatever the case of its name.
    local server = K.serve({}, function(req, res)
      local p = req.path
      if p == "/length" then
        res:send(200, "hello", {["Content-Length"] = "5", ["X-Plain"] = "p"})
      elseif p == "/close" then
        res:send(200, "c", {CONNECTION = "Close"})
      elseif p == "/te" then
        res:send(200, "t", {["Transfer-Encoding"] = "chunked"})
      end
    end)
    local paths = {}
    for i = 1, 9 do paths[i] = i % 2 == 0 and "/te" or "/length" end
    local rep = K.raw(server.port, K.pipeline(paths), 5)
    local r = K.parse(rep.data)
    assert.equal(#r, #paths)
    for i = 1, #paths do
      local n = 0
      for _, line in ipairs(r[i].lines) do
        if line:lower():find("^content%-length:") then n = n + 1 end
        assert.isNil(line:lower():find("^transfer%-encoding:"))  -- the engine's framing: a length
      end
      assert.equal(n, 1)
      if i % 2 == 0 then
        assert.equal({r[i].headers["content-length"], r[i].body}, {"1", "t"})
      else
        assert.equal({r[i].headers["content-length"], r[i].headers["x-plain"], r[i].body}, {"5", "p", "hello"})
      end
    end
    assert.equal(select(2, rep.data:gsub("X%-Plain: p\r\n", "")), 5)  -- the line as the pair was given
    closesEveryTime(server.port, "/length")
    server:close()
  end, 30)

  it("never let a different value through, whatever was accepted before under its name", function()
    local results = {}
    local server = K.serve({}, function(req, res)
      local i = #results + 1
      if req.path == "/good" then
        res:send(200, "g", {["x-v"] = "fine", ["x-n"] = "1"})
        results[i] = "sent"
      else
        -- The same names: one value that smuggles a header, one bad name,
        -- and a value that is no string though it compares equal to the
        -- remembered one (LuaJIT: a const char* cdata at a string's bytes).
        local bad
        if req.path == "/badvalue" then
          bad = {["x-v"] = "fine\r\nx-injected: 1"}
        elseif req.path == "/cdata" then
          bad = {["x-v"] = ffi.cast("const char*", "fine")}
        else
          bad = {["x n"] = "1"}
        end
        local ok, err = pcall(res.send, res, 200, "b", bad)
        results[i] = ok and "sent" or tostring(err)
        res:send(500, "refused")
      end
    end)
    local paths = {"/cdata", "/good", "/good", "/cdata", "/badvalue", "/good", "/badname", "/good", "/cdata"}
    local rep = K.raw(server.port, K.pipeline(paths), 5)
    server:close()
    local r = K.parse(rep.data)
    assert.equal(#r, #paths)
    assert.isNil(rep.data:find("injected", 1, true))
    for i, p in ipairs(paths) do
      if p == "/good" then
        assert.equal({r[i].status, r[i].headers["x-v"], r[i].headers["x-n"]}, {200, "fine", "1"})
      else
        assert.equal(r[i].status, 500)
        assert.isNil(r[i].headers["x-v"])
        local why = {["/badvalue"] = "invalid header value", ["/badname"] = "invalid header name",
          ["/cdata"] = "values must be strings"}
        assert.match(results[i], why[p])
      end
    end
  end, 20)

  it("keep working past the number of names remembered", function()
    -- 600 names: the table of remembered pairs starts again on the way.
    local server = K.serve({}, function(req, res)
      local n = tonumber(req.path:sub(2))
      res:send(200, "n", {["x-h" .. n] = "v" .. n, ["x-same"] = "s"})
    end)
    local paths = {}
    for i = 1, 600 do paths[i] = "/" .. (i % 300) end
    local r = K.parse(K.raw(server.port, K.pipeline(paths), 10).data)
    server:close()
    assert.equal(#r, 600)
    for i = 1, 600 do
      local n = i % 300
      assert.equal(r[i].headers["x-h" .. n], "v" .. n)
      assert.equal(r[i].headers["x-same"], "s")
    end
  end, 30)
end)

describe("HttpServer:WriteHeader's remembered pairs", function()
  afterEach(K.cleanup)

  it("act as the first time, and never let another value through", function()
    local HttpServer = require("HttpServer")
    local s, results = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      local i = #results + 1
      local id = p.requestID
      if p.path == "/good" then
        results[i] = {self:WriteHeader(id, "x-v", "fine")}
        self:WriteHeader(id, "Connection", "close")  -- (a name the engine acts on, in any case)
      elseif p.path == "/ok" then
        results[i] = {self:WriteHeader(id, "x-v", "fine")}
      else
        results[i] = {pcall(self.WriteHeader, self, id, "x-v", "fine\r\nx-injected: 1")}
      end
      self:SendResponse(id, "b")
    end
    assert.equal(s:StartListening(0), s)
    K.onCleanup(function() if s.native then s:StopListening() end end)
    -- On one read (the FFI path): the pair is accepted, then remembered.
    local paths = {"/ok", "/ok", "/bad", "/ok", "/bad", "/ok"}
    local rep = K.raw(s.port, K.pipeline(paths), 5)
    local r = K.parse(rep.data)
    assert.equal(#r, #paths)
    assert.isNil(rep.data:find("injected", 1, true))
    for i, p in ipairs(paths) do
      if p == "/ok" then
        assert.equal(results[i][1], true)
        assert.equal(r[i].headers["x-v"], "fine")
      else
        assert.falsy(results[i][1] == true and results[i][2] == true)  -- refused (raised, or nil and err)
        assert.match(tostring(results[i][2]) .. tostring(results[i][3]), "invalid header value")
        assert.isNil(r[i].headers["x-v"])
      end
    end
    -- A remembered Connection: close closes, on every connection.
    for _ = 1, 2 do
      local got = K.parse(K.raw(s.port, {{"send", K.req("GET", "/good") .. K.req("GET", "/ok")}}, 5).data)
      assert.equal(#got, 1)
      assert.equal({got[1].headers["x-v"], got[1].headers.connection}, {"fine", "close"})
    end
  end, 20)
end)
