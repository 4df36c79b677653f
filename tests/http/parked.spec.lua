-- Keep-alive requests (one per read) are served by the server's parked
-- runner: a runner whose batch ran out of requests waits inside native.next()
-- for the first request of the next read, on any of the server's
-- connections, instead of going back to the pool (src/http/server.cpp,
-- park_batch_runner), in both styles (http.serve's runner and HttpServer's
-- request runner). These try to make it serve the wrong server, lose a
-- request, answer out of order, or outlive its server.
local K = require("httpkit")
local http = require("http")
local net = require("net")
local task = require("task")
local HttpServer = require("HttpServer")

-- One request on an open connection; its status and body.
local function get(c, path)
  assert(c:write(K.req("GET", path)))
  local status = tonumber(c:readLine():match("^HTTP/1%.1 (%d+)"))
  local len
  repeat
    local line = c:readLine()
    len = len or tonumber(line:lower():match("^content%-length: (%d+)"))
  until line == ""
  return status, c:read(len)
end

-- Whether every key of the weak table `gone` was collected (within 0.5 s).
-- Compiled traces first: a trace that ran a handler keeps it (a constant of
-- its code) until LuaJIT flushes it, whatever Evo holds; without the flush
-- about one run in four or five failed, none with the JIT off.
local function collected(gone)
  jit.flush()
  for _ = 1, 50 do
    collectgarbage()
    collectgarbage()
    if next(gone) == nil then return true end
    task.sleep(0.01)
  end
  return false
end

local function connect(server)
  return assert(net.connect({host = "127.0.0.1", port = server.port}))
end

-- Rounds of one request on each connection in turn ({server, stream, name}
-- each): every answer must be its own server's ("name/path"). Then closes them.
local function alternate(conns, rounds)
  for round = 1, rounds do
    for i, c in ipairs(conns) do
      local path = "/" .. round .. "/" .. i
      local status, body = get(c[2], path)
      assert.equal(status, 200)
      assert.equal(body, c[3] .. path)
    end
  end
  for _, c in ipairs(conns) do c[2]:close() end
end

describe("a parked runner (keep-alive)", function()
  afterEach(K.cleanup)

  it("serves each connection's requests with its own server's handler, in turn", function()
    local a = K.serve({}, function(req, res) res:send(200, "a" .. req.path) end)
    local b = K.serve({}, function(req, res) res:send(200, "b" .. req.path) end)
    local conns = {{a, connect(a), "a"}, {b, connect(b), "b"}, {a, connect(a), "a"}, {b, connect(b), "b"}}
    alternate(conns, 25)
  end)

  it("answers 500 for a handler that raised and goes on with the next read", function()
    local server = K.serve({}, function(req, res)
      if req.path == "/boom" then error("boom") end
      res:send(200, "ok" .. req.path)
    end)
    local c1, c2 = connect(server), connect(server)
    for i = 1, 5 do
      assert.equal(get(c1, "/boom"), 500)
      assert.equal(select(2, get(c2, "/" .. i)), "ok/" .. i)
      assert.equal(select(2, get(c1, "/x" .. i)), "ok/x" .. i)
    end
    c1:close()
    c2:close()
  end)

  it("lets the other connections be served while a handler it ran waits", function()
    local order = {}
    local server = K.serve({}, function(req, res)
      if req.path == "/slow" then task.sleep(0.1) end
      order[#order + 1] = req.path
      res:send(200, req.path)
    end)
    local c1, c2 = connect(server), connect(server)
    assert.equal(select(2, get(c1, "/first")), "/first")  -- (a runner is parked now)
    local slow = task.async(get, c1, "/slow")
    task.sleep(0.02)
    for i = 1, 3 do assert.equal(select(2, get(c2, "/fast" .. i)), "/fast" .. i) end
    assert.equal(select(2, slow:await()), "/slow")
    assert.equal(select(2, get(c1, "/after")), "/after")
    assert.equal(order, {"/first", "/fast1", "/fast2", "/fast3", "/slow", "/after"})
    c1:close()
    c2:close()
  end)

  it("ends with its server: its handler is let go once the server has closed", function()
    local gone = setmetatable({}, {__mode = "k"})
    local function start()
      local marker = {}
      gone[marker] = true
      local server = assert(http.serve({port = 0}, function(_, res) res:send(200, tostring(marker)) end))
      local c = connect(server)
      for i = 1, 3 do assert.equal(get(c, "/" .. i), 200) end  -- a runner parks after each
      c:close()
      server:close()
    end
    start()
    assert.truthy(collected(gone), "the handler (and what it holds) is still referenced")
    -- and a new server is served as before
    local server = K.serve({}, function(_, res) res:send(200, "new") end)
    local c = connect(server)
    assert.equal(select(2, get(c, "/")), "new")
    c:close()
  end)

  it("serves HttpServer's requests with its own server's handlers, in turn", function()
    local function eventServer(name)
      local s = HttpServer()
      function s:HTTP_REQUEST_FINISHED(_, p)
        self:WriteStatus(p.requestID, 200)
        self:SendResponse(p.requestID, name .. p.path)
      end
      assert.equal(s:StartListening(0), s)
      K.onCleanup(function() if s.native then s:StopListening() end end)
      return s
    end
    local a, b = eventServer("a"), eventServer("b")
    local conns = {{a, connect(a), "a"}, {b, connect(b), "b"}, {a, connect(a), "a"}}
    alternate(conns, 20)
  end)

  it("ends with its HttpServer: its handlers are let go once it stopped listening", function()
    local gone = setmetatable({}, {__mode = "k"})
    local function start()
      local marker = {}
      gone[marker] = true
      local s = HttpServer()
      function s:HTTP_REQUEST_FINISHED(_, p) self:SendResponse(p.requestID, tostring(marker)) end
      assert.equal(s:StartListening(0), s)
      local c = connect(s)
      for i = 1, 3 do assert.equal(get(c, "/" .. i), 200) end  -- a runner parks after each
      c:close()
      s:StopListening()
    end
    start()
    assert.truthy(collected(gone), "the handlers (and what they hold) are still referenced")
  end)
end)
