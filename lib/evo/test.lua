-- evo.test: the runner behind `evo test [files or dirs...] [--filter text]`.
--
-- Spec files (*.spec.lua) use describe/it with before/after (once per
-- describe), beforeEach/afterEach (around each test), it.skip/describe.skip,
-- and `assert` (the assertions module). Each test and hook runs as its own
-- coroutine on the event loop, so it may wait on timers and I/O; one that
-- neither finishes nor fails within its timeout (default 5 s; it(name, fn,
-- {timeout = s})) fails instead of hanging. The last line printed is exactly
-- "N passed, N failed" (", N skipped" when any); the exit status is 1 when
-- anything failed.
local uv = require("uv")
local core = require("evo.core")
local tasknative = require("evo.task")
local Timer = require("Timer")
local assertions = require("assert")
local args = require("evo.args")

local type, pairs, ipairs, tostring, setmetatable, setfenv = type, pairs, ipairs, tostring, setmetatable, setfenv
local format, concat = string.format, table.concat

local DEFAULT_TIMEOUT = 5
local write = io.write

local M = {}

---------------------------------------------------------------- discovery

local function isDir(path)
  local st = uv.fs_stat(path)
  return st and st.type == "directory"
end

local function findSpecs(path, out)
  if not isDir(path) then
    out[#out + 1] = path
    return
  end
  local entries = {}
  local req = uv.fs_scandir(path)
  while req do
    local name, kind = uv.fs_scandir_next(req)
    if not name then break end
    entries[#entries + 1] = {name = name, kind = kind}
  end
  table.sort(entries, function(a, b) return a.name < b.name end)
  for _, e in ipairs(entries) do
    local full = path:gsub("/$", "") .. "/" .. e.name
    if e.kind == "directory" then
      findSpecs(full, out)
    elseif e.name:match("%.spec%.lua$") then
      out[#out + 1] = full
    end
  end
end

local function parseArgs(...)
  local paths, filter = {}, nil
  local args = {...}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--filter" then
      filter = args[i + 1]
      if not filter then error("evo test: --filter needs a text", 0) end
      i = i + 1
    elseif a:match("^%-%-filter=") then
      filter = a:sub(10)
    elseif a == "--debug" then
      -- handled by the command line
    elseif a:match("^%-") then
      error(format("evo test: unknown option '%s'", a), 0)
    else
      paths[#paths + 1] = a
    end
    i = i + 1
  end
  if #paths == 0 then paths[1] = isDir("tests") and "tests" or "." end
  return paths, filter
end

---------------------------------------------------------------- collection

local function newSuite(name, parent, file, skip)
  return {
    name = name, parent = parent, file = file, skip = skip or (parent and parent.skip) or false,
    children = {}, before = {}, after = {}, beforeEach = {}, afterEach = {},
  }
end

local function fullName(node)
  local parts = {node.name}
  local s = node.suite or node.parent
  while s and s.parent do
    table.insert(parts, 1, s.name)
    s = s.parent
  end
  return concat(parts, " ")
end

local function callerLine(level)
  local info = debug.getinfo(level + 1, "l")
  return info and info.currentline or 0
end

-- The globals a spec file sees (anything else comes from _G).
local function specEnvironment(root)
  local current = root
  local env = {}

  local function addTest(name, a, b, skip)
    local fn, opts = a, b
    if type(a) == "table" or type(a) == "number" then fn, opts = b, a end
    args.check(1, "it", name, "string", 3)
    if not skip then args.check(2, "it", fn, "function", 3) end
    local timeout = type(opts) == "number" and opts or (type(opts) == "table" and opts.timeout) or nil
    current.children[#current.children + 1] = {
      kind = "test", name = name, fn = fn, suite = current, line = callerLine(3),
      skip = skip or current.skip, timeout = timeout,
    }
  end

  local function addSuite(name, fn, skip)
    args.check(1, "describe", name, "string", 3)
    args.check(2, "describe", fn, "function", 3)
    local suite = newSuite(name, current, root.file, skip)
    suite.kind = "suite"
    suite.line = callerLine(3)
    current.children[#current.children + 1] = suite
    local outer = current
    current = suite
    local ok, err = pcall(fn)
    current = outer
    if not ok then error(err, 0) end
  end

  local function hook(kind)
    return function(fn)
      args.check(1, kind, fn, "function")
      local list = current[kind]
      list[#list + 1] = fn
    end
  end

  env.describe = setmetatable({skip = function(name, fn) addSuite(name, fn, true) end},
    {__call = function(_, name, fn) addSuite(name, fn, false) end})
  env.it = setmetatable({skip = function(name, a, b) addTest(name, a, b, true) end},
    {__call = function(_, name, a, b) addTest(name, a, b, false) end})
  env.before = hook("before")
  env.after = hook("after")
  env.beforeEach = hook("beforeEach")
  env.afterEach = hook("afterEach")
  env.assert = assertions
  return setmetatable(env, {__index = _G})
end

---------------------------------------------------------------- running

local stats = {passed = 0, failed = 0, skipped = 0, failures = {}}
local running = nil   -- the test or hook in progress, for uncaught errors

local function errorText(err)
  if type(err) == "string" then return err end
  local mt = type(err) == "table" and getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  if type(err) == "table" and type(err.message) == "string" then return err.message end
  return tostring(err)
end

-- xpcall handler: the message, the spec file's line where it happened, and
-- a traceback.
local function captureError(specFile)
  return function(err)
    local location
    for level = 2, 60 do
      local info = debug.getinfo(level, "Sl")
      if not info then break end
      if info.source == "@" .. specFile then
        location = info.short_src .. ":" .. info.currentline
        break
      end
    end
    return {message = errorText(err), location = location, traceback = debug.traceback("", 2)}
  end
end

-- The runner's own timers are Evo Timers: hidden from uv.walk, so a test that
-- closes "every handle" through luv cannot strand the runner.
local function after(seconds, fn)
  local t = Timer()
  function t:TIMER_FIRED()
    self:close()
    fn()
  end
  t:start(seconds)
  return t
end

-- Resumes the runner from a fresh loop callback, never from inside the
-- coroutine that just finished (which would nest coroutines without bound).
local function wakeLater(co)
  after(0, function()
    local ok, err = coroutine.resume(co)
    if not ok then
      core.reportError("test runner: " .. debug.traceback(co, tostring(err)))
      core.setExitCode(1)
    end
  end)
end

-- Runs fn as a coroutine; waits (yielding the runner) until it finishes,
-- fails, or runs out of time. Returns nil on success, or an error record.
local function runGuarded(fn, timeout, specFile)
  local runner = coroutine.running()
  local state = {done = false, waiting = false}
  local function finish(err)
    if state.done then return end
    state.done, state.err = true, err
    if state.waiting then wakeLater(runner) end
  end
  state.finish = finish
  -- The test runs as a task, so task.* and the colourless modules suspend it.
  local future = tasknative.spawn(function()
    local ok, err = xpcall(fn, captureError(specFile))
    finish((not ok) and err or nil)
  end)
  running = state
  if not state.done then
    state.waiting = true
    local timer = after(timeout, function()
      finish({message = format("timed out after %g s (neither finished nor failed)", timeout)})
      tasknative.requestCancel(future)  -- stop it at its next blocking call
    end)
    coroutine.yield()
    timer:close()
  end
  running = nil
  return state.err
end

local function indentOf(depth) return string.rep("  ", depth) end

local function traceLines(tb, specFile)
  -- Only the frames in spec files: the runner's own frames are noise.
  local out = {}
  for line in (tb or ""):gmatch("[^\n]+") do
    if line:find(".spec.lua:", 1, true) and not line:find("[evo]", 1, true) then
      out[#out + 1] = line:gsub("^%s+", "")
    end
  end
  return out
end

-- error("...", level) already starts its message with file:line: drop it
-- when it repeats the location printed in front.
local function withoutLocation(message, where)
  if message:sub(1, #where + 2) == where .. ": " then return message:sub(#where + 3) end
  return message
end

local function report(test, depth, err, ms)
  local pad = indentOf(depth)
  if not err then
    stats.passed = stats.passed + 1
    write(pad, "\226\156\147 ", test.name, format(" (%.1f ms)", ms), "\n")
    return
  end
  stats.failed = stats.failed + 1
  local where = err.location or (test.file .. ":" .. test.line)
  local message = withoutLocation(err.message, where)
  write(pad, "\226\156\151 ", test.name, "\n")
  write(pad, "    ", where, ": ", (message:gsub("\n", "\n" .. pad .. "    ")), "\n")
  local frames = traceLines(err.traceback, test.file)
  if #frames > 1 then
    for _, f in ipairs(frames) do write(pad, "      ", f, "\n") end
  end
  stats.failures[#stats.failures + 1] = format("%s: %s", test.file .. ":" .. test.line, fullName(test))
end

local function matches(node, filter)
  if not filter then return true end
  if node.kind == "test" then return fullName(node):find(filter, 1, true) ~= nil end
  for _, child in ipairs(node.children) do
    if matches(child, filter) then return true end
  end
  return false
end

local function eachHooks(suite, kind)
  -- beforeEach from the outside in; afterEach from the inside out
  local chain = {}
  local s = suite
  while s do
    table.insert(chain, 1, s)
    s = s.parent
  end
  local list = {}
  if kind == "beforeEach" then
    for _, x in ipairs(chain) do for _, h in ipairs(x.beforeEach) do list[#list + 1] = h end end
  else
    for i = #chain, 1, -1 do for _, h in ipairs(chain[i].afterEach) do list[#list + 1] = h end end
  end
  return list
end

local function runTest(test, depth, file, timeout)
  if test.skip then
    stats.skipped = stats.skipped + 1
    write(indentOf(depth), "- ", test.name, " (skipped)\n")
    return
  end
  test.file = file
  local started = uv.hrtime()
  local err
  for _, h in ipairs(eachHooks(test.suite, "beforeEach")) do
    err = runGuarded(h, timeout, file)
    if err then err.message = "beforeEach hook: " .. err.message break end
  end
  if not err then err = runGuarded(test.fn, test.timeout or timeout, file) end
  for _, h in ipairs(eachHooks(test.suite, "afterEach")) do
    local e = runGuarded(h, timeout, file)
    if e and not err then
      err = e
      err.message = "afterEach hook: " .. err.message
    end
  end
  report(test, depth, err, (uv.hrtime() - started) / 1e6)
end

-- A describe whose before hook failed: its tests fail without running
-- (skipped ones stay skipped, filtered-out ones are not counted).
local function failAll(suite, depth, file, message, filter)
  for _, child in ipairs(suite.children) do
    if matches(child, filter) then
      if child.kind == "test" and child.skip then
        stats.skipped = stats.skipped + 1
      elseif child.kind == "test" then
        child.file = file
        report(child, depth, {message = message, location = file .. ":" .. (suite.line or 0)}, 0)
      else
        failAll(child, depth + 1, file, message, filter)
      end
    end
  end
end

local function runSuite(suite, depth, file, filter, timeout)
  local hasTests = false
  for _, child in ipairs(suite.children) do
    if matches(child, filter) then hasTests = true break end
  end
  if not hasTests then return end
  if suite.name ~= "" then write(indentOf(depth), suite.name, "\n") end
  local inner = suite.name ~= "" and depth + 1 or depth
  if not suite.skip then
    for _, h in ipairs(suite.before) do
      local err = runGuarded(h, timeout, file)
      if err then
        failAll(suite, inner, file, "before hook: " .. err.message, filter)
        return
      end
    end
  end
  for _, child in ipairs(suite.children) do
    if matches(child, filter) then
      if child.kind == "test" then
        runTest(child, inner, file, timeout)
      else
        runSuite(child, inner, file, filter, timeout)
      end
    end
  end
  if not suite.skip then
    for _, h in ipairs(suite.after) do
      local err = runGuarded(h, timeout, file)
      if err then
        stats.failed = stats.failed + 1
        write(indentOf(inner), "\226\156\151 after hook: ", err.message, "\n")
        stats.failures[#stats.failures + 1] = file .. ": after hook of " .. (suite.name ~= "" and suite.name or "file")
      end
    end
  end
end

local seenDirs = {}
local function addSpecDirToPath(file)
  local dir = file:match("^(.*)/[^/]*$") or "."
  if seenDirs[dir] then return end
  seenDirs[dir] = true
  -- The spec's directory, then the lua_modules trees above it (docs/rocks.md).
  require("evo.modpath").addDir(dir)
end

local function runFile(file, filter, timeout)
  local root = newSuite("", nil, file)
  root.kind = "suite"
  local chunk, err = loadfile(file)
  if chunk then
    addSpecDirToPath(file)
    setfenv(chunk, specEnvironment(root))
    local ok, e = xpcall(chunk, captureError(file))
    if not ok then err = e.location and (e.location .. ": " .. withoutLocation(e.message, e.location)) or e.message end
  end
  if err then
    write(file, "\n")
    stats.failed = stats.failed + 1
    write("  \226\156\151 failed to load: ", err, "\n")
    stats.failures[#stats.failures + 1] = file .. ": failed to load"
    return
  end
  if not matches(root, filter) then return end
  write(file, "\n")
  runSuite(root, 1, file, filter, timeout)
end

-- Errors raised by luv callbacks while tests run fail the running test
-- instead of ending the run.
local function onUncaught(message)
  if running and not running.done then
    -- The callback may have been left behind by an earlier test; all that is
    -- known is that it raised while this one ran.
    running.finish({message = "uncaught error in a callback while this test ran: " .. tostring(message)})
  else
    stats.failed = stats.failed + 1
    write("\226\156\151 uncaught error outside any test: ", tostring(message), "\n")
    stats.failures[#stats.failures + 1] = "uncaught error outside any test"
  end
end

function M.main(...)
  -- A run that never reaches its summary (a test stopped the loop) fails.
  core.setExitCode(1)
  local ok, paths, filter = pcall(parseArgs, ...)
  if not ok then
    io.stderr:write(paths, "\n")
    core.setExitCode(2)
    return
  end
  local timeout = tonumber(os.getenv("EVO_TEST_TIMEOUT")) or DEFAULT_TIMEOUT
  local files = {}
  for _, p in ipairs(paths) do
    if not uv.fs_stat(p) then
      io.stderr:write("evo test: no such file or directory: ", p, "\n")
      core.setExitCode(2)
      return
    end
    findSpecs(p, files)
  end
  core.setUncaughtHandler(onUncaught)
  for _, file in ipairs(files) do runFile(file, filter, timeout) end
  core.setUncaughtHandler(nil)
  -- Handles a test leaked must not keep the run alive.
  core.closeHandles()
  if #stats.failures > 0 then
    write("\nFailures:\n")
    for _, f in ipairs(stats.failures) do write("  \226\156\151 ", f, "\n") end
  end
  local line = format("%d passed, %d failed", stats.passed, stats.failed)
  if stats.skipped > 0 then line = line .. format(", %d skipped", stats.skipped) end
  write("\n", line, "\n")
  io.stdout:flush()
  core.setExitCode(stats.failed > 0 and 1 or 0)
end

return M
