-- Signal: reports SIGNAL_RECEIVED {signal = "SIGINT", signum = 2}.
--
--   local Signal = require("Signal")
--   local s = Signal()
--   function s:SIGNAL_RECEIVED(event, payload) print("got", payload.signal); s:close() end
--   s:start("SIGINT")
--
-- Watching SIGINT replaces Evo's default of exiting with status 130.
local events = require("events")
local native = require("evo.signal")

local Signal = events.class("Signal", {"SIGNAL_RECEIVED"})

function Signal:init() native.open(self) end

Signal.start = native.start   -- start("SIGINT" | "int" | 2)
Signal.stop = native.stop
Signal.close = native.close
Signal.name = native.name     -- Signal.name(2) --> "SIGINT"

return Signal
