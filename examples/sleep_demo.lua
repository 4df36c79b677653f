-- Asynchrony is not concurrency: three task.sleep(0.2) started with async.
--   evo examples/sleep_demo.lua                -> about 0.2 s (they overlap)
--   evo --io=blocking examples/sleep_demo.lua  -> about 0.6 s (one after another)
-- Same script, same results; only the time differs.
local task = require("task")

local started = task.now()
local sleepers = {}
for i = 1, 3 do
  sleepers[i] = task.async(function()
    task.sleep(0.2)
    return i
  end)
end
local done = {}
for i = 1, 3 do done[i] = sleepers[i]:await() end
print(("mode %-8s slept %s in %.2f s"):format(task.mode(), table.concat(done, ","), task.now() - started))
