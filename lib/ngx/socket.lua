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
local sub, find, gsub, lower, concat = string.sub, string.find, string.gsub, string.lower, table.concat
local isyieldable = coroutine.isyieldable
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

-- A connection the peer closed while it idled, or one with bytes waiting
-- (the peer spoke out of turn), cannot be handed out.
local function usable(stream)
  return not stream:isClosed() and sbuffered(stream) == 0
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

-- Forgets the connection after a failure; nginx closes a cosocket on any
-- error but a read timeout.
local function drop(self)
  if self.stream then self.stream:close() end
  self.stream, self.buf = nil, ""
end

local function fail(self, err, keep)
  local m = message(err, self.host)
  if not keep then drop(self) end
  return m
end

-- connect(host, port [, opts]) or connect("unix:/path" [, opts]) -> 1 | nil, err.
-- opts: pool (the pool's name; default "host:port" or "unix:path"),
-- pool_size (the pool's capacity when this creates it), backlog (accepted;
-- not enforced: see docs/ngx.md).
function Tcp:connect(host, port, opts)
  checkSelf("connect", self)
  args.check(1, "connect", host, "string")
  local path = host:match("^unix:(.+)$")
  if path then
    if type(port) == "table" then opts = port end
    port = nil
  else
    if type(port) == "string" then port = tonumber(port) end
    if type(port) ~= "number" then args.fail(2, "connect", "number", port, 2) end
    if port < 0 or port > 65535 or port % 1 ~= 0 then return nil, "bad port number: " .. tostring(port) end
  end
  if opts ~= nil and type(opts) ~= "table" then args.fail(path and 2 or 3, "connect", "table", opts, 2) end
  if self.stream then drop(self) end
  local key = (opts and opts.pool) or (path and ("unix:" .. path)) or (host .. ":" .. port)
  self.key, self.host, self.reused, self.buf = key, host, 0, ""
  local poolSize = opts and opts.pool_size
  if poolSize ~= nil and (type(poolSize) ~= "number" or poolSize < 1) then
    args.error(3, "connect", "bad \"pool_size\" option value: " .. tostring(poolSize), 2)
  end
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
local function clientContext(verify)
  local ca = socket.settings.trusted
  local key = tostring(verify) .. "|" .. tostring(ca)
  local ctx = contexts[key]
  if ctx then return ctx end
  local err
  ctx, err = tlsnative.clientContext({ca = ca, verify = verify})
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

local Session = {__name = "ngx.ssl.session", __tostring = function() return "ngx.ssl.session" end}

-- sslhandshake(reused_session, server_name, ssl_verify, send_status_req) ->
-- a session object (true when reused_session is false) | nil, err.
-- Sessions are not resumed: a reused_session is accepted and ignored;
-- send_status_req (OCSP stapling) is ignored.
function Tcp:sslhandshake(reused, serverName, verify)
  checkSelf("sslhandshake", self)
  if serverName ~= nil and type(serverName) ~= "string" then args.fail(2, "sslhandshake", "string", serverName, 2) end
  local stream = self.stream
  if not stream then return nil, "closed" end
  if sn.tlsInfo(stream) then return reused == false and true or setmetatable({}, Session) end  -- pooled, already TLS
  local ctx, cerr = clientContext(verify == true)
  if not ctx then return nil, message(cerr) end
  local ok, err = sn.starttls(stream, ctx, serverName)
  if ok then ok, err = finish(sn.handshake(stream, isyieldable())) end
  if not ok then
    drop(self)
    return nil, tlsMessage(err)
  end
  if reused == false then return true end
  return setmetatable({}, Session)
end

-- Flattens send's argument: a string, a number, a boolean or a (nested)
-- array of them, as nginx's cosocket takes.
local function flatten(t, out, depth)
  if depth > 100 then error("bad argument #1 to 'send' (table nested too deep)", 4) end
  for i = 1, #t do
    local v = t[i]
    local tv = type(v)
    if tv == "string" then out[#out + 1] = v
    elseif tv == "number" then out[#out + 1] = tostring(v)
    elseif tv == "boolean" then out[#out + 1] = v and "true" or "false"
    elseif tv == "table" then flatten(v, out, depth + 1)
    else error(("bad argument #1 to 'send' (bad data type %s found)"):format(tv), 4) end
  end
end

-- send(data) -> bytes sent | nil, err
function Tcp:send(data)
  checkSelf("send", self)
  local td = type(data)
  if td == "table" then
    local out = {}
    flatten(data, out, 1)
    data = concat(out)
  elseif td == "number" then data = tostring(data)
  elseif td == "boolean" then data = data and "true" or "false"
  elseif td ~= "string" then args.fail(1, "send", "string, number, boolean or table", data, 2) end
  local stream = self.stream
  if not stream then return nil, "closed" end
  if #data == 0 then return 0 end
  local ok, err = finish(swrite(stream, isyieldable(), data))
  if not ok then return nil, fail(self, err, false) end
  return #data
end

-- Appends the next bytes from the stream to self.buf: true | nil, err.
local function fill(self)
  local data, err = finish(sread(self.stream, "chunk", nil, isyieldable()))
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
  return nil, fail(self, err, isTimeout), partial
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
    if not ok then return readFailed(self, err, concat(parts)) end
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
  local data, err = finish(sread(self.stream, "exactly", n - have, isyieldable()))
  if data then return buf .. data end
  if err == nil then return readFailed(self, errors.new("Closed", "end of stream"), buf) end
  return readFailed(self, err, buf .. (err.partial or ""))
end

local function receiveAll(self)
  local buf = self.buf
  self.buf = ""
  local data, err = finish(sread(self.stream, "all", nil, isyieldable()))
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
    if not self.stream then return nil, "closed" end
    return receiveLine(self)
  end
  local tp = type(pattern)
  if tp == "number" or (tp == "string" and tonumber(pattern)) then
    local n = tonumber(pattern)
    if n < 0 then args.error(1, "receive", "bad pattern argument", 2) end
    if not self.stream then return nil, "closed" end
    n = math.floor(n)
    if n == 0 then return "" end
    return receiveN(self, n)
  end
  if pattern ~= "*a" then args.error(1, "receive", "bad pattern argument: " .. tostring(pattern), 2) end
  if not self.stream then return nil, "closed" end
  return receiveAll(self)
end

-- receiveany(max) -> up to max bytes, as soon as any arrived | nil, err
function Tcp:receiveany(max)
  checkSelf("receiveany", self)
  if type(max) == "string" then max = tonumber(max) end
  if type(max) ~= "number" or max <= 0 then args.error(1, "receiveany", "bad max argument", 2) end
  max = math.floor(max)
  if not self.stream then return nil, "closed" end
  local buf = self.buf
  if #buf > 0 then
    self.buf = sub(buf, max + 1)
    return sub(buf, 1, max)
  end
  local data, err = finish(sread(self.stream, "chunk", max, isyieldable()))
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
  args.check(1, "receiveuntil", pattern, "string")
  if pattern == "" then args.error(1, "receiveuntil", "pattern is empty", 2) end
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

  local function piece(size)
    if reached then
      reached = false
      return nil, nil
    end
    while true do
      local buf = self.buf
      local i = find(buf, pattern, 1, true)
      if i then
        if i - 1 > size then
          self.buf = sub(buf, size + 1)
          return sub(buf, 1, size)
        end
        local data = sub(buf, 1, inclusive and i + plen - 1 or i - 1)
        self.buf = sub(buf, i + plen)
        if data == "" then return nil, nil end
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

  return function(size)
    if not self.stream then return nil, "closed" end
    if size == nil then return whole() end
    if type(size) ~= "number" or size < 1 then args.error(1, "receiveuntil iterator", "bad size argument", 2) end
    return piece(math.floor(size))
  end
end

-- settimeout(ms): connect, send and read timeouts at once
function Tcp:settimeout(ms)
  checkSelf("settimeout", self)
  if ms ~= nil and type(ms) ~= "number" then args.fail(1, "settimeout", "number", ms, 2) end
  if ms == nil or ms <= 0 then ms = DEFAULT_TIMEOUT_MS end
  self.ct, self.st, self.rt = ms, ms, ms
  applyTimeouts(self)
end

-- settimeouts(connect_ms, send_ms, read_ms)
function Tcp:settimeouts(c, s, r)
  checkSelf("settimeouts", self)
  for i, v in ipairs({c, s, r}) do
    if type(v) ~= "number" then args.fail(i, "settimeouts", "number", v, 2) end
  end
  self.ct = c > 0 and c or DEFAULT_TIMEOUT_MS
  self.st = s > 0 and s or DEFAULT_TIMEOUT_MS
  self.rt = r > 0 and r or DEFAULT_TIMEOUT_MS
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
  if not stream then return nil, "closed" end
  if #self.buf > 0 or sbuffered(stream) > 0 then
    drop(self)
    return nil, "unread data in buffer"
  end
  if stream:isClosed() then
    drop(self)
    return nil, "closed"
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

local ffi = require("ffi")
pcall(ffi.cdef, [[
int setsockopt(int sockfd, int level, int optname, const void *optval, unsigned int optlen);
int getsockopt(int sockfd, int level, int optname, void *optval, unsigned int *optlen);
]])
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
  if type(data) == "table" then
    local out = {}
    flatten(data, out, 1)
    data = concat(out)
  elseif type(data) == "number" then data = tostring(data)
  elseif type(data) ~= "string" then args.fail(1, "send", "string", data, 2) end
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
