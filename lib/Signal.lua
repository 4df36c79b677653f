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
local args = require("evo.args")

local Signal = events.class("Signal", {"SIGNAL_RECEIVED"})

-- The native delivers SIGNAL_RECEIVED through this (events::emit_values).
local deliver = events.deliverer("SIGNAL_RECEIVED", "signal", "signum")

function Signal:init() native.open(self, deliver) end

local function isSignal(s) return events.isInstance(s, Signal) end
local function method(name, fn, ...) return args.method(name, fn, isSignal, "Signal", ...) end

-- start("SIGINT" | "int" | 2)
Signal.start = method("start", function(self, sig)
  local ok, err = pcall(native.name, sig)
  if not ok then args.error(1, "start", tostring(err):match("%((.*)%)$") or "unknown signal", 3) end
  return native.start(self, sig)
end, "string|number")
Signal.stop = method("stop", native.stop)
Signal.close = method("close", native.close)
Signal.name = native.name     -- Signal.name(2) --> "SIGINT"

return Signal
