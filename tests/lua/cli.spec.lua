-- The evo command line: arguments, exit codes, errors, signals.
local h = require("helpers")

describe("evo script.lua", function()
  it("sets arg exactly as lua and luajit do, and passes ... to the main chunk", function()
    local path = h.tempFile("args.lua", [[
      print(arg[-1], arg[0], arg[1], arg[2], #arg)
      print(select("#", ...), ...)
    ]])
    local r = h.runEvo({path, "one", "two"})
    assert.equal(r.code, 0, r.stderr)
    local lines = h.lines(r.stdout)
    assert.equal(lines[1], h.evo .. "\t" .. path .. "\tone\ttwo\t2")
    assert.equal(lines[2], "2\tone\ttwo")
  end)

  it("puts options before the script at negative indices", function()
    local path = h.tempFile("args.lua", "print(arg[-2], arg[-1], arg[0], arg[1])")
    local r = h.runEvo({"--debug", path, "x"})
    assert.equal(h.lines(r.stdout)[1], h.evo .. "\t--debug\t" .. path .. "\tx")
  end)

  it("honours os.exit(n)", function()
    local r = h.runEvo({"-e", "io.write('before'); os.exit(7)"})
    assert.equal(r.code, 7)
    assert.equal(r.stdout, "before", "buffered output is flushed on exit")
  end)

  it("honours os.exit from inside a luv callback", function()
    local r = h.runEvo({"-e", "local uv = require('uv'); local t = uv.new_timer(); t:start(5, 0, function() os.exit(3) end)"})
    assert.equal(r.code, 3)
  end)

  it("reports an uncaught error with a traceback naming file:line and exits 1", function()
    local path = h.tempFile("boom.lua", "local function f()\n  error('boom')\nend\nf()\n")
    local r = h.runEvo({path})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "^evo: [^\n]*boom%.lua:2: boom\n")
    assert.match(r.stderr, "stack traceback:")
    assert.match(r.stderr, "boom%.lua:4: in main chunk")
  end)

  it("reports an error raised in a luv callback the same way and exits 1", function()
    local path = h.tempFile("cb.lua", "local uv = require('uv')\nlocal t = uv.new_timer()\nt:start(1, 0, function()\n  error('late')\nend)\n")
    local r = h.runEvo({path})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "^evo: [^\n]*cb%.lua:4: late\n")
    assert.match(r.stderr, "stack traceback:")
  end)

  it("reports an error object with __tostring through it", function()
    local r = h.runEvo({"-e", "error(setmetatable({}, {__tostring = function() return 'custom failure' end}))"})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "^evo: custom failure\n")
  end)

  it("survives an error object whose __tostring itself fails", function()
    local r = h.runEvo({"-e", "error(setmetatable({}, {__tostring = function() error('worse') end}))"})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "^evo: %(error object whose __tostring failed%)\n")
  end)

  it("concatenates Evo's error objects on either side of ..", function()
    local r = h.runEvo({"-e", [[
      local err = require("evo.errors").new("ENOENT", "no such file")
      print("failed: " .. err)
      print(err .. " (while opening)")
      print(err .. err)
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "failed: ENOENT: no such file\nENOENT: no such file (while opening)\n" ..
      "ENOENT: no such fileENOENT: no such file\n")
  end)

  it("prints a table raised at top level with pretty", function()
    local r = h.runEvo({"-e", "error({code = 42, why = 'bad input', list = {1, 2}})"})
    assert.equal(r.code, 1)
    assert.equal(r.stderr:match("^[^\n]*"), 'evo: {code = 42, list = {1, 2}, why = "bad input"}')
    assert.match(r.stderr, "\nstack traceback:\n")
  end)

  it("names file:line of a syntax error and exits 1", function()
    local path = h.tempFile("syntax.lua", "local a = 1\nlocal = 2\n")
    local r = h.runEvo({path})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "^evo: [^\n]*syntax%.lua:2: ")
  end)

  it("says it cannot open a missing script and exits 1", function()
    local r = h.runEvo({"nofile.lua"})
    assert.equal(r.code, 1)
    assert.equal(r.stderr, "evo: cannot open nofile.lua: No such file or directory\n")
  end)

  it("prints usage for an unknown option and exits 2", function()
    local r = h.runEvo({"--bogus"})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "unknown option '%-%-bogus'")
    assert.match(r.stderr, "usage: evo")
  end)

  it("runs the script given after --", function()
    local path = h.tempFile("dash.lua", "print('ran', ...)")
    local r = h.runEvo({"--", path, "-x"})
    assert.equal(r.stdout, "ran\t-x\n")
  end)
end)

describe("evo -e / - / -l", function()
  it("runs -e chunks in order before the script", function()
    local path = h.tempFile("after.lua", "print('script', x)")
    local r = h.runEvo({"-e", "x = 1", "-e", "x = x + 1; print('chunk', x)", path})
    assert.equal(r.stdout, "chunk\t2\nscript\t2\n")
  end)

  it("reads the script from stdin with -", function()
    local r = h.runEvo({"-", "a", "b"}, {stdin = "print(arg[0], ...)"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "-\ta\tb\n")
  end)

  it("runs stdin when given no script and stdin is not a terminal", function()
    local r = h.runEvo({}, {stdin = "print(1 + 1)"})
    assert.equal(r.stdout, "2\n")
  end)

  it("loads a module into a global with -l", function()
    local r = h.runEvo({"-l", "pretty", "-e", "print(pretty.format({1, 2}))"})
    assert.equal(r.stdout, "{1, 2}\n")
  end)

  it("needs an argument after -e", function()
    local r = h.runEvo({"-e"})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "needs an argument")
  end)
end)

describe("luajit's options and LUA_INIT", function()
  local luajit = "/usr/bin/luajit"
  local function both(args, opts)
    return h.runEvo(args, opts), h.spawn(luajit, args, opts)
  end

  it("runs LUA_INIT before -e chunks and the script, as luajit", function()
    local r, lj = both({"-e", "print('chunk', x)"}, {env = {LUA_INIT = "x = 42; print('init')"}})
    assert.equal(r.stdout, "init\nchunk\t42\n", r.stderr)
    assert.equal(r.stdout, lj.stdout)
  end)

  it("runs the file named by LUA_INIT=@file", function()
    local path = h.tempFile("init.lua", "print('init file')")
    local r, lj = both({"-e", "print('chunk')"}, {env = {LUA_INIT = "@" .. path}})
    assert.equal(r.stdout, "init file\nchunk\n", r.stderr)
    assert.equal(r.stdout, lj.stdout)
  end)

  it("stops with status 1 when LUA_INIT fails", function()
    local r = h.runEvo({"-e", "print('chunk')"}, {env = {LUA_INIT = "error('bad init')"}})
    assert.equal(r.code, 1)
    assert.equal(r.stdout, "")
    assert.match(r.stderr, "^evo: LUA_INIT:1: bad init")
  end)

  it("ignores LUA_INIT (and LUA_PATH) with -E", function()
    local r, lj = both({"-E", "-e", "print('chunk', package.path:find('/nowhere/', 1, true))"},
      {env = {LUA_INIT = "print('init')", LUA_PATH = "/nowhere/?.lua"}})
    assert.equal(r.stdout, "chunk\tnil\n", r.stderr)
    assert.equal(r.stdout, lj.stdout)
  end)

  it("prints the version with -v and goes on to run the script", function()
    local path = h.tempFile("v.lua", "print('script ran')")
    local r = h.runEvo({"-v", path})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, "^Evo %d+%.%d+%.%d+\n")
    assert.match(r.stdout, "\nscript ran\n$")
    local lj = h.spawn(luajit, {"-v", path})
    assert.match(lj.stdout, "\nscript ran\n$")
  end)

  it("applies -j commands and -O flags in order, as luajit", function()
    for _, args in ipairs({
      {"-joff", "-e", "print(jit.status())"},
      {"-j", "off", "-e", "print(jit.status())"},
      {"-O-fold,-cse", "-e", "print(jit.status())"},
      {"-O1", "-e", "print(jit.status())"},
      {"-e", "print(jit.status())", "-joff", "-e", "print(jit.status())"},
    }) do
      local r, lj = both(args)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, lj.stdout, table.concat(args, " "))
    end
  end)

  it("loads a jit.* module for -jNAME=args (here jit.v writing to a file)", function()
    local _, dir = h.tempFile("x", "")
    local r = h.runEvo({"-jv=" .. dir .. "/v.txt", "-e", "local x = 0 for i = 1, 1000 do x = x + i end"})
    assert.equal(r.code, 0, r.stderr)
    local f = assert(io.open(dir .. "/v.txt"))
    assert.match(f:read("*a"), "%[TRACE +1 %(command line%):1 loop%]")
    f:close()
  end)

  it("refuses an unknown -j command with status 1 and runs nothing", function()
    local r, lj = both({"-jbogus", "-e", "print(1)"})
    assert.equal(r.code, 1)
    assert.equal(lj.code, 1)
    assert.equal(r.stdout, "")
    assert.match(r.stderr, "^evo: unknown luaJIT command or jit%.%* modules not installed")
  end)

  it("saves and lists bytecode with -b, as luajit", function()
    local src, dir = h.tempFile("b.lua", "local x = 1 for i = 1, 10 do x = x + i end print(x)\n")
    local r, lj = both({"-bl", src})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, lj.stdout)
    assert.match(r.stdout, "%-%- BYTECODE %-%-")
    r = h.runEvo({"-b", src, dir .. "/b.out"})
    assert.equal(r.code, 0, r.stderr)
    lj = h.spawn(luajit, {dir .. "/b.out"})
    assert.equal(lj.stdout, "56\n", "luajit runs the bytecode evo saved")
  end)
end)

describe("closed standard streams", function()
  -- A shell runs evo with the stream closed; evo must not abort (libuv would
  -- otherwise take fds 0-2 for its own and assert when closing them).
  local function withClosed(redirect, chunk)
    return h.spawn("/bin/sh", {"-c", '"$0" -e "$1" ' .. redirect .. '; echo "status=$?" >&2', h.evo, chunk})
  end

  it("runs with stdin closed", function()
    local r = withClosed("<&-", "print(1); print(io.read())")
    assert.equal(r.stdout, "1\nnil\n")
    assert.match(r.stderr, "status=0\n$")
  end)

  it("runs with stdout closed", function()
    local r = withClosed(">&-", "io.stderr:write('to stderr\\n'); print(1)")
    assert.equal(r.stdout, "")
    assert.match(r.stderr, "^to stderr\nstatus=0\n$")
  end)

  it("runs with stderr closed", function()
    local r = withClosed("2>&-", "print(1); io.stderr:write('lost')")
    assert.equal(r.stdout, "1\n")
    assert.equal(r.stderr, "status=0\n")
  end)
end)

describe("evo --version / --help", function()
  it("prints the versions of Evo, LuaJIT, libuv, luv, llhttp and OpenSSL", function()
    local r = h.runEvo({"--version"})
    assert.equal(r.code, 0)
    assert.match(r.stdout, "^Evo %d+%.%d+%.%d+\n")
    assert.match(r.stdout, "LuaJIT 2%.1")
    assert.match(r.stdout, "libuv%s+1%.%d+%.%d+")
    assert.match(r.stdout, "luv%s+1%.%d+%.%d+")
    assert.match(r.stdout, "llhttp%s+%d+%.%d+%.%d+")
    assert.match(r.stdout, "OpenSSL %d")
  end)

  it("prints usage with --help and exits 0", function()
    local r = h.runEvo({"--help"})
    assert.equal(r.code, 0)
    assert.match(r.stdout, "usage: evo")
    assert.match(r.stdout, "evo test")
  end)
end)

describe("signals", function()
  it("exits with status 130 on SIGINT", function()
    local r = h.runEvo({"-e", "io.write('ready\\n'); io.stdout:flush(); require('uv').new_timer():start(10000, 0, function() end)"}, {onStart = h.killAfter("sigint", 0.3)})
    assert.equal(r.code, 130)
    assert.equal(r.stdout, "ready\n")
  end)

  it("exits with 130 on SIGINT even while Lua is busy", function()
    local r = h.runEvo({"-e", "io.write('busy\\n'); io.stdout:flush(); local x = 0; while true do x = x + math.sin(x) end"}, {
      -- a JIT-compiled loop checks no hooks: the second SIGINT exits at once
      onStart = h.killAfter("sigint", 0.3, 0.3),
    })
    assert.equal(r.code, 130)
  end)

  it("leaves SIGINT to the script when it watches it", function()
    local script = [[
      local Signal = require("Signal")
      local s = Signal()
      function s:SIGNAL_RECEIVED(event, payload)
        print("handled", payload.signal)
        self:close()
      end
      s:start("SIGINT")
      print("ready")
      io.stdout:flush()
    ]]
    local r = h.runEvo({"-e", script}, {onStart = h.killAfter("sigint", 0.3)})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "ready\nhandled\tSIGINT\n")
  end)

  it("interrupts a busy interpreted loop at the first SIGINT", function()
    local r = h.runEvo({"-e", "jit.off(); io.write('busy\\n'); io.stdout:flush(); local x = 0; while true do x = x + 1 end"}, {onStart = h.killAfter("sigint", 0.3)})
    assert.equal(r.code, 130)
    assert.equal(r.stdout, "busy\n")
  end)

  it("takes Ctrl-C back after the script stops watching SIGINT", function()
    local script = [[
      local Signal = require("Signal")
      local s = Signal()
      s:start("SIGINT")
      s:close()
      local uv = require("uv")
      local l = uv.new_signal()
      l:start("sigint", function() end)
      l:close()
      io.write("buffered output\n")
      uv.new_timer():start(10000, 0, function() end)
    ]]
    local r = h.runEvo({"-e", script}, {onStart = h.killAfter("sigint", 0.3)})
    assert.equal(r.code, 130)
    assert.equal(r.stdout, "buffered output\n")
  end)

  it("exits 143 on SIGTERM, flushing buffered output", function()
    local r = h.runEvo({"-e", "io.write('buffered\\n'); require('uv').new_timer():start(10000, 0, function() end)"},
      {onStart = h.killAfter("sigterm", 0.3)})
    assert.equal(r.code, 143)
    assert.equal(r.stdout, "buffered\n")
  end)

  it("exits 143 on SIGTERM while Lua is busy, flushing buffered output", function()
    local r = h.runEvo({"-e", "jit.off(); io.write('busy\\n'); local x = 0; while true do x = x + 1 end"},
      {onStart = h.killAfter("sigterm", 0.3)})
    assert.equal(r.code, 143)
    assert.equal(r.stdout, "busy\n")
  end)

  it("exits 143 on one SIGTERM even inside a JIT-compiled loop", function()
    local started = require("uv").hrtime()
    local r = h.runEvo({"-e", "io.write('jit\\n'); local x = 0; while true do x = x + math.sin(x) end"},
      {onStart = h.killAfter("sigterm", 0.3), timeout = 8})
    assert.falsy(r.timedOut)
    assert.equal(r.code, 143)
    assert.equal(r.stdout, "jit\n")
    assert.truthy((require("uv").hrtime() - started) / 1e9 < 4, "within a few seconds")
  end, {timeout = 10})

  it("leaves SIGTERM to the script when it watches it", function()
    local script = [[
      local Signal = require("Signal")
      local s = Signal()
      function s:SIGNAL_RECEIVED(event, payload)
        print("handled", payload.signal)
        self:close()
      end
      s:start("SIGTERM")
      io.write("ready\n")
    ]]
    local r = h.runEvo({"-e", script}, {onStart = h.killAfter("sigterm", 0.3)})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "ready\nhandled\tSIGTERM\n")
  end)

  it("line-buffers stdout on a terminal, as C does", function()
    -- The line shows although evo is killed (SIGKILL: no flush) while busy.
    local r = h.spawn("/bin/sh", {"-c", 'timeout -s KILL 1 /usr/bin/script -qfec "$0 -e \'io.write(1, 2, 3, string.char(10)); while true do end\'" /dev/null', h.evo},
      {timeout = 5})
    assert.match(r.stdout, "123\r?\n")
  end)

  -- bash reports the status of evo, first in the pipeline, as PIPESTATUS[0].
  local function pipedToHead(program, chunk)
    return h.spawn("/bin/bash", {"-c", 'timeout -s KILL 4 "$0" -e "$1" | head -1; echo "status=${PIPESTATUS[0]}" >&2',
      program, chunk}, {timeout = 8})
  end

  for _, chunk in ipairs({'while true do print("y") end', 'while true do io.write("y\\n") end',
    'while true do io.stdout:write("y\\n") end', 'while true do io.write("y\\n"); io.flush() end'}) do
    it("ends like luajit when stdout is a pipe nobody reads any more: " .. chunk, function()
      local r = pipedToHead(h.evo, chunk)
      assert.falsy(r.timedOut)
      assert.falsy(r.stderr == "status=137\n", "evo went on writing forever")
      assert.equal(r.stdout, "y\n")
      local lj = pipedToHead("/usr/bin/luajit", chunk)
      assert.equal(lj.stderr, "status=141\n")
      assert.equal(r.stderr, lj.stderr, "killed by SIGPIPE, silently")
    end, {timeout = 20})
  end

  it("starts children of io.popen and os.execute with SIGPIPE at its default, as luajit", function()
    local chunk = [[
      local p = io.popen("grep SigIgn /proc/self/status")
      io.write(p:read("*a"))
      p:close()
      io.stdout:flush()
      os.execute("grep SigIgn /proc/self/status; yes | head -1 >/dev/null")
    ]]
    local r = h.runEvo({"-e", chunk})
    local lj = h.spawn("/usr/bin/luajit", {"-e", chunk})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, "^SigIgn:")
    assert.equal(r.stdout, lj.stdout)
    assert.equal(r.stderr, "", "yes dies of SIGPIPE quietly instead of saying 'Broken pipe'")
  end)

  it("ignores SIGPIPE: writing to a closed pipe is an error, not death", function()
    local script = [[
      local uv = require("uv")
      local fds = uv.pipe({nonblock = true}, {nonblock = true})
      uv.fs_close(fds.read)
      local _, err = uv.fs_write(fds.write, "x")
      print(err)
    ]]
    local r = h.runEvo({"-e", script})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, "EPIPE")
  end)
end)
