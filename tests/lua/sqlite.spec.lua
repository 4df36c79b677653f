-- sqlite: every function, types round trip (int64 edges, blobs with NULs,
-- Unicode), parameters, transactions with savepoints, SQLite's errors,
-- Python's sqlite3 as a peer on the same file (both directions), worker
-- mode in both Io modes with cancellation, leaks after 100k queries, and
-- bad arguments.
local sqlite = require("sqlite")
local json = require("json")
local task = require("task")
local uv = require("uv")
local helpers = require("helpers")

local evented = task.mode() == "evented"
local null = sqlite.null

local function python(code, ...) return helpers.python(code, nil, {...}) end

local function evo(args, timeout)
  local r = helpers.runEvo(args, {timeout = timeout or 60})
  assert.equal(r.code, 0, "evo failed: " .. r.stderr .. r.stdout)
  return r.stdout
end

local tmpdir
local function tmpfile(name) return tmpdir .. "/" .. name end

local function memdb(opts)
  local db = assert(sqlite.open(":memory:", opts))
  assert(db:exec([[
    CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB);
    INSERT INTO t(name, score) VALUES ('ada', 1.5), ('bob', 2.5), ('cy', NULL);
  ]]))
  return db
end

-- A recursive CTE that counts to n: seconds of work for n in the tens of millions.
local function longQuery(n) return ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT count(*) AS n FROM c"):format(n) end

describe("sqlite", function()
  before(function() tmpdir = assert(uv.fs_mkdtemp("/tmp/evo-sqlite-XXXXXX")) end)
  after(function()
    local req = uv.fs_scandir(tmpdir)
    while req do
      local name = uv.fs_scandir_next(req)
      if not name then break end
      uv.fs_unlink(tmpdir .. "/" .. name)
    end
    uv.fs_rmdir(tmpdir)
  end)

  describe("queries", function()
    it("exec, query with rows.columns, get, run", function()
      local db = memdb()
      local rows = assert(db:query("SELECT id, name, score FROM t ORDER BY id"))
      assert.equal(#rows, 3)
      assert.equal(rows.columns, {"id", "name", "score"})
      assert.equal(rows[1], {id = 1, name = "ada", score = 1.5})
      assert.equal(rows[3].score, null)  -- NULL is present, and distinguishable
      assert.isNil(rows[3].missing)
      assert.equal(db:get("SELECT name FROM t WHERE id = ?", 2), {name = "bob"})
      assert.isNil(db:get("SELECT name FROM t WHERE id = ?", 99))
      local r = assert(db:run("INSERT INTO t(name) VALUES (?)", "dee"))
      assert.equal(r, {changes = 1, lastInsertRowid = 4})
      assert.equal(db:run("UPDATE t SET score = 0").changes, 4)
      local empty = assert(db:query("SELECT * FROM t WHERE 0"))
      assert.equal(#empty, 0)
      assert.equal(empty.columns, {"id", "name", "score", "data"})
      assert.truthy(db:exec("SELECT 1; -- comment only\n"))
      db:close()
    end)

    it("prepare: all, get, run, iterate, columns, finalize", function()
      local db = memdb()
      local st = assert(db:prepare("SELECT id, name FROM t WHERE id >= ? ORDER BY id"))
      assert.equal(st:columns(), {"id", "name"})
      assert.equal(#st:all(2), 2)
      assert.equal(st:get(3), {id = 3, name = "cy"})
      local seen = {}
      for row in st:iterate(1) do seen[#seen + 1] = row.name end
      assert.equal(seen, {"ada", "bob", "cy"})
      -- break, then reuse: the statement starts again.
      for _ in st:iterate(1) do break end
      assert.equal(st:get(1).id, 1)
      -- An iterator whose statement was run again says so.
      local it = st:iterate(1)
      it()
      st:get(1)
      assert.throws(function() it() end, "used again")
      local ins = assert(db:prepare("INSERT INTO t(name) VALUES (?)"))
      assert.equal(ins:run("zed").lastInsertRowid, 4)
      assert.equal(ins:columns(), {})
      st:finalize()
      st:finalize()  -- twice is fine
      assert.throws(function() st:get(1) end, "bad argument #1 to 'stmt:get' (the statement is finalized)")
      db:close()
    end)

    -- stmt:run binds through the FFI for positional numbers and strings,
    -- and hands everything else to the native: run enough times that the
    -- JIT compiles the loop, the results must be the native's.
    it("stmt:run and db:run: the FFI path stores and answers what the native does", function()
      local db = memdb()
      assert(db:exec("CREATE TABLE f(id INTEGER PRIMARY KEY, a, b)"))
      local ins = db:prepare("INSERT INTO f(id, a, b) VALUES (?, ?, ?)")
      for i = 1, 500 do
        local r = ins:run(i, i % 3 == 0 and i * 0.5 or "s" .. i, i % 50 == 0 and null or i)
        assert.equal(r, {changes = 1, lastInsertRowid = i})
      end
      assert.equal(db:get("SELECT count(*) AS n FROM f").n, 500)
      assert.equal(db:get("SELECT typeof(a) AS t, a FROM f WHERE id = 3"), {t = "real", a = 1.5})
      assert.equal(db:get("SELECT typeof(a) AS t, a FROM f WHERE id = 4"), {t = "text", a = "s4"})
      assert.equal(db:get("SELECT typeof(a) AS t FROM f WHERE id = 6").t, "integer")  -- 6 * 0.5 is integral
      assert.equal(db:get("SELECT typeof(b) AS t FROM f WHERE id = 50").t, "null")
      assert.equal(db:get("SELECT typeof(b) AS t FROM f WHERE id = 51").t, "integer")
      -- Rowids past 2^53 come back as exact int64_t cdata, below as numbers.
      local r = ins:run(2 ^ 53, "x", 1)
      assert.equal(r.lastInsertRowid, 2 ^ 53)
      assert.equal(type(r.lastInsertRowid), "number")
      r = db:run("INSERT INTO f(a, b) VALUES (?, ?)", "y", 2)
      assert.equal(type(r.lastInsertRowid), "cdata")
      assert.equal(tostring(r.lastInsertRowid), "9007199254740993LL")
      -- changes counts what the statement changed.
      assert.equal(db:run("UPDATE f SET b = ? WHERE id <= ?", 0, 10).changes, 10)
      -- A failed step: nil, err, and the statement goes on.
      local ok, err = ins:run(1, "dup", 1)
      assert.equal(ok, nil)
      assert.equal(err.code, "SQLITE_CONSTRAINT_PRIMARYKEY")
      assert.equal(ins:run(1000, "fine", 1).changes, 1)
      -- A wrong count, misuse and a finalized statement: the native's messages.
      assert.throws(function() ins:run(1, 2) end, "bad argument #2 to 'stmt:run' (the statement has 3 parameters, 2 values given)")
      assert.throws(function() ins.run("x", 1, 2, 3) end, "bad argument #1 to 'stmt:run' (Statement expected, got string)")
      ins:finalize()
      assert.throws(function() ins:run(2000, "z", 1) end, "the statement is finalized")
      db:close()
      assert.throws(function() db:run("INSERT INTO f(a) VALUES (?)", 1) end, "closed")
    end)

    it("positional and named parameters (:name, $name, @name, ?NNN)", function()
      local db = memdb()
      assert.equal(db:get("SELECT ? AS a, ? AS b", 1, "x"), {a = 1, b = "x"})
      assert.equal(db:get("SELECT ? AS a, ? AS b", {7, "y"}), {a = 7, b = "y"})
      assert.equal(db:get("SELECT :a AS a, $b AS b, @c AS c", {a = 1, b = 2, c = 3}), {a = 1, b = 2, c = 3})
      assert.equal(db:get("SELECT ?2 AS two, ?1 AS one", "first", "second"), {two = "second", one = "first"})
      assert.equal(db:get("SELECT ? AS n", null), {n = null})
      assert.equal(db:get("SELECT ? AS n", nil), {n = null})
      assert.equal(db:get("SELECT :v AS v", {v = null}), {v = null})
      assert.equal(db:get("SELECT ? AS t, ? AS f", true, false), {t = 1, f = 0})
      db:close()
    end)

    it("keeps statements in a cache per connection", function()
      local db = memdb()
      local sql = "SELECT count(*) AS n FROM t"
      db:get(sql)
      local st = db[2][sql]
      assert.notNil(st)
      db:get(sql)
      assert.truthy(db[2][sql] == st)
      for i = 1, 500 do db:get("SELECT " .. i .. " AS n") end  -- bounded: starts again past its size
      assert.truthy(db._n <= 200)
      db:close()
    end)
  end)

  describe("types", function()
    it("round-trip INTEGER at the int64 edges exactly", function()
      local db = memdb()
      assert(db:exec("CREATE TABLE n(v INTEGER)"))
      local values = {0, 1, -1, 2 ^ 53, -2 ^ 53, 9007199254740993LL, -9007199254740993LL,
        9223372036854775807LL, -9223372036854775807LL - 1}
      for _, v in ipairs(values) do assert(db:run("INSERT INTO n VALUES (?)", v)) end
      assert(db:run("INSERT INTO n VALUES (?)", require("ffi").new("uint64_t", 42)))
      local rows = db:query("SELECT v, typeof(v) AS t FROM n")
      for i, v in ipairs(values) do
        assert.equal(rows[i].t, "integer")
        assert.truthy(rows[i].v == v, tostring(rows[i].v) .. " ~= " .. tostring(v))
      end
      assert.equal(type(rows[3].v), "number")
      assert.equal(type(rows[6].v), "cdata")  -- past 2^53: an int64_t
      assert.equal(tostring(rows[8].v), "9223372036854775807LL")
      assert.equal(rows[10].v, 42)
      -- The same representation as json: int64 cdata encode as exact integers.
      assert.equal(json.encode(db:get("SELECT 9223372036854775807 AS v")), '{"v":9223372036854775807}')
      db:close()
    end)

    it("round-trip REAL, TEXT (Unicode, NULs), BLOB and NULL", function()
      local db = memdb()
      assert(db:exec("CREATE TABLE v(x)"))
      local bytes = "\0\1\2\255binary\0"
      local cases = {
        {1.5, "real"}, {-0.1, "real"}, {1e308, "real"},
        {"héllo wörld ✓ 𝄞", "text"}, {"a\0b", "text"}, {"", "text"},
        {sqlite.blob(bytes), "blob"}, {sqlite.blob(""), "blob"}, {null, "null"},
      }
      for _, c in ipairs(cases) do assert(db:run("INSERT INTO v VALUES (?)", c[1])) end
      local rows = db:query("SELECT x, typeof(x) AS t, length(CAST(x AS BLOB)) AS len FROM v")
      for i, c in ipairs(cases) do
        assert.equal(rows[i].t, c[2])
        local want = getmetatable(c[1]) and c[1][1] or c[1]
        assert.equal(rows[i].x, want)
      end
      assert.equal(rows[5].len, 3)
      assert.equal(rows[7].len, #bytes)
      assert.equal(db:get("SELECT length(?) AS n", "𝄞").n, 1)  -- one character of UTF-8
      db:close()
    end)

    it("refuses to bind tables, functions and other values", function()
      local db = memdb()
      assert.throws(function() db:get("SELECT ?, ?", 1, {}) end, "bad argument #3 to 'db:get' (cannot bind a table")
      assert.throws(function() db:get("SELECT ?", print) end, "bad argument #2 to 'db:get' (cannot bind a function)")
      assert.throws(function() db:get("SELECT ?", coroutine.create(print)) end, "cannot bind a thread")
      assert.throws(function() db:get("SELECT ?", require("ffi").new("double", 1)) end, "cannot bind a cdata")
      local st = db:prepare("SELECT ?")
      assert.throws(function() st:all(1, {}) end, "bad argument #2 to 'stmt:all' (the statement has 1 parameter, 2 values given)")
      assert.throws(function() st:get({x = 1}) end, "no value for parameter 1")
      assert.throws(function() db:get("SELECT :a", {b = 1}) end, "bad argument #2 to 'db:get' (no value for parameter :a")
      assert.throws(function() db:get("SELECT ?", require("ffi").new("uint64_t", -1)) end, "out of SQLite's integer range")
      db:close()
    end)
  end)

  describe("transactions", function()
    it("commit on return, roll back and re-raise on error", function()
      local db = memdb()
      assert.equal({db:transaction(function(a, b) db:run("INSERT INTO t(name) VALUES ('x')"); return a + b, "ok" end, 1, 2)}, {3, "ok"})
      assert.equal(db:get("SELECT count(*) AS n FROM t").n, 4)
      assert.throws(function()
        db:transaction(function()
          db:run("INSERT INTO t(name) VALUES ('y')")
          error("boom")
        end)
      end, "boom")
      assert.equal(db:get("SELECT count(*) AS n FROM t").n, 4)
      assert.falsy(db:inTransaction())
      -- an error object passes through unchanged
      local err = assert.throws(function() db:transaction(function() error({code = "Mine"}) end) end)
      assert.equal(err.code, "Mine")
      db:close()
    end)

    it("nest through savepoints: an inner failure rolls back only the inner part", function()
      local db = memdb()
      db:transaction(function()
        db:run("INSERT INTO t(name) VALUES ('outer')")
        db:transaction(function() db:run("INSERT INTO t(name) VALUES ('inner ok')") end)
        local ok = pcall(db.transaction, db, function()
          db:run("INSERT INTO t(name) VALUES ('inner bad')")
          db:transaction(function() db:run("INSERT INTO t(name) VALUES ('deeper')") end)
          error("inner")
        end)
        assert.falsy(ok)
        assert.truthy(db:inTransaction())
      end)
      local names = {}
      for _, r in ipairs(db:query("SELECT name FROM t WHERE id > 3 ORDER BY id")) do names[#names + 1] = r.name end
      assert.equal(names, {"outer", "inner ok"})
      -- an outer failure undoes the inner commits too
      pcall(db.transaction, db, function()
        db:transaction(function() db:run("INSERT INTO t(name) VALUES ('gone')") end)
        error("outer")
      end)
      assert.isNil(db:get("SELECT 1 FROM t WHERE name = 'gone'"))
      db:close()
    end)
  end)

  describe("errors", function()
    it("return nil, err with SQLite's extended code name", function()
      local db = memdb()
      local r, err = db:run("INSERT INTO t(name) VALUES ('ada')")
      assert.isNil(r)
      assert.equal(err.code, "SQLITE_CONSTRAINT_UNIQUE")
      assert.match(err.message, "UNIQUE constraint failed: t.name")
      assert.match(tostring(err), "^SQLITE_CONSTRAINT_UNIQUE: ")
      assert(db:exec("CREATE TABLE c(v INTEGER NOT NULL CHECK (v > 0), p INTEGER PRIMARY KEY)"))
      assert.equal(select(2, db:run("INSERT INTO c(v) VALUES (NULL)")).code, "SQLITE_CONSTRAINT_NOTNULL")
      assert.equal(select(2, db:run("INSERT INTO c(v) VALUES (-1)")).code, "SQLITE_CONSTRAINT_CHECK")
      assert(db:run("INSERT INTO c(v, p) VALUES (1, 1)"))
      assert.equal(select(2, db:run("INSERT INTO c(v, p) VALUES (1, 1)")).code, "SQLITE_CONSTRAINT_PRIMARYKEY")
      local _, syntax = db:query("SELEC 1")
      assert.equal(syntax.code, "SQLITE_ERROR")
      assert.match(syntax.message, "syntax error")
      assert.equal(select(2, db:get("SELECT * FROM nope")).code, "SQLITE_ERROR")
      assert.equal(select(2, db:exec("CREATE TABLE t(x)")).code, "SQLITE_ERROR")
      -- the connection is fine afterwards
      assert.equal(db:get("SELECT count(*) AS n FROM t").n, 3)
      db:close()
    end)

    it("open: missing files, read-only connections, not a database", function()
      local _, err = sqlite.open(tmpfile("absent.db"), {create = false})
      assert.equal(err.code, "SQLITE_CANTOPEN")
      local path = tmpfile("ro.db")
      local w = assert(sqlite.open(path))
      assert(w:exec("CREATE TABLE x(v); INSERT INTO x VALUES (1)"))
      w:close()
      local ro = assert(sqlite.open(path, {readonly = true}))
      assert.equal(ro:get("SELECT v FROM x").v, 1)
      assert.equal(select(2, ro:run("INSERT INTO x VALUES (2)")).code, "SQLITE_READONLY")
      ro:close()
      local junk = tmpfile("junk.db")
      local f = io.open(junk, "wb")
      f:write(("not a database "):rep(100))
      f:close()
      local db, e = sqlite.open(junk)
      if db then  -- SQLite reads lazily: the first query finds out
        e = select(2, db:get("SELECT * FROM sqlite_master"))
        db:close()
      end
      assert.equal(e.code, "SQLITE_NOTADB")
    end)

    it("raise on misuse, naming the call", function()
      local db = memdb()
      assert.throws(function() sqlite.open(1) end, "bad argument #1 to 'sqlite.open' (string expected, got number)")
      assert.throws(function() sqlite.open(":memory:", 1) end, "bad argument #2 to 'sqlite.open' (table expected, got number)")
      assert.throws(function() sqlite.open(":memory:", {bogus = 1}) end, "unknown option 'bogus'")
      assert.throws(function() sqlite.open(":memory:", {wal = 1}) end, "opts.wal must be a boolean")
      assert.throws(function() sqlite.open(":memory:", {busyTimeout = -1}) end, "opts.busyTimeout must be >= 0")
      assert.throws(function() db:query(1) end, "bad argument #1 to 'db:query' (string expected, got number)")
      assert.throws(function() db.query({}, "SELECT 1") end, "bad argument #1 to 'db:query' (Database expected, got table)")
      assert.throws(function() db:get("SELECT 1; SELECT 2") end, "bad argument #1 to 'db:get' (the SQL holds more than one statement")
      assert.throws(function() db:prepare(nil) end, "bad argument #1 to 'db:prepare' (string expected, got nil)")
      assert.throws(function() db:exec() end, "bad argument #1 to 'db:exec' (string expected, got nil)")
      assert.throws(function() db:transaction(1) end, "bad argument #1 to 'db:transaction' (function expected, got number)")
      assert.throws(function() db:run("SELECT ?") end, "bad argument #2 to 'db:run' (the statement has 1 parameter, 0 values given)")
      assert.throws(function() sqlite.blob(1) end, "bad argument #1 to 'sqlite.blob' (string expected, got number)")
      local st = db:prepare("SELECT 1")
      assert.throws(function() st.get("x") end, "bad argument #1 to 'stmt:get' (Statement expected, got string)")
      db:close()
      db:close()
      assert.throws(function() db:query("SELECT 1") end, "bad argument #1 to 'db:query' (the database is closed)")
      assert.throws(function() st:get() end, "bad argument #1 to 'stmt:get' (the database is closed)")
      assert.falsy(db:isOpen())
    end)
  end)

  describe("files", function()
    it("Python's sqlite3 reads what Evo wrote, and Evo reads what Python wrote", function()
      local path = tmpfile("evo.db")
      local db = assert(sqlite.open(path))
      assert(db:exec("CREATE TABLE p(i INTEGER, r REAL, s TEXT, b BLOB, n)"))
      assert(db:run("INSERT INTO p VALUES (?, ?, ?, ?, ?)", 9223372036854775807LL, 0.25, "żółw ✓", sqlite.blob("\0\255x"), null))
      db:close()
      local out = python([[
import sqlite3, sys, json
con = sqlite3.connect(sys.argv[1])
i, r, s, b, n = con.execute("SELECT * FROM p").fetchone()
print(json.dumps([i, r, s, b.hex(), n]))
]], path)
      assert.equal(json.decode(out), json.decode('[9223372036854775807, 0.25, "żółw ✓", "00ff78", null]'))

      local pypath = tmpfile("py.db")
      python([[
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE q(i INTEGER, r REAL, s TEXT, b BLOB, n)")
con.execute("INSERT INTO q VALUES (?, ?, ?, ?, ?)", (-9223372036854775808, 1e-300, "日本語", b"\x00\x01\x00", None))
con.executemany("INSERT INTO q(i) VALUES (?)", [(k,) for k in range(1000)])
con.commit()
]], pypath)
      local pdb = assert(sqlite.open(pypath, {readonly = true}))
      local row = pdb:get("SELECT * FROM q WHERE s IS NOT NULL")
      assert.truthy(row.i == -9223372036854775807LL - 1)
      assert.equal(row.r, 1e-300)
      assert.equal(row.s, "日本語")
      assert.equal(row.b, "\0\1\0")
      assert.equal(row.n, null)
      assert.equal(pdb:get("SELECT count(*) AS c, sum(i) AS s FROM q WHERE s IS NULL"), {c = 1000, s = 499500})
      pdb:close()
    end)

    it("two connections on one WAL file see each other's commits; busyTimeout waits for a lock", function()
      local path = tmpfile("wal.db")
      local a = assert(sqlite.open(path))
      local b = assert(sqlite.open(path, {busyTimeout = 0.2}))
      assert.equal(a:get("PRAGMA journal_mode").journal_mode, "wal")
      assert(a:exec("CREATE TABLE k(v)"))
      assert(a:run("INSERT INTO k VALUES (1)"))
      assert.equal(b:get("SELECT count(*) AS n FROM k").n, 1)
      assert(a:exec("BEGIN IMMEDIATE"))
      local t0 = uv.hrtime()
      local _, err = b:run("INSERT INTO k VALUES (2)")
      assert.equal(err.code, "SQLITE_BUSY")
      assert.truthy((uv.hrtime() - t0) / 1e9 >= 0.15, "busyTimeout did not wait")
      assert(a:exec("COMMIT"))
      assert(b:run("INSERT INTO k VALUES (2)"))
      a:close()
      b:close()
    end)

    it("leak no descriptors and no memory over 100k queries", function()
      local path = tmpfile("leak.db")
      local function round(count)
        local db = assert(sqlite.open(path))
        assert(db:exec("CREATE TABLE IF NOT EXISTS l(id INTEGER PRIMARY KEY, s TEXT)"))
        db:transaction(function()
          for i = 1, count do
            db:run("INSERT OR REPLACE INTO l(id, s) VALUES (?, ?)", i % 1000, "row" .. i)
            db:get("SELECT s FROM l WHERE id = ?", i % 1000)
          end
        end)
        local st = db:prepare("SELECT * FROM l WHERE id < ?")
        for _ = 1, count / 100 do st:all(10) end
        db:close()
      end
      round(2000)
      collectgarbage()
      local fd0, rss0 = helpers.fdCount(), helpers.rss()
      for _ = 1, 5 do round(10000) end  -- 100k inserts + 100k selects, and 500 all()s
      helpers.assertNoGrowth(fd0, rss0, 8 * 1024 * 1024)
    end, {timeout = 60})
  end)

  describe("worker connections", function()
    it("answer the same as synchronous ones", function()
      local db = assert(sqlite.open(tmpfile("w.db"), {worker = true}))
      assert(db:exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v)"))
      assert.equal(db:run("INSERT INTO t(name, v) VALUES (?, ?)", "a", 9223372036854775807LL), {changes = 1, lastInsertRowid = 1})
      assert.equal(db:run("INSERT INTO t(name, v) VALUES (:n, :v)", {n = "b", v = sqlite.blob("\0")}).lastInsertRowid, 2)
      local rows = db:query("SELECT * FROM t ORDER BY id")
      assert.equal(rows.columns, {"id", "name", "v"})
      assert.truthy(rows[1].v == 9223372036854775807LL)
      assert.equal(rows[2].v, "\0")
      assert.equal(db:get("SELECT name FROM t WHERE id = ?", 2), {name = "b"})
      assert.isNil(db:get("SELECT name FROM t WHERE id = ?", 9))
      assert.equal(select(2, db:run("INSERT INTO t(name) VALUES ('a')")).code, "SQLITE_CONSTRAINT_UNIQUE")
      local st = db:prepare("SELECT id FROM t ORDER BY id")
      local ids = {}
      for row in st:iterate() do ids[#ids + 1] = row.id end
      assert.equal(ids, {1, 2})
      assert.equal(st:get(), {id = 1})
      assert.equal(#st:all(), 2)
      pcall(db.transaction, db, function()
        db:run("INSERT INTO t(name) VALUES ('c')")
        error("x")
      end)
      assert.equal(db:get("SELECT count(*) AS n FROM t").n, 2)
      assert.throws(function() db:get("SELECT ?", {}) end, "bad argument #2 to 'db:get' (no value for parameter 1")
      db:close()
    end)

    it("suspend only their task while a long query runs", function()
      if not evented then return end
      local db = assert(sqlite.open(":memory:", {worker = true}))
      local ticks = 0
      local ticker = task.async(function()
        while true do
          task.sleep(0.005)
          ticks = ticks + 1
        end
      end)
      local row = db:get(longQuery(3000000))
      ticker:cancel()
      assert.equal(row.n, 3000000)
      assert.truthy(ticks >= 3, "the loop did not run during the query: " .. ticks .. " ticks")
      db:close()
    end, {timeout = 30})

    it("are cancelled with sqlite3_interrupt, and stay usable, in both Io modes and outside tasks", function()
      local script = [[
        local sqlite, task = require("sqlite"), require("task")
        local db = assert(sqlite.open(":memory:", {worker = true}))
        assert(db:exec("CREATE TABLE t(v)"))
        local n = task.mode() == "evented" and 1000000000 or 3000000
        local q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " .. n .. ") SELECT count(*) AS n FROM c"
        local t0 = task.now()
        local r, err = task.timeout(0.1, db.get, db, q)
        print("timeout " .. tostring(err and err.code) .. " " .. string.format("%.2f", task.now() - t0))
        -- Several tasks queued on one connection, some cancelled: the others get their answers.
        local fs = {}
        for i = 1, 6 do fs[i] = task.async(db.get, db, "SELECT ? AS i", i) end
        fs[2]:cancel(); fs[5]:cancel()
        local got = {}
        for i, f in ipairs(fs) do
          local ok, v = pcall(f.await, f)
          got[#got + 1] = ok and tostring(v.i) or "x"
        end
        print("queued " .. table.concat(got, ","))
        assert(db:run("INSERT INTO t VALUES (1)"))
        print("after " .. db:get("SELECT count(*) AS n FROM t").n)
        print("outside " .. db:get("SELECT 40 + 2 AS n").n)
        db:close()
      ]]
      for _, mode in ipairs({"evented", "blocking"}) do
        local lines = helpers.lines(evo({"--io=" .. mode, "-e", script}))
        local timeout, took = lines[1]:match("^timeout (%S+) (%S+)$")
        assert.equal(timeout, "Timeout", mode)
        if mode == "evented" then
          assert.truthy(tonumber(took) < 1, "the interrupt took " .. took .. " s")
          assert.equal(lines[2], "queued 1,x,3,4,x,6")
        else
          assert.equal(lines[2], "queued 1,2,3,4,5,6")  -- one task at a time: nothing left to cancel
        end
        assert.equal(lines[3], "after 1", mode)
        assert.equal(lines[4], "outside 42", mode)
      end
    end, {timeout = 90})

    it("close() interrupts a running query", function()
      if not evented then return end
      local db = assert(sqlite.open(":memory:", {worker = true}))
      local f = task.async(db.get, db, longQuery(1000000000))
      task.sleep(0.05)
      local t0 = task.now()
      db:close()
      local row, err = f:await()
      assert.isNil(row)
      assert.equal(err.code, "SQLITE_INTERRUPT")
      assert.truthy(task.now() - t0 < 1)
    end, {timeout = 30})
  end)

  it("loads in a task.work worker state (synchronous connections)", function()
    local n = task.work(function()
      local s = require("sqlite")
      local db = assert(s.open(":memory:"))
      return db:get("SELECT 6 * 7 AS n").n
    end)
    assert.equal(n, 42)
  end)
end)
