-- sqlite: SQLite built in (Debian's libsqlite3), synchronous by default like
-- bun:sqlite and better-sqlite3, or on the thread pool with {worker = true}.
--
--   local sqlite = require("sqlite")
--   local db = assert(sqlite.open("app.db"))            -- or ":memory:"
--   db:exec("CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
--   local r = assert(db:run("INSERT INTO users(name) VALUES (?)", "ada"))  -- {changes = 1, lastInsertRowid = 1}
--   local rows = db:query("SELECT * FROM users WHERE id > :min", {min = 0})  -- rows[1].name, rows.columns
--   local user = db:get("SELECT * FROM users WHERE id = ?", 1)              -- first row or nil
--   local st = db:prepare("SELECT name FROM users WHERE id = ?")
--   for row in st:iterate(1) do print(row.name) end
--   db:transaction(function() db:run(...); db:run(...) end)   -- COMMIT, or ROLLBACK and re-raise
--
-- Operational failures return nil, err (err.code: SQLite's extended result
-- code name, "SQLITE_CONSTRAINT_UNIQUE"); misuse raises "bad argument". NULL
-- reads as sqlite.null (the same value as json.null). See docs/sqlite.md.
local native = require("evo.sqlite")
local ffi = require("ffi")
local args = require("evo.args")
local finish = require("evo.wait").finish

local type, setmetatable, getmetatable, error, pcall, select, unpack, floor, pairs, tostring, tonumber =
  type, setmetatable, getmetatable, error, pcall, select, unpack, math.floor, pairs, tostring, tonumber
local fail, argError = args.fail, args.error

local nopen, nclose, nexec, nisOpen, ninTx = native.open, native.close, native.exec, native.isOpen, native.inTransaction
local nall, nget, nrun, niterate = native.all, native.get, native.run, native.iterate
local ncolumns, nfinalize, nsql = native.columns, native.finalize, native.sql
local dbAll, dbGet, dbRun = native.dbAll, native.dbGet, native.dbRun
local prepQuery, prepGet, prepRun, prepPrepare = native["db:query"], native["db:get"], native["db:run"], native["db:prepare"]

local sqlite = {}

-- NULL, as read from a column and as bound: the light userdata NULL,
-- json.null's value, so a row encodes to JSON null.
sqlite.null = native.null
sqlite.version = native.version

local BlobMeta = native.blobMeta
-- sqlite.blob(bytes) -> a value that binds as a BLOB (a Lua string binds as TEXT).
function sqlite.blob(bytes)
  if type(bytes) ~= "string" then fail(1, "sqlite.blob", "string", bytes) end
  return setmetatable({bytes}, BlobMeta)
end

-- Statements prepared by db:query/get/run are kept per connection, up to
-- this many; past it the cache starts again (the dropped ones are
-- finalized when collected).
local CACHE_MAX = 200

----------------------------------------------------------------- statements

-- stmt:run on a synchronous connection binds, steps and resets through the
-- FFI (src/bind/sqlite.cpp FastApi): in a loop the JIT compiles the whole
-- insert into the trace, where the native costs the Lua API's checks on
-- every value. Anything but positional numbers and strings (a row table,
-- nil, booleans, sqlite.null, blobs, int64 cdata), a wrong count, a closed
-- statement or misuse goes to the native, which binds all of it again and
-- raises its own messages (tail calls: the same positions).
ffi.cdef[[
typedef struct evo_sqlite_api {
  int (*bind_int64)(void*, int, int64_t);
  int (*bind_double)(void*, int, double);
  int (*bind_text64)(void*, int, const char*, uint64_t, void*, unsigned char);
  int (*step)(void*);
  int (*reset)(void*);
  int64_t (*changes64)(void*);
  int64_t (*last_insert_rowid)(void*);
} evo_sqlite_api;
typedef struct evo_sqlite_stmt { void* st; void* db; uint32_t gen; int32_t nparams; } evo_sqlite_stmt;
]]
local api = ffi.cast("const evo_sqlite_api*", native.fastApi)
local bindInt, bindDouble, bindText = api.bind_int64, api.bind_double, api.bind_text64
local step, reset, changes, lastRowid = api.step, api.reset, api.changes64, api.last_insert_rowid
local StmtPtr = ffi.typeof("evo_sqlite_stmt*")
local nview, nstepError = native.stmtView, native.stepError
local EXACT = 2 ^ 53  -- beyond it, a rowid stays an int64_t cdata (as the natives push it)
local I64MIN, I64END = -2 ^ 63, 2 ^ 63
local SQLITE_ROW, SQLITE_DONE, SQLITE_UTF8 = 100, 101, 1

-- A statement's view, made on its first run; weak keys: it goes with the statement.
local views = setmetatable({}, {__mode = "k"})

local function view(self)
  local p = nview(self)
  if p == nil then return nil end
  local v = ffi.cast(StmtPtr, p)
  views[self] = v
  return v
end

-- run(stmt, native, ...): native is stmt:run's or db:run's (their own
-- argument numbering).
local function fastRun(self, nativeRun, ...)
  local v = views[self] or view(self)
  if v == nil then return nativeRun(self, ...) end
  local st, n = v.st, select("#", ...)
  if st == nil or n ~= v.nparams then return nativeRun(self, ...) end
  v.gen = v.gen + 1
  reset(st)
  for i = 1, n do
    local x = select(i, ...)
    if type(x) == "number" then
      -- Integral values bind as INTEGER, as the native does.
      if x == floor(x) and x >= I64MIN and x < I64END then
        bindInt(st, i, x)
      else
        bindDouble(st, i, x)
      end
    elseif type(x) == "string" then
      bindText(st, i, x, #x, nil, SQLITE_UTF8)  -- SQLITE_STATIC: x lives until the step below
    else
      return nativeRun(self, ...)
    end
  end
  local rc = step(st)
  while rc == SQLITE_ROW do rc = step(st) end
  if rc ~= SQLITE_DONE then return nstepError(self, rc) end
  reset(st)
  local db = v.db
  local id = lastRowid(db)
  if id > EXACT or id < -EXACT then  -- compared as int64_t: exact
    return {changes = tonumber(changes(db)), lastInsertRowid = id}
  end
  return {changes = tonumber(changes(db)), lastInsertRowid = tonumber(id)}
end

local function stmtRun(self, ...) return fastRun(self, nrun, ...) end

-- A synchronous connection's other statement methods are the natives
-- themselves: no Lua frame between the user and SQLite.
local Statement = {all = nall, get = nget, run = stmtRun, iterate = niterate, columns = ncolumns,
  finalize = nfinalize, sql = nsql}
native.statementMeta.__index = Statement

local WorkerStatement = {columns = ncolumns, finalize = nfinalize, sql = nsql}
native.workerStatementMeta.__index = WorkerStatement
function WorkerStatement:all(...) return finish(nall(self, true, ...)) end
function WorkerStatement:get(...) return finish(nget(self, true, ...)) end
function WorkerStatement:run(...) return finish(nrun(self, true, ...)) end
-- One trip to the pool for all the rows, then a plain iterator over them.
function WorkerStatement:iterate(...)
  local rows, err = finish(nall(self, true, ...))
  if not rows then error(err, 2) end
  local i = 0
  return function()
    i = i + 1
    return rows[i]
  end
end

----------------------------------------------------------------- databases

local Database = {}
Database.__index = Database
local WorkerDatabase = {}
WorkerDatabase.__index = WorkerDatabase

local function isDb(v)
  local mt = getmetatable(v)
  return mt == Database or mt == WorkerDatabase
end

local function checkDb(self, fname)
  if not isDb(self) then args.badSelf(fname, "Database", self, 3) end
end

-- The cached statement for sql, prepared now if new; nil, err when SQLite
-- refuses it (a syntax error, a missing table).
local function cached(self, sql, prep, fname)
  checkDb(self, fname)
  if type(sql) ~= "string" then fail(1, fname, "string", sql, 3) end
  local st, err = prep(self[1], sql)
  if not st then return nil, err end
  if self._n >= CACHE_MAX then
    self[2], self._n = {}, 0
  end
  self[2][sql] = st
  self._n = self._n + 1
  return st
end

-- The statement for sql from the cache, or prepared and cached now; nil,
-- err when SQLite refuses it. (The tail call keeps cached's error levels.)
local function statement(self, sql, prep, fname)
  local st = isDb(self) and self[2][sql]
  if st then return st end
  return cached(self, sql, prep, fname)
end

-- db:query(sql, ...) -> rows (rows.columns: the names in order) | nil, err
function Database:query(sql, ...)
  local st, err = statement(self, sql, prepQuery, "db:query")
  if not st then return nil, err end
  return dbAll(st, ...)
end

-- db:get(sql, ...) -> the first row | nil (no row) | nil, err
function Database:get(sql, ...)
  local st, err = statement(self, sql, prepGet, "db:get")
  if not st then return nil, err end
  return dbGet(st, ...)
end

-- db:run(sql, ...) -> {changes = n, lastInsertRowid = id} | nil, err
function Database:run(sql, ...)
  local st, err = statement(self, sql, prepRun, "db:run")
  if not st then return nil, err end
  return fastRun(st, dbRun, ...)
end

function WorkerDatabase:query(sql, ...)
  local st, err = statement(self, sql, prepQuery, "db:query")
  if not st then return nil, err end
  return finish(dbAll(st, true, ...))
end

function WorkerDatabase:get(sql, ...)
  local st, err = statement(self, sql, prepGet, "db:get")
  if not st then return nil, err end
  return finish(dbGet(st, true, ...))
end

function WorkerDatabase:run(sql, ...)
  local st, err = statement(self, sql, prepRun, "db:run")
  if not st then return nil, err end
  return finish(dbRun(st, true, ...))
end

-- db:prepare(sql) -> statement | nil, err. A new statement each call (not
-- the cache's): it is the caller's to keep, iterate and finalize.
local function prepare(self, sql)
  checkDb(self, "db:prepare")
  if type(sql) ~= "string" then fail(1, "db:prepare", "string", sql) end
  return prepPrepare(self[1], sql)
end
Database.prepare, WorkerDatabase.prepare = prepare, prepare

-- db:exec(sql) -> true | nil, err: one or more statements, no parameters,
-- no rows.
function Database:exec(sql)
  checkDb(self, "db:exec")
  if type(sql) ~= "string" then fail(1, "db:exec", "string", sql) end
  return nexec(self[1], false, sql)
end

function WorkerDatabase:exec(sql)
  checkDb(self, "db:exec")
  if type(sql) ~= "string" then fail(1, "db:exec", "string", sql) end
  return finish(nexec(self[1], true, sql))
end

-- Runs sql where the caller cannot be suspended: a rollback must happen
-- even in a task that is being cancelled.
local function execNow(self, sql)
  if getmetatable(self) == WorkerDatabase then
    local _, ok, err = nexec(self[1], false, sql)
    return ok, err
  end
  return nexec(self[1], false, sql)
end

local function packResults(...) return {n = select("#", ...), ...} end

-- db:transaction(fn, ...) -> fn's results | nil, err (BEGIN or COMMIT
-- failed). BEGIN, fn(...), COMMIT; when fn raises: ROLLBACK and the error is
-- raised again. Nested calls use savepoints: an inner failure rolls back
-- only the inner part.
local function transaction(self, fn, ...)
  checkDb(self, "db:transaction")
  if type(fn) ~= "function" then fail(1, "db:transaction", "function", fn) end
  local depth = self._depth
  local begin, commit, rollback
  if depth == 0 then
    begin, commit, rollback = "BEGIN", "COMMIT", "ROLLBACK"
  else
    local sp = "evo_sp" .. depth
    begin, commit, rollback = "SAVEPOINT " .. sp, "RELEASE " .. sp, "ROLLBACK TO " .. sp .. "; RELEASE " .. sp
  end
  local ok, err = self:exec(begin)
  if not ok then return nil, err end
  self._depth = depth + 1
  local res = packResults(pcall(fn, ...))
  self._depth = depth
  if not res[1] then
    if nisOpen(self[1]) and ninTx(self[1]) then execNow(self, rollback) end
    error(res[2], 0)
  end
  ok, err = self:exec(commit)
  if not ok then
    if nisOpen(self[1]) and ninTx(self[1]) then execNow(self, rollback) end
    return nil, err
  end
  return unpack(res, 2, res.n)
end
Database.transaction, WorkerDatabase.transaction = transaction, transaction

-- db:inTransaction() -> boolean
local function inTransaction(self)
  checkDb(self, "db:inTransaction")
  return ninTx(self[1])
end
Database.inTransaction, WorkerDatabase.inTransaction = inTransaction, inTransaction

-- db:close(): finalizes every statement and closes the file; closing twice
-- is allowed. A worker connection's running query is interrupted first.
local function close(self)
  checkDb(self, "db:close")
  self[2], self._n = {}, 0
  nclose(self[1])
end
Database.close, WorkerDatabase.close = close, close

local function isOpen(self)
  checkDb(self, "db:isOpen")
  return nisOpen(self[1])
end
Database.isOpen, WorkerDatabase.isOpen = isOpen, isOpen

----------------------------------------------------------------- open

local OPTION_TYPES = {readonly = "boolean", create = "boolean", busyTimeout = "number", wal = "boolean",
  worker = "boolean"}

-- sqlite.open(path | ":memory:" [, {readonly, create = true, busyTimeout = 5,
-- wal = true, worker = false}]) -> db | nil, err
function sqlite.open(path, opts)
  if type(path) ~= "string" then fail(1, "sqlite.open", "string", path) end
  if opts ~= nil and type(opts) ~= "table" then fail(2, "sqlite.open", "table", opts) end
  opts = opts or {}
  for k, v in pairs(opts) do
    local want = OPTION_TYPES[k]
    if not want then argError(2, "sqlite.open", "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= want then argError(2, "sqlite.open", "opts." .. k .. " must be a " .. want) end
  end
  local busy = opts.busyTimeout or 5
  if busy < 0 or busy ~= busy then argError(2, "sqlite.open", "opts.busyTimeout must be >= 0 seconds") end
  local readonly = opts.readonly == true
  local flags
  if readonly then
    flags = native.OPEN_READONLY
  else
    flags = native.OPEN_READWRITE + (opts.create == false and 0 or native.OPEN_CREATE)
  end
  -- WAL needs a file it may write; an in-memory database has none.
  local wal = opts.wal ~= false and not readonly and path ~= ":memory:" and path ~= ""
  local worker = opts.worker == true
  local ud, err = nopen(path, flags, floor(busy * 1000 + 0.5), wal, worker)
  if not ud then return nil, err end
  return setmetatable({ud, {}, _n = 0, _depth = 0, path = path, worker = worker},
    worker and WorkerDatabase or Database)
end

return sqlite
