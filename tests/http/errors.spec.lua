-- Handler failures, in a child evo process whose stderr we read: a raising
-- handler gives 500 with its traceback logged and the server goes on;
-- CR/LF injected into response headers from Lua raises and nothing of it
-- reaches the client. Also: http.serve needs the evented Io mode.
local K = require("httpkit")
local process = require("process")
local task = require("task")

local function startFixture()
  local child = assert(process.spawn(K.evo, {"--io=evented", K.fixtures .. "/server.lua"}, {stdin = "ignore"}))
  local stderr = task.async(function() return child.stderr:readAll() end)
  local port = tonumber(child.stdout:readLine())
  assert(port, "the fixture server did not report its port")
  local function stop()
    child:kill("KILL")
    local text = stderr:await()
    child:wait()
    child.stdout:close()
    child.stderr:close()
    return text
  end
  return port, "http://127.0.0.1:" .. port, stop
end

describe("handler errors", function()
  afterEach(K.cleanup)
  local port, url, stop, stderr
  before(function() port, url, stop = startFixture() end)
  after(function() if stop then stop() end end)

  it("answers 500 for a handler that raises and keeps serving on the same connection", function()
    local rep = K.raw(port, K.req("GET", "/boom") .. K.req("GET", "/ok", {"Connection: close"}))
    local list = K.parse(rep.data)
    assert.equal(#list, 2)
    assert.equal(list[1].status, 500)
    assert.equal(list[1].body, "500 Internal Server Error\n")
    assert.falsy(rep.data:find("boom from handler", 1, true), "the error text is not sent to the client")
    assert.equal(list[2].status, 200)
    assert.equal(list[2].body, "fine")
  end, 15)

  it("keeps serving new connections after handler errors", function()
    local out, err, code = K.curl("-i", url .. "/table-error")
    assert.equal(code, 0, err)
    assert.equal(K.parse(out)[1].status, 500)
    out, err, code = K.curl(url .. "/ok")
    assert.equal(code, 0, err)
    assert.equal(out, "fine")
  end, 15)

  it("cuts the connection when a handler raises after its headers went out", function()
    local rep = K.raw(port, K.req("GET", "/after-headers") .. K.req("GET", "/ok"))
    assert.equal(rep.ending, "eof")
    assert.match(rep.data, "^HTTP/1%.1 200 ")
    local list = K.parse(rep.data)
    assert.equal(#list, 1, "nothing after the broken response")
    assert.falsy(list[1].complete, "the chunked body has no end: the client sees it cut")
    assert.equal(list[1].body, "partial")
  end, 15)

  for _, path in ipairs({"/inject-header", "/inject-lf", "/inject-send", "/inject-list", "/inject-name", "/inject-status"}) do
    it("answers 500 with nothing of the header injected by " .. path, function()
      local rep = K.raw(port, K.req("GET", path, {"Connection: close"}))
      local r = K.parse1(rep.data)
      assert.equal(r.status, 500)
      assert.falsy(rep.data:lower():find("evil", 1, true), "no injected header: " .. rep.data)
      assert.falsy(rep.data:find("should not be sent", 1, true))
      assert.falsy(rep.data:lower():find("x-inj", 1, true))
    end, 15)
  end

  it("logs each error with its traceback on stderr", function()
    for _, path in ipairs({"/boom", "/table-error", "/after-headers", "/inject-header", "/inject-status"}) do
      K.curl(url .. path)
    end
    stderr = stop()
    stop = nil
    assert.match(stderr, "boom from handler")
    assert.match(stderr, "stack traceback")
    assert.match(stderr, "server%.lua:%d+: in function 'deeper'")
    assert.match(stderr, "Custom: a table error")
    assert.match(stderr, "late failure")
    assert.match(stderr, "CR, LF or NUL")
  end, 15)
end)

describe("Io modes", function()
  afterEach(K.cleanup)
  it("refuses http.serve in the blocking Io mode with ConcurrencyUnavailable", function()
    local r = K.run(K.evo, {"--io=blocking", "-e",
      "local http = require('http'); local ok, e = pcall(http.serve, {port = 0}, function() end); " ..
      "print(ok, type(e) == 'table' and e.code or tostring(e))"})
    assert.equal(r.code, 0, r.err)
    assert.equal(r.out, "false\tConcurrencyUnavailable\n")
    r = K.run(K.evo, {"--io=blocking", "-e", "require('http').serve({port = 0}, function() end)"})
    assert.notEqual(r.code, 0)
    assert.match(r.err, "ConcurrencyUnavailable")
  end, 15)

  it("serves in the evented Io mode of a child process", function()
    local r = K.run(K.evo, {"--io=evented", "-e", [[
      local http = require('http')
      local s = assert(http.serve({port = 0}, function(req, res) res:send(200, 'evented') end))
      local out = require('process').exec('curl -sS --noproxy "*" http://127.0.0.1:' .. s.port .. '/')
      print(out)
      s:close()
    ]]})
    assert.equal(r.code, 0, r.err)
    assert.equal(r.out, "evented\n")
  end, 15)
end)
