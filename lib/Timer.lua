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

local Timer = events.class("Timer", {"TIMER_FIRED"})

function Timer:init() native.open(self) end

-- start(timeout, interval): seconds; interval 0 or nil fires once.
Timer.start = native.start
Timer.stop = native.stop
Timer.again = native.again
Timer.isActive = native.isActive
Timer.ref = native.ref
Timer.unref = native.unref
Timer.close = native.close

return Timer
