-- evo.io: the one way Evo's colourless functions wait for libuv.
--
-- call(fn, ...) runs a luv request function. Inside a task that can yield
-- (evented mode), it passes a callback, suspends the task, and returns the
-- result when libuv calls back; if the task is cancelled meanwhile, the
-- request is cancelled with uv.cancel (or its result discarded) and Canceled
-- is raised. Anywhere else (blocking mode, outside a task, or where Lua
-- cannot yield: a __gc finalizer, a table.sort comparator, a module's top level)
-- it makes the same call synchronously: a plain syscall on this thread.
-- Either way it returns the result, or nil and an error object.
local uv = require("uv")
local native = require("evo.task")
local errors = require("evo.errors")

local prepare, suspend, wake = native.prepare, native.suspend, native.wake
local select = select
local fromUv = errors.fromUv
local raiseCanceled = require("evo.wait").raiseCanceled

local io = {}

local function cancelRequest(req)
  if req then pcall(uv.cancel, req) end  -- EBUSY once running: the result is then discarded
end

local function syncResult(value, message, name)
  if value == nil and message ~= nil then return nil, fromUv(message, name) end
  if value == nil then return true end
  return value
end

local function asyncResult(ok, err, value)
  if not ok then raiseCanceled(3) end
  if err then return nil, fromUv(err) end
  if value == nil then return true end
  return value
end

-- call(fn, a, b, ...): up to 6 arguments before the callback.
function io.call(fn, ...)
  local me, id = prepare(true)
  if me == false then raiseCanceled(2) end
  if me == nil then return syncResult(fn(...)) end
  local n = select("#", ...)
  local function done(err, value) wake(me, id, err, value) end
  local req, failed, failedName
  if n == 0 then req, failed, failedName = fn(done)
  elseif n == 1 then req, failed, failedName = fn((...), done)
  else
    local a, b, c, d, e, f = ...
    if n == 2 then req, failed, failedName = fn(a, b, done)
    elseif n == 3 then req, failed, failedName = fn(a, b, c, done)
    elseif n == 4 then req, failed, failedName = fn(a, b, c, d, done)
    elseif n == 5 then req, failed, failedName = fn(a, b, c, d, e, done)
    else req, failed, failedName = fn(a, b, c, d, e, f, done) end
  end
  -- luv reports some failures at once, without ever calling back: no wait then.
  if req == nil and failed ~= nil then return nil, fromUv(failed, failedName) end
  return asyncResult(suspend(cancelRequest, req))
end

return io
