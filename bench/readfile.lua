-- 100,000 reads of a 4 KiB file, 64 in flight: Evo's colourless
-- fs.readFile in 64 tasks, against raw luv callbacks doing the same
-- open/fstat/read/close chain with 64 chains in flight.
--   evo bench/readfile.lua [reads] [inflight]
local uv = require("uv")
local task = require("task")
local fs = require("fs")

local READS = tonumber(arg and arg[1]) or 100000
local INFLIGHT = tonumber(arg and arg[2]) or 64

local dir = assert(fs.mkdtemp("/tmp/evo-bench-"))
local path = dir .. "/4k.bin"
assert(fs.writeFile(path, string.rep("r", 4096)))

local function evo()
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

local function luv()
  local co = coroutine.running()
  local started, finished = 0, 0
  local function one()
    if started >= READS then return end
    started = started + 1
    uv.fs_open(path, "r", 438, function(err, fd)
      assert(not err, err)
      uv.fs_fstat(fd, function(serr, st)
        assert(not serr, serr)
        uv.fs_read(fd, st.size, 0, function(rerr, data)
          assert(not rerr and #data == 4096)
          uv.fs_close(fd, function()
            finished = finished + 1
            if finished == READS then coroutine.resume(co) else one() end
          end)
        end)
      end)
    end)
  end
  for _ = 1, INFLIGHT do one() end
  coroutine.yield()
end

local function best(n, fn)
  local b = math.huge
  for _ = 1, n do
    local t0 = uv.hrtime()
    fn()
    b = math.min(b, (uv.hrtime() - t0) / 1e9)
  end
  return b
end

local e = best(3, evo)
local l = best(3, luv)
fs.rm(dir, {recursive = true})
print(("readfile: %d reads of 4 KiB, %d in flight, best of 3"):format(READS, INFLIGHT))
print(("  evo fs.readFile in tasks   %7.0f reads/s  (%.2f s)"):format(READS / e, e))
print(("  raw luv callbacks          %7.0f reads/s  (%.2f s)"):format(READS / l, l))
print(("  ratio evo/luv time: %.2fx (target <= 1.2x)"):format(e / l))
