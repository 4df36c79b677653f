-- 100,000 fs.readFile of a 4 KiB file, 64 tasks in flight, in whatever Io
-- mode evo runs (bench/io.sh runs it under --io=evented and --io=uring).
-- Prints one line: reads/s (best of 3) and the process's CPU seconds per
-- 100k reads (os.clock: every thread, the thread pool's included).
--   evo --io=MODE bench/io_files.lua [reads] [inflight]
local task = require("task")
local fs = require("fs")
local uv = require("uv")

local READS = tonumber(arg and arg[1]) or 100000
local INFLIGHT = tonumber(arg and arg[2]) or 64

local dir = assert(fs.mkdtemp("/tmp/evo-bench-io-"))
local path = dir .. "/4k.bin"
assert(fs.writeFile(path, string.rep("r", 4096)))

local function run()
  local remaining = READS
  local g = task.group()
  for _ = 1, INFLIGHT do
    g:async(function()
      while remaining > 0 do
        remaining = remaining - 1
        local data = fs.readFile(path)
        assert(#data == 4096)
      end
    end)
  end
  g:await()
end

local best, cpu = math.huge, math.huge
for _ = 1, 3 do
  local t0, c0 = uv.hrtime(), os.clock()
  run()
  best = math.min(best, (uv.hrtime() - t0) / 1e9)
  cpu = math.min(cpu, os.clock() - c0)
end
fs.rm(dir, {recursive = true})
print(("%.0f reads/s  %.3f cpu-s"):format(READS / best, cpu * 100000 / READS))
