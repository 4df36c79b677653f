-- Timer: a native timer that reports TIMER_FIRED {count = n}.
--
--   local Timer = require("Timer")
--   local t = Timer()
--   function t:TIMER_FIRED(event, payload)
--     print("tick", payload.count)
--     if payload.count == 3 then self:close() end
--   end
--   t:start(0.1, 0.1)   -- first after 0.1 s, then every 0.1 s
--
-- An active timer keeps the process alive (unless unref'd); close() releases it.
local events = require("events")
local native = require("evo.timer")
local args = require("evo.args")

local Timer = events.class("Timer", {"TIMER_FIRED"})

-- The native delivers TIMER_FIRED through this (events::emit_values): the
-- handler looked up and the payload made in Lua, compiled with the handler.
local deliver = events.deliverer("TIMER_FIRED", "count")

function Timer:init() native.open(self, deliver) end

-- A Timer, or a table that is no other class's object (its native part is
-- checked by the native).
local function isTimer(t)
  return events.isInstance(t, Timer) or (type(t) == "table" and getmetatable(t) ~= nil
    and not events.isInstance(t, events.Emitter))
end
local function method(name, fn, ...) return args.method(name, fn, isTimer, "Timer", ...) end

local function seconds(n, s)
  if s ~= s or s < 0 or s == math.huge then args.error(n, "start", "seconds must be a finite number >= 0", 3) end
end

-- start(timeout, interval): seconds; interval 0 or nil fires once.
Timer.start = method("start", function(self, timeout, interval)
  seconds(1, timeout)
  if interval ~= nil then seconds(2, interval) end
  return native.start(self, timeout, interval)
end, "number", "number?")
Timer.stop = method("stop", native.stop)
Timer.again = method("again", native.again)
Timer.isActive = method("isActive", native.isActive)
Timer.ref = method("ref", native.ref)
Timer.unref = method("unref", native.unref)
Timer.close = method("close", native.close)

return Timer
