-- Cancellation at every blocking call. A cancelled task gets a Canceled
-- error from the call it is blocked in, once; the operation is cancelled
-- (uv_cancel) or its result discarded, and nothing leaks (the suite also runs
-- under AddressSanitizer). Cancelling needs a concurrent task, so in the
-- blocking Io mode each case asserts ConcurrencyUnavailable instead.
local H = require("helpers")
local task = require("task")
local fs = require("fs")
local net = require("net")
local dns = require("dns")
local process = require("process")

-- Occupies libuv's thread pool (4 threads) so that the next fs or dns
-- request waits in its queue, where uv_cancel can take it back.
local function busyPool(seconds)
  local jobs = {}
  for i = 1, 4 do
    jobs[i] = task.async(task.work, function(s)
      local t = os.clock()
      while os.clock() - t < s do end
    end, seconds)
  end
  return jobs
end

local function settle(jobs)
  for _, j in ipairs(jobs) do j:await() end
end

-- Starts fn(...) in a task that records how the call ended, lets it block,
-- cancels it, and returns what it recorded.
local function cancelDuring(fn, ...)
  local args = {...}
  local outcome = {}
  local f = task.concurrent(function()
    local ok, a, b = pcall(fn, unpack(args))
    outcome.ok, outcome.value, outcome.err = ok, a, b
    if not ok then outcome.code = type(a) == "table" and a.code or tostring(a) end
    return "task went on"
  end)
  task.sleep(0.02)  -- it is now blocked in fn
  assert.falsy(f:done(), "the call returned before it was cancelled")
  local t0 = task.now()
  local res = f:cancel()
  outcome.elapsed = task.now() - t0
  outcome.result = res
  return outcome
end

local function expectCanceled(o)
  assert.falsy(o.ok, "the blocking call returned instead of raising Canceled")
  assert.equal(o.code, "Canceled")
  assert.equal(o.result, "task went on", "the task caught Canceled and finished normally")
  assert.truthy(o.elapsed < 1, "cancel waited " .. o.elapsed .. " s")
end

describe("cancelling blocking calls (" .. H.mode .. ")", function()
  if not H.evented then
    it("needs concurrency, which the blocking mode does not have", function()
      H.raisesCode("ConcurrencyUnavailable", task.concurrent, task.sleep, 1)
    end)
    return
  end

  it("sleep", function()
    expectCanceled(cancelDuring(task.sleep, 10))
  end)

  it("fs, with the request still queued (uv_cancel takes it back)", function()
    local jobs = busyPool(0.3)
    -- (readdir is a thread-pool request under every evented-model Io; stat
    -- is a ring entry under --io=uring, which the busy pool does not hold)
    expectCanceled(cancelDuring(fs.readdir, "/"))
    settle(jobs)
  end)

  it("fs, with the request already running (its result is discarded)", function()
    local dir = H.tempDir()
    local big = string.rep("z", 4 * 1024 * 1024)
    assert(fs.writeFile(dir .. "/big", big))
    for _ = 1, 5 do
      local f = task.concurrent(fs.readFile, dir .. "/big")
      task.yield()
      f:cancel()
    end
    assert.equal(#fs.readFile(dir .. "/big"), #big, "fs still works afterwards")
    fs.rm(dir, {recursive = true})
  end)

  it("connect (while resolving the name)", function()
    local jobs = busyPool(0.3)
    expectCanceled(cancelDuring(net.connect, {host = "localhost", port = 9}))
    settle(jobs)
  end)

  it("read", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local peer = assert(server:accept())
    expectCanceled(cancelDuring(c.readLine, c))
    peer:write("later\n")
    assert.equal(c:readLine(), "later", "the stream still works after a cancelled read")
    c:close(); peer:close(); server:close()
  end)

  it("write, blocked by backpressure", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local peer = assert(server:accept())  -- never reads
    c:setHighWater(1024)
    local chunk = string.rep("w", 1024 * 1024)
    local o = cancelDuring(function()
      for _ = 1, 64 do assert(c:write(chunk)) end
    end)
    expectCanceled(o)
    c:close(); peer:close(); server:close()
  end)

  it("accept", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    expectCanceled(cancelDuring(server.accept, server))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local conn = assert(server:accept(), "accept still works after a cancelled one")
    conn:close(); c:close(); server:close()
  end)

  it("dns lookup", function()
    local jobs = busyPool(0.3)
    expectCanceled(cancelDuring(dns.lookup, "localhost"))
    settle(jobs)
  end)

  it("process wait", function()
    local child = assert(process.spawn("sleep", {"10"}, {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
    expectCanceled(cancelDuring(child.wait, child))
    child:kill("SIGKILL")
    assert.equal({child:wait()}, {0, 9})
  end)

  it("queue get and put", function()
    local q = task.queue(1)
    expectCanceled(cancelDuring(q.get, q))
    q:put("full")
    expectCanceled(cancelDuring(q.put, q, "more"))
    assert.equal(q:get(), "full")
    q:put("next")
    assert.equal(q:get(), "next", "the queue still works")
  end)

  it("await (the awaited task keeps running)", function()
    local long = task.concurrent(function() task.sleep(0.1) return "long done" end)
    expectCanceled(cancelDuring(long.await, long))
    assert.equal(long:await(), "long done")
  end)

  it("task.work (the result is discarded)", function()
    expectCanceled(cancelDuring(task.work, function()
      local t = os.clock()
      while os.clock() - t < 0.1 do end
      return 1
    end))
  end)

  it("a write does not go out when the cancellation came first", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local peer = assert(server:accept())
    local f = task.concurrent(function() return c:write(string.rep("x", 100000)) end)
    local _, err = f:cancel()  -- requested before the task ran: due at its write
    assert.equal(err.code, "Canceled")
    c:close()
    assert.isNil(peer:read(1), "the peer received nothing")
    peer:close(); server:close()
  end)

  it("a timeout-wrapped wait cancels its inner task too", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    server:settimeout(5)
    local waiting = task.concurrent(function() return server:accept() end)
    task.sleep(0.02)
    local _, err = waiting:cancel()
    assert.equal(err.code, "Canceled")
    task.sleep(0.01)
    server:settimeout(1)
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local conn = assert(server:accept(), "no orphaned accept holds the server")
    conn:close(); c:close(); server:close()
  end)

  it("before the task even started: at its first blocking call", function()
    local reached = false
    local f = task.concurrent(function()
      reached = true
      task.sleep(1)
    end)
    local res, err = f:cancel()
    assert.truthy(reached)
    assert.isNil(res)
    assert.equal(err.code, "Canceled")
  end)
end)
