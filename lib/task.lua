-- task: tasks, futures, cancellation, structured concurrency.
--
-- Asynchrony is not concurrency. task.async(fn) says fn may run concurrently;
-- task.concurrent(fn) says it must. Inside a task (a coroutine driven by the
-- loop; the main chunk is one) Evo's blocking calls suspend only that task;
-- in the blocking Io mode (evo --io=blocking) they are plain syscalls, async
-- runs fn inline, and concurrent raises ConcurrencyUnavailable. The same
-- script gives the same results in both modes, except where it needs
-- concurrency.
--
--   local task = require("task")
--   local a = task.async(fs.writeFile, "a.txt", "A")
--   local b = task.async(fs.writeFile, "b.txt", "B")
--   a:await(); b:await()
--
-- See docs/concurrency.md.
local native = require("evo.task")
local errors = require("evo.errors")
local args = require("evo.args")
local core = require("evo.core")

local type, select, error, pairs, ipairs, unpack = type, select, error, pairs, ipairs, unpack
local spawn, inline, prepare, suspend, wake = native.spawn, native.inline, native.prepare, native.suspend, native.wake
local notify, unnotify, isDone, results, outcome = native.notify, native.unnotify, native.isDone, native.results,
  native.outcome
local hrtime = core.hrtime

local task = {}
local blocking = native.mode() == "blocking"

local raiseCanceled = require("evo.wait").raiseCanceled

local function checkFunction(n, fname, fn)
  if type(fn) ~= "function" and not (type(fn) == "table" and (getmetatable(fn) or {}).__call) then
    args.fail(n, fname, "function", fn, 3)
  end
end

-- async(fn, ...) -> Future. fn may run concurrently with the caller, or
-- inline (it always does in the blocking mode).
function task.async(fn, ...)
  if type(fn) ~= "function" then checkFunction(1, "async", fn) end
  if blocking then return inline(fn, ...) end
  return spawn(fn, ...)
end

-- concurrent(fn, ...) -> Future. fn runs concurrently with the caller, or
-- this raises an error with code "ConcurrencyUnavailable".
function task.concurrent(fn, ...)
  checkFunction(1, "concurrent", fn)
  if blocking then
    error(errors.new("ConcurrencyUnavailable",
      "concurrent() needs the evented Io mode; in the blocking mode there is only one task"), 2)
  end
  return spawn(fn, ...)
end

-- Suspends the current task until `future` finishes. Raises Canceled if the
-- current task is cancelled meanwhile (the awaited task keeps running).
local awaitNative = native.await
local function waitFor(future)
  local r = awaitNative(future, true)
  if r then return end
  if r == false then raiseCanceled(3) end
  error("cannot wait for an unfinished task here: not inside a task, or inside a call that cannot " ..
    "yield (a __gc finalizer, a table.sort comparator, a string.gsub callback, a module's top level)", 3)
end

local Future = native.Future

-- future:await() -> the function's results; re-raises its error (with the
-- task's traceback). Idempotent.
function Future:await()
  waitFor(self)
  return results(self)
end

-- future:cancel() -> requests cancellation, then awaits. The task sees a
-- Canceled error at its next blocking call (once). A task that finished
-- anyway returns its results; one that ended with Canceled returns nil, err;
-- any other error is re-raised.
function Future:cancel()
  native.requestCancel(self)
  waitFor(self)
  local ok, first = outcome(self)
  if ok then return results(self) end
  if errors.is(first, "Canceled") then return nil, first end
  return results(self)  -- re-raises
end

function Future:done() return isDone(self) end

-- sleep(seconds): suspends the current task (or blocks) for that long.
-- sleep(0) is yield(); any other time is the Io's timer (docs/io.md).
function task.sleep(seconds)
  args.check(1, "sleep", seconds, "number")
  if seconds == 0 then
    if not native.yield(true) then raiseCanceled(2) end
  elseif not native.sleep(seconds, true) then
    raiseCanceled(2)
  end
end

-- yield(): lets the other ready tasks and the loop run once.
function task.yield()
  if not native.yield(true) then raiseCanceled(2) end
end

-- now(): monotonic time in seconds, sub-millisecond precision.
function task.now() return hrtime() end

-- checkCancel(): a cancellation point that does nothing else.
function task.checkCancel()
  if native.cancelDue() then raiseCanceled(2) end
end

-- shield(fn, ...): runs fn with cancellation deferred until it returns.
function task.shield(fn, ...)
  checkFunction(1, "shield", fn)
  native.shieldEnter()
  local res = {pcall(fn, ...)}
  native.shieldLeave()
  if not res[1] then error(res[2], 0) end
  if native.cancelDue() then raiseCanceled(2) end
  return unpack(res, 2, table.maxn(res))
end

function task.mode() return native.mode() end

-- current() -> the running task's Future, or nil outside a task.
task.current = native.current

----------------------------------------------------------------- select

local function isFuture(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return mt and mt.__index == Future
end
task.isFuture = isFuture

local function checkFutures(fname, ...)
  local n = select("#", ...)
  if n == 0 then error(("bad argument #1 to '%s' (Future expected, got no value)"):format(fname), 3) end
  for i = 1, n do
    local f = select(i, ...)
    if not isFuture(f) then args.fail(i, fname, "Future", f, 3) end
  end
  return n
end

-- select(f1, f2, ...) -> i, results of fi: waits for the first to finish.
function task.select(...)
  local n = checkFutures("select", ...)
  local function firstDone(...)
    for i = 1, n do
      if isDone((select(i, ...))) then return i end
    end
  end
  local i = firstDone(...)
  if not i then
    local me, id = prepare(true)
    if me == false then raiseCanceled(2) end
    if me == nil then error("select() of unfinished tasks needs to run inside a task that can yield", 2) end
    local futures = {...}
    for k = 1, n do notify(futures[k], me, id) end
    local ok, winner = suspend(function(fs, waiter)
      for k = 1, #fs do unnotify(fs[k], waiter) end
    end, futures)
    for k = 1, n do unnotify(futures[k], me) end
    if not ok then raiseCanceled(2) end
    for k = 1, n do
      if futures[k] == winner then i = k break end
    end
  end
  return i, results((select(i, ...)))
end

----------------------------------------------------------------- timeout

-- timeout(seconds, fn, ...) -> fn's results, or nil, err (err.code ==
-- "Timeout") after cancelling fn.
function task.timeout(seconds, fn, ...)
  args.check(1, "timeout", seconds, "number")
  checkFunction(2, "timeout", fn)
  if blocking then
    local started = hrtime()
    local f = inline(fn, ...)
    local ok, first = outcome(f)
    if not ok and errors.is(first, "Timeout") then return nil, first end
    if hrtime() - started > seconds then
      return nil, errors.new("Timeout", ("did not finish within %g s"):format(seconds))
    end
    return results(f)
  end
  local f = spawn(fn, ...)
  local sleeper = spawn(task.sleep, seconds)
  local ok, which = pcall(task.select, f, sleeper)
  if not ok then
    -- Cancelled while waiting: the inner task must not outlive us. Canceled
    -- was delivered to us once, so this wait for its end proceeds.
    native.requestCancel(f)
    native.requestCancel(sleeper)
    waitFor(f)
    outcome(f)
    error(which, 0)
  end
  if which == 1 then
    sleeper:cancel()
    return results(f)
  end
  native.requestCancel(f)
  waitFor(f)
  local ok, first = outcome(f)
  if ok then return results(f) end  -- it finished anyway (shielded, or at the same moment)
  if errors.is(first, "Canceled") then
    return nil, errors.new("Timeout", ("did not finish within %g s"):format(seconds))
  end
  return results(f)  -- re-raises its own error
end

----------------------------------------------------------------- groups

local join = native.join

local Group = {}
Group.__index = Group
Group.__name = "Group"

-- group() -> a set of tasks awaited or cancelled together. Each task is
-- joined to the group's done list, which receives it when it ends: await
-- waits for any number of tasks in one suspension, in the order they end.
function task.group()
  return setmetatable({futures = {}, done = {}, seen = 0}, Group)
end

local function add(self, f)
  self.futures[#self.futures + 1] = f
  join(f, self.done)
  return f
end

function Group:async(fn, ...) return add(self, task.async(fn, ...)) end
function Group:concurrent(fn, ...) return add(self, task.concurrent(fn, ...)) end

local function cancelAll(self)
  for _, f in ipairs(self.futures) do
    if not isDone(f) then native.requestCancel(f) end
  end
end

-- Suspends until the group's done list grows. Returns false when the
-- awaiting task was cancelled meanwhile.
local function waitDone(self, level)
  local me, id = prepare(true)
  if me == false then return false end
  if me == nil then
    error("cannot wait for unfinished tasks here: not inside a task, or inside a call that cannot " ..
      "yield (a __gc finalizer, a table.sort comparator, a string.gsub callback, a module's top level)", level + 1)
  end
  local done = self.done
  done.waiter, done.id = me, id
  local ok = suspend(function(d) d.waiter, d.id = nil, nil end, done)
  return ok
end

-- await(): waits for every task. On the first failure (in order of
-- failure) the others are cancelled, awaited, and that error is re-raised.
-- If the awaiting task is cancelled, the group's tasks are cancelled and
-- awaited too, and Canceled is raised: no task outlives its group.
function Group:await()
  local done, firstError, canceled = self.done, nil, false
  while true do
    while self.seen < #done do
      self.seen = self.seen + 1
      local f = done[self.seen]
      local ok, err = outcome(f)
      if not ok and firstError == nil and not errors.is(err, "Canceled") then
        firstError = err
        cancelAll(self)
      end
    end
    if self.seen >= #self.futures then break end
    if not waitDone(self, 2) then
      canceled = true
      cancelAll(self)
    end
  end
  self.futures, self.done, self.seen = {}, {}, 0
  if canceled then raiseCanceled(2) end
  if firstError ~= nil then error(firstError, 0) end
end

-- cancel(): cancels every task and waits for them.
function Group:cancel()
  cancelAll(self)
  for _, f in ipairs(self.futures) do waitFor(f); outcome(f) end
  self.futures, self.done, self.seen = {}, {}, 0
end

----------------------------------------------------------------- queues

local Queue = {}
Queue.__index = Queue
Queue.__name = "Queue"

-- queue(capacity) -> a FIFO for many producers and consumers. put() suspends
-- while it is full, get() while it is empty; get() returns nil once the
-- queue is closed and drained.
function task.queue(capacity)
  capacity = capacity or math.huge
  args.check(1, "queue", capacity, "number")
  if capacity < 1 then error("bad argument #1 to 'queue' (capacity must be at least 1)", 2) end
  return setmetatable({capacity = capacity, items = {}, head = 1, tail = 0, closed = false,
    getters = {}, putters = {}}, Queue)
end

local function wakeFirst(list)
  while #list > 0 do
    local w = table.remove(list, 1)
    if wake(w[1], w[2]) then return true end
  end
  return false
end

local function waitIn(list, what)
  local me, id = prepare(true)
  if me == false then raiseCanceled(3) end
  if me == nil then
    error(("queue %s would wait forever: no other task can run here"):format(what), 3)
  end
  local entry = {me, id}
  list[#list + 1] = entry
  local ok = suspend(function(l)
    for k = #l, 1, -1 do if l[k] == entry then table.remove(l, k) end end
  end, list)
  if not ok then raiseCanceled(3) end
end

function Queue:count() return self.tail - self.head + 1 end

function Queue:put(value)
  while true do
    if self.closed then error(errors.new("Closed", "put() on a closed queue"), 2) end
    if self:count() < self.capacity then
      self.tail = self.tail + 1
      self.items[self.tail] = value
      wakeFirst(self.getters)
      return
    end
    waitIn(self.putters, "put() on a full queue")
  end
end

function Queue:get()
  while true do
    if self:count() > 0 then
      local v = self.items[self.head]
      self.items[self.head] = nil
      self.head = self.head + 1
      wakeFirst(self.putters)
      return v
    end
    if self.closed then return nil end
    waitIn(self.getters, "get() on an empty queue")
  end
end

function Queue:close()
  self.closed = true
  while wakeFirst(self.getters) do end
  while wakeFirst(self.putters) do end
end

----------------------------------------------------------------- work

local serial = require("evo.serial")
local workctl = require("evo.workctl")
local workers = {}   -- id -> {me, id}
local nextWorkId = 0
local workCtx

-- Runs on a worker thread, in a Lua state of its own. luv sends functions
-- there as bytecode without their upvalues, so this one uses none.
local workerMain = assert(loadstring([==[
  local id, code, payload, slot = ...
  local s = require("evo.serial")
  local ctl = require("evo.workctl")
  local function run()
    local fn, lerr = loadstring(code, "=task.work")
    if not fn then return false, s.encodeList(1, lerr) end
    local dok, args = pcall(s.decodeList, payload)
    if not dok then return false, s.encodeList(1, "task.work: cannot copy the arguments: " .. tostring(args)) end
    local res = {ctl.run(slot or 0, fn, unpack(args, 1, args.n))}  -- pcall, cancellable
    local ok = res[1]
    local n = ok and (table.maxn(res) - 1) or 1
    local encOk, encoded = pcall(s.encodeList, n, unpack(res, 2, n + 1))
    if not encOk then return false, s.encodeList(1, "task.work: cannot return the results: " .. encoded) end
    return ok, encoded
  end
  -- Nothing may escape: an error here would never reach the waiting task.
  local rok, ok, encoded = pcall(run)
  if not rok then return id, false, ("return {n=1,%q}"):format("task.work: " .. tostring(ok)) end
  return id, ok, encoded
]==], "=[evo task.work]"))

local workerMainCode  -- workerMain as bytecode, for workctl.inline

local function workDone(id, ok, encoded)
  local w = workers[id]
  workers[id] = nil
  if w then wake(w[1], w[2], ok, encoded) end
end

local function checkWorkFunction(fn)
  checkFunction(1, "work", fn)
  if type(fn) ~= "function" then args.fail(1, "work", "function", fn, 3) end
  if debug.getinfo(fn, "S").what == "C" then
    error("bad argument #1 to 'work' (cannot copy a C function to another Lua state; wrap it in a Lua function)", 3)
  end
  if debug.getupvalue(fn, 1) ~= nil then
    error("bad argument #1 to 'work' (the function uses upvalues; it runs in another Lua state, " ..
      "so pass what it needs as arguments)", 3)
  end
end

-- work(fn, ...) -> fn's results, computed in another Lua state on libuv's
-- thread pool: parallelism for CPU-bound work. Arguments and results are
-- copied (nil, booleans, numbers, strings, plain tables); fn must not use
-- upvalues. An error in fn is raised here.
function task.work(fn, ...)
  checkWorkFunction(fn)
  local n = select("#", ...)
  local ok, payload = pcall(serial.encodeList, n, ...)
  if not ok then error("bad argument to 'work': " .. payload, 2) end
  local code = string.dump(fn)
  local me, id = prepare(true)
  if me == false then raiseCanceled(2) end
  local okRun, encoded
  if me == nil then
    -- Blocking mode (or no task): on this thread, in a worker state of its
    -- own, so the job sees what it would on the pool (same script, same results).
    if not workerMainCode then workerMainCode = string.dump(workerMain) end
    okRun, encoded = workctl.inline(workerMainCode, code, payload)
  else
    if not workCtx then workCtx = require("uv").new_work(workerMain, workDone) end
    nextWorkId = nextWorkId + 1
    local wid = nextWorkId
    workers[wid] = {me, id}
    local slot = workctl.new()
    workCtx:queue(wid, code, payload, slot)
    local resumed
    -- Cancelled: the job's Lua code is stopped (evo.workctl) and its result dropped.
    resumed, okRun, encoded = suspend(function(w)
      workers[w[1]] = nil
      workctl.cancel(w[2])
    end, {wid, slot})
    if not resumed then raiseCanceled(2) end
  end
  local dok, res = pcall(serial.decodeList, encoded)
  if not dok then error("task.work: cannot copy the results: " .. tostring(res), 2) end
  if not okRun then error(res[1], 2) end
  return unpack(res, 1, res.n)
end

task.errors = errors
return task
