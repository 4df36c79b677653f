-- The client's view of trailers and informational responses (issue 12):
-- res.trailers after a chunked (or HTTP/2) body, and 1xx responses skipped.
-- Peers: Python's http.server writing the bytes by hand
-- (peers/trailer_server.py) and Evo's own server in a child process
-- (fixtures/trailers_server.lua, HTTP/1.1 and h2c), so the spec runs in both
-- Io modes (evo --io=blocking test ...).
local K = require("httpkit")
local http = require("http")
local process = require("process")

local function spawnPeer(program, argv)
  local child = assert(process.spawn(program, argv, {stderr = "ignore"}))
  local line = child.stdout:readLine()
  local port = assert(line and line:match("^port (%d+)$"), "the peer did not start: " .. tostring(line))
  return child, "http://127.0.0.1:" .. port
end

local function stopPeer(child)
  child:kill("TERM")
  child:wait()
  child.stdout:close()
end

describe("client: trailers and 1xx from Python's http.server", function()
  local peer, base
  before(function() peer, base = spawnPeer(K.python, {K.peers .. "/trailer_server.py"}) end)
  after(function()
    http.closeIdle()
    stopPeer(peer)
  end)

  it("gives a chunked response's trailers in res.trailers, apart from the headers", function()
    local r = assert(http.get(base .. "/trailers"))
    assert.equal(r.status, 200)
    assert.equal(r.body, "hello world")
    assert.equal(r.trailers["x-checksum"], "5eb63bbe")
    assert.equal(r.trailers["x-multi"], "a, b", "repeated trailers are joined like headers")
    assert.isNil(r.headers["x-checksum"], "a trailer is not a header")
    assert.equal(r.headers.trailer, "X-Checksum, X-Multi")
  end)

  it("has an empty res.trailers without trailers, and fills it only at the body's end (stream = true)", function()
    assert.same(assert(http.get(base .. "/none")).trailers, {})
    assert.same(assert(http.get(base .. "/length")).trailers, {})
    local r = assert(http.request({url = base .. "/trailers", stream = true}))
    assert.same(r.trailers, {}, "nothing before the body is read")
    assert.equal(r:readAll(), "hello world")
    assert.equal(r.trailers["x-checksum"], "5eb63bbe")
  end)

  it("reuses the connection after a response with trailers", function()
    local a = assert(http.get(base .. "/trailers"))
    local b = assert(http.get(base .. "/none"))
    assert.equal(a.body .. b.body, "hello worldplain")
    -- one idle pooled connection: the trailers were consumed to the end
    local c = assert(http.get(base .. "/trailers"))
    assert.equal(c.trailers["x-multi"], "a, b")
  end)

  it("skips 100, 102 and 103 before the final response", function()
    local r = assert(http.get(base .. "/early"))
    assert.equal(r.status, 200)
    assert.equal(r.body, "final")
    assert.isNil(r.headers.link, "the 103's fields are not the response's")
    assert.equal(r.trailers["x-after"], "1xx")
  end)

  it("sends request trailers after a chunked body (opts.trailers: a table, or a function called after the body)", function()
    local r = assert(http.request({method = "POST", url = base .. "/echo", body = "hello",
      trailers = {["X-Sum"] = "42"}}))
    assert.same(assert(loadstring("return " .. r.body))(), {size = 5, trailers = {["x-sum"] = "42"}})
    local pieces, seen = {"a", "bc"}, 0
    r = assert(http.request({method = "POST", url = base .. "/echo",
      body = function()
        local p = table.remove(pieces, 1)
        if p then seen = seen + #p end
        return p
      end,
      trailers = function() return {["x-count"] = seen} end}))
    assert.same(assert(loadstring("return " .. r.body))(), {size = 3, trailers = {["x-count"] = "3"}})
  end)

  it("refuses bad request trailers", function()
    local ok, err = pcall(http.request, {method = "POST", url = base .. "/echo", trailers = "x"})
    assert.falsy(ok)
    assert.match(err, "bad argument #1 to 'request' %(table or function trailers expected, got string%)")
    ok, err = pcall(http.request, {method = "POST", url = base .. "/echo", body = "x",
      headers = {["content-length"] = "1"}, trailers = {a = "1"}})
    assert.falsy(ok)
    assert.match(err, "trailers need a chunked body")
    local r, e = http.request({method = "POST", url = base .. "/echo", body = "x", trailers = {["content-length"] = "1"}})
    assert.isNil(r)
    assert.equal(e.code, "BadHeader")
    r, e = http.request({method = "POST", url = base .. "/echo", body = "x", trailers = {["x-bad"] = "a\r\nb: c"}})
    assert.isNil(r)
    assert.equal(e.code, "BadHeader")
    assert.equal(assert(http.get(base .. "/none")).body, "plain", "the client goes on")
  end)

  it("refuses too many interim responses, oversized and malformed trailers with BadResponse", function()
    for _, path in ipairs({"/many-early", "/big-trailer", "/bad-trailer"}) do
      local r, err = http.get(base .. path)
      assert.isNil(r, path)
      assert.equal(err.code, "BadResponse", path .. ": " .. tostring(err))
    end
  end)
end)

describe("client: trailers and 1xx from Evo's server (HTTP/1.1 and h2c)", function()
  local peer, base
  before(function() peer, base = spawnPeer(K.evo, {K.fixtures .. "/trailers_server.lua"}) end)
  after(function()
    http.closeIdle()
    stopPeer(peer)
  end)

  for _, mode in ipairs({false, "prior-knowledge"}) do
    local version = mode and "2.0" or "1.1"
    local function get(path, extra)
      local opts = {url = base .. path, http2 = mode}
      for k, v in pairs(extra or {}) do opts[k] = v end
      local r = assert(http.request(opts))
      assert.equal(r.version, version)
      return r
    end

    it("HTTP/" .. version .. ": res:trailer with res:send", function()
      local r = get("/send")
      assert.equal(r.body, "hello")
      assert.equal(r.trailers["x-checksum"], "5eb63bbe")
      if version == "1.1" then
        assert.equal(r.headers["transfer-encoding"], "chunked")
        assert.equal(r.headers.trailer, "x-checksum")
        assert.isNil(r.headers["content-length"])
      end
    end)

    it("HTTP/" .. version .. ": a streamed body, trailers set before and after the head, behind a 103", function()
      local r = get("/stream", {stream = true})
      assert.equal(r.status, 200)
      assert.isNil(r.headers.link)
      assert.same(r.trailers, {})
      assert.equal(r:readAll(), "part1 part2")
      assert.equal(r.trailers["x-a"], "1")
      assert.equal(r.trailers["x-b"], "2, 3")
    end)

    it("HTTP/" .. version .. ": 100, 102 and 103 skipped", function()
      local r = get("/early")
      assert.equal(r.status, 200)
      assert.equal(r.body, "final")
    end)

    it("HTTP/" .. version .. ": request trailers reach req:trailers()", function()
      local r = get("/echo", {method = "POST", body = "0123456789", trailers = function() return {["x-sum"] = 45} end})
      local echoed = assert(loadstring("return " .. r.body))()
      assert.same(echoed, {size = 10, trailers = {["x-sum"] = "45"}, version = version == "2.0" and "2.0" or "1.1"})
      assert.equal(r.trailers["x-sum"], "45", "echoed back as a response trailer")
    end)

    it("HTTP/" .. version .. ": a Content-Length set by the handler", function()
      local r = get("/fixed")
      assert.equal(r.body, "fixed")
      assert.equal(r.headers["content-length"], "5")
      if version == "1.1" then
        assert.same(r.trailers, {}, "HTTP/1.1 cannot carry them after a Content-Length body")
      else
        assert.equal(r.trailers["x-dropped"], "1", "HTTP/2 sends them after any body")
      end
    end)
  end
end)
