-- `evo --watch`: the watcher runs the script as a child and restarts it when
-- a file the child loaded (require, dofile, loadfile; also from an Evo
-- process the child started) or a file under --watch-path changes; `evo test
-- --watch` reruns the specs. Each test runs the real binary in a temporary
-- project, edits files the way people and editors do, and reads what the
-- watcher and its children print.
local process = require("process")
local task = require("task")
local uv = require("uv")

package.path = uv.cwd() .. "/tests/lua/?.lua;" .. package.path
local helpers = require("helpers")

local EVO = helpers.evo

-- `evo --workers` comes from another branch (src/cli/supervisor.cpp): the
-- rolling-reload test runs once the binary has it.
local function hasWorkers()
  local p = io.popen("'" .. EVO .. "' --help")
  local text = p:read("*a")
  p:close()
  return text:find("--workers", 1, true) ~= nil
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function exists(path) return uv.fs_stat(path) ~= nil end

-- A project in a fresh directory: files = {["rel/path"] = text}.
local function project(files)
  local dir = helpers.tempDir("evo-watch-spec-")
  for name, text in pairs(files) do
    local sub = name:match("^(.*)/[^/]*$")
    if sub then os.execute("mkdir -p '" .. dir .. "/" .. sub .. "'") end
    write(dir .. "/" .. name, text)
  end
  return dir
end

-- Starts `evo args...` in dir; its stdout and stderr lines are collected
-- into w.out and w.err as they come.
local running = {}  -- watchers not stopped yet: killed after each test, passed or failed

local function start(dir, args)
  local child = assert(process.spawn(EVO, args, {cwd = dir, stdin = "ignore"}))
  running[#running + 1] = child
  local w = {child = child, out = {}, err = {}, dir = dir}
  local function collect(stream, sink)
    return task.async(function()
      pcall(function()  -- a test that timed out has closed the stream
        for line in stream:lines() do sink[#sink + 1] = line end
      end)
    end)
  end
  w.readers = {collect(child.stdout, w.out), collect(child.stderr, w.err)}
  return w
end

local function dump(w)
  return "\n--- stdout:\n" .. table.concat(w.out, "\n") .. "\n--- stderr:\n" .. table.concat(w.err, "\n")
end

local function count(lines, pattern)
  local n = 0
  for _, l in ipairs(lines) do
    if l:find(pattern) then n = n + 1 end
  end
  return n
end

-- Waits (10 s at most) until `lines` has `n` lines matching `pattern`.
local function waitCount(w, lines, pattern, n, seconds)
  local deadline = task.now() + (seconds or 10)
  while count(lines, pattern) < n do
    if task.now() > deadline then
      error(("waited for %d lines matching %q"):format(n, pattern) .. dump(w), 2)
    end
    task.sleep(0.05)
  end
  -- The watcher learns the child's files from a report it reads on inotify:
  -- give it a moment before the test edits them.
  task.sleep(0.3)
end

-- SIGTERM to the watcher: its exit status once it has ended (8 s at most).
local function stop(w, signal, seconds)
  w.child:kill(signal or "TERM")
  local code, sig = task.timeout(seconds or 8, function() return w.child:wait() end)
  if code == nil then
    w.child:kill("KILL")
    w.child:wait()
  end
  for _, r in ipairs(w.readers) do r:await() end
  return code, sig
end

local function alive(pid) return (uv.kill(pid, 0)) == 0 end

local function pids(lines)
  local out = {}
  for _, l in ipairs(lines) do
    local pid = l:match("pid=(%d+)")
    if pid then out[#out + 1] = tonumber(pid) end
  end
  return out
end

-- A script that requires lib/foo.lua, prints a line and stays up (a server, say).
local SERVER = [[
package.path = "lib/?.lua;" .. package.path
local foo = require("foo")
print("run v=" .. foo.v .. " pid=" .. require("process").pid)
io.stdout:flush()
require("timer").after(60, function() end)
]]

afterEach(function()
  for _, child in ipairs(running) do
    -- TERM first, so that the watcher stops its own child and cleans up
    if child:kill("TERM") and not task.timeout(4, function() return child:wait() end) then
      child:kill("KILL")
      child:wait()
    end
  end
  running = {}
end)

describe("evo --watch", function()
  it("restarts the script when the script changes, with one line on stderr", function()
    local dir = project({["main.lua"] = SERVER, ["lib/foo.lua"] = "return {v = 1}"})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run v=1", 1)
    write(dir .. "/main.lua", SERVER .. "\n-- edited\n")
    waitCount(w, w.out, "^run v=1", 2)
    assert.equal(w.err, {"[evo] restarting: main.lua changed"})
    assert.equal(stop(w), 143)
  end)

  it("restarts on a change to a required module, not on another file in its directory", function()
    local dir = project({["main.lua"] = SERVER, ["lib/foo.lua"] = "return {v = 1}", ["lib/notes.txt"] = "a"})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run v=1", 1)
    write(dir .. "/lib/notes.txt", "b")
    write(dir .. "/lib/bar.lua", "return {}")  -- a module nobody required
    task.sleep(0.8)
    assert.equal(#w.out, 1, "an unrelated file restarted the script" .. dump(w))
    assert.equal(#w.err, 0, dump(w))
    write(dir .. "/lib/foo.lua", "return {v = 2}")
    waitCount(w, w.out, "^run v=2", 1)
    assert.equal(w.err, {"[evo] restarting: lib/foo.lua changed"})
    assert.equal(stop(w), 143)
  end)

  it("watches files loaded with dofile and loadfile, and those an Evo child process loads", function()
    local dir = project({
      ["main.lua"] = [[
        local conf = dofile("conf.lua")
        local extra = assert(loadfile("extra.lua"))()
        local process = require("process")
        -- an Evo process of its own (as a worker would be): it reports too
        local sub = assert(process.spawn(process.execPath, {"sub.lua"}, {stdout = "inherit", stderr = "inherit"}))
        sub:wait()
        print("run conf=" .. conf .. " extra=" .. extra)
        io.stdout:flush()
        require("timer").after(60, function() end)
      ]],
      ["conf.lua"] = "return 'c1'",
      ["extra.lua"] = "return 'e1'",
      ["sub.lua"] = "package.path = 'sublib/?.lua;' .. package.path print('sub ' .. require('subdep'))",
      ["sublib/subdep.lua"] = "return 's1'",
    })
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run conf=c1 extra=e1", 1)
    assert.equal(w.out[1], "sub s1")
    write(dir .. "/conf.lua", "return 'c2'")
    waitCount(w, w.out, "^run conf=c2 extra=e1", 1)
    write(dir .. "/extra.lua", "return 'e2'")
    waitCount(w, w.out, "^run conf=c2 extra=e2", 1)
    write(dir .. "/sublib/subdep.lua", "return 's2'")
    waitCount(w, w.out, "^sub s2", 1)
    assert.equal(w.err, {
      "[evo] restarting: conf.lua changed",
      "[evo] restarting: extra.lua changed",
      "[evo] restarting: sublib/subdep.lua changed",
    })
    assert.equal(stop(w), 143)
  end)

  it("--watch-path restarts on any file below a directory (new subdirectories too), not on hidden ones", function()
    local dir = project({
      ["main.lua"] = [[
        local f = assert(io.open("config/app.conf"))
        print("run conf=" .. f:read("*l"))
        f:close()
        io.stdout:flush()
        require("timer").after(60, function() end)
      ]],
      ["config/app.conf"] = "one\n",
    })
    local w = start(dir, {"--watch-path", "config", "main.lua"})
    waitCount(w, w.out, "^run conf=one", 1)
    write(dir .. "/config/.app.conf.swp", "editor swap file")
    write(dir .. "/config/app.conf~", "backup")
    task.sleep(0.8)
    assert.equal(#w.out, 1, "a hidden or backup file restarted the script" .. dump(w))
    write(dir .. "/config/app.conf", "two\n")
    waitCount(w, w.out, "^run conf=two", 1)
    assert.equal(w.err, {"[evo] restarting: config/app.conf changed"})
    os.execute("mkdir '" .. dir .. "/config/more'")
    task.sleep(0.3)
    write(dir .. "/config/more/x.conf", "x")
    waitCount(w, w.out, "^run conf=two", 2)
    assert.equal(w.err[2], "[evo] restarting: config/more/x.conf changed")
    assert.equal(stop(w), 143)
  end)

  it("debounces: several writes in a burst are one restart", function()
    local dir = project({["main.lua"] = SERVER, ["lib/foo.lua"] = "return {v = 1}"})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run v=1", 1)
    for i = 2, 6 do
      write(dir .. "/lib/foo.lua", "return {v = " .. i .. "}")
      task.sleep(0.03)
    end
    write(dir .. "/main.lua", SERVER .. "\n-- edited\n")
    waitCount(w, w.out, "^run v=6", 1)
    task.sleep(0.7)
    assert.equal(#w.out, 2, dump(w))
    assert.equal(w.err, {"[evo] restarting: lib/foo.lua changed (and 1 more)"})
    assert.equal(stop(w), 143)
  end)

  it("follows editors that rename a new file over the old one, or delete and create it", function()
    local dir = project({["main.lua"] = SERVER, ["lib/foo.lua"] = "return {v = 1}"})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run v=1", 1)
    write(dir .. "/lib/.foo.lua.tmp", "return {v = 2}")
    assert(os.rename(dir .. "/lib/.foo.lua.tmp", dir .. "/lib/foo.lua"))
    waitCount(w, w.out, "^run v=2", 1)
    -- the new file (a new inode) is watched as well as the old one was
    write(dir .. "/lib/foo.lua.new", "return {v = 3}")
    assert(os.rename(dir .. "/lib/foo.lua.new", dir .. "/lib/foo.lua"))
    waitCount(w, w.out, "^run v=3", 1)
    assert(os.remove(dir .. "/lib/foo.lua"))
    write(dir .. "/lib/foo.lua", "return {v = 4}")
    waitCount(w, w.out, "^run v=4", 1)
    assert.equal(#w.out, 4, dump(w))
    assert.equal(count(w.err, "^%[evo%] restarting: lib/foo.lua changed$"), 3, dump(w))
    assert.equal(stop(w), 143)
  end)

  it("reports a crash, waits for a change, then runs the fixed script", function()
    local dir = project({["main.lua"] = SERVER, ["lib/foo.lua"] = "return {v = = 1}"})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.err, "waiting for a change", 1)
    assert.equal(#w.out, 0)
    assert.truthy(table.concat(w.err, "\n"):find("lib/foo.lua:1: unexpected symbol", 1, true), dump(w))
    assert.equal(w.err[#w.err], "[evo] main.lua failed (status 1); waiting for a change to restart")
    write(dir .. "/lib/foo.lua", "return {v = 1}")
    waitCount(w, w.out, "^run v=1", 1)
    assert.equal(w.err[#w.err], "[evo] restarting: lib/foo.lua changed")
    assert.equal(stop(w), 143)
  end)

  it("says so when the script ends by itself, and runs it again on a change", function()
    local dir = project({["main.lua"] = "print('done ' .. require('process').pid)"})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.err, "waiting for a change", 1)
    assert.equal(w.err, {"[evo] main.lua exited (status 0); waiting for a change to restart"})
    write(dir .. "/main.lua", "print('again') os.exit(3)")
    waitCount(w, w.err, "waiting for a change", 2)
    assert.equal(w.out[2], "again")
    assert.equal(w.err[3], "[evo] main.lua failed (status 3); waiting for a change to restart")
    assert.equal(stop(w, "INT"), 130)
  end)

  it("passes the other options and the script's arguments on to the child", function()
    local dir = project({
      ["main.lua"] = "print('mode=' .. require('task').mode() .. ' args=' .. table.concat(arg, ',') .. ' watch=' .. "
        .. "tostring(os.getenv('EVO_WATCH_REPORT') ~= nil)) io.stdout:flush() require('timer').after(60, function() end)",
    })
    local w = start(dir, {"--io=blocking", "--watch", "main.lua", "--watch", "b"})
    waitCount(w, w.out, "^mode=", 1)
    assert.equal(w.out[1], "mode=blocking args=--watch,b watch=true")
    assert.equal(stop(w), 143)
  end)

  it("on SIGTERM stops its child, exits 143 and leaves nothing behind", function()
    local dir = project({["main.lua"] = [[
      local report = os.getenv("EVO_WATCH_REPORT")
      print("run pid=" .. require("process").pid .. " report=" .. report)
      io.stdout:flush()
      require("timer").after(60, function() end)
    ]]})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run ", 1)
    local pid = pids(w.out)[1]
    local report = w.out[1]:match("report=(.*)$")
    assert.truthy(alive(pid))
    assert.truthy(exists(report))
    assert.equal(stop(w), 143)
    assert.falsy(alive(pid), "the child outlived the watcher")
    assert.falsy(exists(report), "the report file was left behind")
    assert.falsy(exists(report:match("^(.*)/[^/]*$")), "the report directory was left behind")
  end)

  it("kills a child that ignores SIGTERM after 5 s", function()
    local dir = project({["main.lua"] = [[
      require("process").signal("SIGTERM")  -- watched, and ignored
      print("run pid=" .. require("process").pid)
      io.stdout:flush()
      require("timer").after(60, function() end)
    ]]})
    local w = start(dir, {"--watch", "main.lua"})
    waitCount(w, w.out, "^run ", 1)
    local pid = pids(w.out)[1]
    local t0 = task.now()
    assert.equal(stop(w), 143)
    local took = task.now() - t0
    assert.truthy(took > 4.5 and took < 7, "stopped after " .. took .. " s")
    assert.equal(w.err, {"[evo] the child did not stop within 5 s: killing it"})
    assert.falsy(alive(pid))
  end, {timeout = 15})

  it("refuses a command line it cannot watch", function()
    local dir = project({})
    local r = helpers.runEvo({"--watch"}, {cwd = dir})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "needs a script")
    r = helpers.runEvo({"--watch-path=nowhere", "x.lua"}, {cwd = dir})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "nowhere: not a directory")
    r = helpers.runEvo({"x.lua", "--watch-path"}, {cwd = dir})  -- the script's own arguments: not ours
    assert.equal(r.code, 1)
    assert.match(r.stderr, "cannot open x.lua")
  end)
end)

describe("evo test --watch", function()
  it("reruns the specs when a spec, a module it requires or a new spec file changes", function()
    local dir = project({
      ["spec/calc.spec.lua"] = [[
        package.path = "src/?.lua;" .. package.path
        describe("calc", function()
          it("adds", function() assert.equal(require("calc").add(2, 2), 4) end)
        end)
      ]],
      ["src/calc.lua"] = "return {add = function(a, b) return a + b end}",
    })
    local w = start(dir, {"test", "--watch", "spec"})
    waitCount(w, w.err, "waiting for a change", 1)
    assert.equal(w.out[#w.out], "1 passed, 0 failed")
    assert.equal(w.err, {"[evo] the tests passed; waiting for a change to rerun"})
    write(dir .. "/src/calc.lua", "return {add = function(a, b) return a - b end}")
    waitCount(w, w.err, "waiting for a change", 2)
    assert.equal(w.out[#w.out], "0 passed, 1 failed")
    assert.equal(w.err[2], "[evo] rerunning tests: src/calc.lua changed")
    assert.equal(w.err[3], "[evo] the tests failed (status 1); waiting for a change to rerun")
    write(dir .. "/spec/more.spec.lua", "describe('more', function() it('runs', function() end) end)")
    waitCount(w, w.err, "waiting for a change", 3)
    assert.equal(w.out[#w.out], "1 passed, 1 failed")
    assert.equal(w.err[4], "[evo] rerunning tests: spec/more.spec.lua changed")
    assert.equal(stop(w), 143)
  end)
end)

describe("evo test --watch without paths", function()
  it("watches busted's spec/ directory", function()
    local dir = project({["spec/one_spec.lua"] = "describe('one', function() it('runs', function() end) end)"})
    local w = start(dir, {"test", "--watch"})
    waitCount(w, w.err, "waiting for a change", 1)
    assert.equal(w.out[#w.out], "1 passed, 0 failed")
    write(dir .. "/spec/two_spec.lua", "describe('two', function() it('runs', function() end) end)")
    waitCount(w, w.err, "waiting for a change", 2)
    assert.equal(w.out[#w.out], "2 passed, 0 failed")
    assert.equal(w.err[2], "[evo] rerunning tests: spec/two_spec.lua changed")
    assert.equal(stop(w), 143)
  end)
end)

describe("evo --watch --workers", function()
  local test = hasWorkers() and it or it.skip
  test("reloads the workers with SIGHUP (a rolling restart) instead of restarting the supervisor", function()
    local dir = project({
      ["main.lua"] = [[
        package.path = "lib/?.lua;" .. package.path
        local process = require("process")
        print("run v=" .. require("foo").v .. " worker=" .. tostring(process.workerId) .. " pid=" .. process.pid
          .. " ppid=" .. process.ppid)
        io.stdout:flush()
        require("timer").after(60, function() end)
      ]],
      ["lib/foo.lua"] = "return {v = 1}",
    })
    local w = start(dir, {"--watch", "--workers", "2", "--grace", "1", "main.lua"})
    waitCount(w, w.out, "^run v=1", 2)
    local supervisor = tonumber(w.out[1]:match("ppid=(%d+)"))
    write(dir .. "/lib/foo.lua", "return {v = 2}")
    waitCount(w, w.out, "^run v=2", 2, 20)
    assert.equal(w.err[1], "[evo] reloading workers: lib/foo.lua changed")
    for _, line in ipairs(w.out) do
      assert.equal(tonumber(line:match("ppid=(%d+)")), supervisor, "the supervisor was restarted" .. dump(w))
    end
    -- the supervisor drains its workers (up to its --grace) before it exits
    assert.equal(stop(w, "TERM", 20), 143, dump(w))
    for _, pid in ipairs(pids(w.out)) do assert.falsy(alive(pid), "a worker outlived the watcher") end
    assert.falsy(alive(supervisor))
  end, {timeout = 50})
end)
