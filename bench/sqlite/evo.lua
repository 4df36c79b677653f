-- bench/sqlite/evo.lua PATH N: inserts in one transaction and point selects
-- (prepared statements), the lines "key value unit" bench/sqlite.sh reads.
local sqlite = require("sqlite")

local path, n = arg[1], tonumber(arg[2] or "100000")
os.remove(path)
local db = assert(sqlite.open(path))
assert(db:exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL NOT NULL)"))
local ins = assert(db:prepare("INSERT INTO t(id, name, score) VALUES (?, ?, ?)"))
local now = os.clock  -- CPU time: a neighbour on the shared core does not count
local t0 = now()
db:transaction(function()
  for i = 1, n do ins:run(i, "user" .. i, i * 0.5) end
end)
local dt = now() - t0
print(("insert %.1f ops/s"):format(n / dt))

local sel = assert(db:prepare("SELECT id, name, score FROM t WHERE id = ?"))
local reps = n * 5
local sum = 0
t0 = now()
for i = 1, reps do
  local row = sel:get((i * 7919) % n + 1)
  sum = sum + row.score
end
dt = now() - t0
print(("select %.1f ops/s"):format(reps / dt))

local sql = "SELECT id, name, score FROM t WHERE id = ?"
t0 = now()
for i = 1, reps do
  local row = db:get(sql, (i * 7919) % n + 1)
  sum = sum + row.score
end
dt = now() - t0
print(("select-cached %.1f ops/s"):format(reps / dt))
db:close()
os.remove(path); os.remove(path .. "-wal"); os.remove(path .. "-shm")
