-- String workloads timed in CPU seconds (os.clock), one per process, for
-- bench/strings.sh, which runs this same file under evo and under luajit.
--   strings.lua WORKLOAD [N]      prints "WORKLOAD <ms>"
-- Every workload keeps what it creates (a table holds it) or creates garbage,
-- so string interning (lj_str_new), the string table's growth and the sweep
-- of strings by the GC are all in the figure.
local clock, tostring, format, concat = os.clock, tostring, string.format, table.concat

local workloads = {}

-- tostring(i) of N integers, all kept: the string table grows to N entries.
function workloads.tostring(n)
  local t = {}
  for i = 1, n do t[i] = tostring(i) end
  return t
end

-- the same strings, dropped at once: interning plus the GC's sweep.
function workloads.garbage(n)
  local last
  for i = 1, n do last = tostring(i) end
  return last
end

-- keys built by concatenation, kept.
function workloads.concat(n)
  local t = {}
  for i = 1, n do t[i] = "user:" .. i .. ":name" end
  return t
end

-- string.format with a number and a string, kept.
function workloads.format(n)
  local t = {}
  for i = 1, n do t[i] = format("%08d-%s", i, "item") end
  return t
end

-- a table keyed by N distinct strings, then every key looked up again.
function workloads.keys(n)
  local t = {}
  for i = 1, n do t["k" .. i] = i end
  local sum = 0
  for i = 1, n do sum = sum + t["k" .. i] end
  assert(sum == n * (n + 1) / 2)
  return t
end

-- lines joined with table.concat, 1000 at a time, the results kept.
function workloads.join(n)
  local out, parts = {}, {}
  for i = 1, n do
    parts[#parts + 1] = tostring(i)
    if #parts == 1000 then
      out[#out + 1] = concat(parts, ",")
      parts = {}
    end
  end
  return out
end

local name, n = arg[1], tonumber(arg[2]) or 1000000
local run = workloads[name]
if not run then
  local names = {}
  for k in pairs(workloads) do names[#names + 1] = k end
  table.sort(names)
  io.stderr:write("strings.lua: unknown workload '", tostring(name), "' (", concat(names, ", "), ")\n")
  os.exit(2)
end
collectgarbage()
local t0 = clock()
local keep = run(n)
local ms = (clock() - t0) * 1000
assert(keep ~= nil)
print(format("%s %.1f", name, ms))
