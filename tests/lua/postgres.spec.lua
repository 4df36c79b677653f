-- postgres: the client against a real PostgreSQL 15 (Debian's), a fresh
-- cluster made here with initdb on a free port, SCRAM password auth over TCP,
-- stopped and removed after: every type both ways, parameters, SQLSTATE
-- errors, auth failure, automatic pipelining from 50 tasks (and that it does
-- pipeline), cancellation in the middle of a pipeline and of a long query,
-- statement timeouts, transactions, the pool (pinning, a server killed
-- mid-query and restarted), LISTEN/NOTIFY, COPY both ways, fds and memory
-- after 100k queries. Runs in both Io modes (the concurrent parts in the
-- evented one).
local postgres = require("postgres")
local task = require("task")
local json = require("json")
local ffi = require("ffi")

local evented = task.mode() ~= "blocking"
local servers = require("servers")
local null = postgres.null

local helpers = require("helpers")

describe("postgres", function()
  local srv, db
  before(function()
    srv = servers.postgres()
    db = assert(postgres.connect(srv.url))
  end)
  after(function()
    if db then db:close() end
    if srv then srv:stop() end
  end)

  describe("types", function()
    it("decodes integers, int8 beyond 2^53, floats, numeric, bool, text", function()
      local row = assert(db:queryOne([[SELECT 1::int2 AS a, (-2147483648)::int4 AS b, 9007199254740992::int8 AS c,
        9007199254740993::int8 AS d, (-9223372036854775808)::int8 AS e, 1.5::float4 AS f, 0.1::float8 AS g,
        'NaN'::float8 AS nan, '-Infinity'::float8 AS ninf, 12345678901234567890.123::numeric AS num,
        true AS t, false AS fa, 'héllo'::text AS s, 'x'::varchar(3) AS v, 'ab'::char(3) AS ch, 42::oid AS o]]))
      assert.equal(row.a, 1)
      assert.equal(row.b, -2147483648)
      assert.equal(row.c, 9007199254740992)
      assert.equal(type(row.c), "number")
      assert.equal(type(row.d), "cdata")
      assert.truthy(row.d == 9007199254740993LL)
      assert.truthy(row.e == ffi.new("int64_t", -9223372036854775807LL) - 1)
      assert.equal(row.f, 1.5)
      assert.equal(row.g, 0.1)
      assert.truthy(row.nan ~= row.nan)
      assert.equal(row.ninf, -math.huge)
      assert.equal(row.num, "12345678901234567890.123")
      assert.equal(row.t, true)
      assert.equal(row.fa, false)
      assert.equal(row.s, "héllo")
      assert.equal(row.v, "x")
      assert.equal(row.ch, "ab ")
      assert.equal(row.o, 42)
    end)

    it("decodes bytea (zero and high bytes), json, jsonb, uuid, dates and timestamps", function()
      assert(db:exec("SET TIME ZONE 'UTC'"))
      local row = assert(db:queryOne([[SELECT '\x00ff0a41'::bytea AS b, ''::bytea AS e,
        '{"a": [1, 2, null], "b": {"c": "d"}}'::json AS j, '[true, 1.5]'::jsonb AS jb, 'null'::jsonb AS jn,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '2024-02-29'::date AS d,
        '2024-02-29 13:14:15.5'::timestamp AS ts, '2024-02-29 13:14:15+02'::timestamptz AS tz,
        '1 day 02:00'::interval AS iv]]))
      assert.equal(row.b, "\0\255\nA")
      assert.equal(row.e, "")
      assert.same(row.j.a, {1, 2, json.null})
      assert.equal(row.j.b.c, "d")
      assert.same(row.jb, {true, 1.5})
      assert.equal(row.jn, json.null)
      assert.equal(row.u, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
      assert.equal(row.d, "2024-02-29")
      assert.equal(row.ts, "2024-02-29 13:14:15.5")
      assert.equal(row.tz, "2024-02-29 11:14:15+00")
      assert.equal(row.iv, "1 day 02:00:00")
    end)

    it("decodes arrays of scalars into Lua arrays, NULL elements as postgres.null", function()
      local row = assert(db:queryOne([[SELECT '{1,2,NULL}'::int[] AS i, '{{1,2},{3,4}}'::int8[] AS m,
        ARRAY['a', 'b,c', 'd"e', 'NULL', '', NULL, ' sp '] AS t, '{t,f}'::bool[] AS b, '{1.5,-2}'::float8[] AS f,
        '{}'::int[] AS empty, '{"{\"k\":1}"}'::jsonb[] AS js, ARRAY['\x0001'::bytea] AS by,
        '[0:1]={7,8}'::int[] AS lb]]))
      assert.same(row.i, {1, 2, null})
      assert.same(row.m, {{1, 2}, {3, 4}})
      assert.same(row.t, {"a", "b,c", 'd"e', "NULL", "", null, " sp "})
      assert.same(row.b, {true, false})
      assert.same(row.f, {1.5, -2})
      assert.same(row.empty, {})
      assert.equal(row.js[1].k, 1)
      assert.same(row.by, {"\0\1"})
      assert.same(row.lb, {7, 8})
    end)

    it("tells NULL (postgres.null) from a missing column (nil)", function()
      local row = assert(db:queryOne("SELECT NULL::int AS n, 1 AS x"))
      assert.equal(row.n, null)
      assert.equal(row.n, json.null)
      assert.isNil(row.missing)
      local back = json.decode(json.encode(row))
      assert.equal(back.n, json.null)
      assert.equal(back.x, 1)
    end)

    it("gives rows.columns in order, rowCount and the command tag", function()
      assert(db:exec([[DROP TABLE IF EXISTS t; CREATE TABLE t(id serial PRIMARY KEY, name text UNIQUE,
        score int, data jsonb, bin bytea)]]))
      local ins = assert(db:query("INSERT INTO t(name, score) VALUES ($1, $2), ($3, $4)", "a", 1, "b", 2))
      assert.equal(ins.command, "INSERT 0 2")
      assert.equal(ins.rowCount, 2)
      assert.equal(#ins, 0)
      local up = assert(db:query("UPDATE t SET score = score + 1"))
      assert.equal(up.command, "UPDATE 2")
      assert.equal(up.rowCount, 2)
      local rows = assert(db:query("SELECT score, name, id FROM t ORDER BY id"))
      assert.same(rows.columns, {"score", "name", "id"})
      assert.equal(rows.rowCount, 2)
      assert.equal(rows.command, "SELECT 2")
      assert.same({rows[1].name, rows[1].score, rows[2].name, rows[2].score}, {"a", 2, "b", 3})
      assert.isNil(db:queryOne("SELECT * FROM t WHERE id = -1"))
      assert.equal(db:get("SELECT name FROM t WHERE name = $1", "b").name, "b")
    end)
  end)

  describe("parameters", function()
    it("sends numbers, strings, booleans, NULL, int64 cdata, tables as JSON and bytes", function()
      local row = assert(db:queryOne([[SELECT $1::int AS i, $2::float8 AS f, $3::text AS s, $4::bool AS b,
        $5::int IS NULL AS n1, $6::text IS NULL AS n2, $7::int8 AS big, $8::jsonb AS j, $9::bytea AS by,
        $10::bytea AS z, $11::numeric AS num]],
        42, 0.25, "it's \"quoted\"", false, nil, null, 9007199254740993LL, {a = {1, 2}}, postgres.bytea("\0\1\255"),
        "a\0b", 2 ^ 60))
      assert.equal(row.i, 42)
      assert.equal(row.f, 0.25)
      assert.equal(row.s, "it's \"quoted\"")
      assert.equal(row.b, false)
      assert.equal(row.n1, true)
      assert.equal(row.n2, true)
      assert.truthy(row.big == 9007199254740993LL)
      assert.same(row.j, {a = {1, 2}})
      assert.equal(row.by, "\0\1\255")
      assert.equal(row.z, "a\0b")
      assert.equal(row.num, "1152921504606846976")
    end)

    it("round-trips bytea and jsonb through a table", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      bytes = table.concat(bytes)
      assert(db:query("INSERT INTO t(name, data, bin) VALUES ($1, $2, $3)", "bin", {x = "y", n = json.null},
        postgres.bytea(bytes)))
      local row = assert(db:queryOne("SELECT data, bin FROM t WHERE name = 'bin'"))
      assert.equal(row.bin, bytes)
      assert.equal(row.data.x, "y")
      assert.equal(row.data.n, json.null)
    end)

    it("quotes identifiers and literals with escapeIdentifier / escapeLiteral", function()
      local name = 'we"ird ' .. "tab\\le"
      assert.equal(db:escapeIdentifier(name), '"we""ird tab\\le"')
      assert.equal(db:escapeLiteral("it's"), "'it''s'")
      assert.equal(db:escapeLiteral("back\\slash"), " E'back\\\\slash'")
      -- what they quote survives a round trip through the server
      assert(db:exec("DROP TABLE IF EXISTS " .. db:escapeIdentifier(name) .. "; CREATE TABLE " ..
        db:escapeIdentifier(name) .. "(v text)"))
      assert(db:exec("INSERT INTO " .. db:escapeIdentifier(name) .. " VALUES (" .. db:escapeLiteral("o'k\\") .. ")"))
      assert.equal(db:get("SELECT v FROM " .. db:escapeIdentifier(name)).v, "o'k\\")
      assert.throws(function() db:escapeLiteral(5) end, "bad argument #1 to 'escapeLiteral' %(string expected, got number%)")
    end)

    it("raises bad argument for what cannot be a parameter, and for misuse", function()
      assert.throws(function() db:query(nil) end, "bad argument #1 to 'query' %(string expected, got nil%)")
      assert.throws(function() db:query("SELECT $1", print) end, "bad argument #2 to 'query' %(function cannot")
      assert.throws(function() db:query("SELECT $1", {f = print}) end, "bad argument #2 to 'query' %(cannot encode")
      assert.throws(function() db:query("COPY t TO STDOUT") end, "bad argument #1 to 'query' %(COPY runs")
      assert.throws(function() postgres.connect(42) end, "bad argument #1 to 'postgres.connect'")
      assert.throws(function() postgres.connect({hots = "x"}) end, "unknown option 'hots'")
      assert.throws(function() db.query({}, "SELECT 1") end, "bad argument #1 to 'query' %(PostgresConnection")
      assert.throws(function() db:transaction(1) end, "bad argument #1 to 'transaction' %(function expected")
      -- The connection is still fine.
      assert.equal(db:queryOne("SELECT 1 AS one").one, 1)
    end)
  end)

  describe("errors", function()
    it("returns SQLSTATE, message, detail and constraint for a unique violation", function()
      local rows, err = db:query("INSERT INTO t(name) VALUES ($1)", "a")
      assert.isNil(rows)
      assert.equal(err.code, "23505")
      assert.match(err.message, "duplicate key value violates unique constraint")
      assert.equal(err.constraint, "t_name_key")
      assert.equal(err.detail, "Key (name)=(a) already exists.")
      assert.equal(err.severity, "ERROR")
      assert.equal(err.table, "t")
      assert.match(tostring(err), "^23505: duplicate key")
    end)

    it("returns 42601 for a syntax error, 42P01 for a missing table, 22012 at run time", function()
      local _, err = db:query("SELEC 1")
      assert.equal(err.code, "42601")
      assert.equal(err.position, "1")
      _, err = db:query("SELECT * FROM missing_table")
      assert.equal(err.code, "42P01")
      _, err = db:query("SELECT 1 / $1::int", 0)
      assert.equal(err.code, "22012")
      -- prepared again after a failed Parse, and the connection goes on
      _, err = db:query("SELEC 1")
      assert.equal(err.code, "42601")
      assert.equal(db:queryOne("SELECT 2 AS two").two, 2)
    end)

    it("fails auth with 28P01 (SCRAM), a refused port and sslmode=require cleanly", function()
      local c, err = postgres.connect({host = "127.0.0.1", port = srv.port, user = "evo", password = "wrong",
        database = "postgres", sslmode = "disable"})
      assert.isNil(c)
      assert.equal(err.code, "28P01")
      assert.match(err.message, "password authentication failed")
      c, err = postgres.connect({host = "127.0.0.1", port = servers.freePort(), user = "evo", sslmode = "disable"})
      assert.isNil(c)
      assert.equal(err.code, "ECONNREFUSED")
      c, err = postgres.connect(srv.url:gsub("sslmode=disable", "sslmode=require"))
      assert.isNil(c)
      assert.match(err.message, "SSL")
      -- SCRAM with the right password, from options instead of a URL
      c = assert(postgres.connect({host = "127.0.0.1", port = srv.port, user = "evo", password = srv.password,
        database = "postgres", sslmode = "disable", applicationName = "spec"}))
      assert.equal(c:queryOne("SELECT current_setting('application_name') AS a").a, "spec")
      assert.equal(c:stats().ssl, false)
      c:close()
      local rows, cerr = c:query("SELECT 1")
      assert.isNil(rows)
      assert.equal(cerr.code, "Closed")
    end)

    it("speaks TLS with sslmode=require against a server with ssl=on", function()
      local tls = servers.postgres({tls = true})
      local c, err = postgres.connect(tls.url)
      if not c then tls:stop() end
      assert(c, err)
      local ok, why = pcall(function()
        assert.equal(c:stats().ssl, true)
        assert.equal(c:queryOne("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").ssl, true)
        assert.equal(c:queryOne("SELECT $1::text AS v", "over TLS").v, "over TLS")
        c:close()
        -- verify-full needs a certificate chain the client trusts: refused cleanly
        local v, verr = postgres.connect(tls.url:gsub("sslmode=require", "sslmode=verify-full"))
        assert.isNil(v)
        assert.truthy(verr.message ~= "")
      end)
      tls:stop()
      assert(ok, why)
    end, {timeout = 30})

    it("stops a statement at statementTimeout with 57014", function()
      local c = assert(postgres.connect({url = srv.url, statementTimeout = 0.1}))
      local t0 = task.now()
      local rows, err = c:query("SELECT pg_sleep(5)")
      assert.isNil(rows)
      assert.equal(err.code, "57014")
      assert.truthy(task.now() - t0 < 2)
      assert.equal(c:queryOne("SELECT 3 AS x").x, 3)
      c:close()
    end)
  end)

  describe("exec, transactions, COPY, LISTEN", function()
    it("runs several statements with exec and returns the last one's rows", function()
      local rows = assert(db:exec("CREATE TEMP TABLE e(x int); INSERT INTO e VALUES (1), (2); SELECT sum(x) AS s FROM e"))
      assert.equal(rows[1].s, 3)  -- sum(int) is int8
      local _, err = db:exec("SELECT 1; SELEC 2")
      assert.equal(err.code, "42601")
      assert.equal(db:queryOne("SELECT 1 AS one").one, 1)
    end)

    it("commits, rolls back on error (raised again) and nests with savepoints", function()
      assert(db:exec("CREATE TABLE IF NOT EXISTS acc(id int PRIMARY KEY, v int)"))
      local r = db:transaction(function(tx)
        assert(tx:query("INSERT INTO acc VALUES (1, 10)"))
        return "done"
      end)
      assert.equal(r, "done")
      assert.throws(function()
        db:transaction(function(tx)
          assert(tx:query("INSERT INTO acc VALUES (2, 20)"))
          error("boom")
        end)
      end, "boom")
      assert.isNil(db:queryOne("SELECT * FROM acc WHERE id = 2"))
      db:transaction(function(tx)
        tx:query("INSERT INTO acc VALUES (3, 30)")
        pcall(tx.transaction, tx, function() tx:query("INSERT INTO acc VALUES (4, 40)") error("inner") end)
      end)
      assert.equal(db:queryOne("SELECT count(*)::int AS n FROM acc WHERE id IN (3, 4)").n, 1)
      -- a failed statement inside: COMMIT reports the rollback
      local ok, err = db:transaction(function(tx) tx:query("INSERT INTO acc VALUES (1, 0)") end)
      assert.isNil(ok)
      assert.equal(err.code, "25P02")
    end)

    it("copies rows in with copyFrom and out with copyTo", function()
      assert(db:exec("CREATE TABLE cp(id int, name text)"))
      local w = assert(db:copyFrom("COPY cp FROM STDIN"))
      for i = 1, 1000 do assert(w:write(i .. "\tname " .. i .. "\n")) end
      local res = assert(w:finish())
      assert.equal(res.rowCount, 1000)
      assert.equal(res.command, "COPY 1000")
      assert.equal(db:queryOne("SELECT count(*)::int AS n FROM cp").n, 1000)
      local n, last = 0, nil
      for chunk in db:copyTo("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT") do
        n, last = n + 1, chunk
      end
      assert.equal(n, 1000)
      assert.equal(last, "1000\tname 1000\n")
      -- bad input aborts the COPY with the server's error; the connection goes on
      w = assert(db:copyFrom("COPY cp FROM STDIN"))
      w:write("not-a-number\tx\n")
      local ok, err = w:finish()
      assert.isNil(ok)
      assert.equal(err.code, "22P02")
      local _, cerr = db:copyFrom("SELECT 1")
      assert.truthy(cerr)
      assert.equal(db:queryOne("SELECT 5 AS f").f, 5)
    end)

    it("receives NOTIFY with receive() and as NOTIFICATION_RECEIVED events", function()
      local l = assert(db:listen("chan"))
      assert(db:notify("chan", "hello"))
      local n = assert(l:receive(5))
      assert.equal(n.channel, "chan")
      assert.equal(n.payload, "hello")
      assert.equal(type(n.pid), "number")
      local _, err = l:receive(0.05)
      assert.equal(err.code, "Timeout")
      if evented then
        local got = {}
        function l:NOTIFICATION_RECEIVED(_, payload) got[#got + 1] = payload.payload end
        l:start()
        for i = 1, 3 do db:notify("chan", "e" .. i) end
        for _ = 1, 100 do
          if #got == 3 then break end
          task.sleep(0.01)
        end
        assert.same(got, {"e1", "e2", "e3"})
      end
      l:close()
      _, err = l:receive(0.01)
      assert.equal(err.code, "Closed")
    end)
  end)

  describe("with concurrent tasks", function()
    if not evented then return end

    it("pipelines 50 tasks' queries and matches every result", function()
      local before = db:stats()
      local fs1 = {}
      for i = 1, 50 do
        fs1[i] = task.async(function()
          for j = 1, 20 do
            local row = assert(db:queryOne("SELECT $1::int AS i, $2::text AS s", i, "v" .. j))
            assert.equal(row.i, i)
            assert.equal(row.s, "v" .. j)
          end
          return i
        end)
      end
      for i = 1, 50 do assert.equal(fs1[i]:await(), i) end
      local after = db:stats()
      local queries, flushes = after.queries - before.queries, after.flushes - before.flushes
      assert.equal(queries, 1000)
      -- it pipelines: a write per round of the ready tasks, where one query
      -- at a time would need 1000 (rounds split up on a loaded machine)
      assert.truthy(flushes < queries / 2, "flushes: " .. flushes)
      assert.equal(after.inFlight, 0)
      -- 50 queries started together leave in one or two writes (the
      -- scheduler may run the last tasks in the next drain), not 50
      local s0 = db:stats()
      local one = {}
      for i = 1, 50 do one[i] = task.async(function() return db:queryOne("SELECT $1::int AS i", i).i end) end
      for i = 1, 50 do assert.equal(one[i]:await(), i) end
      local s1 = db:stats()
      assert.equal(s1.queries - s0.queries, 50)
      assert.truthy(s1.flushes - s0.flushes <= 2, "flushes: " .. (s1.flushes - s0.flushes))
    end)

    it("keeps the other queries of a batch independent of a failing one", function()
      local fs1 = {}
      for i = 1, 10 do
        fs1[i] = task.async(function()
          if i == 5 then return db:query("SELECT 1/0") end
          return db:queryOne("SELECT $1::int AS i", i)
        end)
      end
      for i = 1, 10 do
        local r, err = fs1[i]:await()
        if i == 5 then assert.equal(err.code, "22012") else assert.equal(r.i, i) end
      end
    end)

    it("drops the results of tasks cancelled in the middle of a pipeline", function()
      local reader = task.async(function() return db:query("SELECT pg_sleep(0.2)") end)
      local fs1 = {}
      for i = 1, 50 do fs1[i] = task.async(function() return db:queryOne("SELECT $1::int AS i", i) end) end
      task.sleep(0.05)
      reader:cancel()
      for i = 2, 50, 2 do fs1[i]:cancel() end
      for i = 1, 50, 2 do assert.equal(fs1[i]:await().i, i) end
      assert.equal(db:queryOne("SELECT 77 AS x").x, 77)
      assert.equal(db:stats().inFlight, 0)
    end)

    it("cancels a long query on the server and the connection works after", function()
      local f = task.async(function() return db:query("SELECT pg_sleep(10)") end)
      task.sleep(0.1)
      local t0 = task.now()
      f:cancel()
      assert.equal(db:queryOne("SELECT 8 AS x").x, 8)
      assert.truthy(task.now() - t0 < 1, "took " .. (task.now() - t0))
      local r = task.timeout(0.1, function() return db:query("SELECT pg_sleep(10)") end)
      assert.isNil(r)
      assert.equal(db:queryOne("SELECT 9 AS x").x, 9)
    end)

    it("keeps other tasks' queries out of a transaction until it ends", function()
      assert(db:exec("CREATE TABLE IF NOT EXISTS tx(v int)"))
      local order = {}
      local tf = task.async(function()
        return db:transaction(function(tx)
          tx:query("INSERT INTO tx VALUES (1)")
          task.sleep(0.05)
          order[#order + 1] = "tx"
          tx:query("INSERT INTO tx VALUES (2)")
        end)
      end)
      task.sleep(0.01)
      local other = task.async(function()
        local r = db:queryOne("SELECT count(*)::int AS n FROM tx")
        order[#order + 1] = "other"
        return r.n
      end)
      tf:await()
      assert.equal(other:await(), 2)  -- it saw the committed rows, never the open transaction
      assert.same(order, {"tx", "other"})
    end)

    it("releases the connection when a task is cancelled inside a transaction", function()
      local f = task.async(function()
        return db:transaction(function(tx) tx:query("SELECT pg_sleep(10)") end)
      end)
      task.sleep(0.05)
      f:cancel()
      assert.equal(db:queryOne("SELECT 6 AS x").x, 6)  -- not held, and rolled back
      assert.equal(db:queryOne("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in%'").n, 0)
    end)
  end)

  describe("pool", function()
    it("closes connections idle past idleTimeout without waiting for the next use", function()
      if not evented then return end  -- (the blocking mode sweeps at each use)
      local pool = postgres.pool({url = srv.url, max = 3, idleTimeout = 0.3})
      local jobs = {}
      for k = 1, 3 do jobs[k] = task.async(function() return pool:queryOne("SELECT pg_sleep(0.05), $1::int AS k", k) end) end
      for k = 1, 3 do assert.equal(jobs[k]:await().k, k) end
      assert.truthy(pool:stats().total >= 1)
      local before = db:queryOne("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'evo'").n
      task.sleep(0.8)
      assert.equal(pool:stats().total, 0)
      local after = db:queryOne("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'evo'").n
      assert.truthy(after < before, ("server sessions %d -> %d"):format(before, after))
      -- and the pool goes on: a new connection on the next use
      assert.equal(pool:queryOne("SELECT 7 AS v").v, 7)
      pool:close()
    end)

    it("runs queries, transactions pinned to one connection, and closes", function()
      local pool = postgres.pool({url = srv.url, max = 3})
      assert.equal(pool:queryOne("SELECT 1 AS one").one, 1)
      local pid = pool:transaction(function(tx)
        local a = tx:queryOne("SELECT pg_backend_pid() AS p").p
        local b = tx:queryOne("SELECT pg_backend_pid() AS p").p
        assert.equal(a, b)
        return a
      end)
      assert.equal(type(pid), "number")
      if evented then
        local fs1 = {}
        for i = 1, 50 do fs1[i] = task.async(function() return pool:queryOne("SELECT $1::int AS i", i).i end) end
        for i = 1, 50 do assert.equal(fs1[i]:await(), i) end
        assert.truthy(pool:stats().total <= 3)
      end
      pool:close()
      local _, err = pool:query("SELECT 1")
      assert.equal(err.code, "Closed")
    end)

    it("drops a connection broken mid-query (server killed) and reconnects after a restart", function()
      local pool = postgres.pool({url = srv.url, max = 2})
      assert(pool:query("SELECT 1"))
      local f
      if evented then
        f = task.async(function() return pool:query("SELECT pg_sleep(10)") end)
        task.sleep(0.1)
      end
      srv:kill()
      if evented then
        local rows, err = f:await()
        assert.isNil(rows)
        assert.truthy(err.code == "08006" or err.code == "57P01", tostring(err))
      end
      local rows, err = pool:query("SELECT 1")
      assert.isNil(rows)
      assert.truthy(err)
      local _, derr = db:query("SELECT 1")  -- the single connection reports the loss
      assert.truthy(derr)
      srv:restart()
      assert.equal(pool:queryOne("SELECT 4 AS x").x, 4)
      local _, cerr = db:query("SELECT 1")
      assert.equal(cerr.code, "Closed")
      db = assert(postgres.connect(srv.url))
      pool:close()
    end)
  end)

  describe("leaks", function()
    it("keeps fds and memory bounded over 100k queries", function()
      local N = evented and 100000 or 20000
      local function burst(n)
        if not evented then
          for _ = 1, n do db:query("SELECT $1::int AS i", 1) end
          return
        end
        local group = {}
        for t = 1, 50 do
          group[t] = task.async(function()
            for _ = 1, n / 50 do assert(db:query("SELECT $1::int AS i", t)) end
          end)
        end
        for t = 1, 50 do group[t]:await() end
      end
      burst(N / 10)
      collectgarbage()
      local fd0, rss0 = helpers.fdCount(), helpers.rss()
      burst(N)
      helpers.assertNoGrowth(fd0, rss0, 20 * 1024 * 1024)
    end)
  end)
end)
