-- process: this process, and child processes with streams, colourless.
--
--   local process = require("process")
--   local out, err, code = process.exec("ls -1 /")
--   local child = assert(process.spawn("cat", {}, {stdout = "pipe"}))
--   child.stdin:write("hello"); child.stdin:close()
--   print(child.stdout:readAll(), child:wait())
--
-- Signals arrive as Evo events: process.signal("SIGTERM") returns a
-- started Signal object reporting SIGNAL_RECEIVED.
local uv = require("uv")
local native = require("evo.process")
local tasknative = require("evo.task")
local errors = require("evo.errors")
local args = require("evo.args")
local core = require("evo.core")
require("net")  -- the Stream methods

local isyieldable = coroutine.isyieldable
local finish = require("evo.wait").finish

local process = {}

process.pid = uv.os_getpid()
process.ppid = uv.os_getppid()
process.platform = jit.os:lower()   -- "linux", as Node's process.platform
process.arch = jit.arch              -- "x64", "arm64"...
process.execPath = uv.exepath()
-- Under `evo --workers N` (docs/workers.md): this worker's slot, 1..N, and N;
-- nil in an ordinary run.
process.workerId, process.workers = native.workerInfo()

-- argv: as Node's process.argv, {execPath, script, arg1, arg2, ...}; the
-- script's arguments are the global arg's: argv[i + 2] == arg[i], and
-- argv[2] == arg[0]. Without a script (-e, the REPL) there is no argv[2].
do
  local argv = {process.execPath}
  local a = rawget(_G, "arg")
  if type(a) == "table" then
    if a[0] ~= nil then argv[2] = a[0] end
    for i = 1, #a do argv[#argv + 1] = a[i] end
  end
  process.argv = argv
end

-- env: the live environment. Reading calls getenv, assigning a string (or a
-- number) calls setenv, assigning nil unsetenv; pairs() walks a snapshot of
-- environ taken when the loop starts. Children started by spawn (without
-- their own env) and exec see every change.
local getenv, setenv, unsetenv, environ = os.getenv, uv.os_setenv, uv.os_unsetenv, uv.os_environ
local find = string.find
local function checkName(k)
  if type(k) ~= "string" then args.fail(1, "process.env", "string", k, 3) end
  if k == "" or k:find("=", 1, true) or k:find("\0", 1, true) then
    args.error(1, "process.env", ("invalid environment variable name '%s'"):format(k), 3)
  end
end
process.env = setmetatable({}, {
  __index = function(_, k)
    -- getenv stops at a NUL: "HOME\0X" would read HOME.
    if type(k) ~= "string" or find(k, "\0", 1, true) then return nil end
    return getenv(k)
  end,
  __newindex = function(_, k, v)
    checkName(k)
    if v == nil then
      local ok, err, name = unsetenv(k)
      if not ok then error(errors.fromUv(err, name), 2) end
      return
    end
    local t = type(v)
    if t == "number" then v = tostring(v) elseif t ~= "string" then args.fail(2, "process.env", "string", v, 2) end
    if v:find("\0", 1, true) then args.error(2, "process.env", "value contains a NUL byte", 2) end
    local ok, err, name = setenv(k, v)
    if not ok then error(errors.fromUv(err, name), 2) end
  end,
  __pairs = function() return next, environ(), nil end,
  -- process.env() -> a copy of the whole environment, {NAME = value}
  __call = function() return environ() end,
  __tostring = function() return "process.env" end,
})

function process.cwd() return uv.cwd() end

function process.chdir(dir)
  args.check(1, "chdir", dir, "string")
  local ok, err, name = uv.chdir(dir)
  if not ok then return nil, errors.fromUv(err, name) end
  return true
end

-- memoryUsage() -> {rss, heapUsed, maxRss} in bytes: the resident set now,
-- what Lua's collector counts, the peak resident set
function process.memoryUsage()
  local usage, rss = uv.getrusage(), uv.resident_set_memory()
  -- The kernel updates the peak (ru_maxrss, KiB) lazily: it can lag the
  -- resident set read now, which is a peak too.
  local peak = usage and usage.maxrss * 1024 or rss
  return {rss = rss, heapUsed = math.floor(collectgarbage("count") * 1024), maxRss = math.max(peak, rss)}
end

-- uptime() -> seconds since the process started
function process.uptime() return require("evo.stdio").uptime() end

-- exit([code = 0]): leaves now, flushing output (as os.exit does).
function process.exit(code) os.exit(code or 0) end

-- stdin, stdout, stderr: Streams over fd 0, 1 and 2, made on first use
-- (src/bind/stdio.cpp), so a script that never touches them leaves the
-- descriptors, the loop and the terminal as they were.
local stdio, streams = {stdin = 0, stdout = 1, stderr = 2}, {}

-- exitCode: the status the process ends with when it ends by itself.
setmetatable(process, {
  __index = function(_, k)
    if k == "exitCode" then return core.exitCode() end
    local fd = stdio[k]
    if fd then  -- kept out of the table, so that assigning raises
      local s = streams[k]
      if s == nil then
        s = require("evo.stdio").open(fd)
        streams[k] = s
      end
      return s
    end
  end,
  __newindex = function(t, k, v)
    if k == "exitCode" then
      args.check(1, "exitCode", v, "number")
      -- The status is one byte: 256 would report success, 1.5 or NaN nothing meant.
      if v % 1 ~= 0 or v < 0 or v > 255 then
        args.error(1, "exitCode", "an integer from 0 to 255 expected, got " .. tostring(v))
      end
      core.setExitCode(v)
    elseif stdio[k] then
      error(("process.%s cannot be replaced"):format(k), 2)
    else
      rawset(t, k, v)
    end
  end,
})

-- signal(name) -> a started Signal reporting SIGNAL_RECEIVED {signal, signum}
function process.signal(name)
  local Signal = require("Signal")
  local s = Signal()
  s:start(name)
  return s
end

local Child = {}
Child.__index = Child
Child.__name = "Child"

-- wait() -> exit code, signal number (0 when it exited normally)
function Child:wait()
  local code, signal = finish(native.wait(self.native, true))
  return code, signal
end

local signals = {TERM = 15, KILL = 9, INT = 2, HUP = 1, QUIT = 3, USR1 = 10, USR2 = 12, STOP = 19, CONT = 18}

-- kill([signal = "SIGTERM"]) -> true | nil, err; signal: "SIGTERM", "term", 15...
function Child:kill(signal)
  if signal ~= nil and type(signal) ~= "number" then
    if type(signal) ~= "string" then args.fail(1, "kill", "string", signal, 2) end
    local n = signals[signal:upper():gsub("^SIG", "")]
    if not n then error(("bad argument #1 to 'kill' (unknown signal '%s')"):format(signal), 2) end
    signal = n
  end
  return native.kill(self.native, signal)
end

-- spawn(command, args, {cwd, env, stdin, stdout, stderr}) -> Child | nil, err.
-- Each of stdin/stdout/stderr is "pipe" (the default: child.stdin etc. are
-- Streams), "inherit" or "ignore". env replaces the environment.
function process.spawn(command, argv, opts)
  args.check(1, "spawn", command, "string")
  if argv ~= nil then args.check(2, "spawn", argv, "table") end
  if opts ~= nil then args.check(3, "spawn", opts, "table") end
  if opts and rawequal(opts.env, process.env) then  -- the live environment: what children get anyway
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.env = nil
    opts = copy
  end
  local child, stdin, stdout, stderr = native.spawn(command, argv or {}, opts or {})
  if not child then return nil, stdin end
  return setmetatable({native = child, pid = native.pid(child), stdin = stdin, stdout = stdout, stderr = stderr}, Child)
end

-- After a cancellation: SIGTERM, then SIGKILL if the child has not ended
-- within the grace period; waits for it either way (so it is reaped).
local KILL_GRACE = 2

local function terminate(child)
  child:kill("SIGTERM")
  local task = require("task")
  local ok, _, err = pcall(task.timeout, KILL_GRACE, child.wait, child)
  if ok and err ~= nil and errors.is(err, "Timeout") then
    child:kill("SIGKILL")
    pcall(child.wait, child)
  elseif not ok then  -- cancelled again while waiting: do not leave it behind
    child:kill("SIGKILL")
    pcall(child.wait, child)
  end
end

-- exec(cmdline) -> stdout, stderr, exit code (the command runs under /bin/sh -c)
-- A task cancelled in exec kills the child (SIGTERM, SIGKILL after 2 s),
-- waits for it, then raises Canceled.
function process.exec(cmdline)
  args.check(1, "exec", cmdline, "string")
  if cmdline:find("\0", 1, true) then error("bad argument #1 to 'exec' (contains a NUL byte)", 2) end
  local child, err = process.spawn("/bin/sh", {"-c", cmdline}, {stdin = "ignore"})
  if not child then return nil, err end
  local errReader
  local function collect()
    local out, errText
    if tasknative.mode() == "evented" and isyieldable() and tasknative.current() then
      -- read both pipes at once, so a child filling one cannot stall on the other
      local task = require("task")
      errReader = task.async(function() return child.stderr:readAll() end)
      out = child.stdout:readAll()
      errText = errReader:await()
    else
      -- read both pipes together (poll), so a child filling one cannot stall
      out, errText = require("evo.net").stream.drainBoth(child.stdout, child.stderr)
    end
    local code, signal = child:wait()
    return out, errText, code, signal
  end
  local ok, out, errText, code, signal = pcall(collect)
  if not ok then
    -- Cancelled (or failed): the child must not outlive the call.
    terminate(child)
    if errReader then pcall(errReader.cancel, errReader) end
    child.stdout:close()
    child.stderr:close()
    error(out, 0)
  end
  child.stdout:close()
  child.stderr:close()
  if signal ~= 0 and code == 0 then code = 128 + signal end
  return out or "", errText or "", code
end

return process
