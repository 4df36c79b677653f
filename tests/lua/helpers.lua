-- Helpers for the Lua specs: run the evo binary (or any program) as a child
-- process and collect what it did, waiting as a coroutine on the loop.
local uv = require("uv")
local assert = require("assert")  -- the specs' assertions (the global is Lua's here)

local helpers = {}

helpers.evo = os.getenv("EVO") or uv.exepath()
helpers.root = uv.cwd()

-- run(program, args, opts) -> {code, signal, stdout, stderr}
-- opts.stdin: text written to the child's stdin (then closed); a list of
--   texts is typed slowly, one every opts.typingDelay seconds (default 0.2)
-- opts.env: table of variables added to (or, with value false, removed from) the environment
-- opts.cwd: working directory; opts.timeout: seconds before the child is killed (default 10)
-- opts.onStart(handle, pid): called once the child runs
function helpers.spawn(program, args, opts)
  opts = opts or {}
  local co = coroutine.running()
  assert(co, "helpers.spawn must run inside a test")
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local out, err = {}, {}
  local result = {}
  local pending = 3
  local timer = uv.new_timer()
  local function done()
    pending = pending - 1
    if pending == 0 then
      timer:close()
      result.stdout, result.stderr = table.concat(out), table.concat(err)
      coroutine.resume(co)
    end
  end
  local env
  if opts.env then
    local vars = uv.os_environ()
    for k, v in pairs(opts.env) do vars[k] = v or nil end
    env = {}
    for k, v in pairs(vars) do env[#env + 1] = k .. "=" .. v end
  end
  local handle, pid
  handle, pid = uv.spawn(program, {args = args, stdio = {stdin, stdout, stderr}, env = env, cwd = opts.cwd},
    function(code, signal)
      result.code, result.signal = code, signal
      handle:close()
      done()
    end)
  if not handle then error("cannot spawn " .. program .. ": " .. tostring(pid), 2) end
  local function reader(pipe, sink)
    pipe:read_start(function(e, data)
      if data then
        sink[#sink + 1] = data
      else
        pipe:close()
        done()
      end
    end)
  end
  reader(stdout, out)
  reader(stderr, err)
  if type(opts.stdin) == "table" then
    local keys = uv.new_timer()
    local i = 0
    local delay = math.floor((opts.typingDelay or 0.2) * 1000)
    keys:start(delay, delay, function()
      i = i + 1
      if opts.stdin[i] then
        stdin:write(opts.stdin[i])
      else
        keys:close()
        stdin:shutdown(function() stdin:close() end)
      end
    end)
  else
    if opts.stdin then stdin:write(opts.stdin) end
    stdin:shutdown(function() stdin:close() end)
  end
  timer:start(math.floor((opts.timeout or 10) * 1000), 0, function()
    result.timedOut = true
    uv.process_kill(handle, "sigkill")
  end)
  if opts.onStart then opts.onStart(handle, pid) end
  coroutine.yield()
  return result
end

-- runEvo({args...}, opts): runs the evo binary under test.
function helpers.runEvo(args, opts)
  return helpers.spawn(helpers.evo, args, opts)
end

-- tempDir([prefix]) -> a fresh directory under /tmp, removed with everything
-- in it when this process's Lua state closes (at exit, passed or failed), so
-- test runs leave nothing behind.
local made = {}
local sweeper = newproxy(true)
getmetatable(sweeper).__gc = function()
  for _, dir in ipairs(made) do os.execute("rm -rf '" .. dir .. "'") end
end
helpers._sweeper = sweeper  -- lives as long as the module does

function helpers.tempDir(prefix)
  local dir = assert(uv.fs_mkdtemp("/tmp/" .. (prefix or "evo-spec-") .. "XXXXXX"))
  made[#made + 1] = dir
  return dir
end

-- Writes `text` to a new file in a fresh temporary directory; returns its path and directory.
function helpers.tempFile(name, text)
  local dir = helpers.tempDir()
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path, dir
end

function helpers.writeFile(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- sleep(seconds) inside a test: suspends only the test's coroutine.
function helpers.sleep(seconds)
  local co = coroutine.running()
  local t = uv.new_timer()
  t:start(math.floor(seconds * 1000), 0, function()
    t:close()
    coroutine.resume(co)
  end)
  coroutine.yield()
end

-- An onStart for spawn: sends `signal` to the child after each delay in
-- `delays` (seconds), e.g. killAfter("sigint", 0.3) or killAfter("sigint", 0.3, 0.3).
function helpers.killAfter(signal, ...)
  local delays = {...}
  return function(handle)
    for _, d in ipairs(delays) do
      helpers.sleep(d)
      handle:kill(signal)
    end
  end
end

-- Runs code with Debian's Python (/usr/bin/python3: its packages import only
-- there), stdin (a string or nil) on its standard input and args after the
-- code in sys.argv; returns its stdout, asserting it exited 0.
function helpers.python(code, stdin, args, timeout)
  local argv = {"-c", code}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = helpers.spawn("/usr/bin/python3", argv, {stdin = stdin or "", timeout = timeout or 30})
  assert.equal(r.code, 0, "python failed: " .. r.stderr .. r.stdout)
  return r.stdout
end

-- Asserts fn(...) raises an error whose text matches the Lua pattern.
function helpers.raisesMatching(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.falsy(ok, "expected an error matching " .. pattern)
  assert.match(tostring(err), pattern)
end

function helpers.lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n?") do out[#out + 1] = line end
  if out[#out] == "" then out[#out] = nil end
  return out
end

-- fdCount() -> the descriptors this process has open; rss() -> its
-- resident memory in bytes: what the leak checks compare before and after.
function helpers.fdCount()
  local n, req = 0, uv.fs_scandir("/proc/self/fd")
  while uv.fs_scandir_next(req) do n = n + 1 end
  return n
end

function helpers.rss()
  local f = assert(io.open("/proc/self/statm"))
  local pages = tonumber(f:read("*a"):match("^%d+ (%d+)"))
  f:close()
  return pages * 4096
end

-- assertNoGrowth(fd0, rss0, maxBytes): no descriptor more than fd0, and (except
-- under AddressSanitizer, whose quarantine keeps freed memory: make test-asan
-- sets EVO_SANITIZED=1) resident memory grown by less than maxBytes.
function helpers.assertNoGrowth(fd0, rss0, maxBytes)
  collectgarbage()
  collectgarbage()
  assert.equal(helpers.fdCount(), fd0)
  if os.getenv("EVO_SANITIZED") ~= "1" then
    local grown = helpers.rss() - rss0
    assert.truthy(grown < maxBytes, ("RSS grew by %d bytes"):format(grown))
  end
end

return helpers
