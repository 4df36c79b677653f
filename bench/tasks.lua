-- Task scheduling costs, against raw luv in the same process.
--   evo bench/tasks.lua [hops] [spawns]
-- 1. hops: a task doing task.yield() N times (one loop iteration each), vs
--    a raw luv idle handle whose callback runs N times (one per iteration).
-- 2. spawn + await of a trivial task, N times.
local uv = require("uv")
local task = require("task")

local HOPS = tonumber(arg and arg[1]) or 1000000
local SPAWNS = tonumber(arg and arg[2]) or 200000

local function best(n, fn)
  local b = math.huge
  for _ = 1, n do
    local t0 = uv.hrtime()
    fn()
    b = math.min(b, (uv.hrtime() - t0) / 1e9)
  end
  return b
end

-- raw luv: an idle handle calling back once per loop iteration
local function luvIdle()
  local co = coroutine.running()
  local n = 0
  local idle = uv.new_idle()
  idle:start(function()
    n = n + 1
    if n == HOPS then idle:stop(); idle:close(); coroutine.resume(co) end
  end)
  coroutine.yield()
end

local function taskHops()
  for _ = 1, HOPS do task.yield() end
end

local function spawnAwait()
  local f = function() return 1 end
  for _ = 1, SPAWNS do task.async(f):await() end
end

local hops = best(3, taskHops)
local idle = best(3, luvIdle)
local spawn = best(3, spawnAwait)

print(("tasks: best of 3 runs"))
print(("  %d task.yield() hops          %8.1f ns/hop"):format(HOPS, hops / HOPS * 1e9))
print(("  %d raw luv idle callbacks     %8.1f ns/iteration"):format(HOPS, idle / HOPS * 1e9))
print(("  ratio evo/luv: %.2fx (target <= 1.2x)"):format(hops / idle))
print(("  %d spawn+await                %8.1f ns each (target < 1000)"):format(SPAWNS, spawn / SPAWNS * 1e9))
