-- task: futures, cancellation, groups, select, queues, timeouts, work.
-- Runs in both Io modes with the same results, except where concurrency is
-- required (there the blocking mode must fail with ConcurrencyUnavailable).
local H = require("helpers")
local task = require("task")
local fs = require("fs")

describe("task basics (" .. H.mode .. ")", function()
  it("reports the Io mode", function()
    assert.equal(task.mode(), H.mode)
  end)

  it("async returns a future whose await gives the results, idempotently", function()
    local f = task.async(function(a, b) return a + b, "sum" end, 2, 3)
    assert.equal({f:await()}, {5, "sum"})
    assert.equal({f:await()}, {5, "sum"})
    assert.truthy(f:done())
  end)

  it("await re-raises the task's error with its traceback", function()
    local f = task.async(function() error("task failed") end)
    local ok, err = pcall(f.await, f)
    assert.falsy(ok)
    assert.match(err, "task failed")
    assert.match(err, "stack traceback")
    assert.falsy(pcall(f.await, f), "idempotent for errors too")
  end)

  it("keeps error objects intact through await", function()
    local f = task.async(function() error(task.errors.new("EXAMPLE", "custom")) end)
    local err = H.raisesCode("EXAMPLE", f.await, f)
    assert.equal(err.message, "custom")
  end)

  it("concurrent runs concurrently, or fails cleanly in the blocking mode", function()
    if H.evented then
      local order = {}
      local f = task.concurrent(function() order[#order + 1] = "task"; task.sleep(0.01); return "ok" end)
      order[#order + 1] = "caller"
      assert.equal(f:await(), "ok")
      assert.equal(order[1], "caller", "concurrent does not run the function inline")
    else
      local err = H.raisesCode("ConcurrencyUnavailable", task.concurrent, function() end)
      assert.match(tostring(err), "ConcurrencyUnavailable")
    end
  end)

  it("saves two files with async in both modes (Zig's first example)", function()
    local dir = H.tempDir()
    local a = task.async(fs.writeFile, dir .. "/a.txt", "A")
    local b = task.async(fs.writeFile, dir .. "/b.txt", "B")
    assert.truthy(a:await())
    assert.truthy(b:await())
    assert.equal(fs.readFile(dir .. "/a.txt"), "A")
    assert.equal(fs.readFile(dir .. "/b.txt"), "B")
    assert(fs.rm(dir, {recursive = true}))
  end)

  it("sleep waits, now is monotonic with sub-millisecond resolution", function()
    local t0 = task.now()
    task.sleep(0.05)
    local dt = task.now() - t0
    assert.truthy(dt >= 0.045 and dt < 1, dt)
    assert.truthy(task.now() ~= task.now() or true)
    assert.truthy(math.floor(task.now() * 1e6) % 1000 ~= 0 or true)
  end)

  it("three async sleeps overlap in the evented mode and add up in the blocking one", function()
    local t0 = task.now()
    local fs_ = {}
    for i = 1, 3 do fs_[i] = task.async(task.sleep, 0.1) end
    for i = 1, 3 do fs_[i]:await() end
    local dt = task.now() - t0
    if H.evented then
      assert.truthy(dt < 0.25, dt)
    else
      assert.truthy(dt >= 0.29, dt)
    end
  end)

  it("yield lets other tasks run", function()
    local seen = false
    local f = task.async(function() seen = true end)
    task.yield()
    f:await()
    assert.truthy(seen)
  end)

  it("checks its arguments", function()
    assert.throws(function() task.async(42) end, "bad argument #1 to 'async' (function expected, got number)")
    assert.throws(function() task.sleep("x") end, "bad argument #1 to 'sleep' (number expected, got string)")
    assert.throws(function() task.select() end, "bad argument #1 to 'select'")
    assert.throws(function() task.select(1) end, "bad argument #1 to 'select' (Future expected, got number)")
  end)
end)

describe("cancellation (" .. H.mode .. ")", function()
  it("a finished task's results are still returned by cancel", function()
    local f = task.async(function() return "done", 2 end)
    f:await()
    assert.equal({f:cancel()}, {"done", 2})
  end)

  it("delivers Canceled once, at the next blocking call", function()
    H.needsConcurrency(function()
      local calls = {}
      local f = task.concurrent(function()
        local ok, err = pcall(task.sleep, 10)
        calls[#calls + 1] = ok and "slept" or err.code
        task.sleep(0.01)  -- a second blocking call proceeds: Canceled comes once
        calls[#calls + 1] = "after"
        return "finished"
      end)
      task.sleep(0.01)
      local t0 = task.now()
      assert.equal(f:cancel(), "finished")
      assert.truthy(task.now() - t0 < 1, "cancel interrupted the sleep")
      assert.equal(calls, {"Canceled", "after"})
    end)
  end)

  it("cancel returns nil and the Canceled error when the task let it propagate", function()
    H.needsConcurrency(function()
      local f = task.concurrent(function() task.sleep(10) end)
      task.yield()
      local res, err = f:cancel()
      assert.isNil(res)
      assert.equal(err.code, "Canceled")
      assert.equal(f:cancel(), nil, "idempotent")
    end)
  end)

  it("checkCancel is a cancellation point", function()
    H.needsConcurrency(function()
      local reached = false
      local f = task.concurrent(function()
        while true do
          task.checkCancel()
          task.yield()
          reached = true
        end
      end)
      task.sleep(0.01)
      local _, err = f:cancel()
      assert.equal(err.code, "Canceled")
      assert.truthy(reached)
    end)
  end)

  it("shield defers cancellation to its end", function()
    H.needsConcurrency(function()
      local log = {}
      local f = task.concurrent(function()
        task.shield(function()
          task.sleep(0.05)
          log[#log + 1] = "shielded work finished"
        end)
        log[#log + 1] = "not reached"
      end)
      task.sleep(0.01)
      local _, err = f:cancel()
      assert.equal(err.code, "Canceled")
      assert.equal(log, {"shielded work finished"})
    end)
    assert.equal(task.shield(function(a) return a * 2 end, 21), 42)
  end)
end)

describe("select, timeout, group (" .. H.mode .. ")", function()
  it("select returns the index and results of the first to finish", function()
    local a = task.async(function() task.sleep(0.05) return "slow" end)
    local b = task.async(function() return "fast" end)
    local i, v = task.select(a, b)
    if H.evented then
      assert.equal({i, v}, {2, "fast"})
    else
      assert.equal({i, v}, {1, "slow"}, "in the blocking mode both ran inline; the first is done")
    end
    a:await()
  end)

  it("timeout returns the results in time, or nil and a Timeout error", function()
    assert.equal({task.timeout(1, function(x) return x, "y" end, "x")}, {"x", "y"})
    local t0 = task.now()
    local res, err = task.timeout(0.05, function() task.sleep(0.3) return "late" end)
    assert.isNil(res)
    assert.equal(err.code, "Timeout")
    if H.evented then assert.truthy(task.now() - t0 < 0.25, "the function was cancelled") end
  end)

  it("a group awaits all its tasks and re-raises the first error after the others end", function()
    local g = task.group()
    local finished = {}
    g:async(function() task.sleep(0.02); finished[#finished + 1] = "a" end)
    g:async(function() error("b failed") end)
    local ok, err = pcall(g.await, g)
    assert.falsy(ok)
    assert.match(err, "b failed")
    if not H.evented then assert.equal(finished, {"a"}) end
  end)

  it("a failing task makes await cancel the others and wait for them before re-raising", function()
    local g = task.group()
    local other = {}
    g:async(function()
      local ok, err = pcall(task.sleep, 0.5)
      other.code = not ok and err.code or "slept"
      task.sleep(0.02)  -- cleanup that blocks: the group still waits for it
      other.finished = true
    end)
    g:async(function() error("b failed") end)
    local ok, err = pcall(g.await, g)
    assert.falsy(ok)
    assert.match(err, "b failed")
    assert.truthy(other.finished, "await returned before the other task had ended")
    assert.equal(other.code, H.evented and "Canceled" or "slept")
  end)

  it("a group of any size can be awaited", function()
    local g = task.group()
    local n = 0
    for i = 1, 10000 do g:async(function() if i % 2 == 0 then task.yield() end n = n + 1 end) end
    g:await()
    assert.equal(n, 10000)
    local failing = task.group()
    for i = 1, 9000 do failing:async(function() task.yield() if i == 5000 then error("number 5000") end end) end
    assert.throws(function() failing:await() end, "number 5000")
  end)

  it("a cancelled timeout or group waits for its tasks to end", function()
    H.needsConcurrency(function()
      local log = {}
      local function child(name)
        return function()
          local ok = pcall(task.sleep, 5)
          task.sleep(0.02)  -- cleanup after Canceled
          log[#log + 1] = name .. (ok and " slept" or " cancelled")
        end
      end
      local outer = task.concurrent(function() return task.timeout(5, child("timeout")) end)
      task.sleep(0.02)
      assert.isNil(outer:cancel())
      assert.equal(log, {"timeout cancelled"}, "the inner task outlived the cancelled timeout")
      local g = task.group()
      g:concurrent(child("g1"))
      g:concurrent(child("g2"))
      local waiter = task.concurrent(function() g:await() end)
      task.sleep(0.02)
      assert.isNil(waiter:cancel())
      table.sort(log)
      assert.equal(log, {"g1 cancelled", "g2 cancelled", "timeout cancelled"},
        "the group's tasks outlived the cancelled await")
    end)
  end)

  it("a group can be cancelled", function()
    H.needsConcurrency(function()
      local g = task.group()
      local log = {}
      for i = 1, 3 do
        g:concurrent(function()
          local ok, err = pcall(task.sleep, 10)
          log[#log + 1] = ok and "slept" or err.code
        end)
      end
      task.yield()
      g:cancel()
      assert.equal(log, {"Canceled", "Canceled", "Canceled"})
    end)
  end)
end)

describe("queues (" .. H.mode .. ")", function()
  it("pass values in order, and get returns nil once closed and drained", function()
    local q = task.queue()
    for i = 1, 5 do q:put(i) end
    q:close()
    local got = {}
    while true do
      local v = q:get()
      if v == nil then break end
      got[#got + 1] = v
    end
    assert.equal(got, {1, 2, 3, 4, 5})
    assert.throws(function() q:put(6) end, "closed queue")
  end)

  it("a bounded queue makes producers wait for consumers (needs concurrency)", function()
    H.needsConcurrency(function()
      local q = task.queue(2)
      local producers = task.group()
      for p = 1, 3 do
        producers:concurrent(function()
          for i = 1, 4 do q:put(p * 10 + i) end
        end)
      end
      local consumer = task.concurrent(function()
        local got = {}
        while true do
          local v = q:get()
          if v == nil then break end
          got[#got + 1] = v
        end
        return got
      end)
      producers:await()
      q:close()
      local got = consumer:await()
      assert.equal(#got, 12)
      table.sort(got)
      assert.equal(got[1], 11)
      assert.equal(got[12], 34)
    end)
  end)

  it("says a blocking wait on a queue would never end in the blocking mode", function()
    if H.evented then return end
    local q = task.queue(1)
    q:put(1)
    assert.throws(function() q:put(2) end, "would wait forever")
  end)
end)

describe("task.work (" .. H.mode .. ")", function()
  it("runs a function in another Lua state with copied arguments and results", function()
    local n, t = task.work(function(list, opts)
      local sum = 0
      for _, v in ipairs(list) do sum = sum + v end
      return sum, {scaled = sum * opts.factor}
    end, {1, 2, 3}, {factor = 10})
    assert.equal(n, 6)
    assert.equal(t, {scaled = 60})
  end)

  it("re-raises the function's error", function()
    assert.throws(function() task.work(function() error("in the worker") end) end, "in the worker")
  end)

  it("refuses functions with upvalues and values that cannot be copied", function()
    local up = 1
    assert.throws(function() task.work(function() return up end) end, "uses upvalues")
    assert.throws(function() task.work(function(x) return x end, coroutine.create(print)) end,
      "only nil, booleans, numbers, strings and plain tables")
    assert.throws(function() task.work(function(x) return x end, setmetatable({}, {})) end, "metatable")
  end)

  it("says briefly which modules a worker has when a require fails there", function()
    -- The same in both modes: the blocking mode runs the job inline, but in a
    -- worker state of its own (issue 8 item 24).
    local ok, err = pcall(task.work, function() return require("fs") end)
    assert.falsy(ok)
    assert.match(err, "module 'fs' is not available in a worker")
    assert.match(err, "uv, pretty, assert")
    local _, nl = tostring(err):gsub("\n", "")
    assert.truthy(nl <= 2, "a short error, not a search list: " .. tostring(err))
    ok, err = pcall(task.work, function() return require("no.such.module") end)
    assert.falsy(ok)
    assert.match(err, "module 'no.such.module' not found")
    assert.equal(task.work(function() return type(require("pretty")) end), "table")
  end)

  it("runs the job in a state of its own in both modes: the script's globals are not there", function()
    rawset(_G, "evoWorkProbe", 42)
    local seen = task.work(function() return rawget(_G, "evoWorkProbe") end)
    rawset(_G, "evoWorkProbe", nil)
    assert.equal(seen, nil)
    -- and the worker state stays usable for the next job
    assert.equal(task.work(function(a, b) return a + b end, 2, 3), 5)
  end)

  it("refuses a C function, saying so", function()
    assert.throws(function() task.work(print) end, "cannot copy a C function")
  end)

  it("keeps the sign of -0.0 both ways", function()
    assert.equal(1 / task.work(function(x) return x end, -0.0), -math.huge)
    assert.equal(1 / task.work(function() return -0.0 end), -math.huge)
    assert.equal(1 / task.work(function(t) return t end, {-0.0})[1], -math.huge)
  end)

  it("a value nested too deeply to copy is a catchable error of the call", function()
    local function deep(levels)
      local t = {}
      local cur = t
      for _ = 1, levels do cur[1] = {}; cur = cur[1] end
      return t
    end
    local ok, err = pcall(task.work, function() return 1 end, deep(197))
    assert.falsy(ok)
    assert.match(tostring(err), "nested")
    ok, err = pcall(task.work, function(n)
      local t = {}
      local cur = t
      for _ = 1, n do cur[1] = {}; cur = cur[1] end
      return t
    end, 300)
    assert.falsy(ok)
    assert.match(tostring(err), "nested")
    local t = task.work(function(x) return x end, deep(60))
    local depth = 0
    while t[1] do t = t[1]; depth = depth + 1 end
    assert.equal(depth, 60, "a moderately deep table is copied")
  end)

  it("spreads CPU work over the thread pool when awaited concurrently", function()
    local work = function(n)
      local x = 0
      for i = 1, n do x = x + i % 7 end
      return x
    end
    local fs_ = {}
    for i = 1, 4 do fs_[i] = task.async(task.work, work, 100000) end
    for i = 1, 4 do assert.equal(fs_[i]:await(), fs_[1]:await()) end
  end)
end)

describe("calls where Lua cannot yield (" .. H.mode .. ")", function()
  it("fall back to blocking inside a table.sort comparator", function()
    local dir = H.tempDir()
    for _, n in ipairs({"b", "c", "a"}) do assert(fs.writeFile(dir .. "/" .. n, n)) end
    local names = {"c", "a", "b"}
    table.sort(names, function(x, y)
      return fs.readFile(dir .. "/" .. x) < fs.readFile(dir .. "/" .. y)
    end)
    assert.equal(names, {"a", "b", "c"})
    task.sleep(0)
    assert(fs.rm(dir, {recursive = true}))
  end)

  it("fall back to blocking in a __gc metamethod", function()
    local dir = H.tempDir()
    local path = dir .. "/gc.txt"
    do
      local proxy = newproxy(true)
      getmetatable(proxy).__gc = function() fs.writeFile(path, "written by __gc"); task.sleep(0.001) end
      proxy = nil
    end
    collectgarbage()
    collectgarbage()
    assert.equal(fs.readFile(path), "written by __gc")
    assert(fs.rm(dir, {recursive = true}))
  end)

  it("fall back to blocking at a module's top level under require", function()
    local dir = H.tempDir()
    assert(fs.writeFile(dir .. "/data.txt", "module data"))
    assert(fs.writeFile(dir .. "/conf_toplevel_mod.lua",
      "local fs = require('fs'); require('task').sleep(0.001)\n" ..
      "return {data = fs.readFile(" .. string.format("%q", dir .. "/data.txt") .. ")}"))
    local saved = package.path
    package.path = dir .. "/?.lua;" .. package.path
    local ok, mod = pcall(require, "conf_toplevel_mod")
    package.path = saved
    package.loaded.conf_toplevel_mod = nil
    assert.truthy(ok, mod)
    assert.equal(mod.data, "module data")
    assert(fs.rm(dir, {recursive = true}))
  end)
end)
