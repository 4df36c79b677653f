-- net: TCP and Unix-socket streams and servers, and UDP, colourless.
--
--   local net = require("net")
--   local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
--     local line = conn:readLine()          -- suspends only this connection's task
--     conn:write("you said: ", line, "\n")
--   end))
--   local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
--   c:write("hello\n"); print(c:readLine()); c:close(); server:close()
--
-- A Stream has a buffered reader and writer in one object: read(n),
-- readLine(), readUntil(delim), readAll(), write(...) (one vectored write;
-- it suspends only while more than the high-water mark is queued), flush(),
-- shutdown(), close(), settimeout(). Failures return nil, err (ECONNREFUSED,
-- EOF mid-read, Timeout, Closed...). See docs/net.md.
local native = require("evo.net")
local tasknative = require("evo.task")
local errors = require("evo.errors")
local args = require("evo.args")
local events = require("events")
local core = require("evo.core")

local isyieldable, type, error, select = coroutine.isyieldable, type, error, select
local sn = native.stream
local sread, swrite = sn.read, sn.write

local net = {}

-- Every native blocking call answers (true, results...) or, resumed after a
-- cancellation, (false): finish returns the results or raises Canceled.
local finish = require("evo.wait").finish

----------------------------------------------------------------- Stream

local Stream = sn.methods

-- read([n]) -> up to n bytes (any amount available without n, at least 1);
-- nil at the end of the stream; nil, err on failure.
function Stream:read(n)
  if n == nil then return finish(sread(self, "chunk", nil, true)) end
  args.check(1, "read", n, "number")
  if not (n >= 0) then args.error(1, "read", "byte count must be 0 or more") end  -- NaN too
  return finish(sread(self, "exactly", n, true))
end

-- readLine() -> the next line without "\n" (or "\r\n"); the last line may
-- lack its terminator; nil at the end.
function Stream:readLine() return finish(sread(self, "line", nil, true)) end

-- lines() -> an iterator over the lines left (as readLine gives them), for
-- `for line in stream:lines() do ... end`; a failure raises, as io.lines does.
function Stream:lines()
  return function()
    local line, err = finish(sread(self, "line", nil, true))
    if line == nil and err ~= nil then error(err, 2) end
    return line
  end
end

-- readUntil(delim) -> the data before the next delim (delim is consumed)
function Stream:readUntil(delim)
  args.check(1, "readUntil", delim, "string")
  if delim == "" then error("bad argument #1 to 'readUntil' (delimiter must not be empty)", 2) end
  return finish(sread(self, "until", delim, true))
end

-- readAll() -> everything until the peer closes its side
function Stream:readAll() return finish(sread(self, "all", nil, true)) end

-- write(...) -> true | nil, err: strings (or numbers) in one vectored write
function Stream:write(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    local t = type(v)
    if t ~= "string" and t ~= "number" then args.fail(i, "write", "string", v, 2) end
  end
  return finish(swrite(self, true, ...))
end

-- flush() -> true | nil, err: waits until everything written has gone out
function Stream:flush() return finish(sn.flush(self, true)) end

-- shutdown() -> true | nil, err: no more writes (the peer reads EOF)
function Stream:shutdown() return finish(sn.shutdown(self, true)) end

-- settimeout(readSeconds [, writeSeconds]): 0 or nil for none. A read or
-- write that waits longer returns nil, err with err.code == "Timeout".
function Stream:settimeout(r, w) sn.settimeout(self, r, w) end

Stream.close = sn.close
Stream.isClosed = sn.isClosed
Stream.fileno = sn.fileno
-- setHighWater(bytes): how much queued output makes write wait (default 64 KiB)
function Stream:setHighWater(bytes)
  if not (bytes >= 1) then args.error(1, "setHighWater", "bytes must be 1 or more") end  -- NaN too
  sn.setHighWater(self, bytes)
end

-- remoteAddress() / localAddress() -> {address = "127.0.0.1", port = 1234} | nil
function Stream:remoteAddress() return native.peerAddress(self) end
function Stream:localAddress() return native.localAddress(self) end

-- sendfile(path [, offset [, length]]) -> bytes sent | nil, err: the file's
-- bytes go from the page cache to the socket with sendfile(2), no copy
-- through Lua (after anything written before has gone out).
function Stream:sendfile(path, offset, length)
  args.check(1, "sendfile", path, "string")
  local fs = require("fs")
  offset = offset or 0
  if sn.tlsInfo(self) then  -- the bytes must be encrypted: through Lua, in pieces
    local f, err = fs.open(path, "r")
    if not f then return nil, err end
    if offset > 0 then f:seek("set", offset) end
    local sent = 0
    while length == nil or sent < length do
      local want = 65536
      if length then want = math.min(want, length - sent) end
      local data, rerr = f:read(want)
      if data == nil and rerr then f:close() return nil, rerr end
      if data == nil or data == "" then break end
      local ok, werr = self:write(data)
      if not ok then f:close() return nil, werr end
      sent = sent + #data
    end
    f:close()
    return sent
  end
  if length == nil then
    local st, err = fs.stat(path)
    if not st then return nil, err end
    length = math.max(st.size - offset, 0)
  end
  local f, err = fs.open(path, "r")
  if not f then return nil, err end
  local ok, sent, serr = pcall(function()
    local flushed, ferr = self:flush()
    if not flushed then return nil, ferr end
    return finish(sn.sendfile(self, f.fd, offset, length, true))
  end)
  f:close()
  if not ok then error(sent, 0) end
  return sent, serr
end

-- ref(on): whether this connection keeps the process alive (default true).
-- An idle pooled connection (the HTTP client's) is unref'd, as in Node.
function Stream:ref(on) sn.setRef(self, on ~= false) end

-- tlsInfo() -> {alpn, servername} for a TLS stream, else nil
function Stream:tlsInfo() return sn.tlsInfo(self) end

-- Every method checks its self and its arguments first (evo.args.method),
-- so misuse names the method as called, never a native behind it.
local streamArgs = {
  read = {"number?"}, readUntil = {"any"}, settimeout = {"number?", "number?"}, setHighWater = {"number"},
  sendfile = {"string", "number?", "number?"},
}
local function isStream(s)
  local mt = getmetatable(s)
  return type(s) == "userdata" and type(mt) == "table" and mt.__index == Stream
end
do
  local names = {}
  for name, fn in pairs(Stream) do
    if type(fn) == "function" then names[#names + 1] = name end
  end
  for _, name in ipairs(names) do
    Stream[name] = args.method(name, Stream[name], isStream, "Stream", unpack(streamArgs[name] or {}))
  end
end

net.Stream = Stream

----------------------------------------------------------------- TLS

local tlsnative = require("evo.tls")
local clientContexts = {}  -- one per (ca, verify, alpn): contexts are reusable

local function clientContext(o)
  local alpn = o.alpn and table.concat(o.alpn, ",") or ""
  local key = tostring(o.ca) .. "|" .. tostring(o.verify ~= false) .. "|" .. alpn
  local ctx = clientContexts[key]
  if ctx then return ctx end
  local err
  ctx, err = tlsnative.clientContext({ca = o.ca, verify = o.verify ~= false, alpn = o.alpn})
  if not ctx then return nil, err end
  clientContexts[key] = ctx
  return ctx
end

-- net.tlsServerContext{cert, key [, alpn]} -> context | nil, err (for listen's tls)
function net.tlsServerContext(o)
  args.check(1, "tlsServerContext", o, "table")
  return tlsnative.serverContext(o)
end

-- Puts TLS on a connected stream and completes the handshake (within
-- `timeout` seconds when given).
local function secure(stream, ctx, servername, timeout)
  local ok, err = sn.starttls(stream, ctx, servername)
  if ok then
    if timeout then sn.settimeout(stream, timeout, timeout) end
    ok, err = finish(sn.handshake(stream, true))
    if timeout then sn.settimeout(stream, 0, 0) end
  end
  if not ok then
    stream:close()
    return nil, err
  end
  return stream
end

----------------------------------------------------------------- connect

-- A Unix socket address holds at most 107 bytes of path (sun_path, 108
-- bytes with its NUL): a longer one would be cut, silently, by the system.
local maxUnixPath = 107
local function unixPathTooLong(path)
  if #path <= maxUnixPath then return nil end
  return errors.new("ENAMETOOLONG", ("a Unix socket path holds at most %d bytes, this one has %d: %s")
    :format(maxUnixPath, #path, path))
end

-- connect{host, port [, timeout] [, tls]} or connect{path} -> Stream | nil, err
-- tls = true or {servername = host, ca = nil (system store), verify = true,
-- alpn = {...}}: the stream is returned once the TLS handshake is done; a
-- certificate that fails verification gives err.code "TLSVerifyFailed".
local connectPlain
function net.connect(opts)
  args.check(1, "connect", opts, "table")
  if opts.path ~= nil then
    if type(opts.path) ~= "string" then args.error(1, "connect", "path must be a string") end
    local long = unixPathTooLong(opts.path)
    if long then return nil, long end
  else
    if type(opts.host) ~= "string" then args.error(1, "connect", "host must be a string") end
    args.port(1, "connect", opts.port, 1)
  end
  local tls = opts.tls
  if not tls then return connectPlain(opts) end
  if tls == true then tls = {} end
  if type(tls) ~= "table" then args.fail(1, "connect", "tls table", tls) end
  local ctx, cerr = clientContext(tls)
  if not ctx then return nil, cerr end
  local stream, err = connectPlain(opts)
  if not stream then return nil, err end
  return secure(stream, ctx, tls.servername or opts.host, opts.timeout)
end

-- connectPlain(opts): opts checked by net.connect
function connectPlain(opts)
  local timeout = opts.timeout
  if opts.path then return finish(native.connectPipe(opts.path, timeout, true)) end
  if timeout and tasknative.mode() == "evented" and isyieldable() and tasknative.current() then
    local task = require("task")
    local res = {task.timeout(timeout, function()
      return finish(native.connectTcp(opts.host, opts.port, timeout, true))
    end)}
    return unpack(res, 1, table.maxn(res))
  end
  return finish(native.connectTcp(opts.host, opts.port, timeout, true))
end

----------------------------------------------------------------- Server

local Server = events.class("Server", {"CONNECTION_ACCEPTED"})
net.Server = Server

-- The native delivers CONNECTION_ACCEPTED through this (events::emit_values).
local deliverAccepted = events.deliverer("CONNECTION_ACCEPTED", "remoteAddress", "remotePort")

local function accept(self)
  local stream, err = finish(native.accept(self.listener, true))
  if stream and self.tlsContext then return secure(stream, self.tlsContext, nil, self.handshakeTimeout) end
  return stream, err
end

-- accept() -> Stream | nil, err: waits for the next connection (nil and a
-- Timeout error after settimeout's limit)
function Server:accept()
  if self.timeout and self.timeout > 0 and tasknative.mode() == "evented" and isyieldable()
      and tasknative.current() then
    local task = require("task")
    local res = {task.timeout(self.timeout, accept, self)}
    return unpack(res, 1, table.maxn(res))
  end
  return accept(self)
end

-- close(): stops accepting
function Server:close()
  if self.listener then native.closeListener(self.listener) end
end

-- settimeout(seconds): for accept()
function Server:settimeout(seconds)
  if seconds ~= nil then args.check(1, "settimeout", seconds, "number") end
  self.timeout = seconds
  native.setAcceptTimeout(self.listener, seconds)
end

-- Runs handler(stream) for one connection: its error is reported at once
-- (one bad connection never takes the server down), and the stream is
-- closed when the handler returns.
local function connectionTask(handler)
  local traceback = debug.traceback
  return function(stream)
    local ok, err = xpcall(handler, traceback, stream)
    if not ok and not errors.is(err, "Canceled") then
      core.reportHandlerError("error in a connection handler: " .. tostring(err))
    end
    stream:close()
  end
end

-- listen{host = "127.0.0.1", port = 0 [, backlog]} or listen{path} -> Server | nil, err.
-- With a handler, every connection runs handler(stream) as a task (which
-- needs the evented Io mode); without, take connections with server:accept().
-- Either way each accepted connection is reported as CONNECTION_ACCEPTED.
function net.listen(opts, handler)
  args.check(1, "listen", opts, "table")
  if opts.path ~= nil then
    if type(opts.path) ~= "string" then args.error(1, "listen", "path must be a string") end
    local long = unixPathTooLong(opts.path)
    if long then return nil, long end
  elseif opts.port ~= nil then
    args.port(1, "listen", opts.port, 0)
  end
  if handler ~= nil then
    args.check(2, "listen", handler, "function")
    if tasknative.mode() == "blocking" then
      error(errors.new("ConcurrencyUnavailable",
        "a listen() handler serves connections concurrently; use server:accept() in the blocking mode"), 2)
    end
  end
  local server = Server()
  local tlsContext
  if opts.tls then
    local err
    tlsContext, err = opts.tls
    if type(tlsContext) == "table" then tlsContext, err = tlsnative.serverContext(opts.tls) end
    if not tlsContext then return nil, err end
    server.tlsContext = tlsContext
    -- A client that never completes its handshake is dropped after this.
    server.handshakeTimeout = opts.handshakeTimeout or 10
    if handler then
      local plain = handler
      handler = function(stream)
        if secure(stream, tlsContext, nil, server.handshakeTimeout) then return plain(stream) end
      end
    end
  end
  local ok, listener, port = native.listen(server, handler and connectionTask(handler), opts, deliverAccepted)
  if not listener then return nil, port end
  server.listener = listener
  server.port = port
  server.host = opts.host or (not opts.path and "127.0.0.1" or nil)
  server.path = opts.path
  return server
end

----------------------------------------------------------------- UDP

local udpnative = require("evo.udp")
local Udp = {}
Udp.__index = Udp
Udp.__name = "Udp"

-- udp() -> a UDP socket: bind{host, port} to receive, send(data, host, port)
function net.udp()
  return setmetatable({native = udpnative.new()}, Udp)
end

-- bind{host = "127.0.0.1", port = 0} -> true | nil, err; self.port is the bound port
function Udp:bind(opts)
  opts = opts or {}
  args.check(1, "bind", opts, "table")
  if opts.host ~= nil and type(opts.host) ~= "string" then args.error(1, "bind", "host must be a string") end
  if opts.port ~= nil then args.port(1, "bind", opts.port, 0) end
  local ok, res, err = udpnative.bind(self.native, opts.host, opts.port)
  if not res then return nil, err end
  self.port = udpnative.port(self.native)
  return true
end

-- send(data, host, port) -> true | nil, err
function Udp:send(data, host, port)
  args.check(1, "send", data, "string")
  args.check(2, "send", host, "string")
  args.port(3, "send", port, 1)
  local ok, res, err = udpnative.send(self.native, data, host, port)
  if not res then return nil, err end
  return true
end

local function receive(self) return finish(udpnative.receive(self.native, true)) end

-- receive() -> data, fromHost, fromPort | nil, err (Timeout after settimeout)
function Udp:receive()
  -- A task that can yield suspends (task.timeout bounds it); any other
  -- caller blocks in the Io, which applies the timeout itself.
  if self.timeout and self.timeout > 0 and tasknative.mode() == "evented" and isyieldable() then
    local task = require("task")
    local res = {task.timeout(self.timeout, receive, self)}
    return unpack(res, 1, table.maxn(res))
  end
  return receive(self)
end

function Udp:settimeout(seconds)
  if seconds ~= nil then args.check(1, "settimeout", seconds, "number") end
  self.timeout = seconds
  udpnative.settimeout(self.native, seconds)
end
function Udp:close() udpnative.close(self.native) end

return net
