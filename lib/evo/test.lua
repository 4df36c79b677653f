-- evo.test: the runner behind `evo test [files or dirs...] [--filter text]`.
--
-- Spec files (*.spec.lua) use describe/it with before/after (once per
-- describe), beforeEach/afterEach (around each test), it.skip/describe.skip,
-- and `assert` (the assertions module). Each test and hook runs as its own
-- coroutine on the event loop, so it may wait on timers and I/O; one that
-- neither finishes nor fails within its timeout (default 5 s; it(name, fn,
-- {timeout = s})) fails instead of hanging, and one that waits on nothing
-- that could wake it fails as soon as the loop runs out of work. The last
-- line printed is exactly "N passed, N failed" (", N skipped" when any);
-- the exit status is 1 when anything failed.
--
-- It is also a superset of busted (docs/testing.md): *_spec.lua files are
-- found too and run busted-style (luassert's assert, where assert.equal is
-- identity and assert.match takes the pattern first; each file insulated),
-- and every file sees busted's names (context, spec/test, pending, setup/
-- teardown and their lazy_/strict_ forms, before_each/after_each, finally,
-- insulate/expose, spy/stub/mock/match); require("luassert"...), "say" and
-- "busted" resolve to Evo's versions while the run lasts.
local uv = require("uv")
local core = require("evo.core")
local tasknative = require("evo.task")
local Timer = require("Timer")
local args = require("evo.args")
local bustedAssert = require("evo.busted.assert")
local spies = require("evo.busted.spy")
local match = require("evo.busted.match")

local type, pairs, ipairs, tostring, setmetatable, setfenv, getfenv = type, pairs, ipairs, tostring, setmetatable, setfenv, getfenv
local format, concat, rawget, getmetatable = string.format, table.concat, rawget, getmetatable

local DEFAULT_TIMEOUT = 5
local write = io.write

local M = {}

---------------------------------------------------------------- options

local function isDir(path)
  local st = uv.fs_stat(path)
  return st and st.type == "directory"
end

-- busted's flags that Evo implements (the others are refused by name).
-- Each takes a value: "--name value" or "--name=value".
local valueFlags = {
  ["--filter"] = "filter", ["--filter-out"] = "filterOut",
  ["-p"] = "pattern", ["--pattern"] = "pattern", ["--exclude-pattern"] = "excludePattern",
  ["-o"] = "output", ["--output"] = "output", ["--seed"] = "seed",
  ["-t"] = "tags", ["--tags"] = "tags", ["--exclude-tags"] = "excludeTags",
  ["-m"] = "lpath", ["--lpath"] = "lpath", ["--cpath"] = "cpath",
}
local switches = {
  ["--shuffle"] = "shuffle", ["--randomize"] = "shuffle", ["--no-auto-insulate"] = "noAutoInsulate",
  ["-v"] = "verbose", ["--verbose"] = "verbose", ["--debug"] = "debug",
}
local outputs = {utfTerminal = true, plainTerminal = true, TAP = true, json = true}

local function tagList(text)
  local list = {}
  for tag in (text or ""):gmatch("[^,%s]+") do list[#list + 1] = "#" .. tag:gsub("^#", "") end
  return #list > 0 and list or nil
end

local function parseArgs(...)
  local opts = {paths = {}}
  local argv = {...}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^(%-%-?[%w-]+)=(.*)$")
    name = name or a
    if valueFlags[name] then
      if not value then
        i = i + 1
        value = argv[i]
        if not value then error(format("evo test: %s needs a value", name), 0) end
      end
      opts[valueFlags[name]] = value
    elseif switches[name] and not value then
      opts[switches[name]] = true
    elseif a:match("^%-") then
      error(format("evo test: unknown option '%s' (see docs/testing.md for the busted flags Evo takes)", a), 0)
    else
      opts.paths[#opts.paths + 1] = a
    end
    i = i + 1
  end
  if opts.output and not outputs[opts.output] then
    error(format("evo test: unknown output '%s' (utfTerminal, plainTerminal, TAP or json)", opts.output), 0)
  end
  if opts.seed and not tonumber(opts.seed) then error("evo test: --seed needs a number", 0) end
  if opts.seed then opts.shuffle = true end
  opts.tags, opts.excludeTags = tagList(opts.tags), tagList(opts.excludeTags)
  opts.filtered = (opts.filter or opts.filterOut or opts.tags or opts.excludeTags) ~= nil
  if #opts.paths == 0 then opts.paths[1] = isDir("tests") and "tests" or "." end
  return opts
end

---------------------------------------------------------------- discovery

-- *.spec.lua (Evo's) and *_spec.lua (busted's); with --pattern, the .lua
-- files whose name matches that Lua pattern, as busted does.
local function isSpecName(name, opts)
  if opts.excludePattern and name:find(opts.excludePattern) then return false end
  if opts.pattern then return name:match("%.lua$") ~= nil and name:find(opts.pattern) ~= nil end
  return name:match("%.spec%.lua$") ~= nil or name:match("_spec%.lua$") ~= nil
end

-- Evo's meanings (assert.equal deep, assert.match(s, pattern)) in *.spec.lua
-- files, busted's in every other file (*_spec.lua, --pattern's, named ones).
local function styleOf(file)
  return file:match("%.spec%.lua$") and "evo" or "busted"
end

local function findSpecs(path, out, opts)
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
      findSpecs(full, out, opts)
    elseif isSpecName(e.name, opts) then
      out[#out + 1] = full
    end
  end
end

---------------------------------------------------------------- insulation

-- busted insulates each file (and insulate blocks): globals set and modules
-- required inside are gone afterwards, except what an expose block exported.
-- Evo's built-in modules stay loaded (they hold native state and classes).
local exported = {g = {}, loaded = {}}
local builtinSearcher = package.loaders[2]
local compatNames -- set below: the modules the runner itself provides

local function keepModule(name)
  if exported.loaded[name] or compatNames[name] then return true end
  -- LuaJIT's own preloaded modules (ffi, string.buffer, table.new, jit.*)
  -- are opened once per state: a second luaopen_ffi would replace the C
  -- type state that live cdata (and their finalizers) point into.
  if package.preload[name] ~= nil then return true end
  local ok, loader = pcall(builtinSearcher, name)
  return ok and type(loader) == "function"
end

local function snapshot()
  local g, loaded = {}, {}
  for k, v in pairs(_G) do g[k] = v end
  for k, v in pairs(package.loaded) do loaded[k] = v end
  return {g = g, loaded = loaded}
end

local function restore(snap)
  local drop = {}
  for k in pairs(_G) do
    if snap.g[k] == nil and not exported.g[k] then drop[#drop + 1] = k end
  end
  for _, k in ipairs(drop) do _G[k] = nil end
  for k, v in pairs(snap.g) do
    if not exported.g[k] and rawget(_G, k) ~= v then _G[k] = v end
  end
  drop = {}
  for k in pairs(package.loaded) do
    if snap.loaded[k] == nil and not keepModule(k) then drop[#drop + 1] = k end
  end
  for _, k in ipairs(drop) do package.loaded[k] = nil end
end

-- What changed in _G and package.loaded since snap (an insulate block's
-- collection made it; its tests run with it again: see runSuite).
local function delta(snap)
  local d = {g = {}, loaded = {}}
  for k, v in pairs(_G) do
    if snap.g[k] ~= v then d.g[k] = v end
  end
  for k, v in pairs(package.loaded) do
    if snap.loaded[k] ~= v then d.loaded[k] = v end
  end
  return d
end

local function apply(d)
  for k, v in pairs(d.g) do _G[k] = v end
  for k, v in pairs(d.loaded) do package.loaded[k] = v end
end

-- What an expose block added is kept by every insulation around it.
local function export(snap)
  for k in pairs(_G) do
    if snap.g[k] == nil then exported.g[k] = true end
  end
  for k in pairs(package.loaded) do
    if snap.loaded[k] == nil then exported.loaded[k] = true end
  end
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

local asserts = {evo = bustedAssert.create("evo"), busted = bustedAssert.create("busted")}
local PENDING = {}          -- metatable of the error pending() raises inside a test
local currentTest = nil     -- the test whose body or hooks run now
local currentEnv = nil      -- the globals of the spec file being loaded (for require("busted"))

-- The globals a spec file sees (anything else comes from _G).
local function specEnvironment(root, style)
  local current = root
  local env = {}

  local function addTest(fname, name, a, b, skip, pending)
    local fn, opts = a, b
    if type(a) == "table" or type(a) == "number" then fn, opts = b, a end
    args.check(1, fname, name, "string", 3)
    if not (skip or pending) then args.check(2, fname, fn, "function", 3) end
    local timeout = type(opts) == "number" and opts or (type(opts) == "table" and opts.timeout) or nil
    current.children[#current.children + 1] = {
      kind = "test", name = name, fn = fn, suite = current, line = callerLine(3),
      skip = skip or pending or current.skip, pending = pending, timeout = timeout,
    }
  end

  -- mode: nil, "insulate" (globals and modules set inside are dropped at
  -- its end) or "expose" (they outlive the file).
  local function addSuite(fname, name, fn, skip, mode)
    args.check(1, fname, name, "string", 3)
    args.check(2, fname, fn, "function", 3)
    local suite = newSuite(name, current, root.file, skip)
    suite.kind, suite.mode = "suite", mode
    suite.line = callerLine(3)
    current.children[#current.children + 1] = suite
    local snap
    if mode then
      -- The block's own globals: plain assignments inside land here (insulate)
      -- or in _G (expose); nested closures inherit this environment.
      local outer = getfenv(fn)
      setfenv(fn, setmetatable({}, {
        __index = outer,
        __newindex = mode == "expose" and function(_, k, v) _G[k] = v end or nil,
      }))
      snap = snapshot()
    end
    local outerSuite = current
    current = suite
    local ok, err = pcall(fn)
    current = outerSuite
    if mode == "insulate" then
      suite.delta = delta(snap)
      restore(snap)
    elseif mode == "expose" then
      export(snap)
    end
    if not ok then error(err, 0) end
  end

  local function hook(kind, fname, strict)
    return function(fn)
      args.check(1, fname, fn, "function")
      local list = current[kind]
      list[#list + 1] = {fn = fn, strict = strict}
    end
  end

  local function suiteFn(fname, mode)
    return setmetatable({skip = function(name, fn) addSuite(fname, name, fn, true, mode) end},
      {__call = function(_, name, fn) addSuite(fname, name, fn, false, mode) end})
  end
  local function testFn(fname)
    return setmetatable({skip = function(name, a, b) addTest(fname, name, a, b, true) end},
      {__call = function(_, name, a, b) addTest(fname, name, a, b, false) end})
  end

  env.describe, env.context = suiteFn("describe"), suiteFn("context")
  env.insulate, env.expose = suiteFn("insulate", "insulate"), suiteFn("expose", "expose")
  env.it, env.spec, env.test = testFn("it"), testFn("spec"), testFn("test")
  env.before, env.after = hook("before", "before"), hook("after", "after")
  env.beforeEach, env.afterEach = hook("beforeEach", "beforeEach"), hook("afterEach", "afterEach")
  env.before_each, env.after_each = hook("beforeEach", "before_each"), hook("afterEach", "after_each")
  env.lazy_setup, env.lazy_teardown = hook("before", "lazy_setup"), hook("after", "lazy_teardown")
  env.strict_setup, env.strict_teardown = hook("before", "strict_setup", true), hook("after", "strict_teardown", true)
  -- busted 2: setup and teardown are the strict forms.
  env.setup, env.teardown = hook("before", "setup", true), hook("after", "teardown", true)
  -- pending(name [, fn]) declares a pending test; inside a running test,
  -- pending(reason) stops it and counts it as pending.
  env.pending = function(name, fn)
    if currentTest then error(setmetatable({message = tostring(name or "pending")}, PENDING), 2) end
    addTest("pending", name, fn, nil, false, true)
  end
  -- finally(fn) inside a test: fn runs after the test, whether it passed or not.
  env.finally = function(fn)
    args.check(1, "finally", fn, "function")
    if not currentTest then error("finally: call it inside a test (it/spec/test)", 2) end
    local list = currentTest.finally
    list[#list + 1] = fn
  end
  env.randomize = function() current.shuffle = true end
  env.spy, env.stub, env.mock, env.match = spies.spy, spies.stub, spies.mock, match
  env.assert = asserts[style]
  return setmetatable(env, {__index = _G})
end

---------------------------------------------------------------- require("luassert"), require("busted")

-- require("busted"): the spec API of the file being loaded (busted's
-- `local describe = require("busted").describe` idiom), plus a few helpers.
local bustedModule = setmetatable({
  fail = function(msg) error(msg == nil and "failed" or msg, 2) end,
  gettime = function() return uv.hrtime() / 1e9 end,
  monotime = function() return uv.hrtime() / 1e9 end,
  sleep = function(s) uv.sleep(math.floor(s * 1000)) end,
  version = "2.1 (evo)",
  publish = function() end, subscribe = function() end, unsubscribe = function() end,
}, {
  __index = function(_, key)
    if currentEnv then return rawget(currentEnv, key) end
  end,
})

compatNames = {
  luassert = asserts.busted, ["luassert.assert"] = asserts.busted,
  ["luassert.spy"] = spies.spy, ["luassert.stub"] = spies.stub, ["luassert.mock"] = spies.mock,
  ["luassert.match"] = match, say = bustedAssert.say, busted = bustedModule,
  -- require("busted.runner")() starts busted in a standalone file; here the runner is running.
  ["busted.runner"] = function() end,
}

-- A package.loaders entry, ahead of package.path while the run lasts, so the
-- globals and require("luassert") are one assert even when Debian's
-- lua-luassert/lua-busted are installed (they are not loaded by evo test).
local function compatSearcher(name)
  local value = compatNames[name]
  if value ~= nil then return function() return value end end
  if name:match("^luassert%.") or name:match("^busted%.") then
    return function()
      error(format("module '%s' is not part of evo test's busted compatibility (docs/testing.md)", name), 0)
    end
  end
  return "\n\tno module '" .. name .. "' in evo test's busted compatibility"
end

local function installSearcher()
  table.insert(package.loaders, 2, compatSearcher)
  for name in pairs(compatNames) do package.loaded[name] = nil end
end

local function removeSearcher()
  for i, s in ipairs(package.loaders) do
    if s == compatSearcher then table.remove(package.loaders, i) break end
  end
end

---------------------------------------------------------------- output

local stats = {passed = 0, failed = 0, skipped = 0, failures = {}, results = {}}
local running = nil   -- the test or hook in progress, for uncaught errors

local function errorText(err)
  if type(err) == "string" then return err end
  local mt = type(err) == "table" and getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  if type(err) == "table" and type(err.message) == "string" then return err.message end
  return tostring(err)
end

local function indentOf(depth) return string.rep("  ", depth) end

-- -o utfTerminal (the default) and plainTerminal print the tree as it runs;
-- TAP prints a line per test; json prints one document at the end.
local output = "utfTerminal"
local marks = {
  utfTerminal = {pass = "\226\156\147 ", fail = "\226\156\151 ", skip = "- "},
  plainTerminal = {pass = "+ ", fail = "x ", skip = "- "},
}
local tree = true
local tapCount = 0

local function say(...)
  if tree then write(...) end
end

-- kind: "pass", "fail" or "skip"; for the TAP and json outputs.
local function record(kind, test, message)
  local name = test.name and fullName(test) or test.label
  if output == "TAP" then
    tapCount = tapCount + 1
    if kind == "fail" then
      write(format("not ok %d - %s\n", tapCount, name))
      for line in (message or ""):gmatch("[^\n]+") do write("# ", line, "\n") end
    else
      write(format("ok %d - %s%s\n", tapCount, name, kind == "skip" and " # SKIP" or ""))
    end
  elseif output == "json" then
    stats.results[#stats.results + 1] = {status = kind, name = name, file = test.file, line = test.line, message = message}
  end
end

---------------------------------------------------------------- running

-- xpcall handler: the message, the spec file's line where it happened, and
-- a traceback. pending(reason) inside a test comes out as {pending = reason}.
local function captureError(specFile)
  return function(err)
    if type(err) == "table" and getmetatable(err) == PENDING then return {pending = err.message} end
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

-- Where a stuck coroutine waits: its innermost frame in a spec file.
local function whereWaits(co, specFile)
  for level = 0, 60 do
    local info = debug.getinfo(co, level, "Sl")
    if not info then break end
    if info.source == "@" .. specFile then return info.short_src .. ":" .. info.currentline end
  end
end

-- Runs fn as a coroutine; waits (yielding the runner) until it finishes,
-- fails, or runs out of time. Returns nil on success, or an error record.
local function runGuarded(fn, timeout, specFile)
  local runner = coroutine.running()
  local state = {done = false, waiting = false, file = specFile}
  local function finish(err)
    if state.done then return end
    state.done, state.err = true, err
    if state.waiting then wakeLater(runner) end
  end
  state.finish = finish
  -- The test runs as a task, so task.* and the colourless modules suspend it.
  local future = tasknative.spawn(function()
    state.co = coroutine.running()
    local ok, err = xpcall(fn, captureError(specFile))
    finish((not ok) and err or nil)
  end)
  state.future = future
  running = state
  if not state.done then
    state.waiting = true
    -- Unreferenced: the timeout alone does not keep the loop alive, so a test
    -- waiting on nothing that could wake it is caught by onIdle at once.
    local timer = after(timeout, function()
      finish({message = format("timed out after %g s (neither finished nor failed)", timeout)})
      tasknative.requestCancel(future)  -- stop it at its next blocking call
    end)
    timer:unref()
    coroutine.yield()
    timer:close()
  end
  running = nil
  return state.err
end

-- The loop ran out of work while a test (or hook, or a file loading) waits:
-- nothing can ever resume it. It fails, and the run goes on.
local function onIdle()
  local state = running
  if not state or state.done then return end
  local where = state.co and whereWaits(state.co, state.file)
  state.finish({
    message = "waits with nothing left that could resume it (a coroutine.yield() or a wait no callback or " ..
      "timer will end)",
    location = where,
  })
  tasknative.requestCancel(state.future)
end

-- error("...", level) already starts its message with file:line: drop it
-- when it repeats the location printed in front.
local function withoutLocation(message, where)
  if message:sub(1, #where + 2) == where .. ": " then return message:sub(#where + 3) end
  return message
end

local function traceLines(tb)
  -- Only the frames in spec files: the runner's own frames are noise.
  local out = {}
  for line in (tb or ""):gmatch("[^\n]+") do
    if (line:find(".spec.lua:", 1, true) or line:find("_spec.lua:", 1, true)) and not line:find("[evo]", 1, true) then
      out[#out + 1] = line:gsub("^%s+", "")
    end
  end
  return out
end

local function report(test, depth, err, ms)
  local pad = indentOf(depth)
  local m = marks[output] or marks.utfTerminal
  if not err then
    stats.passed = stats.passed + 1
    say(pad, m.pass, test.name, format(" (%.1f ms)", ms), "\n")
    record("pass", test)
    return
  end
  stats.failed = stats.failed + 1
  local where = err.location or (test.file .. ":" .. test.line)
  local message = withoutLocation(err.message, where)
  say(pad, m.fail, test.name, "\n")
  say(pad, "    ", where, ": ", (message:gsub("\n", "\n" .. pad .. "    ")), "\n")
  local frames = traceLines(err.traceback)
  if #frames > 1 then
    for _, f in ipairs(frames) do say(pad, "      ", f, "\n") end
  end
  record("fail", test, where .. ": " .. message)
  stats.failures[#stats.failures + 1] = format("%s: %s", test.file .. ":" .. test.line, fullName(test))
end

local function skipped(test, depth, reason)
  stats.skipped = stats.skipped + 1
  say(indentOf(depth), "- ", test.name, " (", reason, ")\n")
  record("skip", test, reason)
end

-- A test's full name matches --filter (plain text, else a Lua pattern, as
-- busted takes it), not --filter-out, and the --tags / --exclude-tags
-- ("#tag" words in the name).
local function nameSelected(name, opts)
  local function has(text)
    if name:find(text, 1, true) then return true end
    local ok, found = pcall(string.find, name, text)
    return ok and found ~= nil
  end
  if opts.filter and not has(opts.filter) then return false end
  if opts.filterOut and has(opts.filterOut) then return false end
  if opts.tags then
    local any = false
    for _, tag in ipairs(opts.tags) do
      if name:find(tag, 1, true) then any = true break end
    end
    if not any then return false end
  end
  for _, tag in ipairs(opts.excludeTags or {}) do
    if name:find(tag, 1, true) then return false end
  end
  return true
end

local function matches(node, opts)
  if node.kind == "test" then return nameSelected(fullName(node), opts) end
  for _, child in ipairs(node.children) do
    if matches(child, opts) then return true end
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
    for _, x in ipairs(chain) do for _, h in ipairs(x.beforeEach) do list[#list + 1] = h.fn end end
  else
    for i = #chain, 1, -1 do for _, h in ipairs(chain[i].afterEach) do list[#list + 1] = h.fn end end
  end
  return list
end

local function runTest(test, depth, file, timeout)
  if test.skip then
    test.file = file
    skipped(test, depth, test.pending and "pending" or "skipped")
    return
  end
  test.file = file
  test.finally = {}
  local mark = spies.spy.mark()
  currentTest = test
  local started = uv.hrtime()
  local err
  for _, h in ipairs(eachHooks(test.suite, "beforeEach")) do
    err = runGuarded(h, timeout, file)
    if err then
      if err.message then err.message = "before_each hook: " .. err.message end
      break
    end
  end
  if not err then err = runGuarded(test.fn, test.timeout or timeout, file) end
  for _, fn in ipairs(test.finally) do
    local e = runGuarded(fn, timeout, file)
    if e and (not err or err.pending) then
      err = e
      if err.message then err.message = "finally: " .. err.message end
    end
  end
  for _, h in ipairs(eachHooks(test.suite, "afterEach")) do
    local e = runGuarded(h, timeout, file)
    if e and (not err or err.pending) then
      err = e
      if err.message then err.message = "after_each hook: " .. err.message end
    end
  end
  currentTest = nil
  spies.spy.revertTo(mark)  -- the spies and stubs this test placed
  if err and err.pending then
    skipped(test, depth, "pending: " .. err.pending)
    return
  end
  report(test, depth, err, (uv.hrtime() - started) / 1e6)
end

-- A describe whose before hook failed: its tests fail without running
-- (skipped ones stay skipped, filtered-out ones are not counted).
local function failAll(suite, depth, file, message, opts)
  for _, child in ipairs(suite.children) do
    if matches(child, opts) then
      if child.kind == "test" and child.skip then
        child.file = file
        skipped(child, depth, child.pending and "pending" or "skipped")
      elseif child.kind == "test" then
        child.file = file
        report(child, depth, {message = message, location = file .. ":" .. (suite.line or 0)}, 0)
      else
        failAll(child, depth + 1, file, message, opts)
      end
    end
  end
end

local function shuffled(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  for i = #out, 2, -1 do
    local j = math.random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

local function hasTests(suite)
  for _, child in ipairs(suite.children) do
    if child.kind == "test" or hasTests(child) then return true end
  end
  return false
end

local function failHook(depth, file, suite, err, what)
  stats.failed = stats.failed + 1
  local text = what .. " hook: " .. (err.message or tostring(err.pending))
  say(indentOf(depth), (marks[output] or marks.utfTerminal).fail, text, "\n")
  record("fail", {label = file .. ": " .. text, file = file, line = suite.line}, text)
  stats.failures[#stats.failures + 1] = file .. ": " .. what .. " hook of " .. (suite.name ~= "" and suite.name or "file")
end

local function runSuite(suite, depth, file, opts, timeout)
  if not matches(suite, opts) then
    -- strict_setup/strict_teardown (busted's setup/teardown) run even for
    -- a describe without tests; one whose tests were all filtered out does not.
    if suite.skip or opts.filtered or hasTests(suite) then return end
    for _, kind in ipairs({"before", "after"}) do
      for _, h in ipairs(suite[kind]) do
        if h.strict then
          local err = runGuarded(h.fn, timeout, file)
          if err then failHook(depth, file, suite, err, kind == "before" and "setup" or "teardown") end
        end
      end
    end
    return
  end
  if suite.name ~= "" then say(indentOf(depth), suite.name, "\n") end
  local inner = suite.name ~= "" and depth + 1 or depth
  local snap = suite.mode == "insulate" and snapshot()
  if snap then apply(suite.delta) end
  local expose = suite.mode == "expose" and snapshot()
  local mark = spies.spy.mark()
  local ok = true
  if not suite.skip then
    for _, h in ipairs(suite.before) do
      local err = runGuarded(h.fn, timeout, file)
      if err then
        failAll(suite, inner, file, "before hook: " .. (err.message or tostring(err.pending)), opts)
        ok = false
        break
      end
    end
  end
  if ok then
    local children = (opts.shuffle or suite.shuffle) and shuffled(suite.children) or suite.children
    for _, child in ipairs(children) do
      -- (a describe with no tests at all still runs its strict hooks)
      if matches(child, opts) or (child.kind == "suite" and not opts.filtered and not hasTests(child)) then
        if child.kind == "test" then
          runTest(child, inner, file, timeout)
        else
          runSuite(child, inner, file, opts, timeout)
        end
      end
    end
  end
  if ok and not suite.skip then
    for _, h in ipairs(suite.after) do
      local err = runGuarded(h.fn, timeout, file)
      if err then failHook(inner, file, suite, err, "after") end
    end
  end
  spies.spy.revertTo(mark)  -- the spies and stubs its setup placed
  if snap then restore(snap) end
  if expose then export(expose) end
end

local seenDirs = {}
local function addSpecDirToPath(file)
  local dir = file:match("^(.*)/[^/]*$") or "."
  if seenDirs[dir] then return end
  seenDirs[dir] = true
  -- The spec's directory, then the lua_modules trees above it (docs/rocks.md).
  require("evo.modpath").addDir(dir)
end

local function loadFailure(file, err)
  say(file, "\n")
  stats.failed = stats.failed + 1
  say("  ", (marks[output] or marks.utfTerminal).fail, "failed to load: ", err, "\n")
  record("fail", {label = file .. ": failed to load", file = file, line = 0}, err)
  stats.failures[#stats.failures + 1] = file .. ": failed to load"
end

local function runFile(file, opts, timeout)
  local style = styleOf(file)
  local root = newSuite("", nil, file)
  root.kind = "suite"
  -- busted runs each file insulated; Evo's own *.spec.lua files never were.
  local snap = style == "busted" and not opts.noAutoInsulate and snapshot()
  local mark = spies.spy.mark()
  local chunk, err = loadfile(file)
  if chunk then
    addSpecDirToPath(file)
    local env = specEnvironment(root, style)
    setfenv(chunk, env)
    currentEnv = env  -- until the file's tests are done
    -- Loading runs the describe bodies: guarded like a test, so a body that
    -- waits on nothing fails this file and the run goes on.
    local e = runGuarded(chunk, timeout, file)
    if e then
      local message = e.message or ("pending: " .. tostring(e.pending))
      err = e.location and (e.location .. ": " .. withoutLocation(message, e.location)) or message
    end
  end
  if err then
    loadFailure(file, err)
  elseif matches(root, opts) then
    say(file, "\n")
    runSuite(root, 1, file, opts, timeout)
  end
  currentEnv = nil
  spies.spy.revertTo(mark)
  if snap then restore(snap) end
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
    say((marks[output] or marks.utfTerminal).fail, "uncaught error outside any test: ", tostring(message), "\n")
    record("fail", {label = "uncaught error outside any test"}, tostring(message))
    stats.failures[#stats.failures + 1] = "uncaught error outside any test"
  end
end

local function summary()
  local line = format("%d passed, %d failed", stats.passed, stats.failed)
  if stats.skipped > 0 then line = line .. format(", %d skipped", stats.skipped) end
  if output == "json" then
    local json = require("json")
    local doc = {passed = stats.passed, failed = stats.failed, skipped = stats.skipped, tests = json.array()}
    for i, r in ipairs(stats.results) do doc.tests[i] = r end
    write(json.encode(doc), "\n")
    return
  end
  if output == "TAP" then
    write("1..", tostring(tapCount), "\n# ", line, "\n")
    return
  end
  if #stats.failures > 0 then
    write("\nFailures:\n")
    for _, f in ipairs(stats.failures) do write("  ", marks[output].fail, f, "\n") end
  end
  write("\n", line, "\n")
end

function M.main(...)
  -- A run that never reaches its summary (a test stopped the loop) fails.
  core.setExitCode(1)
  local ok, opts = pcall(parseArgs, ...)
  if not ok then
    io.stderr:write(opts, "\n")
    core.setExitCode(2)
    return
  end
  output = opts.output or "utfTerminal"
  tree = marks[output] ~= nil
  if opts.lpath then package.path = opts.lpath .. ";" .. package.path end
  if opts.cpath then package.cpath = opts.cpath .. ";" .. package.cpath end
  if opts.shuffle then
    local seed = tonumber(opts.seed) or os.time()
    math.randomseed(seed)
    say("shuffled with --seed ", tostring(seed), "\n")
  end
  local timeout = tonumber(os.getenv("EVO_TEST_TIMEOUT")) or DEFAULT_TIMEOUT
  local files = {}
  for _, p in ipairs(opts.paths) do
    if not uv.fs_stat(p) then
      io.stderr:write("evo test: no such file or directory: ", p, "\n")
      core.setExitCode(2)
      return
    end
    findSpecs(p, files, opts)
  end
  core.setUncaughtHandler(onUncaught)
  core.setIdleHandler(onIdle)
  installSearcher()
  for _, file in ipairs(files) do runFile(file, opts, timeout) end
  removeSearcher()
  core.setIdleHandler(nil)
  core.setUncaughtHandler(nil)
  -- Handles a test leaked must not keep the run alive.
  core.closeHandles()
  summary()
  io.stdout:flush()
  core.setExitCode(stats.failed > 0 and 1 or 0)
end

return M
