-- ws: WebSockets (RFC 6455, with permessage-deflate, RFC 7692), server and
-- client, colourless like the rest of net.
--
--   local ws = require("ws")
--   http.serve({port = 8080}, function(req, res)
--     local conn = assert(ws.accept(req, res))
--     while true do
--       local data, kind = conn:receive()     -- kind: "text" or "binary"
--       if not data then break end            -- closed: kind is the error (code, reason)
--       conn:send(data, kind)
--     end
--   end)
--   local c = assert(ws.connect("ws://127.0.0.1:8080/chat", {protocols = {"chat"}}))
--
-- The protocol engine is native (src/modules/ws_protocol.cpp); this module
-- moves its bytes over a net Stream: the socket the HTTP server hands over
-- after the 101 response, or a client connection (TCP or TLS).
local native = require("evo.ws")
local httpnative = require("evo.http")
local parser = require("evo.httpresponse")
local net = require("net")
local errors = require("evo.errors")
local args = require("evo.args")

local type, error, tostring, setmetatable, getmetatable, pairs, ipairs =
  type, error, tostring, setmetatable, getmetatable, pairs, ipairs
local lower, match, gmatch, concat = string.lower, string.match, string.gmatch, table.concat
local wait = require("evo.wait")
local finish, raiseCanceled = wait.finish, wait.raiseCanceled
local feed, take, sendTo = native.feed, native.take, native.sendTo

local ws = {}

local function closedError(code, reason, message)
  return errors.new("Closed", message or ("the WebSocket closed (" .. tostring(code) .. ")"),
    {closeCode = code, reason = reason or ""})
end

----------------------------------------------------------------- connection

local Conn = {}
Conn.__index = Conn

local function newConn(stream, role, deflate, opts, extra)
  local c = setmetatable({
    stream = stream,
    session = native.session(role, {maxMessage = opts and opts.maxMessage, maxFrame = opts and opts.maxFrame},
      deflate),
    role = role,
    -- The events the engine found, as native.take leaves them: q[qi] is the
    -- next one's kind; each is cleared as it is taken, so q[qi] is nil once
    -- none is left.
    q = {},
    qi = 1,
    -- false until set (never nil): the checks each receive and send make
    -- then find the field itself instead of missing it here and in Conn.
    closedWith = false,
    failedWith = false,
  }, Conn)
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- Ends the connection: the TCP side closes after the closing handshake.
local function finishClose(self, code, reason)
  if not self.closedWith then self.closedWith = closedError(code, reason) end
  self.stream:flush()  -- the close frame goes out before the connection does
  self.stream:close()
end

-- A protocol violation in what the peer sent: the engine's Close (with the
-- violation's code) is on its way and the connection closes, but the
-- messages that came before the violation, maybe in the same read, are still
-- to be received; receive() returns the error after them.
local function protocolFailure(self)
  local _, _, _, code, reason = native.state(self.session)
  self.failedWith = closedError(code, reason, "WebSocket protocol error (" .. code .. "): " .. reason)
  self.stream:close()
end

-- receive() when the next event is not a message: events (or reads, when
-- there are none) until a message, the close or a failure.
local function receiveMore(self)
  local session, stream, q = self.session, self.stream, self.q
  while true do
    local i = self.qi
    local kind = q[i]
    if kind == nil then
      if take(session, q) == 0 then
        if self.failedWith then  -- every message before the violation is delivered: now the error
          self.closedWith = self.failedWith
          return nil, self.closedWith
        end
        self.receiving = true
        local bytes, err = stream:read()
        self.receiving = false
        if not bytes then
          self.closedWith = err and closedError(1006, "", "the connection was lost: " .. tostring(err))
            or closedError(1006, "", "the connection closed without a closing handshake")
          stream:close()
          return nil, self.closedWith
        end
        local ok, out = feed(session, bytes)
        if out then stream:write(out) end
        if not ok then protocolFailure(self) end
      end
      self.qi = 1
    else
      local data, extra = q[i + 1], q[i + 2]
      q[i], q[i + 1] = nil, nil
      self.qi = i + 3
      if kind == "message" then
        return data, extra and "binary" or "text"
      elseif kind == "close" then
        -- The engine's echo of the close went out with the bytes that carried
        -- it (feed's output): the handshake is complete.
        self.closedWith = closedError(extra, data)
        finishClose(self, extra, data)
        return nil, self.closedWith
      elseif kind == "pong" then
        if self.onPong then self.onPong(data) end
      end
      -- "ping": answered already
    end
  end
end

-- conn:receive() -> data, "text" | "binary"; or nil, err once closed
-- (err.code "Closed", err.closeCode, err.reason). Pings are answered by the
-- engine and not returned; conn.onPong(data) sees pongs if set.
function Conn:receive()
  if self.closedWith then return nil, self.closedWith end
  -- A message the last read brought is taken from the queue without a
  -- native call or a loop: a caller's receive-and-send loop then compiles to
  -- one trace (an inner loop here would end its recording, "inner loop in
  -- root trace"; a native call splits it).
  local q, i = self.q, self.qi
  if q[i] == "message" then
    local data, binary = q[i + 1], q[i + 2]
    q[i], q[i + 1] = nil, nil
    self.qi = i + 3
    return data, binary and "binary" or "text"
  end
  return receiveMore(self)
end

-- conn:send(data [, "text" | "binary"]) -> true | nil, err
function Conn:send(data, kind)
  if type(data) ~= "string" then args.fail(1, "send", "string", data) end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error("bad argument #2 to 'send' (\"text\" or \"binary\" expected)", 2)
  end
  if self.closedWith or self.failedWith then return nil, self.closedWith or self.failedWith end
  -- One native builds the frame and writes it (as stream:write would), so
  -- no Lua string is made for it: ok false means the session sends no more.
  -- The answer is unwrapped here rather than by finish(), a vararg function
  -- the trace after the native call did not compile.
  local done, ok, err = sendTo(self.session, data, kind == "binary", self.stream, true)
  if not done then raiseCanceled() end
  if ok == false then return nil, closedError(1000, "", "the WebSocket is closing") end
  return ok, err
end

-- conn:ping([data]) -> true | nil, err
function Conn:ping(data)
  if self.closedWith or self.failedWith then return nil, self.closedWith or self.failedWith end
  local frame = native.ping(self.session, data or "")
  if not frame then return nil, closedError(1000, "", "cannot ping (closing, or more than 125 bytes)") end
  return self.stream:write(frame)
end

-- conn:close([code [, reason]]) -> true: starts the closing handshake and
-- waits (up to 2 s) for the peer's close, then closes the connection. When
-- another task is in conn:receive(), that receive completes the handshake
-- (and returns nil, err) instead.
local function validCloseCode(code)
  return code == 1000 or code == 1001 or code == 1002 or code == 1003 or (code >= 1007 and code <= 1014)
    or (code >= 3000 and code <= 4999)
end

function Conn:close(code, reason)
  code = code or 1000
  if type(code) ~= "number" or not validCloseCode(code) then
    error("bad argument #1 to 'close' (a close code 1000-1003, 1007-1014 or 3000-4999 expected, got "
      .. tostring(code) .. ")", 2)
  end
  if reason ~= nil and type(reason) ~= "string" then args.fail(2, "close", "string", reason) end
  if self.closedWith or self.failedWith then return true end
  local frame = native.close(self.session, code, reason or "")
  if frame then self.stream:write(frame) end
  if self.receiving then
    -- The task in receive() completes the handshake; a peer that never
    -- answers is cut off after 2 s all the same.
    if not self.closeTimer then
      local stream = self.stream
      self.closeTimer = require("task").async(function()
        require("task").sleep(2)
        if not self.closedWith then stream:close() end
      end)
    end
    return true
  end
  self.stream:settimeout(2, 2)
  while not self.closedWith do
    local data, err = self:receive()
    if not data and err then break end
  end
  self.stream:close()
  return true
end

function Conn:isClosed() return self.closedWith ~= false end

-- The methods check self and their arguments first (evo.args.method), so
-- misuse names the method as the user called it.
do
  local function isConn(c) return getmetatable(c) == Conn end
  local function method(name, ...)
    Conn[name] = args.method(name, Conn[name], isConn, "WebSocket", ...)
  end
  method("receive")
  method("send", "string", "string?")
  method("ping", "string|number?")
  method("close", "number?", "string?")
  method("isClosed")
end

----------------------------------------------------------------- server

local function headerHas(value, token)
  if not value then return false end
  for part in gmatch(lower(value), "[^,]+") do
    if match(part, "^%s*(.-)%s*$") == token then return true end
  end
  return false
end

local function reject(res, status, message)
  res:send(status, message .. "\n", {["content-type"] = "text/plain; charset=utf-8",
    ["sec-websocket-version"] = status == 426 and "13" or nil})
  return nil, errors.new("BadHandshake", message)
end

-- ws.accept(req, res [, opts]) -> conn | nil, err
-- Answers the upgrade (101) and takes the connection over; a request that is
-- not a valid WebSocket handshake gets 400 (426 for a wrong version).
-- opts: protocols = {...} (the first the client offers that we support is
-- chosen: conn.protocol), deflate = true (permessage-deflate when offered),
-- maxMessage (16 MiB).
function ws.accept(req, res, opts)
  opts = opts or {}
  local h = req.headers
  if req.method ~= "GET" then return reject(res, 400, "a WebSocket handshake must be a GET") end
  if not headerHas(h.upgrade, "websocket") or not headerHas(h.connection, "upgrade") then
    return reject(res, 400, "not a WebSocket upgrade request")
  end
  if h["sec-websocket-version"] ~= "13" then return reject(res, 426, "unsupported WebSocket version") end
  local key = h["sec-websocket-key"]
  if not key or not native.validKey(key) then return reject(res, 400, "invalid Sec-WebSocket-Key") end

  local lines = {"HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Accept: " .. native.acceptKey(key)}
  local protocol
  if opts.protocols and h["sec-websocket-protocol"] then
    for offered in gmatch(h["sec-websocket-protocol"], "[^,%s]+") do
      for _, p in ipairs(opts.protocols) do
        if p == offered then protocol = p break end
      end
      if protocol then break end
    end
    if protocol then lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. protocol end
  end
  local deflate
  if opts.deflate ~= false and h["sec-websocket-extensions"] then
    local answer, options = native.negotiateDeflate(h["sec-websocket-extensions"])
    if answer then
      deflate = options
      lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. answer
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""

  local stream, err
  repeat  -- (waits while earlier pipelined responses are still being written)
    stream, err = finish(httpnative.upgrade(res, true))
  until (stream and stream ~= true) or err  -- true: the output drained, ask again
  if not stream then return nil, err end
  local ok, werr = stream:write(concat(lines, "\r\n"))
  if not ok then
    stream:close()
    return nil, werr
  end
  local conn = newConn(stream, "server", deflate, opts, {protocol = protocol, path = req.path, headers = h})
  rawset(req, "_websocket", conn)  -- closed when the handler returns (lib/http.lua)
  require("evo.webkit").holds(req)
  return conn
end

----------------------------------------------------------------- client

-- ws.connect(url [, opts]) -> conn | nil, err
-- url: ws:// or wss:// (TLS, verified like https). opts: protocols,
-- headers, timeout (seconds, for the connection and handshake), deflate
-- (true: offer permessage-deflate), ca, verify, maxMessage.
function ws.connect(url, opts)
  args.check(1, "connect", url, "string")
  opts = opts or {}
  local scheme, rest = match(url, "^(wss?)://(.+)$")
  if not scheme then return nil, errors.new("BadUrl", "not a ws:// or wss:// URL: " .. url) end
  local httpclient = require("evo.httpclient")
  local u, why = httpclient.parseUrl((scheme == "wss" and "https://" or "http://") .. rest)
  if not u then return nil, errors.new("BadUrl", "bad WebSocket URL (" .. why .. ")") end
  -- Header lines are checked before connecting: nothing may split the request head.
  local extra = {}
  if opts.protocols then extra[#extra + 1] = {"Sec-WebSocket-Protocol", concat(opts.protocols, ", ")} end
  for name, value in pairs(opts.headers or {}) do extra[#extra + 1] = {name, tostring(value)} end
  for _, h in ipairs(extra) do
    if not httpclient.validHeader(h[1], h[2]) then
      return nil, errors.new("BadHeader", "invalid header '" .. tostring(h[1]):gsub("%c", "?") .. "'")
    end
  end
  local tls
  if scheme == "wss" then tls = {servername = u.host, ca = opts.ca, verify = opts.verify ~= false} end
  local stream, cerr = net.connect({host = u.host, port = u.port, timeout = opts.timeout, tls = tls})
  if not stream then return nil, cerr end
  if opts.timeout then stream:settimeout(opts.timeout, opts.timeout) end

  local key = native.clientKey()
  local lines = {"GET " .. u.target .. " HTTP/1.1", "Host: " .. u.hostHeader, "Upgrade: websocket",
    "Connection: Upgrade", "Sec-WebSocket-Key: " .. key, "Sec-WebSocket-Version: 13"}
  if opts.deflate then lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. native.clientDeflateOffer() end
  for _, h in ipairs(extra) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  local ok, werr = stream:write(concat(lines, "\r\n"))
  if not ok then
    stream:close()
    return nil, werr
  end

  local after  -- the bytes after the 101
  local function fail(message)
    stream:close()
    return nil, errors.new("BadHandshake", message)
  end
  -- The response head, parsed by llhttp (src/modules/http_response_parser.cpp);
  -- the bytes after a 101 are the server's first frames.
  local p, head = parser.parser(false)
  while true do
    local kind, a, b = parser.next(p)
    if kind == "head" then
      head = a
      if head.status ~= 101 then
        return fail("the server answered " .. head.status .. " " .. head.reason .. " instead of 101")
      end
    elseif kind == "done" then
      after = a
      break
    elseif kind == "error" then
      if b then
        stream:close()
        return nil, errors.new("EOF", "the server closed the connection during the handshake")
      end
      return fail("malformed handshake response: " .. a)
    elseif not kind then
      local okr, data, rerr = pcall(stream.read, stream)
      if not okr then  -- cancelled: the half-open handshake is closed at once
        stream:close()
        error(data, 0)
      end
      if data then
        parser.feed(p, data)
      elseif rerr then
        stream:close()
        return nil, rerr
      else
        parser.finish(p)
      end
    end
  end
  local headers = head.headers
  if not headerHas(headers.upgrade, "websocket") or not headerHas(headers.connection, "upgrade") then
    return fail("the 101 response lacks Upgrade: websocket")
  end
  if headers["sec-websocket-accept"] ~= native.acceptKey(key) then
    return fail("wrong Sec-WebSocket-Accept")
  end
  local protocol = headers["sec-websocket-protocol"]
  if protocol then
    local offered = false
    for _, p in ipairs(opts.protocols or {}) do if p == protocol then offered = true end end
    if not offered then return fail("the server chose a subprotocol we did not offer: " .. protocol) end
  end
  local deflate
  if headers["sec-websocket-extensions"] then
    if not opts.deflate then return fail("the server chose an extension we did not offer") end
    deflate = native.parseDeflateResponse(headers["sec-websocket-extensions"])
    if not deflate then return fail("invalid permessage-deflate response") end
  end
  if opts.timeout then stream:settimeout(0, 0) end
  local conn = newConn(stream, "client", deflate, opts, {protocol = protocol, headers = headers})
  if after ~= "" then  -- frames sent right behind the 101
    local ok, out = feed(conn.session, after)
    if out then stream:write(out) end
    if not ok then protocolFailure(conn) end
  end
  return conn
end

return ws
