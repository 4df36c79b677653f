-- evo.h2client: HTTP/2 for http.request (lib/evo/httpclient.lua).
--
-- One connection per origin, shared by every task requesting from it; each
-- request is a stream. The engine is src/proto/h2_session.h through
-- evo.h2client (sans I/O); this file owns the socket.
--
-- No background task reads the connection: whichever request waits for
-- something (its response head, body, or window for its upload) reads for
-- everyone while no one else does, and wakes the streams the bytes were for;
-- the others sleep until woken or handed the reading (as the redis and
-- postgres clients do with their reply queue). So the connection works the
-- same in the blocking Io mode, where requests simply take turns, and an
-- idle connection costs no task.
--
-- Flow control: a response body stays counted against the stream's window
-- until the caller reads it (consume() then), so a caller that does not
-- read stops the server after the window; a request body is queued in the
-- session and waits while more than HIGH_WATER bytes of it are not sent.
local net = require("net")
local errors = require("evo.errors")
local native = require("evo.h2native")
local parser = require("evo.httpresponse")
local tasknative = require("evo.task")
local raiseCanceled = require("evo.wait").raiseCanceled

local type, tostring, tonumber, pairs, next, pcall, error, setmetatable =
  type, tostring, tonumber, pairs, next, pcall, error, setmetatable
local lower, find = string.lower, string.find
local isyieldable = coroutine.isyieldable
local prepare, suspend, wake = tasknative.prepare, tasknative.suspend, tasknative.wake
local blocking = tasknative.mode() == "blocking"
local nreceive, ntake, nrequest, nwrite, nfinish, nconsume, nbuffered, nreset, nnext, nstreams =
  native.receive, native.takeOutput, native.request, native.write, native.finish, native.consume,
  native.buffered, native.reset, native.next, native.streams
local npeer = native.peerSettings
local remove = table.remove

local h2 = {}

local HIGH_WATER = 64 * 1024  -- request body queued in the session before the writer waits
local REFUSED_STREAM, CANCEL = 7, 8

-- A connection per origin until its streams reach the server's
-- SETTINGS_MAX_CONCURRENT_STREAMS; then another, up to this many (as
-- browsers, Go and undici do). Past the cap, new streams go to the
-- least-loaded connection and wait in its session for a stream to close.
h2.maxConnectionsPerOrigin = 8

local pools = {}    -- pool key -> {c, ...}: the origin's live connections
local dialing = {}  -- pool key -> tasks waiting for a connection being made
local h1only = {}   -- pool key -> true: ALPN chose HTTP/1.1 there, or Upgrade: h2c was not taken
local h2known = {}  -- pool key -> true: the server took Upgrade: h2c; new connections use prior knowledge

-- Requests that may be sent again when a pooled connection turns out dead
-- (RFC 9110 9.2.2); POST and PATCH are not.
local IDEMPOTENT = {GET = true, HEAD = true, OPTIONS = true, TRACE = true, PUT = true, DELETE = true}

----------------------------------------------------------------- waking

local function wakeStream(st)
  local me = st.me
  if me then
    st.me = nil
    wake(me, st.wid)
  end
end

local function wakeAll(list)
  for i = 1, #list do wake(list[i][1], list[i][2]) end
end

-- Tasks waiting for the server's first SETTINGS on c (to know its stream
-- limit) are woken when they come, when c fails, and when its reader leaves.
local function wakeSettleWaiters(c)
  local list = c.settleWaiters
  if list[1] then
    c.settleWaiters = {}
    wakeAll(list)
  end
end

-- The reader leaves: one sleeping request takes the reading over.
local function handOff(c)
  for _, st in pairs(c.streams) do
    if st.me then
      wakeStream(st)
      return
    end
  end
  wakeSettleWaiters(c)
end

local function removeConn(c)
  local list = pools[c.key]
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == c then remove(list, i) end
  end
  if not list[1] then pools[c.key] = nil end
end

-- The server's SETTINGS: its stream limit, and whether they came at all.
local function noteSettings(c)
  local got, limit = npeer(c.sess)
  c.limit = limit
  if got and not c.settled then
    c.settled = true
    wakeSettleWaiters(c)
  end
end

local function idle(c)
  if next(c.streams) == nil then
    c.quiet = true  -- until bytes come again: the server may close it meanwhile
    if c.goaway or c.dead then
      if not c.stream:isClosed() then c.stream:close() end
    else
      c.stream:ref(false)  -- an idle connection does not keep the process alive
    end
  end
end

-- The connection failed: every open stream fails with err.
local function failAll(c, err)
  if c.dead then return end
  c.dead = err
  removeConn(c)
  c.stream:close()
  for id, st in pairs(c.streams) do
    c.streams[id] = nil
    st.err = st.err or err
    st.closed = st.closed or -1
    wakeStream(st)
  end
  c.open = 0
  wakeSettleWaiters(c)
end

----------------------------------------------------------------- events

local function dispatch(c)
  local sess = c.sess
  while true do
    local kind, id, a, b = nnext(sess)
    if not kind then return end
    local st = c.streams[id]
    if kind == "response" then
      if st then
        st.status, st.headers = a, b
        wakeStream(st)
      end
    elseif kind == "data" then
      if st then
        local tail = st.tail + 1
        st.tail, st.chunks[tail] = tail, a
        wakeStream(st)
      end
    elseif kind == "trailers" then
      if st then st.trailers = a end
    elseif kind == "end" then
      if st then
        st.ended = true
        wakeStream(st)
      end
    elseif kind == "close" then
      if st then
        c.streams[id] = nil
        c.open = c.open - 1
        st.closed = a
        wakeStream(st)
        idle(c)
      end
    elseif kind == "progress" then
      if st then wakeStream(st) end
    elseif kind == "goaway" then
      -- New requests go to a new connection; streams above the last one the
      -- server processed are closed by the session (REFUSED_STREAM).
      c.goaway, c.goawayCode = id, a
      removeConn(c)
    end
  end
end

-- Writes what the session has ready. One writer at a time keeps the frames
-- in order (HPACK state depends on it); it writes until nothing is left, so
-- what others queued meanwhile goes too. The write is shielded: a request
-- cancelled mid-write must not cut a frame in half for everyone.
local shield
local function flush(c)
  if c.writing or c.dead then return end
  c.writing = true
  local sess, stream = c.sess, c.stream
  while true do
    local out = ntake(sess)
    dispatch(c)
    if out == "" then break end
    local ok, wok, werr = pcall(shield, stream.write, stream, out)
    if not ok then  -- written, but a cancellation was due meanwhile: raised now
      c.writing = false
      error(wok, 0)
    end
    if not wok then
      c.writing = false
      failAll(c, werr)
      return
    end
  end
  c.writing = false
end

-- Reads for everyone until cond(st) holds. Cancellation while reading
-- leaves the connection to the others.
local function pump(c, st, cond)
  c.reader = st
  local stream = c.stream
  while not cond(st) and not c.dead do
    local ok, data, err = pcall(stream.read, stream)
    if not ok then
      c.reader = false
      handOff(c)
      error(data, 0)
    end
    if data then
      c.quiet = false
      local more = nreceive(c.sess, data)
      noteSettings(c)
      dispatch(c)
      flush(c)
      if not more then
        failAll(c, errors.new("ProtocolError", "the HTTP/2 session ended (" .. native.errorName(c.goawayCode or 1) .. ")"))
      end
    else
      failAll(c, err or errors.new("EOF", "the server closed the HTTP/2 connection"))
    end
  end
  c.reader = false
  handOff(c)
end

local function onCancel(st) st.me = nil end

-- Waits until cond(st) holds or the connection fails.
local function waitFor(c, st, cond)
  while not cond(st) and not c.dead do
    if not c.reader then
      pump(c, st, cond)
    else
      if blocking or not isyieldable() then
        error("an HTTP/2 request cannot wait here while a task reads its connection: call it from a task", 3)
      end
      local me, id = prepare(true)
      if me == false then raiseCanceled(3) end
      st.me, st.wid = me, id
      if not suspend(onCancel, st) then raiseCanceled(3) end
    end
  end
end

----------------------------------------------------------------- connections

local function newConn(key, stream, opts, upgrading)
  local c = {key = key, stream = stream, sess = native.session(upgrading), streams = {}, open = 0, reader = false,
    writing = false, dead = false, goaway = false, settled = false, limit = math.huge, settleWaiters = {},
    quiet = false}
  if opts.timeout then stream:settimeout(opts.timeout, opts.timeout) end
  -- the preface and our SETTINGS (after an upgrade: once the 101 is in)
  if not upgrading then flush(c) end
  return c
end

local function newStream(c, id)
  local st = {id = id, chunks = {}, head = 1, tail = 0}
  c.streams[id] = st
  c.open = c.open + 1
  c.stream:ref(true)
  return st
end

local function settled(c) return c.settled or c.dead or c.goaway end

-- Waits for the server's first SETTINGS on c: until then its stream limit
-- is unknown, and a second request could be queued behind a limit of 1.
-- Reads them itself when no one else is reading.
local function waitSettled(c)
  local probe = {}
  local function done() return settled(c) end
  while not settled(c) do
    if not c.reader then
      pump(c, probe, done)
    else
      local me, id = prepare(true)
      if me == false then raiseCanceled(3) end
      c.settleWaiters[#c.settleWaiters + 1] = {me, id}
      if not suspend() then raiseCanceled(3) end
    end
  end
end

-- h2c by Upgrade (RFC 7540 3.2): the request goes out as HTTP/1.1 with
-- "Upgrade: h2c" and HTTP2-Settings (up.wire, made by httpclient). A 101
-- turns the connection into HTTP/2, the request being its stream 1; any
-- other answer is the HTTP/1.1 response, and the origin is then HTTP/1.1
-- only, as when ALPN chooses it.
-- -> c, st | nil, err | nil, nil, {stream, head, parser}
local function upgrade(key, stream, opts, up)
  local c = newConn(key, stream, opts, true)
  local ok, err = stream:write(up.wire)
  if not ok then return nil, err end
  local p, after = parser.parser(up.method == "HEAD"), nil
  while not after do
    local kind, a, b = parser.next(p)
    if kind == "head" then
      if a.status ~= 101 then
        h1only[key] = true
        return nil, nil, {stream = stream, head = a, parser = p}
      end
      if not find(lower(a.headers.upgrade or ""), "h2c", 1, true) then
        return nil, errors.new("BadResponse", "the 101 response does not upgrade to h2c")
      end
    elseif kind == "done" then
      after = a
    elseif kind == "error" then
      return nil, errors.new(b and "EOF" or "BadResponse", a)
    elseif kind == nil then
      local data, rerr = stream:read()
      if data then
        parser.feed(p, data)
      elseif rerr then
        return nil, rerr
      else
        parser.finish(p)
      end
    end
  end
  if not native.upgrade(c.sess, up.method == "HEAD") then
    return nil, errors.new("ProtocolError", "the HTTP/2 session could not take the upgrade")
  end
  h2known[key] = true
  local st = newStream(c, 1)
  flush(c)  -- the preface and our SETTINGS, after the 101
  if after ~= "" then
    local more = nreceive(c.sess, after)
    noteSettings(c)
    dispatch(c)
    flush(c)
    if not more then failAll(c, errors.new("ProtocolError", "the HTTP/2 session ended")) end
  end
  return c, st
end

-- A new connection to the origin -> c [, st] | nil, err | nil, nil, h1
-- (h1: {stream}, a TLS stream where ALPN chose HTTP/1.1, or {stream, head, parser}:
-- the HTTP/1.1 answer to an upgrade). state.stream: the socket, for the
-- caller to close when this raises (cancelled).
local function dial(u, key, opts, up, state)
  local tls
  if u.scheme == "https" then
    tls = {servername = u.host, ca = opts.ca, verify = opts.verify ~= false, alpn = {"h2", "http/1.1"}}
  end
  local stream, err = net.connect({host = u.host, port = u.port, timeout = opts.timeout, tls = tls})
  if not stream then return nil, err end
  state.stream = stream
  if tls then
    local info = stream:tlsInfo()
    if not info or info.alpn ~= "h2" then
      h1only[key] = true
      return nil, nil, {stream = stream}
    end
  end
  if up then
    local c, st, h1 = upgrade(key, stream, opts, up)
    if not c and not h1 then stream:close() end
    return c, st, h1
  end
  return newConn(key, stream, opts)
end

-- Waits for the dial in progress; -> nil, err when it failed (a dialer
-- that was cancelled leaves the next one to dial).
local function waitDial(waiters)
  local me, id = prepare(true)
  if me == false then raiseCanceled(3) end
  waiters[#waiters + 1] = {me, id}
  if not suspend() then raiseCanceled(3) end
  if waiters.failed then
    return nil, waiters.err or errors.new("ConnectFailed", "the HTTP/2 connection could not be made")
  end
  return true
end

local function dialNew(u, key, opts, up)
  local waiters = {}
  dialing[key] = waiters
  local state = {}
  local ok, c, st, h1 = pcall(dial, u, key, opts, up, state)
  dialing[key] = nil
  if ok and c then
    local list = pools[key]
    if not list then
      list = {}
      pools[key] = list
    end
    list[#list + 1] = c
  end
  waiters.failed = ok and not c and not h1
  waiters.err = waiters.failed and st or nil
  wakeAll(waiters)
  if not ok then
    if state.stream then state.stream:close() end
    error(c, 0)
  end
  if not c then return nil, st, h1 end
  return c, nil, nil, st
end

-- A connection to the origin for one more stream -> c [, nil, nil, st
-- (after an upgrade: our stream 1)] | nil, err | nil, nil, h1 (speak
-- HTTP/1.1: see dial) | nil (use HTTP/1.1).
--
-- The least-loaded live connection whose open streams are under the
-- server's SETTINGS_MAX_CONCURRENT_STREAMS; a connection whose SETTINGS
-- have not come yet is waited for (its limit may be 1). When every one is
-- full, a new connection, up to h2.maxConnectionsPerOrigin; past that the
-- least-loaded one (the stream waits in its session). Concurrent requests
-- wait for one dial at a time instead of each making one.
-- up: the upgrade request (http2 = "upgrade" on a bodyless request).
local function connection(u, key, opts, up)
  while true do
    if h1only[key] then return nil end
    local canWait = not blocking and isyieldable()
    local best, unsettled, least, live = nil, nil, nil, 0
    local list = pools[key]
    for i = 1, list and #list or 0 do
      local c = list[i]
      if not c.dead and not c.goaway then
        live = live + 1
        if not least or c.open < least.open then least = c end
        if canWait and not c.settled and c.open > 0 then
          unsettled = unsettled or c
        elseif c.open < c.limit and (not best or c.open < best.open) then
          best = c
        end
      end
    end
    if best then return best end
    local waiters = dialing[key]
    if canWait and unsettled then
      waitSettled(unsettled)
    elseif canWait and waiters then
      local ok, err = waitDial(waiters)
      if not ok then return nil, err end
    elseif least and live >= h2.maxConnectionsPerOrigin then
      return least
    elseif opts.http2 == "upgrade" and not h2known[key] and not up then
      return nil  -- a request that cannot carry the upgrade goes over HTTP/1.1
    else
      return dialNew(u, key, opts, not h2known[key] and up or nil)
    end
  end
end

function h2.closeIdle()
  for key, list in pairs(pools) do
    for i = #list, 1, -1 do
      local c = list[i]
      if c.open == 0 then
        remove(list, i)
        c.stream:close()
      end
    end
    if not list[1] then pools[key] = nil end
  end
  h1only, h2known = {}, {}
end

-- The HTTP2-Settings value for an Upgrade: h2c request.
h2.settingsHeader = native.settingsHeader

----------------------------------------------------------------- requests

-- What a response's _stream is for httpclient's Response: closing it before
-- the end resets the stream (CANCEL), never the connection.
local Shim = {}
Shim.__index = Shim
function Shim:close()
  local c, st = self.c, self.st
  if not st.closed and not c.dead then
    nreset(c.sess, st.id, CANCEL)
    pcall(flush, c)
  end
end
function Shim:isClosed() return self.st.closed ~= nil end

local function streamError(c, st)
  if st.err then return st.err end
  if c.dead then return c.dead end
  if st.closed == REFUSED_STREAM and c.goaway then
    return errors.new("GoAway", "the server went away (GOAWAY, last stream " .. c.goaway ..
      ") before processing the request")
  end
  return errors.new("StreamReset", "the server reset the HTTP/2 stream (" .. native.errorName(st.closed) .. ")")
end

local function hasHead(st) return st.status ~= nil or st.closed ~= nil end
local function hasBody(st) return st.head <= st.tail or st.ended or st.closed ~= nil end

local function bodyReader(c, st)
  return function()
    waitFor(c, st, hasBody)
    if st.head <= st.tail then
      local head = st.head
      local chunk = st.chunks[head]
      st.chunks[head], st.head = nil, head + 1
      if not st.closed and not c.dead then
        nconsume(c.sess, st.id, #chunk)
        flush(c)
      end
      return chunk
    end
    if st.ended then return nil, nil, "", st.trailers end
    return nil, streamError(c, st)
  end
end

-- The header list: lower-case names; Host becomes :authority.
local function headerList(u, method, headers, body, streamed)
  local list, n, have, authority = {}, 0, {}, u.hostHeader
  for name, value in pairs(headers) do
    local lname = lower(name)
    value = tostring(value)
    if lname == "host" then
      authority = value
    else
      list[n + 1], list[n + 2] = lname, value
      n = n + 2
    end
    have[lname] = true
  end
  local function add(name, value)
    if not have[name] then
      list[n + 1], list[n + 2] = name, value
      n = n + 2
    end
  end
  add("user-agent", "evo")
  add("accept-encoding", "gzip, deflate, br")
  if body then
    add("content-length", tostring(#body))
  elseif not streamed and (method == "POST" or method == "PUT" or method == "PATCH") then
    add("content-length", "0")
  end
  return list, authority
end

local function sendBody(c, st, body, reader, trailers)
  local sess, id = c.sess, st.id
  local function drained(s) return s.closed ~= nil or nbuffered(sess, id) <= HIGH_WATER end
  if body then
    nwrite(sess, id, body)
  else
    while true do
      local piece, err = reader()
      if piece == nil then
        if err ~= nil then
          nreset(sess, id, CANCEL)
          flush(c)
          return nil, errors.is(err) and err or errors.new("BodyError", tostring(err))
        end
        break
      end
      if type(piece) ~= "string" then
        nreset(sess, id, CANCEL)
        flush(c)
        return nil, errors.new("BodyError", "the body function gave a " .. type(piece) .. ", not a string")
      end
      if st.closed then break end
      nwrite(sess, id, piece)
      flush(c)
      waitFor(c, st, drained)
    end
  end
  if trailers ~= nil and not st.closed then  -- (opts.trailers: evo.httpclient checked the call)
    local list, terr = require("evo.httpclient").trailerList(trailers)
    if not list then
      nreset(sess, id, CANCEL)
      flush(c)
      return nil, terr
    end
    native.trailers(sess, id, list)
  elseif not st.closed then
    nfinish(sess, id)
  end
  flush(c)
  return true
end

-- One request on connection c -> fields for httpclient's Response | nil,
-- err, retry (retry: the server did not process it; it may go again).
-- st: stream 1 of an upgraded connection (the request went as HTTP/1.1).
local function exchange(c, u, method, headers, body, reader, trailers, st)
  local bodyless = reader == nil and (body == nil or body == "")
  if not st then
    local list, authority = headerList(u, method, headers, body, reader ~= nil)
    local id = nrequest(c.sess, method, u.scheme, authority, u.target, list, bodyless)
    if id < 0 then
      c.goaway = c.goaway or 0
      removeConn(c)
      return nil, errors.new("GoAway", "the HTTP/2 connection takes no more requests"), true
    end
    st = newStream(c, id)
  end
  local shim = setmetatable({c = c, st = st}, Shim)
  local ok, err, rerr = pcall(function()
    if bodyless then
      flush(c)
    else
      local sent, serr = sendBody(c, st, body ~= "" and body or nil, reader, trailers)
      if not sent then return nil, serr end
    end
    waitFor(c, st, hasHead)
    return true
  end)
  if not ok then  -- cancelled (or an error raised): the stream is abandoned
    shim:close()
    error(err, 0)
  end
  if not err then return nil, rerr end
  if not st.status then
    local retry = st.closed == REFUSED_STREAM and reader == nil
    return nil, streamError(c, st), retry
  end
  return {status = st.status, reason = "", headers = st.headers, version = "2.0",
    _stream = shim, _next = bodyReader(c, st), _reusable = false,
    _length = tonumber(st.headers["content-length"])}
end

local function lost(err)
  return errors.is(err, "EOF") or errors.is(err, "ECONNRESET") or errors.is(err, "EPIPE")
end

-- request(u, key, method, headers, body, reader, opts [, up]) -> fields | nil, err
-- | false, stream [, head, parser] (speak HTTP/1.1 on this new connection;
-- with head: the server answered the upgrade request over HTTP/1.1, the
-- body follows in parser) | false (HTTP/1.1).
-- up: {wire, method}, the HTTP/1.1 form of a bodyless request with
-- Upgrade: h2c (http2 = "upgrade").
--
-- Retries on a new connection when the server did not process the
-- request: a stream refused after GOAWAY, or (as HTTP/1.1 does with a stale
-- keep-alive socket) a connection that had gone quiet in the pool and is
-- found closed by this request, before any response, when the request is
-- idempotent and its body (if any) a string.
function h2.request(u, key, method, headers, body, reader, opts, up)
  local staleRetried = false
  for _ = 1, 3 do
    local c, err, h1, st = connection(u, key, opts, up)
    if not c then
      if err then return nil, err end
      if h1 then return false, h1.stream, h1.head, h1.parser end
      return false
    end
    local stale = c.quiet and not st
    local fields, rerr, retry = exchange(c, u, method, headers, body, reader, opts.trailers, st)
    if fields then return fields end
    if not retry and stale and not staleRetried and reader == nil and IDEMPOTENT[method] and lost(rerr) then
      retry, staleRetried = true, true
    end
    if not retry then return nil, rerr end
  end
  return nil, errors.new("GoAway", "the server kept refusing the request (GOAWAY)")
end

h2.connections = pools  -- for tests: the origins' live connections

shield = function(fn, ...)
  local task = require("task")
  shield = task.shield
  return shield(fn, ...)
end

return h2
