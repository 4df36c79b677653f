-- Header and idle timeouts: 408 for headers that do not arrive in time
-- (slowloris cut while others are served), idle keep-alive connections
-- closed, and a handler's own time not counted.
local K = require("httpkit")
local task = require("task")

local opts = {headerTimeout = 0.5, idleTimeout = 0.3}

describe("http timeouts", function()
  afterEach(K.cleanup)
  it("answers 408 and closes when the headers are not complete within headerTimeout", function()
    local calls = 0
    local server = K.serve(opts, function(req, res) calls = calls + 1; res:send(200, "x") end)
    local rep = K.raw(server.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Never: ends", 5)
    server:close()
    assert.equal(rep.ending, "eof")
    local r = K.parse1(rep.data)
    assert.equal(r.status, 408)
    assert.equal(r.headers.connection, "close")
    assert.truthy(rep.firstByte >= 0.4 and rep.firstByte < 1.5, "408 after about 0.5 s, got " .. rep.firstByte)
    assert.equal(calls, 0)
  end, 15)

  it("answers 408 to a head started after a request, at the header timeout, not the idle one", function()
    local server = K.serve({headerTimeout = 0.3, idleTimeout = 5}, function(req, res) res:send(200, "x") end)
    local rep = K.raw(server.port, {{"send", K.req("GET", "/1")}, {"sleep", 0.1},
      {"send", "GET /2 HTTP/1.1\r\nHost: x\r\nX-Never: ends"}}, 8)
    server:close()
    local list = K.parse(rep.data)
    assert.equal(#list, 2, rep.data)
    assert.equal(list[1].status, 200)
    assert.equal(list[2].status, 408)
    assert.equal(rep.ending, "eof")
    assert.truthy(rep.elapsed >= 0.3 and rep.elapsed < 2, "408 about 0.3 s after the half head, got " .. rep.elapsed)
  end, 15)

  it("closes a connection that sends nothing within headerTimeout", function()
    local server = K.serve(opts, function(req, res) res:send(200, "x") end)
    local rep = K.raw(server.port, {{"sleep", 0}}, 5)
    server:close()
    assert.equal(rep.ending, "eof")
    assert.truthy(rep.elapsed >= 0.4 and rep.elapsed < 1.5, "closed after about 0.5 s, got " .. rep.elapsed)
    if rep.data ~= "" then assert.equal(K.parse1(rep.data).status, 408) end
  end, 15)

  it("cuts a slowloris client at the header timeout while serving others", function()
    local served = {}
    local server, url = K.serve(opts, function(req, res)
      served[#served + 1] = req.path
      res:send(200, "hello " .. req.path)
    end)
    local slow = task.async(K.raw, server.port,
      {{"drip", 0.1, "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris-test\r\n\r\n"}}, 8)
    task.sleep(0.2)
    local t0 = task.now()
    local out, err, code = K.curl(url .. "/quick")
    local quickTime = task.now() - t0
    assert.equal(code, 0, err)
    assert.equal(out, "hello /quick")
    assert.truthy(quickTime < 1, "the other client was served at once (" .. quickTime .. " s)")
    local rep = slow:await()
    server:close()
    assert.equal(rep.ending, "eof")
    local r = K.parse1(rep.data)
    assert.equal(r.status, 408)
    assert.truthy(rep.elapsed < 1.5, "cut at the header timeout, not after the whole drip (" .. rep.elapsed .. " s)")
    assert.equal(served, {"/quick"})
  end, 15)

  it("closes an idle keep-alive connection after idleTimeout", function()
    local server = K.serve(opts, function(req, res) res:send(200, "kept") end)
    local rep = K.raw(server.port, K.req("GET", "/"), 5)
    server:close()
    local r = K.parse1(rep.data)
    assert.equal(r.status, 200)
    assert.isNil(r.headers.connection)
    assert.equal(rep.ending, "eof", "the server closed the idle connection")
    assert.truthy(rep.firstByte < 0.25, "the response came at once")
    assert.truthy(rep.elapsed >= 0.25 and rep.elapsed < 1.5, "closed after about 0.3 s idle, got " .. rep.elapsed)
  end, 15)

  it("keeps a connection whose requests come within idleTimeout of each other", function()
    local ports = {}
    local server = K.serve(opts, function(req, res)
      ports[#ports + 1] = req.remotePort
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, {
      {"send", K.req("GET", "/1")}, {"sleep", 0.15}, {"send", K.req("GET", "/2")}, {"sleep", 0.15},
      {"send", K.req("GET", "/3")}, {"sleep", 0.15}, {"send", K.req("GET", "/4", {"Connection: close"})},
    }, 5)
    server:close()
    local list = K.parse(rep.data)
    assert.equal(#list, 4, "all four answered over 0.45 s, more than idleTimeout in total")
    assert.equal(list[4].body, "/4")
    assert.equal(ports[1], ports[4])
  end, 15)

  it("does not count a slow handler's time against the timeouts", function()
    local server = K.serve(opts, function(req, res)
      task.sleep(0.8)
      res:send(200, "late but fine")
    end)
    local rep = K.raw(server.port, K.req("GET", "/", {"Connection: close"}), 5)
    server:close()
    assert.equal(K.parse1(rep.data).body, "late but fine")
    assert.truthy(rep.firstByte >= 0.75)
  end, 15)
end)
