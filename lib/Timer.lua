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

local defaultHandler, rawHandler, type = events.defaultHandler, events.rawHandler, type

-- The native delivers TIMER_FIRED as deliver(timer, debugging, count)
-- (events::emit_values): the handler is looked up and its payload made
-- here, where the JIT compiles them with the handler, rather than through
-- the C API. Nobody listening (the silent default) costs no payload; the
-- tail call leaves no frame, so a handler's traceback is emit's. What
-- events.rawHandler cannot find, or a handler that is not a function, is
-- handed back to the native (deliver returns itself), which emits it.
local function deliver(self, debugging, count)
  local h = rawHandler(self, "TIMER_FIRED")
  if type(h) ~= "function" then return deliver end
  if h == defaultHandler and not debugging then return end
  return h(self, "TIMER_FIRED", {count = count})
end

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
