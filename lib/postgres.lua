-- postgres: a PostgreSQL client on libpq's non-blocking API, colourless, with
-- automatic pipelining.
--
--   local postgres = require("postgres")
--   local db = assert(postgres.connect("postgres://app:secret@127.0.0.1/app"))
--   local rows = assert(db:query("SELECT id, name FROM users WHERE id > $1", 10))
--   print(rows[1].name, #rows, rows.command)          --> ada  3  SELECT 3
--   db:transaction(function() db:query(...); db:query(...) end)
--   local pool = postgres.pool{url = "postgres://...", max = 10}
--
-- Queries from concurrent tasks on one connection go out together (the first
-- one waits for the loop's next turn while the others add theirs) in libpq's
-- pipeline mode, one Sync each so that they stay independent, and their
-- results are matched in order. One task at a time reads for everyone (the
-- oldest waiting one), handing the socket on when its own result is in; a task
-- cancelled while it waits leaves its place, and its result is dropped. See
-- docs/postgres.md.
local native = require("evo.postgres")
local json = require("json")
local errors = require("evo.errors")
local args = require("evo.args")
local events = require("events")
local task = require("task")
local tasknative = require("evo.task")

local type, error, select, setmetatable, getmetatable, tostring, tonumber, pairs, pcall, unpack =
  type, error, select, setmetatable, getmetatable, tostring, tonumber, pairs, pcall, unpack
local floor, find = math.floor, string.find
local isyieldable, running = coroutine.isyieldable, coroutine.running
local nstart, nconnectPoll, nwait, nsend, nsendSimple = native.start, native.connectPoll, native.wait, native.send,
  native.sendSimple
local npipeline, ncork, nflush, nnext, nclose, ncancel = native.pipeline, native.cork, native.flush, native.next,
  native.close, native.cancel
local nputCopy, nputCopyEnd, ngetCopy, nnotifies = native.putCopy, native.putCopyEnd, native.getCopy, native.notifies
local prepare, suspend, wake, nyield = tasknative.prepare, tasknative.suspend, tasknative.wake, tasknative.yield
local raiseCanceled = require("evo.wait").raiseCanceled
local replyqueue = require("evo.replyqueue")
local now = task.now
local blocking = tasknative.mode() == "blocking"

local postgres = {}

-- NULL, as read from a column and as bound: the light userdata NULL,
-- json.null's value, so a row encodes to JSON null. nil binds NULL as well.
local null = json.null
postgres.null = null
-- libpqVersion() -> 150014 | nil, err (LibraryUnavailable): libpq is loaded on first use.
postgres.libpqVersion = native.libpqVersion

local ByteaMeta = {__name = "postgres.bytea"}
-- postgres.bytea(bytes) -> a parameter sent as raw bytes (binary format), for
-- bytea columns. A plain string is sent as text (one holding a zero byte is
-- sent as bytes too).
function postgres.bytea(bytes)
  if type(bytes) ~= "string" then args.fail(1, "postgres.bytea", "string", bytes) end
  return setmetatable({bytes}, ByteaMeta)
end

local jsonEncode = json.encode
native.setHelpers(json.decode, function(v)
  local ok, s = pcall(jsonEncode, v)
  if ok then return s end
  return nil, s
end, ByteaMeta)

local function closedError(c)
  local last = c.lastError
  if last then return errors.new("Closed", "the connection was lost: " .. tostring(last.message), {cause = last}) end
  return errors.new("Closed", "the postgres connection is closed")
end

----------------------------------------------------------------- options

-- libpq's keywords for Evo's option names (seconds become what libpq wants).
local optionKeys = {host = "host", port = "port", user = "user", password = "password", database = "dbname",
  sslmode = "sslmode", sslrootcert = "sslrootcert", sslcert = "sslcert", sslkey = "sslkey",
  applicationName = "application_name", options = "options"}
local knownOptions = {url = true, connectTimeout = true, statementTimeout = true, prepare = true, max = true,
  idleTimeout = true}
for k in pairs(optionKeys) do knownOptions[k] = true end

-- -> {keys, values, connectTimeout, prepare}
local function config(n, fname, o)
  if type(o) == "string" then o = {url = o} end
  if type(o) ~= "table" then args.fail(n, fname, "string or table", o, 3) end
  for k in pairs(o) do
    if not knownOptions[k] and type(k) == "string" then args.error(n, fname, "unknown option '" .. k .. "'", 3) end
  end
  local keys, vals = {}, {}
  local function add(k, v)
    keys[#keys + 1], vals[#vals + 1] = k, tostring(v)
  end
  if o.url ~= nil then
    if type(o.url) ~= "string" then args.error(n, fname, "url must be a string", 3) end
    add("dbname", o.url)  -- libpq expands a postgres:// URL or a conninfo string given as dbname
  end
  for k, lk in pairs(optionKeys) do
    local v = o[k]
    if v ~= nil then
      if type(v) ~= "string" and type(v) ~= "number" then args.error(n, fname, k .. " must be a string", 3) end
      add(lk, v)
    end
  end
  for _, k in pairs({"connectTimeout", "statementTimeout", "idleTimeout"}) do
    if o[k] ~= nil and (type(o[k]) ~= "number" or o[k] < 0) then
      args.error(n, fname, k .. " must be a number of seconds >= 0", 3)
    end
  end
  if o.statementTimeout then
    add("options", ((o.options and o.options .. " ") or "") .. "-c statement_timeout=" ..
      floor(o.statementTimeout * 1000 + 0.5))
  end
  add("fallback_application_name", "evo")
  return {keys = keys, vals = vals, connectTimeout = o.connectTimeout, prepare = o.prepare ~= false}
end

-- Opens a native connection: PQconnectStartParams, then PQconnectPoll
-- driven by the socket's readiness.
local function dial(cfg)
  local h, err = nstart(cfg.keys, cfg.vals)
  if not h then return nil, err end
  local timeout = cfg.connectTimeout
  local deadline = timeout and timeout > 0 and now() + timeout or nil
  local can = not blocking and isyieldable()
  while true do
    local st, perr = nconnectPoll(h)
    if st == "ok" then return h end
    if not st then return nil, perr end
    local left = -1
    if deadline then
      left = deadline - now()
      if left <= 0 then left = 0 end
    end
    local ok, what = nwait(h, st, left, can)
    if not ok then
      nclose(h)
      raiseCanceled(3)
    end
    if what == "timeout" then
      nclose(h)
      return nil, errors.new("Timeout", "connecting to the server took longer than " .. timeout .. " s")
    end
    if what == false then return nil, errors.new("Closed", "the connection was closed while connecting") end
  end
end

----------------------------------------------------------------- connection

local Connection = {}
Connection.__index = Connection
Connection.__name = "PostgresConnection"

local function isConn(v) return getmetatable(v) == Connection end
local MAIN = {}  -- the owner key of code that runs outside any coroutine

local function settle(w, rows, err)
  w.done, w.rows, w.err = true, rows, err
  local me = w.me
  if me then
    w.me = nil
    wake(me, w.id)
  end
end

local function wakeGate(c)
  local gate = c.gate
  if #gate == 0 then return end
  c.gate = {}
  for i = 1, #gate do wake(gate[i][1], gate[i][2]) end
end

-- Every query in flight fails with err; the native connection is closed.
-- A pooled connection is then dropped by its pool.
local function failAll(c, err)
  local h = c.h
  c.h = false
  if h then nclose(h) end
  c.lastError = err
  local q = c.queue
  for i = c.head, c.tail do
    local w = q[i]
    q[i] = nil
    if w and not w.done then settle(w, nil, err) end
  end
  c.head, c.tail = 1, 0
  wakeGate(c)
end

-- The next result: settles the oldest query; barriers (drain) behind it
-- settle too.
local function deliver(c, rows, err)
  local q, head = c.queue, c.head
  local w = q[head]
  if not w then
    failAll(c, errors.new("08P01", "a result came with no query waiting for it"))
    return
  end
  q[head] = nil
  head = head + 1
  if not w.canceled then settle(w, rows, err) end
  local b = q[head]
  while b and b.barrier do
    q[head] = nil
    head = head + 1
    settle(b, true)
    b = q[head]
  end
  c.head = head
end

local handOff = replyqueue.handOff

-- A query whose task stopped waiting: its result is dropped when it comes.
-- When it is the only one in flight, the server is asked to stop it
-- (PQcancel), which cannot hit another query: none is queued behind it.
local function abandon(c, w)
  w.canceled = true
  if c.h and not w.done and c.head == c.tail and c.queue[c.head] == w then ncancel(c.h) end
end

-- Reads and delivers results until w is settled. can: this task may
-- suspend (false: the reads block).
local function readFor(c, w, can)
  c.reader = w
  local read = false
  while not w.done do
    local h = c.h
    local st, a, b = nnext(h, read)
    read = false
    if st == true then
      deliver(c, a, b)
    elseif st == nil then
      local sent, ferr = nflush(h, false)
      if sent == nil then
        failAll(c, ferr)
      else
        local ok, what = nwait(h, sent and "r" or "rw", -1, can)
        if not ok then  -- cancelled: someone else reads on, our result will be dropped
          c.reader = false
          abandon(c, w)
          handOff(c)
          raiseCanceled(3)
        end
        if what == false then
          failAll(c, errors.new("Closed", "the connection was closed"))
        else
          read = what ~= "w"
        end
      end
    elseif st == false then
      failAll(c, a)
    else
      failAll(c, errors.new("08P01", "unexpected " .. tostring(st) .. " result"))
    end
  end
  c.reader = false
  handOff(c)
end

local function await(c, w, can) return replyqueue.await(c, w, can, readFor, abandon, "a postgres query") end

-- Sends what libpq holds; waits for the socket while it is full.
local function flushOut(c, can)
  local read = false
  while c.h do
    local sent, err = nflush(c.h, read)
    if sent then return end
    if sent == nil then return failAll(c, err) end
    local ok, what = nwait(c.h, "rw", -1, can)
    if not ok or what == false then return end  -- the reader flushes what is left
    read = what ~= "w"
  end
end

-- Waits while another task holds the connection (a transaction, exec, COPY).
local function waitGate(c, me)
  while c.owner and c.owner ~= me do
    local t, id = prepare(not blocking and isyieldable())
    if t == false then raiseCanceled(3) end
    if t == nil then
      error("the postgres connection is held by another task's transaction; wait for it from a task", 3)
    end
    local gate = c.gate
    gate[#gate + 1] = {t, id}
    if not suspend() then raiseCanceled(3) end
  end
end

local function result(w)
  if w.err then return nil, w.err end
  return w.rows
end

-- The query path: into libpq's buffer now, onto the wire with the others
-- of this turn, then the result.
local function run(c, sql, ...)
  if c.owner then waitGate(c, running() or MAIN) end
  local h = c.h
  if not h then return nil, closedError(c) end
  local ok, err = nsend(h, sql, c.prepare, ...)
  if not ok then
    failAll(c, err)
    return nil, err
  end
  local w = {done = false, canceled = false, me = false, id = 0, rows = false, err = false}
  local tail = c.tail + 1
  c.tail = tail
  c.queue[tail] = w
  if blocking or not isyieldable() then
    flushOut(c, false)
    return result(await(c, w, false))
  end
  if not c.flushing then
    -- Cork: the tasks ready in this turn of the loop add their queries,
    -- then all of them leave together.
    c.flushing = true
    ncork(h, true)
    local yok = nyield(true)
    c.flushing = false
    flushOut(c, true)
    if not yok then
      abandon(c, w)
      raiseCanceled(2)
    end
  end
  return result(await(c, w, true))
end

local function checkQuery(self, sql, fname)
  if not isConn(self) then args.badSelf(fname, "PostgresConnection", self, 3) end
  if type(sql) ~= "string" then args.fail(1, fname, "string", sql, 3) end
  if find(sql, "^%s*[Cc][Oo][Pp][Yy]%s") then
    args.error(1, fname, "COPY runs through db:copyFrom or db:copyTo", 3)
  end
end

-- db:query(sql, ...) -> rows | nil, err. $1..$n are the arguments.
function Connection:query(sql, ...)
  checkQuery(self, sql, "query")
  return run(self, sql, ...)
end

-- db:queryOne(sql, ...) / db:get(sql, ...) -> the first row | nil (no row) | nil, err
function Connection:queryOne(sql, ...)
  checkQuery(self, sql, "queryOne")
  local rows, err = run(self, sql, ...)
  if not rows then return nil, err end
  return rows[1]
end
Connection.get = Connection.queryOne

-- db:notify(channel, payload) -> true | nil, err (pg_notify)
function Connection:notify(channel, payload)
  if not isConn(self) then args.badSelf("notify", "PostgresConnection", self) end
  if type(channel) ~= "string" then args.fail(1, "notify", "string", channel) end
  if payload ~= nil and type(payload) ~= "string" then args.fail(2, "notify", "string", payload) end
  local rows, err = run(self, "SELECT pg_notify($1, $2)", channel, payload or "")
  if not rows then return nil, err end
  return true
end

----------------------------------------------------------------- holding the connection

-- Takes the connection for this task alone (a transaction, exec, COPY):
-- other tasks' queries wait at the gate until release. Returns false when
-- this task held it already (nested).
local function hold(c)
  local me = running() or MAIN
  if c.owner == me then return false end
  waitGate(c, me)
  c.owner = me
  return true
end

local function release(c, took)
  if took then
    c.owner = false
    wakeGate(c)
  end
end

-- Waits until every query in flight is answered.
local function drain(c, can)
  if c.head > c.tail or not c.h then return end
  local w = {done = false, barrier = true, canceled = false, me = false, id = 0}
  local tail = c.tail + 1
  c.tail = tail
  c.queue[tail] = w
  await(c, w, can)
end

-- Reads this connection's own next answer (the pipeline is idle and held).
local function readOwn(c, can)
  local read = false
  while true do
    local h = c.h
    if not h then return false, c.lastError or closedError(c) end
    local st, a, b = nnext(h, read)
    if st ~= nil then return st, a, b end
    local sent = nflush(h, false)
    local ok, what = nwait(h, sent == false and "rw" or "r", -1, can)
    if not ok then
      -- Cancelled in the middle of a simple query or COPY: the server is
      -- told to stop, and the connection, in an unknown state, is closed.
      ncancel(h)
      failAll(c, errors.new("Closed", "closed after a cancelled exec or COPY"))
      raiseCanceled(3)
    end
    if what == false then return false, errors.new("Closed", "the connection was closed") end
    read = what ~= "w"
  end
end

-- Runs fn(can) with the connection held and drained; releases it however fn ends.
local function exclusive(c, fn, ...)
  local can = not blocking and isyieldable()
  local took = hold(c)
  local res = {pcall(function(...)
    drain(c, can)
    if not c.h then return nil, closedError(c) end
    return fn(can, ...)
  end, ...)}
  release(c, took)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- Sends sql with the simple query protocol and reads its answer.
local function simple(c, can, sql)
  local ok, err = nsendSimple(c.h, sql)
  if not ok then
    failAll(c, err)
    return nil, err
  end
  flushOut(c, can)
  local st, rows, rerr = readOwn(c, can)
  if st == false then
    failAll(c, rows)
    return nil, rows
  end
  return st, rows, rerr
end

-- db:exec(sql) -> rows of the last statement | nil, err: one or more
-- statements separated by semicolons, no parameters (the simple protocol).
function Connection:exec(sql)
  if not isConn(self) then args.badSelf("exec", "PostgresConnection", self) end
  if type(sql) ~= "string" then args.fail(1, "exec", "string", sql) end
  return exclusive(self, function(can)
    local st, rows, err = simple(self, can, sql)
    if st == nil then return nil, rows end
    if st ~= true then  -- a COPY: refuse it, the connection goes on
      if st == "copyin" then nputCopyEnd(self.h, "COPY runs through db:copyFrom") else ncancel(self.h) end
      flushOut(self, can)
      repeat
        local s2 = readOwn(self, can)
        if s2 == "copyout" then break end
      until s2 ~= "copyin" and s2 ~= "copyout"
      npipeline(self.h)
      return nil, errors.new("0A000", "COPY runs through db:copyFrom or db:copyTo")
    end
    npipeline(self.h)
    if err then return nil, err end
    return rows
  end)
end

local function packResults(...) return {n = select("#", ...), ...} end

-- A statement run by a transaction's end: under a shield, so that ROLLBACK
-- happens even when the task is being cancelled.
local function runShielded(c, sql)
  tasknative.shieldEnter()
  local ok, rows, err = pcall(run, c, sql)
  tasknative.shieldLeave()
  if not ok then return nil, rows end
  return rows, err
end

-- db:transaction(fn, ...) -> fn's results | nil, err (BEGIN or COMMIT
-- failed). BEGIN, fn(db, ...), COMMIT; when fn raises: ROLLBACK and the
-- error is raised again. Other tasks' queries on this connection wait until
-- it ends; nested calls use savepoints.
function Connection:transaction(fn, ...)
  if not isConn(self) then args.badSelf("transaction", "PostgresConnection", self) end
  if type(fn) ~= "function" then args.fail(1, "transaction", "function", fn) end
  local took = hold(self)
  local depth = self.depth
  local begin, commit, rollback = "BEGIN", "COMMIT", "ROLLBACK"
  if depth > 0 then
    local sp = "evo_sp" .. depth
    begin, commit, rollback = "SAVEPOINT " .. sp, "RELEASE SAVEPOINT " .. sp, "ROLLBACK TO SAVEPOINT " .. sp
  end
  local bok, ok, err = pcall(run, self, begin)  -- a cancelled BEGIN must not keep the connection held
  if not bok or not ok then
    release(self, took)
    if not bok then error(ok, 0) end
    return nil, err
  end
  self.depth = depth + 1
  local res = packResults(pcall(fn, self, ...))
  self.depth = depth
  if not res[1] then
    runShielded(self, rollback)
    release(self, took)
    error(res[2], 0)
  end
  local cok, cerr = runShielded(self, commit)
  if cok and cok.command == "ROLLBACK" then  -- COMMIT of a failed transaction
    cok, cerr = nil, errors.new("25P02", "the transaction was rolled back (a statement in it failed)")
  end
  release(self, took)
  if not cok then return nil, cerr end
  return unpack(res, 2, res.n)
end

----------------------------------------------------------------- COPY

local CopyWriter = {}
CopyWriter.__index = CopyWriter
CopyWriter.__name = "PostgresCopyWriter"

-- Starts a COPY (sql) on a connection this task holds until the COPY ends:
-- the held token when the server entered `want` ("copyin" / "copyout"), else
-- nil, err (the connection released).
local function startCopy(c, fname, sql, want, direction)
  if not isConn(c) then args.badSelf(fname, "PostgresConnection", c, 3) end
  if type(sql) ~= "string" then args.fail(1, fname, "string", sql, 3) end
  local can = not blocking and isyieldable()
  local took = hold(c)
  local ok, st, a, b = pcall(function()
    drain(c, can)
    if not c.h then return nil, closedError(c) end
    return simple(c, can, sql)
  end)
  if not ok then
    release(c, took)
    error(st, 0)
  end
  if st ~= want then
    if c.h then npipeline(c.h) end
    release(c, took)
    if st == nil then return nil, a end
    if st == true and b then return nil, b end
    return nil, errors.new("42601", "not a COPY ... " .. direction .. " statement")
  end
  return took
end

-- db:copyFrom(sql) -> writer | nil, err: sql is a COPY ... FROM STDIN;
-- writer:write(data) sends rows in COPY's format, writer:finish() ends it
-- and returns {rowCount = n, command = "COPY n"}; writer:abort([reason]).
-- The connection is held by this task until the writer ends.
function Connection:copyFrom(sql)
  local took, err = startCopy(self, "copyFrom", sql, "copyin", "FROM STDIN")
  if not took then return nil, err end
  return setmetatable({c = self, took = took, open = true}, CopyWriter)
end

-- Waits until libpq takes data (or ends the COPY): put() is nputCopy or nputCopyEnd.
local function putAll(w, put, data)
  local c = w.c
  local can = not blocking and isyieldable()
  while true do
    if not c.h then return nil, closedError(c) end
    local r, err = put(c.h, data)
    if r == nil then
      failAll(c, err)
      return nil, err
    end
    if r then
      flushOut(c, can)
      return true
    end
    local ok = nwait(c.h, "w", -1, can)
    if not ok then raiseCanceled(3) end
  end
end

function CopyWriter:write(data)
  if getmetatable(self) ~= CopyWriter then args.badSelf("write", "PostgresCopyWriter", self) end
  if type(data) ~= "string" then args.fail(1, "write", "string", data) end
  if not self.open then return nil, errors.new("Closed", "the COPY has ended") end
  return putAll(self, nputCopy, data)
end

local function endCopy(self, reason)
  if not self.open then return nil, errors.new("Closed", "the COPY has ended") end
  self.open = false
  local c = self.c
  local ok, err = putAll(self, nputCopyEnd, reason)
  local rows
  if ok then
    local st, a, b = readOwn(c, not blocking and isyieldable())
    if st == true then
      rows, err = a, b
    elseif st == false then
      failAll(c, a)
      err = a
    end
    if c.h then npipeline(c.h) end
  end
  release(c, self.took)
  if err then return nil, err end
  return rows
end

function CopyWriter:finish() return endCopy(self, nil) end
function CopyWriter:abort(reason) return endCopy(self, reason or "aborted by the client") end

local CopyReader = {}
CopyReader.__index = CopyReader
CopyReader.__name = "PostgresCopyReader"

-- db:copyTo(sql) -> reader | nil, err: sql is a COPY ... TO STDOUT.
-- reader:read() -> the next chunk (a row, in COPY's format) | nil when done
-- (reader.rowCount is set) | nil, err. The reader is also an iterator:
-- `for chunk in db:copyTo(sql) do ... end` (an error is raised there).
function Connection:copyTo(sql)
  local took, err = startCopy(self, "copyTo", sql, "copyout", "TO STDOUT")
  if not took then return nil, err end
  return setmetatable({c = self, took = took, open = true, rowCount = false}, CopyReader)
end

function CopyReader:read()
  if getmetatable(self) ~= CopyReader then args.badSelf("read", "PostgresCopyReader", self) end
  if not self.open then return nil end
  local c = self.c
  local can = not blocking and isyieldable()
  local read = false
  while true do
    if not c.h then
      self.open = false
      release(c, self.took)
      return nil, closedError(c)
    end
    local data, err = ngetCopy(c.h, read)
    if data then return data end
    if data == false then  -- the end: the COPY's own result follows
      local st, a, b = readOwn(c, can)
      self.open = false
      if st == true and a then self.rowCount = a.rowCount end
      if st == false then failAll(c, a) elseif c.h then npipeline(c.h) end
      release(c, self.took)
      if st == false then return nil, a end
      if b then return nil, b end
      return nil
    end
    if err then
      failAll(c, err)
      self.open = false
      release(c, self.took)
      return nil, err
    end
    local ok = nwait(c.h, "r", -1, can)
    if not ok then
      ncancel(c.h)
      failAll(c, errors.new("Closed", "closed after a cancelled COPY"))
      self.open = false
      release(c, self.took)
      raiseCanceled(2)
    end
    read = true
  end
end

CopyReader.__call = function(self)
  local chunk, err = self:read()
  if err then error(err, 2) end
  return chunk
end

----------------------------------------------------------------- LISTEN / NOTIFY

local Listener = events.class("PostgresListener", {"NOTIFICATION_RECEIVED"})

-- Runs a LISTEN/UNLISTEN on the listener's own connection.
local function listenCommand(l, verb, channel)
  local c = l.c
  if not c.h then return nil, closedError(c) end
  local can = not blocking and isyieldable()
  local st, rows, err = simple(c, can, verb .. " " .. native.escapeIdentifier(c.h, channel))
  if st == nil or st == false then return nil, rows end
  if err then return nil, err end
  return true
end

-- db:listen(channel) -> listener | nil, err: a connection of its own that
-- LISTENs; listener:receive([timeout]) -> {channel, payload, pid} | nil, err;
-- listener:start() delivers them as NOTIFICATION_RECEIVED events instead.
function Connection:listen(channel)
  if not isConn(self) then args.badSelf("listen", "PostgresConnection", self) end
  if type(channel) ~= "string" then args.fail(1, "listen", "string", channel) end
  local h, err = dial(self.cfg)
  if not h then return nil, err end
  local c = setmetatable({h = h, cfg = self.cfg, queue = {}, head = 1, tail = 0, gate = {}, depth = 0,
    reader = false, flushing = false, owner = false, lastError = false, prepare = false}, Connection)
  local l = Listener()
  l.c, l.channels = c, {}
  local ok, lerr = listenCommand(l, "LISTEN", channel)
  if not ok then
    failAll(c, lerr)
    return nil, lerr
  end
  l.channels[channel] = true
  return l
end

function Listener:listen(channel)
  if type(channel) ~= "string" then args.fail(1, "listen", "string", channel) end
  local ok, err = listenCommand(self, "LISTEN", channel)
  if ok then self.channels[channel] = true end
  return ok, err
end

function Listener:unlisten(channel)
  if type(channel) ~= "string" then args.fail(1, "unlisten", "string", channel) end
  local ok, err = listenCommand(self, "UNLISTEN", channel)
  if ok then self.channels[channel] = nil end
  return ok, err
end

-- receive([timeout]) -> {channel, payload, pid} | nil, err (Timeout, Closed)
function Listener:receive(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    args.error(1, "receive", "timeout must be a number of seconds >= 0")
  end
  local c = self.c
  local deadline = timeout and now() + timeout
  local can = not blocking and isyieldable()
  local read = false
  while true do
    if not c.h then return nil, closedError(c) end
    local n, err = nnotifies(c.h, read)
    if n then return n end
    if n == false then
      failAll(c, err)
      return nil, err
    end
    local left = -1
    if deadline then
      left = deadline - now()
      if left <= 0 then return nil, errors.new("Timeout", "no notification within " .. timeout .. " s") end
    end
    local ok, what = nwait(c.h, "r", left, can)
    if not ok then raiseCanceled(2) end
    if what == false then return nil, closedError(c) end
    read = what ~= "timeout"
  end
end

-- start(): a task receives notifications and emits NOTIFICATION_RECEIVED
-- {channel, payload, pid} for each, until close().
function Listener:start()
  if self.task then return self end
  self.task = task.async(function()
    while true do
      local n, err = self:receive()
      if not n then
        self.lastError = err
        return
      end
      self:emit("NOTIFICATION_RECEIVED", n)
    end
  end)
  return self
end

function Listener:close()
  if self.task then
    self.task:cancel()
    self.task = nil
  end
  failAll(self.c, errors.new("Closed", "the listener is closed"))
  self.c.lastError = false
end

----------------------------------------------------------------- the rest

-- db:close(): fails what is in flight with Closed; later calls return Closed.
function Connection:close()
  if not isConn(self) then args.badSelf("close", "PostgresConnection", self) end
  if self.h then failAll(self, errors.new("Closed", "the postgres connection is closed")) end
  self.lastError = false
end

function Connection:isOpen() return self.h ~= false and native.isOpen(self.h) end

-- db:stats() -> {queries, flushes, reads, inFlight, prepared, pid, serverVersion, ssl}
function Connection:stats()
  if not self.h then return {queries = 0, flushes = 0, reads = 0, inFlight = 0, prepared = 0} end
  return native.stats(self.h)
end

function Connection:escapeIdentifier(s)
  if type(s) ~= "string" then args.fail(1, "escapeIdentifier", "string", s) end
  if not self.h then error("the postgres connection is closed", 2) end
  return native.escapeIdentifier(self.h, s)
end

function Connection:escapeLiteral(s)
  if type(s) ~= "string" then args.fail(1, "escapeLiteral", "string", s) end
  if not self.h then error("the postgres connection is closed", 2) end
  return native.escapeLiteral(self.h, s)
end

local function newConnection(cfg, h)
  return setmetatable({h = h, cfg = cfg, queue = {}, head = 1, tail = 0, gate = {}, depth = 0, reader = false,
    flushing = false, owner = false, lastError = false, prepare = cfg.prepare}, Connection)
end

-- postgres.connect(url | opts) -> connection | nil, err
function postgres.connect(o)
  local cfg = config(1, "postgres.connect", o)
  local h, err = dial(cfg)
  if not h then return nil, err end
  return newConnection(cfg, h)
end

----------------------------------------------------------------- pool

local Pool = {}
Pool.__index = Pool
Pool.__name = "PostgresPool"

local function isPool(v) return getmetatable(v) == Pool end

local function load(c) return c.tail - c.head + 1 end

-- Drops broken connections, and idle ones past idleTimeout.
local function sweep(p)
  local conns, t = p.conns, now()
  local idle = p.idleTimeout
  for i = #conns, 1, -1 do
    local c = conns[i]
    local gone = not c.h
    if not gone and idle and idle > 0 and not c.owner and load(c) == 0 and p.busy[c] == nil and
      t - c.lastUsed > idle then
      c:close()
      gone = true
    end
    if gone then
      table.remove(conns, i)
      p.n = p.n - 1
    end
  end
end

local function wakePool(p)
  local list = p.waiters
  if #list == 0 then return end
  p.waiters = {}
  for i = 1, #list do wake(list[i][1], list[i][2]) end
end

-- A connection for one query: an idle one, a new one while fewer than max
-- exist, else the least loaded one not held by a transaction (its queries
-- pipeline). Waits while every connection is held (or being opened).
local function pick(p, exclusive)
  while true do
    if p.closed then return nil, errors.new("Closed", "the pool is closed") end
    sweep(p)
    local best, bestLoad = nil, math.huge
    local conns = p.conns
    for i = 1, #conns do
      local c = conns[i]
      if not c.owner and not p.pinned[c] then
        local l = load(c) + (p.busy[c] or 0)
        if l < bestLoad then best, bestLoad = c, l end
      end
    end
    if best and (bestLoad == 0 or (p.n >= p.max and not exclusive)) then return best end
    if p.n < p.max then
      p.n = p.n + 1
      local ok, h, err = pcall(dial, p.cfg)
      if not ok or not h then
        p.n = p.n - 1
        wakePool(p)
        if not ok then error(h, 0) end
        if best and not exclusive then return best end
        return nil, err
      end
      local c = newConnection(p.cfg, h)
      c.lastUsed = now()
      conns[#conns + 1] = c
      wakePool(p)
      return c
    end
    local t, id = prepare(not blocking and isyieldable())
    if t == false then raiseCanceled(3) end
    if t == nil then return nil, errors.new("PoolExhausted", "every pool connection is busy and this call cannot wait") end
    local list = p.waiters
    list[#list + 1] = {t, id}
    if not suspend() then raiseCanceled(3) end
  end
end

local function done(p, c)
  local b = (p.busy[c] or 1) - 1
  p.busy[c] = b > 0 and b or nil
  c.lastUsed = now()
  if not c.h then sweep(p) end
  wakePool(p)
end

-- Idle connections past idleTimeout close without waiting for the pool's next
-- use: an unreferenced timer (it never keeps the process alive) sweeps every
-- half idleTimeout (0.1 to 10 s). It holds the pool weakly: a pool dropped
-- without close() stops its timer at the next tick. The blocking Io mode has
-- no loop turning meanwhile: there the sweep runs at each use.
local function startIdleSweep(p)
  local idle = p.idleTimeout
  if blocking or type(idle) ~= "number" or idle <= 0 then return end
  local uv = require("uv")
  local every = math.floor(math.min(math.max(idle / 2, 0.1), 10) * 1000)
  local ref = setmetatable({p}, {__mode = "v"})
  local timer = uv.new_timer()
  timer:start(every, every, function()
    local pool = ref[1]
    if not pool or pool.closed then
      if not timer:is_closing() then timer:close() end
      return
    end
    sweep(pool)
  end)
  timer:unref()
  p.idleTimer = timer
end

-- postgres.pool{url | connection options, max = 10, idleTimeout = 30} -> pool
function postgres.pool(o)
  if type(o) ~= "table" and type(o) ~= "string" then args.fail(1, "postgres.pool", "table or string", o) end
  local cfg = config(1, "postgres.pool", o)
  local max = type(o) == "table" and o.max or 10
  if type(max) ~= "number" or max < 1 or max % 1 ~= 0 then args.error(1, "postgres.pool", "max must be an integer >= 1") end
  local p = setmetatable({cfg = cfg, max = max, idleTimeout = type(o) == "table" and o.idleTimeout or 30,
    conns = {}, n = 0, waiters = {}, busy = {}, pinned = {}, closed = false}, Pool)
  startIdleSweep(p)
  return p
end

local function pooled(p, fname, sql, ...)
  if not isPool(p) then args.badSelf(fname, "PostgresPool", p, 3) end
  if type(sql) ~= "string" then args.fail(1, fname, "string", sql, 3) end
  local c, err = pick(p, false)
  if not c then return nil, err end
  p.busy[c] = (p.busy[c] or 0) + 1
  local ok, rows, qerr = pcall(Connection[fname], c, sql, ...)
  done(p, c)
  if not ok then error(rows, 0) end
  return rows, qerr
end

function Pool:query(sql, ...) return pooled(self, "query", sql, ...) end
function Pool:queryOne(sql, ...) return pooled(self, "queryOne", sql, ...) end
Pool.get = Pool.queryOne
function Pool:exec(sql) return pooled(self, "exec", sql) end
function Pool:notify(channel, payload) return pooled(self, "notify", channel, payload) end

-- Runs fn(conn, ...) with one connection of the pool for this task alone.
local function pinned(p, fname, fn, ...)
  if not isPool(p) then args.badSelf(fname, "PostgresPool", p, 3) end
  local c, err = pick(p, true)
  if not c then return nil, err end
  p.pinned[c] = true
  p.busy[c] = (p.busy[c] or 0) + 1
  local res = packResults(pcall(fn, c, ...))
  p.pinned[c] = nil
  done(p, c)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

-- pool:transaction(fn, ...) -> fn's results: fn(conn, ...) runs in a
-- transaction on one connection, pinned to it.
function Pool:transaction(fn, ...)
  if type(fn) ~= "function" then args.fail(1, "transaction", "function", fn) end
  return pinned(self, "transaction", function(c, ...) return c:transaction(fn, ...) end, ...)
end

-- pool:connection(fn, ...) -> fn's results: fn(conn, ...) with a pinned connection.
function Pool:connection(fn, ...)
  if type(fn) ~= "function" then args.fail(1, "connection", "function", fn) end
  return pinned(self, "connection", fn, ...)
end

-- pool:listen(channel) -> a listener (a connection of its own, not counted in max)
function Pool:listen(channel)
  if type(channel) ~= "string" then args.fail(1, "listen", "string", channel) end
  return Connection.listen(newConnection(self.cfg, false), channel)
end

-- pool:stats() -> {total, idle, waiting, inFlight}
function Pool:stats()
  local idle, inflight = 0, 0
  for _, c in ipairs(self.conns) do
    if load(c) == 0 and not self.busy[c] then idle = idle + 1 end
    inflight = inflight + load(c)
  end
  return {total = #self.conns, idle = idle, waiting = #self.waiters, inFlight = inflight}
end

function Pool:close()
  self.closed = true
  local timer = self.idleTimer
  if timer and not timer:is_closing() then timer:close() end
  for _, c in ipairs(self.conns) do c:close() end
  self.conns, self.n = {}, 0
  wakePool(self)
end

postgres.Connection, postgres.Pool, postgres.Listener = Connection, Pool, Listener
return postgres
