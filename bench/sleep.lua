-- task.sleep and file-handle calls through the Io (Io::sleep, Io::fs):
--   evo bench/sleep.lua sleeps TASKS SLEEPS SECONDS   TASKS tasks, each SLEEPS sleeps of SECONDS
--   evo bench/sleep.lua files N INFLIGHT FILE         N x (fs.open, file:read, file:stat, file:close), INFLIGHT tasks
-- Prints one line: the wall and CPU seconds (os.clock: this process's CPU).
local task, fs = require("task"), require("fs")
local what = arg[1]

local function run(tasks, body)
  local wall, cpu = task.now(), os.clock()
  local fs_ = {}
  for i = 1, tasks do fs_[i] = task.async(body) end
  for i = 1, tasks do fs_[i]:await() end
  return task.now() - wall, os.clock() - cpu
end

if what == "sleeps" then
  local tasks, sleeps, seconds = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
  local wall, cpu = run(tasks, function()
    for _ = 1, sleeps do task.sleep(seconds) end
  end)
  print(("sleeps %d wall %.3f s cpu %.3f s cpu_us_per_sleep %.2f"):format(tasks * sleeps, wall, cpu,
    cpu / (tasks * sleeps) * 1e6))
elseif what == "files" then
  local n, inflight, path = tonumber(arg[2]), tonumber(arg[3]), arg[4]
  local left = n
  local wall, cpu = run(inflight, function()
    while left > 0 do
      left = left - 1
      local f = assert(fs.open(path))
      assert(f:read(4096))
      assert(f:stat())
      f:close()
    end
  end)
  print(("files %d wall %.3f s cpu %.3f s ops_per_s %.0f cpu_us_per_file %.2f"):format(n, wall, cpu, n / wall,
    cpu / n * 1e6))
else
  error("usage: sleep.lua sleeps TASKS SLEEPS SECONDS | files N INFLIGHT FILE")
end
