-- Postgres from 50 concurrent tasks on a pool of 10: `SELECT $1` and a
-- 100-row select. Usage: evo bench/postgres.lua URL [OPS] -> prints
-- "select1 <queries/s> <client CPU us/query>" and the same for "rows100"
local postgres = require("postgres")
local task = require("task")
local url, ops = arg[1], tonumber(arg[2] or 100000)
local TASKS = 50
local pool = postgres.pool({url = url, max = 10})
local ROWS = "SELECT n, 'row ' || n AS name, n * 1.5 AS score FROM generate_series(1, 100) AS n"

local function run(n, sql, ...)
  local per = math.floor(n / TASKS)
  local fs = {}
  local a = ...
  for i = 1, TASKS do
    fs[i] = task.async(function()
      for _ = 1, per do
        local rows = pool:query(sql, a or i)
        if not rows then error("query failed") end
      end
    end)
  end
  for i = 1, TASKS do fs[i]:await() end
  return per * TASKS
end

local function measure(name, n, sql, ...)
  run(math.floor(n / 10), sql, ...)  -- warm up: connections, prepared statements
  local t0, c0 = task.now(), os.clock()
  local done = run(n, sql, ...)
  -- queries/s, and the client's CPU time per query in microseconds (what
  -- compares clients when the server's one core is the ceiling)
  print(("%s %.0f %.2f"):format(name, done / (task.now() - t0), (os.clock() - c0) * 1e6 / done))
end

measure("select1", ops, "SELECT $1")
measure("rows100", math.floor(ops / 10), ROWS .. " WHERE n > $1", 0)
pool:close()
