-- ngx cosockets under a pgmoon-shaped PostgreSQL driver, against a real
-- PostgreSQL 15 (servers.postgres, initdb'd here). The driver below is
-- written the way pgmoon is (pgmoon itself cannot be vendored or
-- downloaded): it picks cosockets by ngx.get_phase(), sends the v3
-- StartupMessage as a table of strings, reads each message with receive(1),
-- receive(4), receive(len - 4), answers AuthenticationMD5Password with
-- ngx.md5, runs simple Query messages and decodes RowDescription, DataRow,
-- CommandComplete and ErrorResponse, and reuses pooled connections through
-- setkeepalive/getreusedtimes, skipping the startup. Tested: trust auth (Unix
-- socket) and MD5 auth (TCP, a role stored as MD5), a bad password, types and
-- NULL, SQLSTATE errors, a transaction, the pool, 20 concurrent ngx.threads,
-- read timeouts, and pgmoon's SSLRequest + sslhandshake against ssl=on. Runs in both Io modes; the ngx.thread part is evented only.
require("ngx")
local task = require("task")
local postgres = require("postgres")
local servers = require("servers")
local bit = require("bit")

local evented = task.mode() ~= "blocking"
local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift
local char, byte, sub, find = string.char, string.byte, string.sub, string.find

------------------------------------------------------------ the small driver

local NUL = "\0"

local function encodeInt(n, bytes)
  if bytes == 2 then return char(band(rshift(n, 8), 0xff), band(n, 0xff)) end
  return char(band(rshift(n, 24), 0xff), band(rshift(n, 16), 0xff), band(rshift(n, 8), 0xff), band(n, 0xff))
end

-- Signed, as Postgres sends -1 for a NULL column.
local function decodeInt(s, pos)
  pos = pos or 1
  local a, b, c, d = byte(s, pos, pos + 3)
  return bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
end

local function decodeInt16(s, pos)
  local a, b = byte(s, pos, pos + 1)
  return a * 256 + b
end

-- Total length of a (nested) array of strings, as send() will write it.
local function flatLen(t)
  local n = 0
  for _, v in ipairs(t) do n = n + (type(v) == "table" and flatLen(v) or #v) end
  return n
end

local function cstring(s, pos)
  local e = find(s, NUL, pos, true)
  return sub(s, pos, e - 1), e + 1
end

local decoders = {
  [16] = function(v) return v == "t" end, -- bool
  [20] = tonumber, [21] = tonumber, [23] = tonumber, -- int8, int2, int4
  [700] = tonumber, [701] = tonumber, [1700] = tonumber, -- float4, float8, numeric
}

local Pg = {}
Pg.__index = Pg

local function newPg(cfg)
  -- pgmoon's choice: LuaSocket while nginx is in its init phase, else cosockets.
  local socketType = (ngx and ngx.get_phase() ~= "init") and "nginx" or "luasocket"
  return setmetatable({cfg = cfg, socketType = socketType, parameters = {}}, Pg)
end

function Pg:receiveMessage()
  local t, err = self.sock:receive(1)
  if not t then return nil, "receive_message: failed to get type: " .. err end
  local len
  len, err = self.sock:receive(4)
  if not len then return nil, "receive_message: failed to get len: " .. err end
  len = decodeInt(len)
  local msg
  msg, err = self.sock:receive(len - 4)
  if not msg then return nil, "receive_message: failed to get message: " .. err end
  return t, msg
end

function Pg:send(parts) return self.sock:send(parts) end

local function parseError(msg)
  local fields, pos = {}, 1
  while byte(msg, pos) ~= 0 do
    local code = sub(msg, pos, pos)
    fields[code], pos = cstring(msg, pos + 1)
  end
  return fields
end

local function errorResult(fields)
  return nil, (fields.S or "ERROR") .. ": " .. (fields.M or "?"), {sqlstate = fields.C, severity = fields.S}
end

function Pg:startup()
  local c = self.cfg
  local data = {encodeInt(196608), "user", NUL, c.user, NUL, "database", NUL, c.database, NUL,
    "application_name", NUL, "evo-pgmoon-spec", NUL, NUL}
  local ok, err = self:send({encodeInt(flatLen(data) + 4), data})
  if not ok then return nil, err end
  return self:auth()
end

function Pg:auth()
  local t, msg = self:receiveMessage()
  if not t then return nil, msg end
  if t == "E" then return errorResult(parseError(msg)) end
  if t ~= "R" then return nil, "unexpected message during auth: " .. t end
  local authType = decodeInt(msg)
  self.authType = authType
  if authType == 0 then return true end
  if authType == 5 then -- MD5: "md5" .. md5(md5(password .. user) .. salt)
    local salt = sub(msg, 5, 8)
    local c = self.cfg
    local digest = "md5" .. ngx.md5(ngx.md5(c.password .. c.user) .. salt)
    local ok, err = self:send({"p", encodeInt(#digest + 5), digest, NUL})
    if not ok then return nil, err end
    return self:checkAuth()
  end
  return nil, "unsupported auth type: " .. authType
end

function Pg:checkAuth()
  local t, msg = self:receiveMessage()
  if not t then return nil, msg end
  if t == "E" then return errorResult(parseError(msg)) end
  if t == "R" and decodeInt(msg) == 0 then return true end
  return nil, "unknown response from auth"
end

function Pg:waitUntilReady()
  while true do
    local t, msg = self:receiveMessage()
    if not t then return nil, msg end
    if t == "E" then return errorResult(parseError(msg)) end
    if t == "S" then
      local name, pos = cstring(msg, 1)
      self.parameters[name] = cstring(msg, pos)
    elseif t == "K" then
      self.backendPid, self.secretKey = decodeInt(msg, 1), decodeInt(msg, 5)
    elseif t == "Z" then
      self.txStatus = msg
      return true
    end
  end
end

-- pgmoon's ssl = true: SSLRequest (length 8, code 80877103), one byte back:
-- "S" then the TLS handshake on the same socket, "N" refused.
function Pg:requestSsl()
  local ok, err = self:send({encodeInt(8), encodeInt(80877103)})
  if not ok then return nil, err end
  local t
  t, err = self.sock:receive(1)
  if not t then return nil, err end
  if t ~= "S" then return nil, "the server does not support SSL connections" end
  self.sslSession, err = self.sock:sslhandshake(false, self.cfg.ssl_server_name, self.cfg.ssl_verify)
  if not self.sslSession then return nil, err end
  return true
end

function Pg:connect()
  if self.socketType ~= "nginx" then return nil, "this driver only speaks cosockets" end
  local c = self.cfg
  self.sock = ngx.socket.tcp()
  self.sock:settimeout(c.timeout or 5000)
  -- As pgmoon: the port is always passed (its default is the string "5432"),
  -- for a "unix:/path" host too, where nginx ignores it.
  local port = c.port or "5432"
  local pool = c.pool or ("%s:%s:%s:%s"):format(c.host, port, c.database, c.user)
  local ok, err = self.sock:connect(c.host, port, {pool = pool})
  if not ok then return nil, err end
  if self.sock:getreusedtimes() == 0 then
    self.didStartup = true
    if c.ssl then
      ok, err = self:requestSsl()
      if not ok then return nil, err end
    end
    local info
    ok, err, info = self:startup()
    if not ok then return nil, err, info end
    return self:waitUntilReady()
  end
  return true
end

function Pg:settimeout(ms) self.sock:settimeout(ms) end
function Pg:keepalive(...) local s = self.sock; self.sock = nil; return s:setkeepalive(...) end
function Pg:disconnect() local s = self.sock; self.sock = nil; return s:close() end

local function parseRowDescription(msg)
  local n, pos, fields = decodeInt16(msg, 1), 3, {}
  for i = 1, n do
    local name
    name, pos = cstring(msg, pos)
    -- table oid (4), column (2), type oid (4), typlen (2), typmod (4), format (2)
    fields[i] = {name = name, type = decodeInt(msg, pos + 6)}
    pos = pos + 18
  end
  return fields
end

local function parseDataRow(msg, fields)
  local n, pos, row = decodeInt16(msg, 1), 3, {}
  for i = 1, n do
    local len = decodeInt(msg, pos)
    pos = pos + 4
    local f = fields[i]
    if len < 0 then
      row[f.name] = ngx.null
    else
      local v = sub(msg, pos, pos + len - 1)
      pos = pos + len
      local dec = decoders[f.type]
      if dec then v = dec(v) end -- not `dec and dec(v) or v`: false is a value
      row[f.name] = v
    end
  end
  return row
end

-- query(q) -> rows (with .affected_rows, .tag) | nil, err, {sqlstate=...}.
-- Several statements give an array of results and their count, as pgmoon.
function Pg:query(q)
  local ok, err = self:send({"Q", encodeInt(#q + 5), q, NUL})
  if not ok then return nil, err end
  local results, fields, rows, failure = {}, nil, nil, nil
  while true do
    local t, msg = self:receiveMessage()
    if not t then return nil, msg end
    if t == "T" then
      fields, rows = parseRowDescription(msg), {}
    elseif t == "D" then
      rows[#rows + 1] = parseDataRow(msg, fields)
    elseif t == "C" then
      local tag = cstring(msg, 1)
      local r = rows or {}
      r.tag = tag
      r.affected_rows = tonumber(tag:match("(%d+)$"))
      results[#results + 1] = r
      fields, rows = nil, nil
    elseif t == "I" then
      results[#results + 1] = {tag = ""}
    elseif t == "E" then
      failure = parseError(msg)
    elseif t == "Z" then
      self.txStatus = msg
      break
    end
  end
  if failure then return errorResult(failure) end
  if #results == 1 then return results[1] end
  return results, #results
end

----------------------------------------------------------------- the tests

describe("a pgmoon-shaped driver on ngx cosockets against PostgreSQL 15", function()
  local srv, admin
  local MD5_USER, MD5_PASS = "md5user", "md5-päss"

  local function tcpCfg(extra)
    local c = {host = "127.0.0.1", port = srv.port, user = MD5_USER, password = MD5_PASS, database = "postgres"}
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end

  local function open(extra)
    local pg = newPg(tcpCfg(extra))
    assert(pg:connect())
    return pg
  end

  before(function()
    srv = servers.postgres({authHost = "md5"})
    -- Over the Unix socket (trust): a role whose password is stored as MD5,
    -- which pg_hba's md5 method then answers with AuthenticationMD5Password.
    admin = assert(postgres.connect(("host=%s port=%d user=%s dbname=postgres"):format(srv.dir, srv.port, srv.user)))
    assert(admin:query("SET password_encryption = 'md5'"))
    assert(admin:query(("CREATE ROLE %s LOGIN PASSWORD '%s'"):format(MD5_USER, MD5_PASS)))
    assert(admin:query("GRANT ALL ON SCHEMA public TO " .. MD5_USER))
    assert(admin:query("SET password_encryption = 'scram-sha-256'"))
    assert(admin:query("CREATE ROLE scramuser LOGIN PASSWORD 'scram-secret'"))
  end)
  after(function()
    ngx.evo.closeIdle()
    if admin then admin:close() end
    if srv then srv:stop() end
  end)

  it("chooses cosockets by phase, as pgmoon does", function()
    assert.equal(ngx.get_phase(), "content")
    assert.equal(newPg(tcpCfg()).socketType, "nginx")
  end)

  it("starts up over the Unix socket with trust: AuthenticationOk, parameters, BackendKeyData, ReadyForQuery", function()
    -- connect("unix:/path", port, opts): the port is ignored, as by nginx's ngx_parse_url.
    local pg = newPg({host = "unix:" .. srv.dir .. "/.s.PGSQL." .. srv.port, port = tostring(srv.port),
      user = srv.user, database = "postgres"})
    assert(pg:connect())
    assert.equal(pg.authType, 0)
    assert.equal(pg.txStatus, "I")
    assert.equal(pg.parameters.server_encoding, "UTF8")
    assert.equal(pg.parameters.application_name, "evo-pgmoon-spec")
    assert.match(pg.parameters.server_version, "^15")
    local r = assert(pg:query("SELECT pg_backend_pid() AS pid, current_user AS u"))
    assert.equal(r[1].pid, pg.backendPid)
    assert.equal(r[1].u, srv.user)
    -- Pooled under nginx's key "unix:/path:port" when a port was given, "unix:/path" without.
    local path = "unix:" .. srv.dir .. "/.s.PGSQL." .. srv.port
    assert.equal(pg:disconnect(), 1)
    local s = ngx.socket.tcp()
    assert.equal(s:connect(path, srv.port), 1)
    assert.equal(s:getreusedtimes(), 0)
    assert.equal(s:setkeepalive(), 1)
    assert.equal(s:connect(path, srv.port, {pool = path .. ":" .. srv.port}), 1)
    assert.equal(s:getreusedtimes(), 1)
    assert.equal(s:setkeepalive(), 1)
    assert.equal(s:connect(path), 1)
    assert.equal(s:getreusedtimes(), 0)
    s:close()
    assert.equal(s:connect(path, tostring(srv.port)), 1)
    assert.equal(s:getreusedtimes(), 2)
    assert.equal(s:close(), 1)
  end)

  it("authenticates with MD5 (ngx.md5) over TCP; the server stored the password as MD5", function()
    local pg = open()
    assert.equal(pg.authType, 5)
    local r = assert(pg:query("SELECT current_user AS u"))
    assert.equal(r[1].u, MD5_USER)
    pg:disconnect()
    local stored = assert(admin:query("SELECT rolpassword AS pw FROM pg_authid WHERE rolname = '" .. MD5_USER .. "'"))
    assert.equal(stored[1].pw, "md5" .. ngx.md5(MD5_PASS .. MD5_USER))
  end)

  it("reports a wrong password as the server's ErrorResponse with SQLSTATE 28P01", function()
    local pg = newPg(tcpCfg({password = "wrong"}))
    local ok, err, info = pg:connect()
    assert.equal(ok, nil)
    assert.equal(err, 'FATAL: password authentication failed for user "md5user"')
    assert.equal(info.sqlstate, "28P01")
    assert.equal(pg.authType, 5)
  end)

  it("meets SCRAM for a role stored as SCRAM even under pg_hba md5, and says it cannot do it", function()
    local pg = newPg(tcpCfg({user = "scramuser", password = "scram-secret"}))
    local ok, err = pg:connect()
    assert.equal(ok, nil)
    assert.equal(err, "unsupported auth type: 10")
  end)

  it("decodes several types, NULL as ngx.null, several statements in one Query", function()
    local pg = open()
    local r = assert(pg:query([[SELECT 1::int2 AS a, (-2147483648)::int4 AS b, 9007199254740991::int8 AS c,
      1.5::float4 AS f, 0.25::float8 AS g, 12.5::numeric AS n, true AS t, false AS fa, 'héllo'::text AS s,
      NULL::int AS nul, NULL::text AS nuls, '' AS empty, '2024-01-02'::date AS d, '{1,2}'::int[] AS arr,
      '\x610062'::bytea AS by]]))
    assert.equal(#r, 1)
    assert.equal(r.tag, "SELECT 1")
    assert.equal(r.affected_rows, 1)
    local row = r[1]
    assert.equal(row.a, 1)
    assert.equal(row.b, -2147483648)
    assert.equal(row.c, 9007199254740991)
    assert.equal(row.f, 1.5)
    assert.equal(row.g, 0.25)
    assert.equal(row.n, 12.5)
    assert.equal(row.t, true)
    assert.equal(row.fa, false)
    assert.equal(row.s, "héllo")
    assert.equal(row.nul, ngx.null)
    assert.equal(row.nuls, ngx.null)
    assert.equal(row.empty, "")
    assert.equal(row.d, "2024-01-02")
    assert.equal(row.arr, "{1,2}")
    assert.equal(row.by, "\\x610062")

    local many = assert(pg:query("SELECT generate_series(1, 1000) AS i"))
    assert.equal(#many, 1000)
    assert.equal(many[1000].i, 1000)
    local big = assert(pg:query("SELECT repeat('x', 300000) AS s"))
    assert.equal(#big[1].s, 300000)

    local results, n = pg:query("SELECT 1 AS one; SELECT 'two' AS two, NULL AS three")
    assert.equal(n, 2)
    assert.equal(results[1][1].one, 1)
    assert.equal(results[2][1].two, "two")
    assert.equal(results[2][1].three, ngx.null)

    -- An empty query: EmptyQueryResponse has no body, read with receive(0).
    local empty = assert(pg:query(""))
    assert.equal(empty.tag, "")
    assert.equal(pg.txStatus, "I")
    pg:disconnect()
  end)

  it("returns ErrorResponse with its SQLSTATE; the connection goes on", function()
    local pg = open()
    local ok, err, info = pg:query("SELECT * FROM no_such_table")
    assert.equal(ok, nil)
    assert.equal(err, 'ERROR: relation "no_such_table" does not exist')
    assert.equal(info.sqlstate, "42P01")
    ok, err, info = pg:query("SELECT 1/0")
    assert.equal(ok, nil)
    assert.equal(info.sqlstate, "22012")
    ok, err, info = pg:query("SELEC 1")
    assert.equal(info.sqlstate, "42601")
    assert.equal(pg.txStatus, "I")
    assert.equal(assert(pg:query("SELECT 2 AS x"))[1].x, 2)
    pg:disconnect()
  end)

  it("runs a transaction: ReadyForQuery's status, rollback, commit, a failed transaction", function()
    local pg = open()
    assert(pg:query("CREATE TABLE t_tx (id int PRIMARY KEY, v text)"))
    assert(pg:query("BEGIN"))
    assert.equal(pg.txStatus, "T")
    local r = assert(pg:query("INSERT INTO t_tx VALUES (1, 'a'), (2, NULL)"))
    assert.equal(r.tag, "INSERT 0 2")
    assert.equal(r.affected_rows, 2)
    assert(pg:query("ROLLBACK"))
    assert.equal(pg.txStatus, "I")
    assert.equal(#assert(pg:query("SELECT * FROM t_tx")), 0)

    assert(pg:query("BEGIN"))
    assert(pg:query("INSERT INTO t_tx VALUES (1, 'a')"))
    local ok, err, info = pg:query("INSERT INTO t_tx VALUES (1, 'dup')")
    assert.equal(ok, nil)
    assert.equal(info.sqlstate, "23505")
    assert.equal(pg.txStatus, "E")
    ok, err, info = pg:query("SELECT 1")
    assert.equal(info.sqlstate, "25P02")
    assert(pg:query("ROLLBACK"))

    assert(pg:query("BEGIN; INSERT INTO t_tx VALUES (3, 'c'); UPDATE t_tx SET v = 'C' WHERE id = 3; COMMIT"))
    assert.equal(pg.txStatus, "I")
    local rows = assert(pg:query("SELECT id, v FROM t_tx"))
    assert.equal(#rows, 1)
    assert.equal(rows[1].id, 3)
    assert.equal(rows[1].v, "C")
    assert(pg:query("DROP TABLE t_tx"))
    pg:disconnect()
  end)

  it("pools with setkeepalive: the next connect reuses it (getreusedtimes > 0) and skips the startup", function()
    local pg = open({pool = "reuse"})
    assert.equal(pg.sock:getreusedtimes(), 0)
    assert.equal(pg.didStartup, true)
    local pid = assert(pg:query("SELECT pg_backend_pid() AS p"))[1].p
    assert.equal(pid, pg.backendPid)
    assert.equal(pg:keepalive(10000, 5), 1)

    local again = open({pool = "reuse"})
    assert.equal(again.sock:getreusedtimes(), 1)
    assert.equal(again.didStartup, nil)
    assert.equal(again.backendPid, nil) -- no BackendKeyData: no startup was run
    assert.equal(assert(again:query("SELECT pg_backend_pid() AS p"))[1].p, pid)
    assert.equal(again:keepalive(10000, 5), 1)
    local third = open({pool = "reuse"})
    assert.equal(third.sock:getreusedtimes(), 2)

    -- Another pool name: a new connection, another backend.
    local other = open({pool = "other"})
    assert.equal(other.sock:getreusedtimes(), 0)
    assert.truthy(assert(other:query("SELECT pg_backend_pid() AS p"))[1].p ~= pid)
    other:disconnect()
    third:disconnect()
  end)

  it("times out a read with 'timeout'; the socket stays usable and reads the late reply", function()
    local pg = open()
    pg:settimeout(50)
    local t0 = ngx.now()
    local ok, err = pg:query("SELECT pg_sleep(1) AS s")
    assert.equal(ok, nil)
    assert.equal(err, "receive_message: failed to get type: timeout")
    assert.truthy(ngx.now() - t0 < 0.9)
    -- As under nginx a read timeout closes nothing: the reply arrives later.
    pg:settimeout(5000)
    local seen = {}
    repeat
      local t = assert(pg:receiveMessage())
      seen[#seen + 1] = t
    until t == "Z"
    assert.equal(table.concat(seen), "TDCZ")
    assert.equal(assert(pg:query("SELECT 3 AS x"))[1].x, 3)
    pg:disconnect()
  end)

  it("reports a closed port as 'connection refused'", function()
    local pg = newPg(tcpCfg({port = servers.freePort()}))
    local ok, err = pg:connect()
    assert.equal(ok, nil)
    assert.equal(err, "connection refused")
  end)

  if evented then
    it("runs 20 ngx.threads, each with its own pooled connection, then reuses them all", function()
      local function round()
        local threads = {}
        for i = 1, 20 do
          threads[i] = ngx.thread.spawn(function()
            local pg = newPg(tcpCfg({pool = "conc"}))
            assert(pg:connect())
            local reused = pg.sock:getreusedtimes()
            local r = assert(pg:query(("SELECT pg_backend_pid() AS p, %d AS i, pg_sleep(0.1) AS z"):format(i)))
            assert.equal(r[1].i, i)
            assert.equal(r[1].z, "")
            assert.equal(pg:keepalive(10000, 20), 1)
            return r[1].p, reused
          end)
        end
        local pids, reusedAll = {}, {}
        for i = 1, 20 do
          local ok, pid, reused = ngx.thread.wait(threads[i])
          assert.equal(ok, true, pid)
          pids[pid] = true
          reusedAll[i] = reused
        end
        return pids, reusedAll
      end
      local t0 = ngx.now()
      local pids, reused = round()
      local n = 0
      for _ in pairs(pids) do n = n + 1 end
      assert.equal(n, 20) -- all at once: twenty backends
      for i = 1, 20 do assert.equal(reused[i], 0) end
      assert.truthy(ngx.now() - t0 < 1.5) -- concurrent, not 20 x 0.1 s in a row plus startups

      local pids2, reused2 = round()
      for pid in pairs(pids2) do assert.truthy(pids[pid], "a backend not from the first round") end
      for i = 1, 20 do assert.truthy(reused2[i] > 0) end
      -- The twenty backends are alive, idle in the pool.
      local alive = assert(admin:query("SELECT pid, state FROM pg_stat_activity WHERE usename = 'md5user'"))
      local idle = 0
      for _, a in ipairs(alive) do
        if pids[a.pid] then
          assert.equal(a.state, "idle")
          idle = idle + 1
        end
      end
      assert.equal(idle, 20)
    end)
  end
end)

describe("the pgmoon-shaped driver with ssl = true (SSLRequest, then sslhandshake)", function()
  local srv, plain
  before(function()
    srv = servers.postgres({tls = true, authHost = "md5"})
    plain = servers.postgres({authHost = "md5"})
  end)
  after(function()
    ngx.evo.closeIdle()
    if srv then srv:stop() end
    if plain then plain:stop() end
  end)

  local function cfg(s, extra)
    local c = {host = "127.0.0.1", port = s.port, user = s.user, password = s.password, database = "postgres",
      ssl = true, pool = "ssl"}
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
  end

  it("upgrades to TLS, authenticates over it, and the pooled connection stays encrypted", function()
    local pg = newPg(cfg(srv))
    assert(pg:connect())
    assert.equal(pg.authType, 5)
    assert.equal(pg.sslSession ~= nil, true)
    local r = assert(pg:query("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    assert.equal(r[1].ssl, true)
    assert.match(r[1].version, "^TLSv1%.[23]$")
    assert.equal(pg:keepalive(), 1)
    local again = newPg(cfg(srv))
    assert(again:connect())
    assert.equal(again.sock:getreusedtimes(), 1)
    assert.equal(assert(again:query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))[1].ssl, true)
    again:disconnect()
  end)

  it("fails verification of the self-signed certificate with nginx's message", function()
    -- pgmoon's ssl_verify without a server name: the chain alone is checked
    -- (as nginx does); with a name, the chain and the name.
    for _, name in ipairs({false, "127.0.0.1"}) do
      local pg = newPg(cfg(srv, {ssl_verify = true, ssl_server_name = name or nil, pool = "ssl-verify"}))
      local ok, err = pg:connect()
      assert.equal(ok, nil)
      assert.equal(err, "18: self-signed certificate")
    end
  end)

  it("is refused by a server without ssl ('N')", function()
    local pg = newPg(cfg(plain, {pool = "plain"}))
    local ok, err = pg:connect()
    assert.equal(ok, nil)
    assert.equal(err, "the server does not support SSL connections")
  end)
end)
