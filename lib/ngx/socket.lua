-- ngx.socket: OpenResty's cosockets (tcp, udp, connect) on Evo's net Streams
-- and UDP sockets, colourless like them: inside a task a wait suspends only
-- that task; in the blocking Io mode (or where Lua cannot yield) it blocks.
--
-- Failures are returned as OpenResty returns them, `nil, "timeout"`,
-- `nil, "closed"`, `nil, "connection refused"`: lowercase strings that the
-- lua-resty-* drivers compare against, not Evo error objects. Timeouts are
-- milliseconds. setkeepalive() puts the connection into a per-key pool that
-- the next connect() to the same key takes from. See docs/ngx.md.
local net = require("net")
local netnative = require("evo.net")
local tlsnative = require("evo.tls")
local args = require("evo.args")
local errors = require("evo.errors")
local finish = require("evo.wait").finish

local type, tostring, tonumber, setmetatable, error, select = type, tostring, tonumber, setmetatable, error, select
local next, pairs, newproxy, getmetatable = next, pairs, newproxy, getmetatable
local sub, find, gsub, lower, concat = string.sub, string.find, string.gsub, string.lower, table.concat
local sn = netnative.stream
local sread, swrite, sbuffered = sn.read, sn.write, sn.buffered

local socket = {}

-- lua_socket_connect_timeout, lua_socket_send_timeout, lua_socket_read_timeout,
-- lua_socket_keepalive_timeout and lua_socket_pool_size: nginx's defaults.
local DEFAULT_TIMEOUT_MS, DEFAULT_KEEPALIVE_MS, DEFAULT_POOL_SIZE = 60000, 60000, 30

-- Settings without an nginx.conf: lua_ssl_trusted_certificate (a PEM file;
-- nil: the system store). Set with ngx.evo.sslTrustedCertificate(path).
socket.settings = {trusted = nil}

----------------------------------------------------------------- errors

-- Evo's error codes as nginx words them.
local messages = {
  Timeout = "timeout", ETIMEDOUT = "timeout", Closed = "closed", EOF = "closed",
  ECONNREFUSED = "connection refused", ECONNRESET = "connection reset by peer", EPIPE = "broken pipe",
  ENOENT = "no such file or directory", EHOSTUNREACH = "no route to host", ENETUNREACH = "network is unreachable",
  EACCES = "permission denied", ECONNABORTED = "connection aborted", TLSError = "handshake failed",
}

local function message(err, host)
  if type(err) ~= "table" then return tostring(err) end
  local m = messages[err.code]
  if m then return m end
  if tostring(err.code):match("^EAI_") then return ("%s could not be resolved (3: Host not found)"):format(host) end
  return lower(err.message ~= "" and err.message or tostring(err.code))
end

----------------------------------------------------------------- the pool

-- pools[key] = {size = n, idle = {entry...}}: idle connections of one key,
-- oldest first. An entry is {stream, reused, expires (hrtime s or nil)}.
local pools = {}
socket.pools = pools
local hrtime = require("evo.core").hrtime

local ffi = require("ffi")
pcall(ffi.cdef, [[
int setsockopt(int sockfd, int level, int optname, const void *optval, unsigned int optlen);
int getsockopt(int sockfd, int level, int optname, void *optval, unsigned int *optlen);
long recv(int sockfd, void *buf, size_t len, int flags);
]])
local MSG_PEEK, MSG_DONTWAIT, EAGAIN = 2, 0x40, 11
local peekBuf = ffi.new("char[1]")

-- Whether the peer spoke (or closed) since the last read: bytes in the
-- stream's buffer, or in the kernel's (what nginx's recv(MSG_PEEK) on a kept
-- connection looks at; the blocking Io mode reads nothing ahead). TLS
-- streams are judged by their buffer alone: records the engine has not read
-- yet (a session ticket) are not the peer speaking out of turn.
local function spoke(stream)
  if stream:isClosed() or sbuffered(stream) > 0 then return true end
  if sn.tlsInfo(stream) then return false end
  local fd = stream:fileno()
  if not fd or fd < 0 then return false end
  local n = ffi.C.recv(fd, peekBuf, 1, MSG_PEEK + MSG_DONTWAIT)
  return not (n < 0 and ffi.errno() == EAGAIN)
end

-- A connection the peer closed while it idled, or one with bytes waiting
-- (the peer spoke out of turn), cannot be handed out.
local function usable(stream)
  return not spoke(stream)
end

local function takeIdle(key)
  local pool = pools[key]
  if not pool then return nil end
  local idle, now = pool.idle, hrtime()
  while #idle > 0 do
    local e = table.remove(idle)  -- the most recently kept: the warmest
    if (e.expires == nil or e.expires > now) and usable(e.stream) then
      e.stream:ref(true)
      return e
    end
    e.stream:close()
  end
  return nil
end

-- Closes idle connections whose keepalive timeout passed. Runs from an
-- unreferenced luv timer (it never keeps the process alive) and at each
-- setkeepalive, so the blocking Io mode sweeps too.
local function sweep()
  local now = hrtime()
  for _, pool in pairs(pools) do
    local idle, kept = pool.idle, {}
    for i = 1, #idle do
      local e = idle[i]
      if (e.expires and e.expires <= now) or e.stream:isClosed() then e.stream:close() else kept[#kept + 1] = e end
    end
    pool.idle = kept
  end
end

local sweeper
local function startSweeper()
  if sweeper or require("evo.task").mode() == "blocking" then return end
  local ok, uv = pcall(require, "uv")
  if not ok then return end
  sweeper = uv.new_timer()
  sweeper:start(1000, 1000, sweep)
  sweeper:unref()
end

----------------------------------------------------------------- tcp

local Tcp = {}
Tcp.__index = Tcp
Tcp.__name = "ngx.socket.tcp"

-- tcp() -> a cosocket object, not connected
function socket.tcp()
  return setmetatable({buf = "", ct = DEFAULT_TIMEOUT_MS, st = DEFAULT_TIMEOUT_MS, rt = DEFAULT_TIMEOUT_MS}, Tcp)
end

local function isTcp(v) return getmetatable(v) == Tcp end
local function checkSelf(fname, self)
  if not isTcp(self) then args.badSelf(fname, "ngx.socket.tcp", self, 3) end
end

local function applyTimeouts(self)
  if self.stream then self.stream:settimeout(self.rt / 1000, self.st / 1000) end
end

-- Closes the connection and forgets it.
local function drop(self)
  if self.stream then self.stream:close() end
  self.stream, self.buf, self.rclosed, self.wclosed = nil, "", nil, nil
end

-- As nginx, a failed read (but a timeout) closes the reading side only and a
-- failed send the writing side: the other still works, close() still
-- answers 1; the connection is closed when both sides are.
local function closeRead(self)
  self.rclosed, self.buf = true, ""
  if self.wclosed then drop(self) end
end

local function closeWrite(self)
  self.wclosed = true
  if self.rclosed then drop(self) end
end

local function readable(self) return self.stream and not self.rclosed end
local function writable(self) return self.stream and not self.wclosed end

-- connect(host, port [, opts]) or connect("unix:/path" [, port] [, opts]) -> 1 | nil, err.
-- opts: pool (the pool's name; default "host:port", "unix:/path:port" or "unix:/path"),
-- pool_size (the pool's capacity when this creates it), backlog (accepted;
-- not enforced: see docs/ngx.md).
-- The options table's checks, as lua-nginx-module makes them: the pool's
-- name (a number is turned into one), its size, the backlog.
local function checkOptions(n, opts)
  local pool, size, backlog = opts.pool, opts.pool_size, opts.backlog
  if type(pool) == "number" then
    pool = tostring(pool)
  elseif pool ~= nil and type(pool) ~= "string" then
    args.error(n, "connect", "bad \"pool\" option type: " .. type(pool), 3)
  end
  if type(size) == "number" then
    size = size >= 0 and math.floor(size) or math.ceil(size)
    if size <= 0 then args.error(n, "connect", "bad \"pool_size\" option value: " .. size, 3) end
  elseif size ~= nil then
    args.error(n, "connect", "bad \"pool_size\" option type: " .. type(size), 3)
  end
  if type(backlog) == "number" and backlog < 0 then
    args.error(n, "connect", "bad \"backlog\" option value: " .. math.ceil(backlog), 3)
  end
  return pool, size
end

function Tcp:connect(host, port, opts)
  checkSelf("connect", self)
  args.check(1, "connect", host, "string")
  -- the options are the last argument when it is a table
  local nopts
  if type(opts) == "table" then
    nopts = 3
  elseif type(port) == "table" and opts == nil then
    port, opts, nopts = nil, port, 2
  elseif opts ~= nil then
    args.fail(3, "connect", "table", opts, 2)
  end
  local path = host:match("^[uU][nN][iI][xX]:(.+)$")
  if tonumber(port) then
    port = tonumber(port)
    port = port >= 0 and math.floor(port) or math.ceil(port)
    if port < 0 or port > 65535 then return nil, "bad port number: " .. port end
    -- "unix:/path" with a port (pgmoon always passes one) is still the Unix
    -- socket: nginx's ngx_parse_url ignores the port; the pool key keeps it.
  elseif not path then
    return nil, "missing the port number"
  end
  local pool, poolSize
  if opts then pool, poolSize = checkOptions(nopts, opts) end
  if self.stream then drop(self) end
  local key = pool or (port and (host .. ":" .. port)) or ("unix:" .. path)
  self.key, self.host, self.reused, self.buf = key, host, 0, ""
  self.poolSize = poolSize
  local idle = takeIdle(key)
  if idle then
    self.stream, self.reused = idle.stream, idle.reused + 1
    applyTimeouts(self)
    return 1
  end
  local stream, err
  if path then
    stream, err = net.connect({path = path})
  else
    if port == 0 then return nil, "bad port number: 0" end
    stream, err = net.connect({host = host, port = port, timeout = self.ct / 1000})
  end
  if not stream then return nil, message(err, host) end
  self.stream = stream
  applyTimeouts(self)
  return 1
end

-- TLS client contexts, one per (verify, CA file).
local contexts = {}
-- (With verify on and no server name, nginx checks the chain alone: so do we.)
local function clientContext(verify)
  local ca = socket.settings.trusted
  local key = tostring(verify) .. "|" .. tostring(ca)
  local ctx = contexts[key]
  if ctx then return ctx end
  local err
  ctx, err = tlsnative.clientContext({ca = ca, verify = verify, chainOnlyWithoutName = true})
  if not ctx then return nil, err end
  contexts[key] = ctx
  return ctx
end

-- OpenSSL's X509 verify codes for the reasons Evo reports, so the message
-- reads as nginx's "18: self-signed certificate".
local verifyCodes = {
  ["certificate has expired"] = 10, ["self-signed certificate"] = 18,
  ["self-signed certificate in certificate chain"] = 19, ["unable to get local issuer certificate"] = 20,
  ["unable to verify the first certificate"] = 21,
}

local function tlsMessage(err)
  if not errors.is(err, "TLSVerifyFailed") then return message(err) end
  local reason = tostring(err.message):gsub("^certificate verify failed: ", "")
  if reason:find("hostname mismatch", 1, true) then return "certificate host mismatch" end
  local code = verifyCodes[reason]
  return code and (code .. ": " .. reason) or reason
end

-- Sessions are userdata, as nginx's: a proxy sharing one metatable.
local sessionProto = newproxy(true)
getmetatable(sessionProto).__tostring = function() return "ngx.ssl.session" end
local function newSession() return newproxy(sessionProto) end

-- sslhandshake(reused_session, server_name, ssl_verify, send_status_req) ->
-- a session object (true when reused_session is false) | nil, err.
-- Sessions are not resumed: a reused_session is accepted and ignored;
-- send_status_req (OCSP stapling) is ignored.
function Tcp:sslhandshake(reused, serverName, verify)
  checkSelf("sslhandshake", self)
  if serverName ~= nil and type(serverName) ~= "string" then args.fail(2, "sslhandshake", "string", serverName, 2) end
  local stream = self.stream
  if not stream or self.rclosed or self.wclosed then return nil, "closed" end
  if sn.tlsInfo(stream) then  -- already encrypted (from the pool): the session given, or a new one
    if type(reused) == "userdata" then return reused end
    if reused == false then return true end
    return newSession()
  end
  local ctx, cerr = clientContext(verify == true)
  if not ctx then return nil, message(cerr) end
  local ok, err = sn.starttls(stream, ctx, serverName)
  if ok then ok, err = finish(sn.handshake(stream, true)) end
  if not ok then
    drop(self)
    return nil, tlsMessage(err)
  end
  if reused == false then return true end
  return newSession()
end

local function sendError(reason) error("bad argument #1 to 'send' (" .. reason .. ")", 5) end

-- The length of t as an array: #t when nothing follows it (the common case,
-- O(1)), else the largest key after checking every key is a positive
-- integer ("non-array table found", as nginx says).
local function arrayLength(t)
  local n = #t
  if n == 0 then
    if next(t) == nil then return 0 end
  elseif next(t, n) == nil then
    return n
  end
  n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then sendError("non-array table found") end
    if k > n then n = k end
  end
  return n
end

-- Flattens send's table: an array of strings, numbers and arrays of them,
-- nested to any depth; anything else (booleans, nil holes, ngx.null) is
-- "bad data type" as in nginx's strict table check.
local function flatten(t, out, depth)
  if depth > 100 then sendError("table nested too deep") end
  for i = 1, arrayLength(t) do
    local v = t[i]
    local tv = type(v)
    if tv == "string" then out[#out + 1] = v
    elseif tv == "number" then out[#out + 1] = tostring(v)
    elseif tv == "table" then flatten(v, out, depth + 1)
    else sendError("bad data type " .. tv .. " found") end
  end
end

-- send's argument as bytes: a string, a number, nil ("nil"), a boolean
-- ("true"/"false") or an array table (flatten).
local function sendBytes(data)
  local td = type(data)
  if td == "string" then return data end
  if td == "table" then
    local out = {}
    flatten(data, out, 1)
    return concat(out)
  end
  if td == "number" or td == "nil" or td == "boolean" then return tostring(data) end
  error("bad argument #1 to 'send' (string, number, boolean, nil, or array table expected, got " .. td .. ")", 4)
end

-- send(data) -> bytes sent | nil, err
function Tcp:send(data)
  checkSelf("send", self)
  data = sendBytes(data)
  if not writable(self) then return nil, "closed" end
  if #data == 0 then return 0 end
  local ok, err = finish(swrite(self.stream, true, data))
  if not ok then
    closeWrite(self)
    return nil, message(err, self.host)
  end
  return #data
end

-- Appends the next bytes from the stream to self.buf: true | nil, err.
local function fill(self)
  local data, err = finish(sread(self.stream, "chunk", nil, true))
  if data then
    self.buf = self.buf .. data
    return true
  end
  return nil, err or errors.new("Closed", "end of stream")
end

-- What arrived before a read failed is returned as its partial data, and
-- consumed; a timeout leaves the connection open.
local function readFailed(self, err, partial)
  local isTimeout = errors.is(err, "Timeout")
  if isTimeout and self.stream then
    local n = sbuffered(self.stream)
    if n > 0 then partial = partial .. (finish(sread(self.stream, "chunk", n, false)) or "") end
  end
  self.buf = ""
  local m = message(err, self.host)
  if not isTimeout then closeRead(self) end
  return nil, m, partial
end

local function receiveLine(self)
  local buf = self.buf
  local i = find(buf, "\n", 1, true)
  local parts
  while not i do
    parts = parts or {}
    parts[#parts + 1] = buf
    self.buf = ""
    local ok, err = fill(self)
    if not ok then return readFailed(self, err, (gsub(concat(parts), "\r", ""))) end  -- CRs dropped here too
    buf = self.buf
    i = find(buf, "\n", 1, true)
  end
  local line = sub(buf, 1, i - 1)
  self.buf = sub(buf, i + 1)
  if parts then
    parts[#parts + 1] = line
    line = concat(parts)
  end
  -- nginx's "*l" drops every CR of the line, not only the one before LF.
  if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
  return line
end

local function receiveN(self, n)
  local buf = self.buf
  local have = #buf
  if have >= n then
    self.buf = sub(buf, n + 1)
    return sub(buf, 1, n)
  end
  self.buf = ""
  local data, err = finish(sread(self.stream, "exactly", n - have, true))
  if data then return buf .. data end
  if err == nil then return readFailed(self, errors.new("Closed", "end of stream"), buf) end
  return readFailed(self, err, buf .. (err.partial or ""))
end

local function receiveAll(self)
  local buf = self.buf
  self.buf = ""
  local data, err = finish(sread(self.stream, "all", nil, true))
  if data then return buf .. data end
  if err == nil then return buf end
  return readFailed(self, err, buf)
end

-- receive([pattern]) -> data | nil, err, partial. pattern: "*l" (default:
-- a line without its LF, every CR dropped), "*a" (until the peer closes),
-- or a number of bytes.
function Tcp:receive(pattern, ...)
  checkSelf("receive", self)
  if select("#", ...) > 0 then error("expecting 1 or 2 arguments (including the object), but got more", 2) end
  if pattern == nil or pattern == "*l" then
    if not readable(self) then return nil, "closed" end
    return receiveLine(self)
  end
  local tp = type(pattern)
  if tp == "number" or (tp == "string" and tonumber(pattern)) then
    local n = tonumber(pattern)
    if n < 0 then args.error(1, "receive", "bad pattern argument", 2) end
    if not readable(self) then return nil, "closed" end
    n = math.floor(n)
    if n == 0 then return "" end
    return receiveN(self, n)
  end
  if pattern ~= "*a" then args.error(1, "receive", "bad pattern argument: " .. tostring(pattern), 2) end
  if not readable(self) then return nil, "closed" end
  return receiveAll(self)
end

-- receiveany(max) -> up to max bytes, as soon as any arrived | nil, err
function Tcp:receiveany(max)
  checkSelf("receiveany", self)
  if type(max) == "string" then max = tonumber(max) end
  if type(max) ~= "number" or max <= 0 then args.error(1, "receiveany", "bad max argument", 2) end
  max = math.floor(max)
  if not readable(self) then return nil, "closed" end
  local buf = self.buf
  if #buf > 0 then
    self.buf = sub(buf, max + 1)
    return sub(buf, 1, max)
  end
  local data, err = finish(sread(self.stream, "chunk", max, true))
  if data then return data end
  return readFailed(self, err or errors.new("Closed", "end of stream"), "")
end

-- receiveuntil(pattern [, {inclusive = bool}]) -> iterator(size?).
-- Without size the iterator returns the data before the next pattern (the
-- pattern is consumed; returned too with inclusive). With size it returns
-- the data in pieces of at most size bytes (a last piece may carry the
-- pattern with inclusive), then nil, nil once the pattern was reached, and
-- starts over at the next call. On failure: nil, err, partial.
function Tcp:receiveuntil(pattern, opts)
  checkSelf("receiveuntil", self)
  if type(pattern) == "number" then pattern = tostring(pattern) end
  args.check(1, "receiveuntil", pattern, "string")
  if pattern == "" then return nil, "pattern is empty" end
  if opts ~= nil and type(opts) ~= "table" then args.fail(2, "receiveuntil", "table", opts, 2) end
  local inclusive = opts and opts.inclusive
  if inclusive ~= nil and type(inclusive) ~= "boolean" then
    args.error(2, "receiveuntil", "bad \"inclusive\" option value type: " .. type(inclusive), 2)
  end
  local plen, keep = #pattern, #pattern - 1
  local reached = false  -- size mode: the pattern was consumed, the next call ends the round

  local function whole()
    local parts = {}
    while true do
      local buf = self.buf
      local i = find(buf, pattern, 1, true)
      if i then
        parts[#parts + 1] = sub(buf, 1, inclusive and i + plen - 1 or i - 1)
        self.buf = sub(buf, i + plen)
        return concat(parts)
      end
      -- keep only what may be the start of the pattern
      if #buf > keep then
        parts[#parts + 1] = sub(buf, 1, #buf - keep)
        self.buf = sub(buf, #buf - keep + 1)
      end
      local ok, err = fill(self)
      if not ok then return readFailed(self, err, concat(parts) .. self.buf) end
    end
  end

  -- A piece is full once size bytes are known not to start the pattern: it
  -- is returned without looking further, so data that fills the last piece
  -- exactly is followed by an empty one carrying the pattern, as in nginx.
  local function piece(size)
    while true do
      local buf = self.buf
      local i = find(buf, pattern, 1, true)
      if i then
        if i - 1 >= size then
          self.buf = sub(buf, size + 1)
          return sub(buf, 1, size)
        end
        local data = sub(buf, 1, inclusive and i + plen - 1 or i - 1)
        self.buf = sub(buf, i + plen)
        reached = true
        return data
      end
      local safe = #buf - keep  -- bytes that cannot be part of a pattern
      if safe >= size then
        self.buf = sub(buf, size + 1)
        return sub(buf, 1, size)
      end
      local ok, err = fill(self)
      if not ok then return readFailed(self, err, self.buf) end
    end
  end

  -- it([size]): size nil, 0 or less reads the whole of the data before the
  -- pattern; after a sized round reached the pattern the next call returns
  -- nil, nil, nil (three values, as nginx) and the round starts over.
  return function(size)
    if size ~= nil and not tonumber(size) then args.fail(1, "receiveuntil iterator", "number", size, 2) end
    if not readable(self) then return nil, "closed" end
    if reached then
      reached = false
      return nil, nil, nil
    end
    size = size and math.floor(tonumber(size)) or 0
    if size <= 0 then return whole() end
    return piece(size)
  end
end

-- A timeout as nginx reads it: a number (or numeric string) of
-- milliseconds, truncated; anything else, 0 included, is the default;
-- negative or 2^31 and more raise "bad timeout value".
local function timeoutMs(n, fname, v)
  local ms = tonumber(v) or 0
  ms = ms >= 0 and math.floor(ms) or math.ceil(ms)
  if ms < 0 or ms >= 2 ^ 31 then args.error(n, fname, "bad timeout value", 3) end
  return ms > 0 and ms or DEFAULT_TIMEOUT_MS
end

-- settimeout(ms): connect, send and read timeouts at once
function Tcp:settimeout(ms)
  checkSelf("settimeout", self)
  ms = timeoutMs(1, "settimeout", ms)
  self.ct, self.st, self.rt = ms, ms, ms
  applyTimeouts(self)
end

-- settimeouts(connect_ms, send_ms, read_ms)
function Tcp:settimeouts(c, s, r)
  checkSelf("settimeouts", self)
  self.ct = timeoutMs(1, "settimeouts", c)
  self.st = timeoutMs(2, "settimeouts", s)
  self.rt = timeoutMs(3, "settimeouts", r)
  applyTimeouts(self)
end

-- setkeepalive([timeout_ms [, size]]) -> 1 | nil, err: the connection goes
-- to its key's pool (the least recently kept one is closed when the pool is
-- full) and this object is closed; timeout 0 keeps it until it is reused.
function Tcp:setkeepalive(timeout, size)
  checkSelf("setkeepalive", self)
  if timeout ~= nil and type(timeout) ~= "number" then args.fail(1, "setkeepalive", "number", timeout, 2) end
  if size ~= nil and (type(size) ~= "number" or size < 1) then
    args.error(2, "setkeepalive", "bad \"pool_size\" argument: " .. tostring(size), 2)
  end
  local stream = self.stream
  if not stream or self.rclosed or self.wclosed then return nil, "closed" end
  -- as nginx: data read but not consumed keeps the connection (the caller
  -- may read it or close); a peer that spoke or closed since closes it
  if #self.buf > 0 then return nil, "unread data in buffer" end
  if spoke(stream) then
    drop(self)
    return nil, "connection in dubious state"
  end
  timeout = timeout or DEFAULT_KEEPALIVE_MS
  local pool = pools[self.key]
  if not pool then
    pool = {size = size or self.poolSize or DEFAULT_POOL_SIZE, idle = {}}
    pools[self.key] = pool
  end
  sweep()
  local idle = pool.idle
  while #idle >= pool.size do table.remove(idle, 1).stream:close() end
  stream:settimeout(0, 0)
  stream:ref(false)  -- an idle connection does not keep the process alive
  idle[#idle + 1] = {stream = stream, reused = self.reused, expires = timeout > 0 and hrtime() + timeout / 1000 or nil}
  self.stream, self.buf = nil, ""
  startSweeper()
  return 1
end

-- getreusedtimes() -> how many times this connection came from the pool | nil, err
function Tcp:getreusedtimes()
  checkSelf("getreusedtimes", self)
  if not self.stream then return nil, "closed" end
  return self.reused
end

-- close() -> 1 | nil, "closed"
function Tcp:close()
  checkSelf("close", self)
  if not self.stream then return nil, "closed" end
  drop(self)
  return 1
end

----------------------------------------------------------------- setoption

-- Linux's values: SOL_SOCKET 1, SO_REUSEADDR 2, SO_KEEPALIVE 9, SO_SNDBUF 7,
-- SO_RCVBUF 8; IPPROTO_TCP 6, TCP_NODELAY 1.
local sockopts = {
  keepalive = {1, 9}, reuseaddr = {1, 2}, ["tcp-nodelay"] = {6, 1}, sndbuf = {1, 7}, rcvbuf = {1, 8},
}

-- setoption(name, value) -> true | nil, err: keepalive, reuseaddr,
-- tcp-nodelay (booleans or 0/1), sndbuf, rcvbuf (bytes), set on the socket.
function Tcp:setoption(name, value)
  checkSelf("setoption", self)
  args.check(1, "setoption", name, "string")
  local o = sockopts[name]
  if not o then args.error(1, "setoption", "unsupported option " .. name, 2) end
  if not self.stream then return nil, "closed" end
  local v = value
  if type(v) == "boolean" then v = v and 1 or 0 end
  if type(v) ~= "number" then args.fail(2, "setoption", "number", value, 2) end
  local int = ffi.new("int[1]", v)
  if ffi.C.setsockopt(self.stream:fileno(), o[1], o[2], int, 4) ~= 0 then
    return nil, "setsockopt() failed: errno " .. ffi.errno()
  end
  return true
end

-- getoption(name) -> value | nil, err
function Tcp:getoption(name)
  checkSelf("getoption", self)
  local o = sockopts[name]
  if not o then args.error(1, "getoption", "unsupported option " .. tostring(name), 2) end
  if not self.stream then return nil, "closed" end
  local int, len = ffi.new("int[1]"), ffi.new("unsigned int[1]", 4)
  if ffi.C.getsockopt(self.stream:fileno(), o[1], o[2], int, len) ~= 0 then
    return nil, "getsockopt() failed: errno " .. ffi.errno()
  end
  return int[0]
end

----------------------------------------------------------------- connect

-- connect(host, port [, opts]) -> a connected tcp cosocket | nil, err
function socket.connect(host, port, opts)
  local sock = socket.tcp()
  local ok, err = sock:connect(host, port, opts)
  if not ok then return nil, err end
  return sock
end

----------------------------------------------------------------- udp

local Udp = {}
Udp.__index = Udp
Udp.__name = "ngx.socket.udp"

-- udp() -> a datagram cosocket; setpeername before send/receive
function socket.udp()
  return setmetatable({rt = DEFAULT_TIMEOUT_MS}, Udp)
end

local function checkUdp(fname, self)
  if getmetatable(self) ~= Udp then args.badSelf(fname, "ngx.socket.udp", self, 3) end
end

-- setpeername(host, port) -> 1 | nil, err. A host name is resolved here
-- (Evo's UDP sockets take addresses).
function Udp:setpeername(host, port)
  checkUdp("setpeername", self)
  args.check(1, "setpeername", host, "string")
  if host:match("^unix:") then return nil, "unix domain datagram sockets are not supported" end
  if type(port) == "string" then port = tonumber(port) end
  if type(port) ~= "number" then args.fail(2, "setpeername", "number", port, 2) end
  local addr = host
  if not host:match("^[%d%.]+$") and not host:find(":", 1, true) then
    local ok, res = pcall(require("dns").lookup, host)
    if not ok or not res then return nil, ("%s could not be resolved (3: Host not found)"):format(host) end
    addr = type(res) == "table" and (res.address or (res[1] and res[1].address)) or res
  end
  if self.sock then self.sock:close() end
  self.sock, self.host, self.port = net.udp(), addr, port
  self.sock:settimeout(self.rt / 1000)
  return 1
end

-- send(data) -> 1 | nil, err (data as tcp's send takes it)
function Udp:send(data)
  checkUdp("send", self)
  data = sendBytes(data)
  if not self.sock then return nil, "closed" end
  local ok, err = self.sock:send(data, self.host, self.port)
  if not ok then return nil, message(err) end
  return 1
end

-- receive([size]) -> a datagram | nil, err ("timeout")
function Udp:receive(size)
  checkUdp("receive", self)
  if not self.sock then return nil, "closed" end
  while true do
    local data, from, fport = self.sock:receive()
    if not data then return nil, message(from) end
    -- a connected UDP socket only hears its peer
    if from == self.host and fport == self.port then
      if size and #data > size then data = sub(data, 1, size) end
      return data
    end
  end
end

-- settimeout(ms)
function Udp:settimeout(ms)
  checkUdp("settimeout", self)
  if ms ~= nil and type(ms) ~= "number" then args.fail(1, "settimeout", "number", ms, 2) end
  self.rt = (ms and ms > 0) and ms or DEFAULT_TIMEOUT_MS
  if self.sock then self.sock:settimeout(self.rt / 1000) end
end

-- close() -> 1 | nil, "closed"
function Udp:close()
  checkUdp("close", self)
  if not self.sock then return nil, "closed" end
  self.sock:close()
  self.sock = nil
  return 1
end

return socket
