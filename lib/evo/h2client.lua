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
local tasknative = require("evo.task")
local raiseCanceled = require("evo.wait").raiseCanceled

local type, tostring, tonumber, pairs, next, pcall, error, setmetatable =
  type, tostring, tonumber, pairs, next, pcall, error, setmetatable
local lower = string.lower
local isyieldable = coroutine.isyieldable
local prepare, suspend, wake = tasknative.prepare, tasknative.suspend, tasknative.wake
local blocking = tasknative.mode() == "blocking"
local nreceive, ntake, nrequest, nwrite, nfinish, nconsume, nbuffered, nreset, nnext, nstreams =
  native.receive, native.takeOutput, native.request, native.write, native.finish, native.consume,
  native.buffered, native.reset, native.next, native.streams

local h2 = {}

local HIGH_WATER = 64 * 1024  -- request body queued in the session before the writer waits
local REFUSED_STREAM, CANCEL = 7, 8

local conns = {}    -- pool key -> the origin's current connection
local dialing = {}  -- pool key -> tasks waiting for a connection being made
local h1only = {}   -- pool key -> true: ALPN chose HTTP/1.1 there

----------------------------------------------------------------- waking

local function wakeStream(st)
  local me = st.me
  if me then
    st.me = nil
    wake(me, st.wid)
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
end

local function idle(c)
  if next(c.streams) == nil then
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
  if conns[c.key] == c then conns[c.key] = nil end
  c.stream:close()
  for id, st in pairs(c.streams) do
    c.streams[id] = nil
    st.err = st.err or err
    st.closed = st.closed or -1
    wakeStream(st)
  end
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
      if conns[c.key] == c then conns[c.key] = nil end
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
      local more = nreceive(c.sess, data)
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

local function newConn(key, stream, opts)
  local c = {key = key, stream = stream, sess = native.session(), streams = {}, reader = false,
    writing = false, dead = false, goaway = false}
  if opts.timeout then stream:settimeout(opts.timeout, opts.timeout) end
  flush(c)  -- the preface and our SETTINGS
  return c
end

-- The origin's connection: -> c | nil, err | nil, nil, stream (TLS chose
-- HTTP/1.1: the caller speaks HTTP/1.1 on it) | nil (use HTTP/1.1).
-- Concurrent first requests wait for one dial instead of each making one.
local function connection(u, key, opts)
  while true do
    if h1only[key] then return nil end
    local c = conns[key]
    if c and not c.dead and not c.goaway then return c end
    local waiters = dialing[key]
    if not waiters then break end
    if blocking or not isyieldable() then break end
    local me, id = prepare(true)
    if me == false then raiseCanceled(2) end
    waiters[#waiters + 1] = {me, id}
    if not suspend() then raiseCanceled(2) end
    if dialing[key] == nil and not conns[key] and not h1only[key] then
      return nil, waiters.err or errors.new("ConnectFailed", "the HTTP/2 connection could not be made")
    end
  end
  local waiters = {}
  dialing[key] = waiters
  local tls
  if u.scheme == "https" then
    tls = {servername = u.host, ca = opts.ca, verify = opts.verify ~= false, alpn = {"h2", "http/1.1"}}
  end
  local ok, stream, err = pcall(net.connect, {host = u.host, port = u.port, timeout = opts.timeout, tls = tls})
  dialing[key] = nil
  local c
  if ok and stream then
    local info = tls and stream:tlsInfo()
    if tls and (not info or info.alpn ~= "h2") then
      h1only[key] = true
    else
      c = newConn(key, stream, opts)
      conns[key] = c
    end
  end
  waiters.err = ok and err or nil
  for i = 1, #waiters do wake(waiters[i][1], waiters[i][2]) end
  if not ok then error(stream, 0) end
  if not stream then return nil, err end
  if not c then return nil, nil, stream end
  return c, nil, nil, true
end

function h2.closeIdle()
  for key, c in pairs(conns) do
    if next(c.streams) == nil then
      conns[key] = nil
      c.stream:close()
    end
  end
  h1only = {}
end

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
local function exchange(c, u, method, headers, body, reader, trailers)
  local list, authority = headerList(u, method, headers, body, reader ~= nil)
  local bodyless = reader == nil and (body == nil or body == "")
  local id = nrequest(c.sess, method, u.scheme, authority, u.target, list, bodyless)
  if id < 0 then
    c.goaway = c.goaway or 0
    if conns[c.key] == c then conns[c.key] = nil end
    return nil, errors.new("GoAway", "the HTTP/2 connection takes no more requests"), true
  end
  local st = {id = id, chunks = {}, head = 1, tail = 0}
  c.streams[id] = st
  c.stream:ref(true)
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

-- request(u, key, method, headers, body, reader, opts) -> fields | nil, err
-- | false, stream (speak HTTP/1.1 on this new connection) | false (HTTP/1.1).
function h2.request(u, key, method, headers, body, reader, opts)
  for _ = 1, 3 do
    local c, err, h1stream = connection(u, key, opts)
    if not c then
      if err then return nil, err end
      return false, h1stream
    end
    local fields, rerr, retry = exchange(c, u, method, headers, body, reader, opts.trailers)
    if fields then return fields end
    if not retry then return nil, rerr end
  end
  return nil, errors.new("GoAway", "the server kept refusing the request (GOAWAY)")
end

h2.connections = conns  -- for tests: the origins' current connections

shield = function(fn, ...)
  local task = require("task")
  shield = task.shield
  return shield(fn, ...)
end

return h2
