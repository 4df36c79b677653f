-- The HTTP server under hostile and slow clients (issue 8): bounded output
-- for deep pipelines (item 32), nothing lost at an EOF between requests
-- (item 8), no idle/header timeout while a response is being written
-- (item 33), send and body timeouts (item 6), a client that resets or leaves
-- ends its connection and cancels its handler (item 34). Servers run in a
-- child process: a failure here is memory, a spin or a leak.
local K = require("httpkit")
local process = require("process")
local task = require("task")
local fs = require("fs")

local function startServer(...)
  local child = assert(process.spawn(K.evo, {K.fixtures .. "/hard_server.lua", ...}, {stdin = "ignore", stderr = "inherit"}))
  local line = assert(child.stdout:readLine(), "the fixture did not start")
  local port, pid = line:match("^(%d+) (%d+)$")
  local s = {port = tonumber(port), pid = tonumber(pid)}
  function s.stop()
    child:kill("KILL")
    child:wait()
    child.stdout:close()
  end
  K.onCleanup(s.stop)
  return s
end

local rssMiB = K.rssMiB

local function stats(port)
  local rep = K.raw(port, K.req("GET", "/stats", {"Connection: close"}), 3)
  local list = K.parse(rep.data)
  assert.equal(#list, 1, "stats answered: " .. rep.data:sub(1, 200))
  local t = {}
  for k, v in list[1].body:gmatch("(%w+)=(%d+)") do t[k] = tonumber(v) end
  return t
end

-- Polls until cond(stats) holds or `seconds` pass; returns the last stats.
local function waitStats(port, seconds, cond)
  local deadline = task.now() + seconds
  local s
  repeat
    s = stats(port)
    if cond(s) then return s end
    task.sleep(0.05)
  until task.now() > deadline
  return s
end

describe("HTTP server hardening", function()
  afterEach(K.cleanup)

  it("keeps its memory bounded when clients pipeline faster than they read (item 32)", function()
    local s = startServer()
    local base = rssMiB(s.pid)
    local peer = assert(process.spawn(K.python, {K.peers .. "/flood.py", tostring(s.port), "2", tostring(32 * 1024), "2"},
      {stdin = "ignore", stderr = "inherit"}))
    assert.equal(peer.stdout:readLine(), "sent")
    task.sleep(1)
    local peak = rssMiB(s.pid)
    local report = assert(load("return " .. peer.stdout:readAll()))()
    peer:wait()
    peer.stdout:close()
    -- Unbounded, 2 x ~1,100 answers of 100 KB would be ~220 MB.
    K.assertGrowth(peak - base, 48, "server RSS (MiB)")
    for i, c in ipairs(report.connections) do
      assert.equal(c.responses, report.requests, "connection " .. i .. ": every request answered")
      assert.equal(c.ending, "eof")
    end
  end, 60)

  it("answers every pipelined request when the client half-closes at once (item 8)", function()
    local s = startServer()
    local reqs = string.rep(K.req("GET", "/big"), 20)
    local rep = K.raw(s.port, {{"send", reqs}, {"shut"}}, 10)
    local list = K.parse(rep.data)
    assert.equal(#list, 20, "20 answers, got " .. #list)
    for _, r in ipairs(list) do assert.equal(#r.body, 100 * 1024) end
    assert.equal(rep.ending, "eof")
  end, 30)

  for _, path in ipairs({"/60k", "/huge"}) do
    it("writes all of " .. path .. " to a client that half-closes right after asking and reads late (item 8)", function()
      local s = startServer()
      local r = K.run(K.python, {K.peers .. "/slowread.py", tostring(s.port), path, tostring(1e9), "0.5", "shut"}, {timeout = 30})
      local rep = assert(load("return " .. r.out), r.err)()
      assert.equal(rep.ending, "complete")
    end, 30)
  end

  it("lets a slow but steady reader have all of a 20 MB response despite short idle/header timeouts (item 33)", function()
    local s = startServer("0.3", "0.3")
    local r = K.run(K.python, {K.peers .. "/slowread.py", tostring(s.port), "/huge", tostring(10 * 1024 * 1024)}, {timeout = 30})
    local rep = assert(load("return " .. r.out), r.err)()
    assert.equal(rep.bytes, 20 * 1024 * 1024)
    assert.equal(rep.ending, "complete")
  end, 40)

  it("cuts a response whose client takes nothing for sendTimeout (item 6)", function()
    local s = startServer("5", "10", "0.5")
    local peer = task.async(K.run, K.python, {K.peers .. "/slowread.py", tostring(s.port), "/huge", tostring(1e9), "2.5"}, {timeout = 30})
    -- The server gives up on the connection while the client sleeps.
    local st = waitStats(s.port, 2.2, function(x) return x.connections == 1 end)
    assert.equal(st.connections, 1, "only the stats connection is left")
    local rep = assert(load("return " .. peer:await().out))()
    assert.truthy(rep.bytes < 20 * 1024 * 1024, "the response was cut: " .. rep.bytes)
  end, 30)

  it("answers 408 when a request body stops arriving for bodyTimeout (item 6)", function()
    local s = startServer("5", "10", "60", "0.5")
    local t0 = task.now()
    local rep = K.raw(s.port, {{"send", K.req("POST", "/body", {"Content-Length: 10"}) .. "abc"}}, 5)
    local list = K.parse(rep.data)
    assert.equal(#list, 1, rep.data:sub(1, 200))
    assert.equal(list[1].status, 408)
    assert.equal(rep.ending, "eof")
    assert.truthy(task.now() - t0 < 3, "answered at the body timeout")
  end, 20)

  it("keeps no thread-pool thread for a slow download: fs work goes on (item 4)", function()
    local dir = assert(fs.mkdtemp("/tmp/evo-hard-"))
    local file = dir .. "/big.bin"
    assert(fs.writeFile(file, string.rep("f", 64 * 1024 * 1024)))
    K.onCleanup(function() fs.rm(dir, {recursive = true}) end)
    local s = startServer("5", "10", "60", "60", file)
    -- Six downloads whose clients read nothing for 3 s: more than the pool's threads.
    local slow = {}
    for i = 1, 6 do
      slow[i] = task.async(K.run, K.python, {K.peers .. "/slowread.py", tostring(s.port), "/file", tostring(1e9), "3"}, {timeout = 30})
    end
    task.sleep(0.5)
    local rep = K.raw(s.port, K.req("GET", "/probe", {"Connection: close"}), 5)
    local list = K.parse(rep.data)
    assert.equal(#list, 1, rep.data:sub(1, 200))
    assert.truthy(tonumber(list[1].body) < 0.5, "fs.readFile took " .. list[1].body .. " s")
    for _, f in ipairs(slow) do
      local r = assert(load("return " .. f:await().out))()
      assert.equal(r.ending, "complete", "every download completes")
      assert.equal(r.bytes, 64 * 1024 * 1024)
    end
  end, 60)

  it("streams a file over TLS in pieces: memory stays bounded for a slow reader (item 5)", function()
    local W = dofile(K.dir .. "/../web/webkit.lua")
    local cert = W.makeCert()
    K.onCleanup(function() W.rmTree(cert.dir) end)
    local file = cert.dir .. "/big.bin"
    assert(fs.writeFile(file, string.rep("t", 48 * 1024 * 1024)))
    local s = startServer("5", "10", "60", "60", file, cert.cert, cert.key)
    local base = rssMiB(s.pid)
    local peer = task.async(K.run, K.python, {K.peers .. "/slowread.py", tostring(s.port), "/file", tostring(24 * 1024 * 1024), "0", "tls"}, {timeout = 30})
    local peak = base
    while not peer:done() do
      peak = math.max(peak, rssMiB(s.pid))
      task.sleep(0.05)
    end
    local r = assert(load("return " .. peer:await().out))()
    assert.equal(r.ending, "complete")
    assert.equal(r.bytes, 48 * 1024 * 1024)
    K.assertGrowth(peak - base, 16, "server RSS (MiB)")
  end, 60)

  it("releases a connection's buffers when it goes idle after a 1 MB answer (item 7)", function()
    local net = require("net")
    local s = startServer("60")
    local conns = {}
    local base = rssMiB(s.pid)
    for i = 1, 200 do
      local c = assert(net.connect({host = "127.0.0.1", port = s.port}))
      c:write(K.req("GET", "/1m"))
      local len
      repeat
        local line = c:readLine()
        len = len or tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)"))
      until line == ""
      assert.equal(#c:read(len), 1024 * 1024)
      conns[i] = c
    end
    task.sleep(0.3)
    local grown = (rssMiB(s.pid) - base) * 1024 / #conns
    for _, c in ipairs(conns) do c:close() end
    K.assertGrowth(grown, 24, "server RSS per idle connection (KiB)")
  end, 60)

  for _, how in ipairs({"reset", "shut"}) do
    it("closes the connection and cancels the handler of a client that leaves (" .. how .. ", item 34)", function()
      local s = startServer()
      local clients = {}
      for i = 1, 20 do
        clients[i] = task.async(K.raw, s.port, {{"send", K.req("GET", "/slow")}, {"sleep", 0.2}, {how}}, 2)
      end
      for _, c in ipairs(clients) do c:await() end
      local st = waitStats(s.port, 1.5, function(x) return x.connections == 1 and x.canceled == 20 end)
      assert.equal(st.started, 20)
      assert.equal(st.canceled, 20, "every handler saw Canceled")
      assert.equal(st.connections, 1, "only the stats connection is left")
    end, 30)
  end
end)

describe("server:close() and file sends", function()
  afterEach(K.cleanup)

  it("returns when called inside one of the server's own handlers, and the request is answered (item 11)", function()
    local returned
    local server, url
    server, url = K.serve({}, function(req, res)
      returned = server:close()
      res:send(200, "bye")
    end)
    local out, err, code = K.curl("--max-time", "3", url .. "/")
    assert.equal(code, 0, err)
    assert.equal(out, "bye")
    assert.equal(returned, true)
    local again = K.run("curl", {"-sS", "--max-time", "2", url .. "/"})
    assert.truthy(again.code ~= 0, "no new connections after close")
  end, 15)

  it("lets server:close() return after a handler's sendFile was cancelled mid-file (item 2)", function()
    local dir = assert(fs.mkdtemp("/tmp/evo-hard-"))
    K.onCleanup(function() fs.rm(dir, {recursive = true}) end)
    local file = dir .. "/big.bin"
    assert(fs.writeFile(file, string.rep("c", 32 * 1024 * 1024)))
    local outcome
    local server = K.serve({}, function(req, res)
      local done, err = task.timeout(0.3, res.sendFile, res, file)
      outcome = done and "sent" or err.code
    end)
    -- A client that asks and then reads nothing for a while.
    local peer = task.async(K.run, K.python, {K.peers .. "/slowread.py", tostring(server.port), "/", tostring(1e9), "4"}, {timeout = 30})
    K.waitFor(function() return outcome end, 5)
    assert.equal(outcome, "Timeout")
    local t0 = task.now()
    local closed = task.timeout(5, function() return server:close() end)
    assert.equal(closed, true)
    assert.truthy(task.now() - t0 < 3, "server:close() returned")
    peer:await()
  end, 30)
end)
