-- A fixed number of timer events, one path only, for counting instructions
-- per event with callgrind (bench/events_instructions.sh):
--   evo bench/events_count.lua evo|luv|evo-payload|luv-payload|evo-signal|luv-signal N
-- evo: a native Timer delivering TIMER_FIRED to a handler method that
-- re-arms it; luv: a raw luv timer whose callback re-arms it (as in
-- bench/events.lua). The -payload pair keeps each payload (the handler
-- stores it and reads its count; the luv callback builds the same table):
-- the table is made and collected, where a payload nobody keeps is
-- optimised away by the JIT.
local uv = require("uv")
local which = arg and arg[1] or "evo"
local N = tonumber(arg and arg[2]) or 100000
local last

if which == "evo" then
  local Timer = require("Timer")
  local t = Timer()
  local n = 0
  function t:TIMER_FIRED()
    n = n + 1
    if n == N then self:close() else self:start(0) end
  end
  t:start(0)
elseif which == "evo-payload" then
  local Timer = require("Timer")
  local t = Timer()
  local n = 0
  function t:TIMER_FIRED(event, payload)
    last = payload
    n = n + payload.count
    if n == N then self:close() else self:start(0) end
  end
  t:start(0)
elseif which == "evo-signal" then
  -- A Signal's SIGNAL_RECEIVED whose handler keeps its payload and sends
  -- the next signal (the kill and libuv's signal pipe are in both rows).
  local Signal = require("Signal")
  local s = Signal()
  local n, pid = 0, uv.os_getpid()
  function s:SIGNAL_RECEIVED(event, payload)
    last = payload
    n = n + 1
    if n == N then self:close() else uv.kill(pid, "sigusr1") end
  end
  s:start("SIGUSR1")
  uv.kill(pid, "sigusr1")
elseif which == "luv-signal" then
  local s = uv.new_signal()
  local n, pid = 0, uv.os_getpid()
  s:start("sigusr1", function(name)
    last = {signal = "SIGUSR1", signum = 10}
    n = n + 1
    if n == N then s:close() else uv.kill(pid, "sigusr1") end
  end)
  uv.kill(pid, "sigusr1")
elseif which == "luv-payload" then
  local t = uv.new_timer()
  local n = 0
  local function tick()
    local payload = {count = 1}
    last = payload
    n = n + payload.count
    if n == N then t:close() else t:start(0, 0, tick) end
  end
  t:start(0, 0, tick)
else
  local t = uv.new_timer()
  local n = 0
  local function tick()
    n = n + 1
    if n == N then t:close() else t:start(0, 0, tick) end
  end
  t:start(0, 0, tick)
end
