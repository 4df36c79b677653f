-- Decode and encode throughput of one JSON module over corpus files.
--   evo bench/json/bench.lua json FILE...        (Evo's json)
--   luajit bench/json/bench.lua cjson FILE...    (lua-cjson)
-- Prints one line per file and operation: "name op MB/s", where MB/s is the
-- file's size (10^6 bytes) times the runs per second: decode of the text,
-- encode of the decoded value. Each measurement runs for at least SECONDS
-- (env, default 1) after a warm-up, and the best of five batches is taken.
local modname = arg[1]
local json = require(modname)
local clock = os.clock
local seconds = tonumber(os.getenv("SECONDS_PER_RUN") or "") or 1

local function measure(fn)
  fn()
  fn()
  local best = math.huge
  for _ = 1, 5 do
    local n, t0 = 0, clock()
    local elapsed
    repeat
      fn()
      n = n + 1
      elapsed = clock() - t0
    until elapsed >= seconds / 5
    best = math.min(best, elapsed / n)
  end
  return best
end

for i = 2, #arg do
  local path = arg[i]
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local name = path:match("([^/]+)%.json$")
  local decode, encode = json.decode, json.encode
  -- Decode first, with no decoded document alive: the collector's marking
  -- then covers what a program would keep, not the benchmark's own copy.
  local tdec = measure(function() decode(text) end)
  local value = decode(text)
  local tenc = measure(function() encode(value) end)
  value = nil
  collectgarbage()
  print(string.format("%s decode %.1f", name, #text / tdec / 1e6))
  print(string.format("%s encode %.1f", name, #text / tenc / 1e6))
end
