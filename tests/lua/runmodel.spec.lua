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

  it("exits 13 naming the wait when the main task waits on a queue nobody fills", function()
    local path = h.tempFile("stuck.lua", "local task = require('task')\nlocal q = task.queue()\nprint('before')\nq:get()\nprint('never')\n")
    local r = h.runEvo({path}, {timeout = 5})
    assert.falsy(r.timedOut)
    assert.equal(r.code, 13)
    assert.equal(r.stdout, "before\n")
    assert.match(r.stderr, "^evo: the main task never finished: it waits in get%(%) at [^\n]*stuck%.lua:4 " ..
      "%(nothing left that could wake it%)\n")
  end)

  it("exits 13 when the main task awaits a future that can never finish", function()
    local r = h.runEvo({"-e", [[
      local task = require("task")
      local q = task.queue()
      local f = task.async(function() return q:get() end)
      f:await()
    ]]}, {timeout = 5})
    assert.equal(r.code, 13)
    assert.match(r.stderr, "^evo: the main task never finished: it waits in await%(%) at %(command line%):4 ")
  end)

  it("exits 13 when the main chunk yields and nothing can resume it", function()
    local r = h.runEvo({"-e", "print('one')\ncoroutine.yield()\nprint('two')"}, {timeout = 5})
    assert.equal(r.code, 13)
    assert.equal(r.stdout, "one\n")
    assert.match(r.stderr, "^evo: the main task never finished: it waits in coroutine%.yield%(%) at %(command line%):2 ")
  end)

  it("exits 13 for pcall(coroutine.yield) at top level too", function()
    local r = h.runEvo({"-e", "print(pcall(coroutine.yield))\nprint('after')"}, {timeout = 5})
    assert.equal(r.code, 13)
    assert.equal(r.stdout, "")
    assert.match(r.stderr, "waits in coroutine%.yield%(%) at %(command line%):1 ")
  end)

  it("still exits 0 when a yielded main chunk is resumed and finishes", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local co = coroutine.running()
      local t = uv.new_timer()
      t:start(5, 0, function() t:close(); coroutine.resume(co) end)
      coroutine.yield()
      print("finished")
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "finished\n")
    assert.equal(r.stderr, "")
  end)
end)

describe("errors in tasks nobody awaited", function()
  it("are reported and make the exit status 1", function()
    local r = h.runEvo({"-e", [[
      local task = require("task")
      task.async(function() error("lost failure") end)
      print("main done")
    ]]})
    assert.equal(r.code, 1)
    assert.equal(r.stdout, "main done\n")
    assert.match(r.stderr, "^evo: error in a task nobody awaited: [^\n]*lost failure")
  end)

  it("count even when the Future is still referenced at exit", function()
    local r = h.runEvo({"-e", [[
      local task = require("task")
      kept = task.async(function() error("kept but never awaited") end)
    ]]})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "kept but never awaited")
  end)

  it("leave the status 0 when the script awaited, cancelled or grouped the task", function()
    local r = h.runEvo({"-e", [[
      local task = require("task")
      local f = task.async(function() error("awaited") end)
      print(pcall(f.await, f))
      local c = task.async(function() task.sleep(10) end)
      print(c:cancel())
      local g = task.group()
      g:async(function() error("in a group") end)
      print(pcall(g.await, g))
      local failsLater = task.async(function() task.sleep(0.01) error("after cancel") end)
      print(pcall(failsLater.cancel, failsLater))
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, "")
  end)
end)

describe("the main chunk as luajit runs it", function()
  local idiom = "if pcall(debug.getlocal, 4, 1) then print('required') else print('main') end\n"

  it("answers 'main' to the pcall(debug.getlocal, 4, 1) idiom, 'required' under require", function()
    local path, dir = h.tempFile("idiom.lua", idiom)
    local r = h.runEvo({path})
    assert.equal(r.stdout, "main\n", r.stderr)
    local lj = h.spawn("/usr/bin/luajit", {path})
    assert.equal(lj.stdout, r.stdout, "the same answer as luajit")
    r = h.runEvo({"-e", "package.path = '" .. dir .. "/?.lua;' .. package.path; require('idiom')"})
    assert.equal(r.stdout, "required\n", r.stderr)
  end)

  it("prints nothing for error() or error(nil) at top level, as luajit, and exits 1", function()
    for _, chunk in ipairs({"error()", "error(nil)"}) do
      local r = h.runEvo({"-e", "print('x'); " .. chunk})
      local lj = h.spawn("/usr/bin/luajit", {"-e", "print('x'); " .. chunk})
      assert.equal(r.code, 1, chunk)
      assert.equal(r.code, lj.code)
      assert.equal(r.stdout, "x\n")
      assert.equal(r.stderr, "", chunk)
      assert.equal(lj.stderr, "")
    end
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
