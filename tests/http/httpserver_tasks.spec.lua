-- HttpServer's event handlers run as tasks (issue 8 item 12): a handler may
-- suspend (sleep, read a file) without holding up the others; a request's
-- STARTED handler ends before its FINISHED handler starts; WriteResponse
-- waits for a slow reader; an error in a handler answers 500. The memory
-- and stderr checks run the server in a child process
-- (fixtures/event_task_server.lua).
local K = require("httpkit")
local HttpServer = require("HttpServer")
local http = require("http")
local task = require("task")
local process = require("process")
local fs = require("fs")

-- An in-process server, stopped after the test.
local function start(handlers)
  local s = HttpServer()
  for name, fn in pairs(handlers) do s[name] = fn end
  assert(s:StartListening(0))
  K.onCleanup(function()
    http.closeIdle()
    s:StopListening()
  end)
  return s, "http://127.0.0.1:" .. s.port
end

-- fn(i) in n tasks at once; their results in order.
local function concurrently(n, fn)
  local futures = {}
  for i = 1, n do futures[i] = task.async(fn, i) end
  local out = {}
  for i = 1, n do out[i] = futures[i]:await() end
  return out
end

local function startChild()
  local child = assert(process.spawn(K.evo, {K.fixtures .. "/event_task_server.lua"}, {stdin = "ignore"}))
  local stderr = task.async(function() return child.stderr:readAll() end)
  local line = assert(child.stdout:readLine(), "the fixture did not start")
  local port, pid = line:match("^(%d+) (%d+)$")
  local s = {port = tonumber(port), pid = tonumber(pid)}
  local stopped
  function s.stop()
    if not stopped then
      child:kill("KILL")
      stopped = stderr:await() or ""
      child:wait()
      child.stdout:close()
      child.stderr:close()
    end
    return stopped
  end
  K.onCleanup(s.stop)
  return s
end

local rssMiB = K.rssMiB

describe("HttpServer handlers as tasks (issue 8 item 12)", function()
  afterEach(K.cleanup)

  it("suspends a FINISHED handler that sleeps, not the server: 20 clients answered in about 0.2 s", function()
    local _, url = start({
      HTTP_REQUEST_FINISHED = function(self, event, p)
        task.sleep(0.2)
        self:SendResponse(p.requestID, "slept " .. p.path)
      end,
    })
    local t0 = task.now()
    local bodies = concurrently(20, function(i)
      local r = assert(http.get(url .. "/" .. i, {timeout = 10}))
      return r.body
    end)
    local elapsed = task.now() - t0
    for i = 1, 20 do assert.equal(bodies[i], "slept /" .. i) end
    assert.truthy(elapsed < 1.2, ("20 handlers sleeping 0.2 s took %.2f s"):format(elapsed))
  end, 20)

  it("lets a handler read a file with fs.readFile, in its own task", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/page.txt", "from the file")
    local _, url = start({
      HTTP_REQUEST_FINISHED = function(self, event, p)
        local data = assert(fs.readFile(dir .. "/page.txt"))
        self:SendResponse(p.requestID, data .. (task.current() and " in a task" or " outside any task"))
      end,
    })
    local r = assert(http.get(url .. "/file", {timeout = 5}))
    K.rmrf(dir)
    assert.equal(r.status, 200)
    assert.equal(r.body, "from the file in a task")
  end, 15)

  it("runs a request's STARTED handler to its end before its FINISHED handler, however long it takes", function()
    local log, startedDone, finishedSawStarted, paths = {}, {}, {}, {}
    local s = start({
      HTTP_REQUEST_STARTED = function(self, event, p)
        paths[p.requestID] = p.path
        log[#log + 1] = "S" .. p.requestID
        task.sleep(0.3)
        startedDone[p.requestID] = true
        if p.path == "/early" then self:SendResponse(p.requestID, "answered by STARTED") end
      end,
      HTTP_REQUEST_FINISHED = function(self, event, p)
        log[#log + 1] = "F" .. p.requestID
        finishedSawStarted[p.requestID] = startedDone[p.requestID] == true
        self:SendResponse(p.requestID, "finished " .. p.path .. " " .. #p.body)
      end,
    })
    local url = "http://127.0.0.1:" .. s.port
    local t0 = task.now()
    local bodies = concurrently(6, function(i)
      if i == 6 then
        -- The body arrives while STARTED runs: FINISHED comes from the body's end.
        local rep = K.raw(s.port, {{"send", "POST /drip HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab"},
          {"sleep", 0.1}, {"send", "cd"}}, 5)
        return K.parse(rep.data)[1].body
      end
      local path = i == 5 and "/early" or "/p" .. i
      return assert(http.request({method = "POST", url = url .. path, body = "xyz", timeout = 10})).body
    end)
    local elapsed = task.now() - t0
    for i = 1, 4 do assert.equal(bodies[i], "finished /p" .. i .. " 3") end
    assert.equal(bodies[5], "answered by STARTED")
    assert.equal(bodies[6], "finished /drip 4")
    assert.truthy(elapsed < 1.2, ("6 STARTED handlers sleeping 0.3 s took %.2f s"):format(elapsed))
    local pos = {}
    for i, e in ipairs(log) do pos[e] = i end
    local finishedCount = 0
    for id, path in pairs(paths) do
      if path == "/early" then
        assert.isNil(pos["F" .. id], "a request answered by STARTED gets no FINISHED handler")
      else
        finishedCount = finishedCount + 1
        assert.truthy(pos["S" .. id] < pos["F" .. id], "STARTED before FINISHED for " .. path)
        assert.truthy(finishedSawStarted[id], "FINISHED of " .. path .. " began after STARTED had ended")
      end
    end
    assert.equal(finishedCount, 5)
  end, 20)

  it("makes WriteResponse wait for a slow reader: 20 x 1 MB with the server's memory bounded, all delivered", function()
    local s = startChild()
    local base = rssMiB(s.pid)
    -- The client asks, reads nothing for 1 s, then everything.
    local peer = task.async(K.run, K.python, {K.peers .. "/slowread.py", tostring(s.port), "/big", tostring(1e9), "1"},
      {timeout = 30})
    task.sleep(0.7)
    local peak = rssMiB(s.pid)
    local rep = assert(load("return " .. peer:await().out))()
    assert.equal(rep.ending, "complete")
    assert.equal(rep.bytes, 20 * 1024 * 1024)
    -- Queued without waiting, the 20 MB would all sit in the server's memory.
    K.assertGrowth(peak - base, 10, "server RSS while the client did not read (MiB)")
    local st = K.parse(K.raw(s.port, K.req("GET", "/stats", {"Connection: close"}), 3).data)[1]
    assert.match(st.body, "^writes=20 ")
  end, 40)

  it("answers 500 for an error in HTTP_REQUEST_FINISHED or STARTED, reports it, and keeps serving", function()
    local s = startChild()
    local rep = K.raw(s.port, K.req("GET", "/boom") .. K.req("GET", "/boom-started") ..
      K.req("GET", "/ok", {"Connection: close"}), 5)
    local list = K.parse(rep.data)
    assert.equal(#list, 3, "three answers on one connection: " .. rep.data:sub(1, 300))
    assert.equal(list[1].status, 500)
    assert.equal(list[1].body, "500 Internal Server Error\n")
    assert.equal(list[2].status, 500)
    assert.equal(list[3].status, 200)
    assert.equal(list[3].body, "ok /ok")
    -- An error after a part went out: the response is cut short.
    local late = K.raw(s.port, K.req("GET", "/boom-late"), 5)
    local r = K.parse(late.data)[1]
    assert.equal(r.status, 200)
    assert.falsy(r.complete, "the chunked body has no end")
    assert.equal(late.ending, "eof")
    local out, err, code = K.curl("http://127.0.0.1:" .. s.port .. "/after")
    assert.equal(code, 0, err)
    assert.equal(out, "ok /after")
    out = K.curl("http://127.0.0.1:" .. s.port .. "/stats")
    assert.match(out, "boomAgain=AlreadySent", "the 500 counts as the answer")
    local stderr = s.stop()
    assert.match(stderr, "error in HttpServer:HTTP_REQUEST_FINISHED handler: .-boom from a FINISHED handler")
    assert.match(stderr, "error in HttpServer:HTTP_REQUEST_STARTED handler: .-boom from a STARTED handler")
    assert.match(stderr, "late boom")
    assert.match(stderr, "stack traceback")
  end, 30)
end)
