-- Event dispatch cost: a native Evo Timer delivering TIMER_FIRED to a handler
-- method, against a raw luv timer calling a callback, each re-armed from its
-- own handler N times. Both run on the same loop in the same process, so the
-- ratio is the cost of Evo's C++ -> Lua event path relative to luv's.
--   evo bench/events.lua [N]
local uv = require("uv")
local Timer = require("Timer")
local N = tonumber(arg and arg[1]) or 200000

local function measure(start)
  local co = coroutine.running()
  local t0 = uv.hrtime()
  start(function() coroutine.resume(co) end)
  coroutine.yield()
  return (uv.hrtime() - t0) / 1e9
end

local function evoRun(done)
  local t = Timer()
  local n = 0
  function t:TIMER_FIRED()
    n = n + 1
    if n == N then self:close(); done() else self:start(0) end
  end
  t:start(0)
end

local function luvRun(done)
  local t = uv.new_timer()
  local n = 0
  local function tick()
    n = n + 1
    if n == N then t:close(); done() else t:start(0, 0, tick) end
  end
  t:start(0, 0, tick)
end

-- The same, with the callback building the table Evo hands its handler as
-- payload: what a luv user would pay for the same information.
local function luvPayloadRun(done)
  local t = uv.new_timer()
  local n = 0
  local function tick()
    n = n + 1
    local payload = {count = n}
    if payload.count == N then t:close(); done() else t:start(0, 0, tick) end
  end
  t:start(0, 0, tick)
end

-- warm up every path (JIT), then measure each three times and keep the best
measure(evoRun); measure(luvRun); measure(luvPayloadRun)
local best = {evo = math.huge, luv = math.huge, luvPayload = math.huge}
for _ = 1, 3 do
  best.evo = math.min(best.evo, measure(evoRun))
  best.luv = math.min(best.luv, measure(luvRun))
  best.luvPayload = math.min(best.luvPayload, measure(luvPayloadRun))
end
print(("events: %d timer events, best of 3"):format(N))
print(("  evo Timer + TIMER_FIRED handler        %7.1f ns/event"):format(best.evo / N * 1e9))
print(("  luv timer + callback                   %7.1f ns/event"):format(best.luv / N * 1e9))
print(("  luv timer + callback + payload table   %7.1f ns/event"):format(best.luvPayload / N * 1e9))
print(("  ratio evo/luv: %.2fx; evo/(luv + same payload): %.2fx"):format(best.evo / best.luv,
  best.evo / best.luvPayload))
