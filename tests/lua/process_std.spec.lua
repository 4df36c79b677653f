-- process.stdin, process.stdout, process.stderr, process.env, argv, exitCode
-- and the rest of `process` about this process. Each case runs evo as a
-- child, in both Io modes, with its standard streams on pipes (written or
-- read slowly by Python), files, /dev/null, a closed descriptor or a
-- pseudo-terminal.
local h = require("helpers")

local peer = h.root .. "/tests/fixtures/stdio_peer.py"
local python = "/usr/bin/python3"
local modes = {"evented", "blocking"}

local function script(name, text) return (h.tempFile(name, text)) end

-- sh(cmdline, ...): runs /bin/sh -c cmdline with $0 = evo and $1... = the rest
local function sh(cmdline, ...)
  return h.spawn("/bin/sh", {"-c", cmdline, h.evo, ...})
end

local function runPeer(mode, ...)
  local r = h.spawn(python, {peer, mode, h.evo, ...}, {timeout = 60})
  assert.equal(r.code, 0, r.stderr)
  return (r.stdout:gsub("\n$", ""))
end

-- Reads with every kind of read the Stream has; prints what each gave.
local readAll = script("reads.lua", [[
local process = require("process")
local task = require("task")
local ticks = 0
local ticker = task.mode() == "evented" and task.async(function()
  while true do task.sleep(0.01); ticks = ticks + 1 end
end)
local a = process.stdin:readLine()
local b = process.stdin:read(5)
local c = process.stdin:readUntil("|")
local lines = {}
for line in process.stdin:lines() do lines[#lines + 1] = line end
local after = {process.stdin:readLine()}
if ticker then ticker:cancel() end
print(("%s/%s/%s/%s/%d"):format(a, b, c, table.concat(lines, ","), #after))
io.stderr:write("ticks ", ticks, "\n")
]])

local pieces = {"hel", "lo\nwo", "rl", "d!|x", "\ny\r\n", "z"}

describe("process.stdin", function()
  for _, mode in ipairs(modes) do
    it("reads a pipe written slowly in pieces (" .. mode .. ")", function()
      local r = h.runEvo({"--io=" .. mode, readAll}, {stdin = pieces, typingDelay = 0.05})
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, "hello/world/!/x,y,z/0\n")
      local ticks = tonumber(r.stderr:match("ticks (%d+)"))
      -- evented: the read suspends only its task, so the ticker ran meanwhile
      if mode == "evented" then assert.truthy(ticks > 5, r.stderr) else assert.equal(ticks, 0) end
    end)

    it("reads a regular file with the same results (" .. mode .. ")", function()
      local path = h.tempFile("input.txt", table.concat(pieces))
      local r = sh('exec "$0" --io=$1 "$2" < "$3"', mode, readAll, path)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, "hello/world/!/x,y,z/0\n")
    end)

    it("reads a large file and a large pipe to the end (" .. mode .. ")", function()
      local count = script("count.lua", [[
        local process = require("process")
        local n, bytes = 0, 0
        for line in process.stdin:lines() do n = n + 1; bytes = bytes + #line end
        print(n, bytes)
      ]])
      local line = string.rep("0123456789", 10) .. "\n"
      local path = h.tempFile("big.txt", string.rep(line, 30000))  -- 3 MB: past the 1 MiB read buffer
      local r = sh('exec "$0" --io=$1 "$2" < "$3"', mode, count, path)
      assert.equal(r.stdout, "30000\t3000000\n", r.stderr)
      r = sh('cat "$3" | "$0" --io=$1 "$2"', mode, count, path)
      assert.equal(r.stdout, "30000\t3000000\n", r.stderr)
    end)

    it("gives the end at once on /dev/null and on a closed stdin (" .. mode .. ")", function()
      local s = script("empty.lua", [[
        local process = require("process")
        print(process.stdin:readLine(), process.stdin:read(), process.stdin:readAll() == "")
      ]])
      local r = sh('exec "$0" --io=$1 "$2" < /dev/null', mode, s)
      assert.equal(r.stdout, "nil\tnil\ttrue\n", r.stderr)
      r = sh('exec "$0" --io=$1 "$2" <&-', mode, s)
      assert.equal(r.stdout, "nil\tnil\ttrue\n", r.stderr)
    end)

    it("reads a terminal, leaving its modes as they were (" .. mode .. ")", function()
      local s = script("tty.lua", [[
        local process = require("process")
        local line = process.stdin:readLine()
        process.stdout:write("got [", tostring(line), "]\n")
        print("next", process.stdin:readLine())
      ]])
      assert.equal(runPeer("pty", "--io=" .. mode, s),
        [['typed line\r\ngot [typed line]\r\nnext\tnil\r\n' 0 modes-kept]])
    end)

    it("does not keep the process alive once nobody reads (" .. mode .. ")", function()
      local s = script("one.lua", [[print(require("process").stdin:readLine())]])
      assert.equal(runPeer("alive", "--io=" .. mode, s), "exited fast 'one\\n' 0")
      s = script("untouched.lua", [[local _ = require("process").stdin; print("untouched")]])
      assert.equal(runPeer("alive", "--io=" .. mode, s), "exited fast 'untouched\\n' 0")
    end)

    it("reads a socket, and puts its flags back at exit (" .. mode .. ")", function()
      local s = script("socket.lua", [[
        local process = require("process")
        local task = require("task")
        local ticks = 0
        local ticker = task.mode() == "evented" and task.async(function()
          while true do task.sleep(0.01); ticks = ticks + 1 end
        end)
        local t = {}
        for line in process.stdin:lines() do t[#t + 1] = line end
        if ticker then ticker:cancel() end
        print(table.concat(t, ","), ticks > 3)
      ]])
      -- evented: the shared description is non-blocking while evo runs (a
      -- socket cannot be reopened), and blocking again after
      local evented = mode == "evented"
      assert.equal(runPeer("socket", "--io=" .. mode, s), ("'one,two,three\\t%s\\n' 0 nonblock-during %s nonblock-after False")
        :format(tostring(evented), evented and "True" or "False"))
    end)

    it("leaves the pipes it shares with its parent blocking (" .. mode .. ")", function()
      local s = script("flags.lua", [[
        local p = require("process")
        p.stdout:write(p.stdin:readLine(), "\n")
        p.stderr:write("e\n")
      ]])
      assert.equal(runPeer("flags", "--io=" .. mode, s), "stdin-nonblock False stdout-nonblock False 'x\\ne\\n' 0")
    end)
  end

  it("times out and is cancelled like any Stream read, then reads on", function()
    local s = script("cancel.lua", [[
      local process = require("process")
      local task = require("task")
      print(select(2, task.timeout(0.1, process.stdin.readLine, process.stdin)).code)
      print(process.stdin:readLine())
      process.stdin:settimeout(0.1)
      print(select(2, process.stdin:readLine()).code)
    ]])
    local r = h.runEvo({s}, {stdin = {"late\n"}, typingDelay = 0.4, timeout = 5})
    assert.equal(r.stdout, "Timeout\nlate\nTimeout\n", r.stderr)
  end)

  it("is one object, made on first use, that cannot be replaced", function()
    local r = h.runEvo({"-e", [[
      local process = require("process")
      print(rawget(process, "stdin"), process.stdin == process.stdin, getmetatable(process.stdout).__name)
      print(pcall(function() process.stdout = 1 end))
    ]]})
    assert.match(r.stdout, "^nil\ttrue\tStream\nfalse\t[^\n]*process.stdout cannot be replaced\n$")
  end)

  it("names read and setHighWater, not a native, when their count is out of range", function()
    local r = h.runEvo({"-e", [[
      local process = require("process")
      print(select(2, pcall(process.stdin.read, process.stdin, -1)))
      print(select(2, pcall(process.stdin.read, process.stdin, 0/0)))
      print(select(2, pcall(process.stdout.setHighWater, process.stdout, -1)))
      print(select(2, pcall(process.stdout.setHighWater, process.stdout, 0/0)))
    ]]})
    assert.equal(r.stdout, "bad argument #1 to 'read' (byte count must be 0 or more)\n" ..
      "bad argument #1 to 'read' (byte count must be 0 or more)\n" ..
      "bad argument #1 to 'setHighWater' (bytes must be 1 or more)\n" ..
      "bad argument #1 to 'setHighWater' (bytes must be 1 or more)\n", r.stderr)
  end)
end)

local producer = script("produce.lua", [[
local process = require("process")
local task = require("task")
local ticks = 0
local ticker = task.mode() == "evented" and task.async(function()
  while true do task.sleep(0.01); ticks = ticks + 1 end
end)
local chunk = string.rep("x", 65535) .. "\n"
local total = tonumber(arg[1]) * 1048576
print("start")
for _ = 1, total / #chunk do assert(process.stdout:write(chunk)) end
print("end")
if ticker then ticker:cancel() end
io.stderr:write(("ticks %d maxrss %d\n"):format(ticks, process.memoryUsage().maxRss))
]])

local interleaved = script("interleave.lua", [[
local process = require("process")
local big = string.rep("y", 100000)
for i = 1, 300 do
  if i % 3 == 0 then print(i .. " " .. big)
  elseif i % 3 == 1 then assert(process.stdout:write(i, " ", big, "\n"))
  else io.write(i, " ", big, "\n") end
end
print("done")
if arg[1] == "os.exit" then os.exit(0) end
if arg[1] == "process.exit" then process.exit(0) end
]])

describe("process.stdout and process.stderr", function()
  for _, mode in ipairs(modes) do
    it("write 200 MB to a slow reader in bounded memory (" .. mode .. ")", function()
      local r = h.spawn(python, {peer, "slowread", h.evo, "--io=" .. mode, producer, "200"}, {timeout = 60})
      assert.equal(r.code, 0, r.stderr)
      -- "end\n" after the 200 MiB; evo exits 0
      assert.equal(r.stdout, ("start %d xxx|end| 0\n"):format(200 * 1048576 + 4))
      local ticks, maxrss = r.stderr:match("ticks (%d+) maxrss (%d+)")
      assert.truthy(tonumber(maxrss) < 64 * 1048576, "peak RSS " .. tostring(maxrss))
      -- evented: a full pipe suspends the writing task only
      if mode == "evented" then assert.truthy(tonumber(ticks) > 10, r.stderr) end
    end)

    for _, ending in ipairs({"end", "os.exit", "process.exit"}) do
      it("keep the order of print, io.write and stdout:write, ending by " .. ending .. " (" .. mode .. ")", function()
        assert.equal(runPeer("ordered", "--io=" .. mode, interleaved, ending), "ok 300 0 0")
      end)
    end

    it("lose nothing queued where the writer could not wait (" .. mode .. ")", function()
      local s = script("queued.lua", [[
        local process = require("process")
        local chunk = string.rep("z", 1048576)
        print("head")
        -- a gsub callback cannot yield: each write is queued, not waited for
        string.gsub(string.rep(".", 20), ".", function() process.stdout:write(chunk) end)
        print("tail")
        if arg[1] == "exit" then os.exit(3) end
        if arg[1] == "error" then error("boom") end
      ]])
      for ending, code in pairs({none = 0, exit = 3, error = 1}) do
        local r = h.spawn(python, {peer, "slowread", h.evo, "--io=" .. mode, s, ending}, {timeout = 30})
        assert.equal(r.stdout, ("head %d zzztail| %d\n"):format(20 * 1048576 + 5, code), ending)
      end
    end)

    it("end the process by SIGPIPE when stdout's reader is gone, as print does (" .. mode .. ")", function()
      assert.equal(runPeer("epipe", "--io=" .. mode, "-e",
        [[local p = require("process") while true do p.stdout:write("line\n") end]]), "line -13 ")
      assert.equal(runPeer("epipe", "--io=" .. mode, "-e",
        [[while true do print("line") end]]), "line -13 ")
    end)

    it("return EPIPE from stderr, as io.stderr:write does (" .. mode .. ")", function()
      local r = sh([[exec "$0" --io=$1 -e '
        local p = require("process")
        local ok, err
        repeat ok, err = p.stderr:write("line\n") until not ok
        print(err.code)' 2>&1 >"$2" | head -1 >/dev/null; cat "$2"]], mode, h.tempFile("out.txt", ""))
      assert.equal(r.stdout, "EPIPE\n")
    end)

    it("leave fd 0 and 1 open when closed (" .. mode .. ")", function()
      local r = sh([[echo still-open | "$0" --io=$1 -e '
        local p = require("process")
        p.stdout:write("a\n"); p.stdout:close()
        print(p.stdout:write("x")); print("after close")
        p.stdin:close(); print(io.read("l"))' | cat]], mode)
      assert.equal(r.stdout, "a\nnil\tClosed: the stream is closed\nafter close\nstill-open\n", r.stderr)
    end)

    it("write to a file and to /dev/null, in order with print (" .. mode .. ")", function()
      local s = script("tofile.lua", [[
        local process = require("process")
        io.write("a"); process.stdout:write("b"); print("c"); process.stdout:write("d\n")
        io.stderr:write("1"); process.stderr:write("2\n")
      ]])
      local out = h.tempFile("out.txt", "")
      local r = sh('"$0" --io=$1 "$2" > "$3" 2>&1 && cat "$3" && "$0" --io=$1 "$2" >/dev/null 2>&1 && echo null-ok',
        mode, s, out)
      assert.equal(r.stdout, "abc\nd\n12\nnull-ok\n", r.stderr)
    end)
  end
end)

describe("process.env", function()
  for _, mode in ipairs(modes) do
    it("is the live environment, seen by children (" .. mode .. ")", function()
      local r = h.runEvo({"--io=" .. mode, "-e", [[
        local process = require("process")
        process.env.EVO_SPEC_X = "one"
        print(process.env.EVO_SPEC_X, os.getenv("EVO_SPEC_X"), (process.exec("echo $EVO_SPEC_X")))
        process.env.EVO_SPEC_X = 42
        print(process.env.EVO_SPEC_X, (process.exec("echo $EVO_SPEC_X")))
        local child = assert(process.spawn("/bin/sh", {"-c", "echo ${EVO_SPEC_X-unset}"}, {stdin = "ignore"}))
        process.env.EVO_SPEC_X = nil
        print(child.stdout:readAll(), process.env.EVO_SPEC_X, (process.exec("echo ${EVO_SPEC_X-unset}")))
        child:wait()
        print(process.env().HOME == os.getenv("HOME"), process.env.HOME == os.getenv("HOME"), process.env[1])
      ]]}, {env = {HOME = "/spec/home"}})
      assert.equal(r.stdout, "one\tone\tone\n\n42\t42\n\n42\n\tnil\tunset\n\ntrue\ttrue\tnil\n", r.stderr)
    end)
  end

  it("rejects names and values the environment cannot hold", function()
    local r = h.runEvo({"-e", [[
      local env = require("process").env
      local function try(fn) print((select(2, pcall(fn)):gsub("^%(command line%):%d+: ", ""))) end
      try(function() env[1] = "x" end)
      try(function() env["A=B"] = "x" end)
      try(function() env[""] = "x" end)
      try(function() env.A = {} end)
      try(function() env.A = "a\0b" end)
    ]]})
    assert.equal(h.lines(r.stdout), {
      "bad argument #1 to 'process.env' (string expected, got number)",
      "bad argument #1 to 'process.env' (invalid environment variable name 'A=B')",
      "bad argument #1 to 'process.env' (invalid environment variable name '')",
      "bad argument #2 to 'process.env' (string expected, got table)",
      "bad argument #2 to 'process.env' (value contains a NUL byte)",
    }, r.stderr)
  end)

  it("has no variable whose name holds a NUL or '=' (getenv would read another)", function()
    local r = h.runEvo({"-e", [[
      local env = require("process").env
      print(env["HOME\0X"], env["HOME=X"], env[""], env.HOME ~= nil)
    ]]})
    assert.equal(r.stdout, "nil\tnil\tnil\ttrue\n", r.stderr)
  end)
end)

describe("process facts", function()
  it("argv is Node's: the evo binary, the script, then the script's arguments (as arg)", function()
    local s = script("argv.lua", [[
      local p = require("process")
      print(#p.argv, p.argv[1] == p.execPath, p.argv[2] == arg[0], p.argv[3], p.argv[4], arg[1], arg[2])
    ]])
    local r = h.runEvo({s, "one", "two"})
    assert.equal(r.stdout, "4\ttrue\ttrue\tone\ttwo\tone\ttwo\n", r.stderr)
  end)

  it("pid, ppid, platform, arch, memoryUsage, uptime", function()
    local r = h.runEvo({"-e", [[
      local p = require("process")
      local uv = require("uv")
      local m = p.memoryUsage()
      print(p.pid == uv.os_getpid(), p.ppid == uv.os_getppid(), p.platform, p.arch == jit.arch)
      print(m.rss > 1e6, m.heapUsed > 1e4, m.maxRss >= m.rss, p.uptime() > 0 and p.uptime() < 5)
      local before = p.memoryUsage().heapUsed
      local keep = {} for i = 1, 1e5 do keep[i] = {i} end
      print(p.memoryUsage().heapUsed > before + 1e6, #keep)
    ]]})
    assert.equal(r.stdout, "true\ttrue\tlinux\ttrue\ntrue\ttrue\ttrue\ttrue\ntrue\t100000\n", r.stderr)
  end)

  for _, mode in ipairs(modes) do
    it("exitCode is the status of a run that ends by itself; failures still exit 1 (" .. mode .. ")", function()
      local io = "--io=" .. mode
      assert.equal(h.runEvo({io, "-e", "require('process').exitCode = 3"}).code, 3)
      assert.equal(h.runEvo({io, "-e", "local p = require('process'); p.exitCode = 3; print(p.exitCode)"}).stdout, "3\n")
      assert.equal(h.runEvo({io, "-e", "require('process').exitCode = 3; error('x')"}).code, 1)
      assert.equal(h.runEvo({io, "-e", "local p = require('process'); p.exitCode = 3; p.exit()"}).code, 0)
      local r = h.runEvo({io, "-e", "require('process').exitCode = 'x'"})
      assert.match(r.stderr, "bad argument #1 to 'exitCode' %(number expected, got string%)")
    end)
  end

  it("exitCode refuses what no exit status can carry (256 would end the run with 0)", function()
    for _, v in ipairs({"256", "1.5", "0/0", "1/0", "-1", "1e10"}) do
      local r = h.runEvo({"-e", "require('process').exitCode = " .. v})
      assert.equal(r.code, 1, v)
      assert.match(r.stderr, "bad argument #1 to 'exitCode' %(an integer from 0 to 255 expected, got ", v)
    end
    assert.equal(h.runEvo({"-e", "require('process').exitCode = 255"}).code, 255)
  end)

  it("an unhandled task error still ends the run with 1", function()
    local r = h.runEvo({"-e", "require('task').async(function() error('lost') end)"})
    assert.equal(r.code, 1, r.stderr)
  end)
end)
