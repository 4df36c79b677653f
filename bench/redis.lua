-- GET/SET from 50 concurrent tasks on one connection (automatic pipelining).
-- Usage: evo bench/redis.lua PORT [OPS]  -> prints "evo <ops/s>"
local redis = require("redis")
local task = require("task")
local port, ops = tonumber(arg[1]), tonumber(arg[2] or 200000)
local TASKS = 50
local r = assert(redis.connect({port = port}))
local per = math.floor(ops / TASKS / 2)
local function run()
  local fs = {}
  for i = 1, TASKS do
    fs[i] = task.async(function()
      local key = "bench:" .. i
      for j = 1, per do
        r:set(key, "value")
        r:get(key)
      end
    end)
  end
  for i = 1, TASKS do fs[i]:await() end
end
run()  -- warm up
local t0 = task.now()
run()
local dt = task.now() - t0
print(("evo %.0f"):format(per * 2 * TASKS / dt))
r:close()
