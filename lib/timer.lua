-- timer: run a function later, or every so often, as a task.
--
--   local timer = require("timer")
--   local t = timer.after(0.5, function() print("half a second later") end)
--   local tick = timer.every(1, function() print("tick") end)
--   ... tick:stop()
--
-- Each run of fn is a task (it may use blocking calls); an error in it is
-- reported and does not stop the timer. Built on the native Timer emitter.
local Timer = require("Timer")
local tasknative = require("evo.task")
local args = require("evo.args")
local core = require("evo.core")
local errors = require("evo.errors")

local timer = {}

local Handle = {}
Handle.__index = Handle
Handle.__name = "TimerHandle"

-- stop(): no further runs (a run in progress finishes)
function Handle:stop()
  if self.native then
    self.native:close()
    self.native = nil
  end
end
Handle.close = Handle.stop

function Handle:isActive() return self.native ~= nil end

local function runner(fn, ...)
  local n, argv = select("#", ...), {...}
  local traceback = debug.traceback
  return function()
    local ok, err = xpcall(fn, traceback, unpack(argv, 1, n))
    if not ok and not errors.is(err, "Canceled") then
      core.reportHandlerError("error in a timer task: " .. tostring(err))
    end
  end
end

local function start(fname, seconds, fn, repeating, ...)
  args.check(1, fname, seconds, "number")
  if type(fn) ~= "function" then args.fail(2, fname, "function", fn, 3) end
  if seconds < 0 then error(("bad argument #1 to '%s' (seconds must be >= 0)"):format(fname), 3) end
  local run = runner(fn, ...)
  local handle = setmetatable({}, Handle)
  local t = Timer()
  function t:TIMER_FIRED()
    if not repeating then handle:stop() end
    tasknative.spawn(run)  -- a task in either Io mode (in the blocking one its calls just block)
  end
  -- libuv cannot repeat every 0 ms: like Node's setInterval, at least 1 ms
  t:start(seconds, repeating and math.max(seconds, 0.001) or 0)
  handle.native = t
  return handle
end

-- after(seconds, fn, ...) -> handle: runs fn(...) once, as a task
function timer.after(seconds, fn, ...) return start("after", seconds, fn, false, ...) end

-- every(seconds, fn, ...) -> handle: runs fn(...) every `seconds`, as a task
function timer.every(seconds, fn, ...) return start("every", seconds, fn, true, ...) end

return timer
