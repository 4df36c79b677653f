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

-- The same, with every payload kept (a handler that stores it): the table
-- is made and collected, where one nobody keeps is optimised away by the
-- JIT. The luv callback builds the table Evo hands its handler: what a luv
-- user would pay for the same information.
local kept
local function evoKeepRun(done)
  local t = Timer()
  local n = 0
  function t:TIMER_FIRED(event, payload)
    kept = payload
    n = n + payload.count
    if n == N then self:close(); done() else self:start(0) end
  end
  t:start(0)
end

local function luvKeepRun(done)
  local t = uv.new_timer()
  local n = 0
  local function tick()
    local payload = {count = 1}
    kept = payload
    n = n + payload.count
    if n == N then t:close(); done() else t:start(0, 0, tick) end
  end
  t:start(0, 0, tick)
end

-- warm up every path (JIT), then measure each three times and keep the best
local runs = {evo = evoRun, luv = luvRun, evoKeep = evoKeepRun, luvKeep = luvKeepRun}
local order = {"evo", "luv", "evoKeep", "luvKeep"}
local best = {}
for _, k in ipairs(order) do measure(runs[k]); best[k] = math.huge end
for _ = 1, 3 do
  for _, k in ipairs(order) do best[k] = math.min(best[k], measure(runs[k])) end
end
local function ns(k) return best[k] / N * 1e9 end
print(("events: %d timer events, best of 3"):format(N))
print(("  evo Timer + TIMER_FIRED handler          %7.1f ns/event"):format(ns("evo")))
print(("  luv timer + callback                     %7.1f ns/event"):format(ns("luv")))
print(("  evo, the handler keeping its payload     %7.1f ns/event"):format(ns("evoKeep")))
print(("  luv, the callback keeping the same table %7.1f ns/event"):format(ns("luvKeep")))
print(("  ratio evo/luv: %.2fx; payload kept: evo/luv %.2fx, evo/(bare luv) %.2fx"):format(
  best.evo / best.luv, best.evoKeep / best.luvKeep, best.evoKeep / best.luv))
