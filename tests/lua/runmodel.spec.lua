-- The run model: the main chunk is a coroutine started before the loop runs;
-- then the loop runs until nothing referenced is left, and every handle is closed.
local h = require("helpers")

describe("run model", function()
  it("runs the main chunk as a coroutine that may yield", function()
    local r = h.runEvo({"-e", [[
      print(type(coroutine.running()), coroutine.isyieldable())
    ]]})
    assert.equal(r.stdout, "thread\ttrue\n")
  end)

  it("lets the script call uv.run() itself, as luv examples do", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local t = uv.new_timer()
      t:start(10, 0, function() print("fired"); t:close() end)
      uv.run()
      print("after run")
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "fired\nafter run\n")
  end)

  it("runs the loop after the main chunk until no referenced handle is left", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local n = 0
      local t = uv.new_timer()
      t:start(5, 5, function()
        n = n + 1
        if n == 3 then t:close(); print("done", n) end
      end)
      print("main chunk returned")
    ]]})
    assert.equal(r.stdout, "main chunk returned\ndone\t3\n")
  end)

  it("does not wait for unreferenced handles", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local t = uv.new_timer()
      t:start(60000, 0, function() print("never") end)
      t:unref()
      print("bye")
    ]]}, {timeout = 5})
    assert.falsy(r.timedOut)
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "bye\n")
  end)

  it("resumes a Luvit-style yielded main chunk from a luv callback", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local co = coroutine.running()
      local t = uv.new_timer()
      t:start(5, 0, function() t:close(); coroutine.resume(co, "woken") end)
      print("got", coroutine.yield())
    ]]})
    assert.equal(r.stdout, "got\twoken\n")
  end)

  it("closes handles left open at exit, running their close callbacks", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local idle = uv.new_timer()   -- never started: not keeping the loop alive
      idle:close(function() print("close callback ran") end)
      local tcp = uv.new_tcp()
      tcp:bind("127.0.0.1", 0)     -- open, bound, inactive
      print("exiting")
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "exiting\nclose callback ran\n")
  end)

  it("lets in-flight requests finish before closing the VM after an error", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      uv.fs_stat(".", function() print("fs callback ran") end)
      uv.new_work(function() return 1 end, function() print("work callback ran") end):queue()
      error("boom")
    ]]})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "boom")
    assert.match(r.stdout, "fs callback ran")
    assert.match(r.stdout, "work callback ran")
  end)

  it("settles when a callback during shutdown starts a repeating timer", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      uv.fs_stat(".", function()
        local t = uv.new_timer()
        t:start(10, 10, function() end)
      end)
      uv.stop()
      error("boom")
    ]]}, {timeout = 5})
    assert.falsy(r.timedOut, "shutdown hung")
    assert.equal(r.code, 1)
  end)

  it("exits cleanly when the script calls uv.stop() with work pending", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local t = uv.new_timer()
      t:start(10, 10, function() uv.stop() end)
      uv.fs_stat(".", function() end)
    ]]}, {timeout = 5})
    assert.falsy(r.timedOut)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, "")
  end)

  it("exits 0 when the main chunk finishes and nothing is pending", function()
    local r = h.runEvo({"-e", "local x = 1"})
    assert.equal(r.code, 0)
    assert.equal(r.stderr, "")
  end)
end)

describe("task.work jobs and the end of the process", function()
  it("os.exit and process.exit while a job runs exit with the code, without crashing", function()
    for _, exit in ipairs({"os.exit(3)", "require('process').exit(3)"}) do
      local r = h.runEvo({"-e", [[
        local task = require("task")
        local f = task.async(task.work, function() while true do end end)
        local g = task.async(task.work, function() local t = os.clock() while os.clock() - t < 30 do end end)
        task.sleep(0.05)
        io.write("exiting\n")
        ]] .. exit}, {timeout = 10})
      assert.falsy(r.timedOut, exit .. " hung")
      assert.equal(r.code, 3, exit .. ": " .. r.stderr)
      assert.equal(r.stdout, "exiting\n")
    end
  end, 30)

  it("a cancelled job stops: the pool is free again and the process exits", function()
    local r = h.runEvo({"-e", [[
      local task = require("task")
      local fs = require("fs")
      local jobs = {}
      for i = 1, 4 do
        jobs[i] = task.async(task.work, function()
          local t, i = {}, 0  -- allocates: leaves compiled code for GC steps, where the hook is checked
          while true do i = i + 1; t[i % 100 + 1] = {i} end
        end)
      end
      task.sleep(0.1)
      for i = 1, 4 do assert(jobs[i]:cancel() == nil) end
      local t0 = task.now()
      local data, err = task.timeout(2, fs.readFile, "/etc/hostname")
      print(data ~= nil, task.now() - t0 < 1)
    ]]}, {timeout = 10})
    assert.falsy(r.timedOut, "the process did not exit: " .. r.stderr)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "true\ttrue\n")
  end, 20)
end)
