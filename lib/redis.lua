-- redis: a Redis client (RESP2 and RESP3) on net Streams, colourless, with
-- automatic pipelining.
--
--   local redis = require("redis")
--   local r = assert(redis.connect("redis://127.0.0.1:6379/0"))
--   assert(r:set("k", "v", "EX", 10))
--   print(r:get("k"))                      --> v
--   print(r:call("INCRBY", "n", 5))        --> 5
--
-- Commands from concurrent tasks on one connection leave in one write (the
-- first one waits for the loop's next turn while the others add theirs) and
-- their replies are matched in order. One task at a time reads for everyone
-- (the oldest waiting one), handing the socket on when its own reply is in;
-- a task cancelled while it waits leaves its place in the queue, and its
-- reply, when it comes, is dropped. See docs/redis.md.
local native = require("evo.resp")
local net = require("net")
local netnative = require("evo.net")
local tasknative = require("evo.task")
local errors = require("evo.errors")
local args = require("evo.args")
local url = require("url")

local type, error, select, setmetatable, tostring, tonumber = type, error, select, setmetatable, tostring, tonumber
local concat, upper, isyieldable = table.concat, string.upper, coroutine.isyieldable
local encode, feed, pop, newParser = native.encode, native.feed, native.pop, native.parser
local sread, swrite, setRef = netnative.stream.read, netnative.stream.write, netnative.stream.setRef
local prepare, suspend, wake, nyield = tasknative.prepare, tasknative.suspend, tasknative.wake, tasknative.yield
local raiseCanceled = require("evo.wait").raiseCanceled
local blocking = tasknative.mode() == "blocking"

local redis = {}
local null = native.null
redis.null = null

-- An error reply "WRONGTYPE Operation against a key..." -> err.code
-- "WRONGTYPE", err.message the rest; a reply without a code word is "ERR".
local function replyError(message)
  local code, rest = message:match("^(%u[%u%d_]*) (.*)$")
  if not code then
    code = message:match("^(%u[%u%d_]*)$")
    rest = ""
  end
  if not code then code, rest = "ERR", message end
  return errors.new(code, rest)
end
native.setErrorMaker(replyError)
redis.replyError = replyError

----------------------------------------------------------------- options

local function parseUrl(n, fname, s)
  local u, err = url.parse(s)
  if not u or (u.scheme ~= "redis" and u.scheme ~= "rediss" and u.scheme ~= "unix") then
    args.error(n, fname, "not a redis:// URL: " .. (err and tostring(err) or s), 3)
  end
  local o = {}
  if u.scheme == "unix" then
    o.path = u.path
  else
    o.host = (u.host or "127.0.0.1"):gsub("^%[(.*)%]$", "%1")
    if o.host == "" then o.host = "127.0.0.1" end
    o.port = tonumber(u.port) or 6379
    o.tls = u.scheme == "rediss" or nil
    local db = (u.path or ""):match("^/(%d+)$")
    o.db = db and tonumber(db)
  end
  if u.user and u.user ~= "" then o.user = url.unescape(u.user) end
  if u.password and u.password ~= "" then o.password = url.unescape(u.password) end
  for k, v in pairs(url.parseQuery(u.query or "")) do
    if k == "protocol" or k == "db" or k == "timeout" or k == "connectTimeout" then o[k] = tonumber(v) end
  end
  return o
end

local function options(n, fname, o)
  if type(o) == "string" then return parseUrl(n, fname, o) end
  if o == nil then return {host = "127.0.0.1", port = 6379} end
  if type(o) ~= "table" then args.fail(n, fname, "string or table", o, 3) end
  local c = {}
  for k, v in pairs(o) do c[k] = v end
  if c.url then
    for k, v in pairs(parseUrl(n, fname, c.url)) do
      if c[k] == nil then c[k] = v end
    end
  end
  if not c.path then
    c.host = c.host or "127.0.0.1"
    c.port = c.port or 6379
    args.port(n, fname, c.port, 1, 3)
  end
  if c.protocol ~= nil and c.protocol ~= 2 and c.protocol ~= 3 then args.error(n, fname, "protocol must be 2 or 3", 3) end
  for _, k in ipairs({"timeout", "connectTimeout", "db"}) do
    if c[k] ~= nil and (type(c[k]) ~= "number" or c[k] < 0) then
      args.error(n, fname, k .. " must be a number of 0 or more", 3)
    end
  end
  return c
end

----------------------------------------------------------------- the client

local Client = {}
local ClientMeta = {__name = "RedisClient"}

-- A waiter: one command (want = 1) or a batch (pipeline, transaction) in
-- the queue of replies. done: its result is settled (a reply, or a failure
-- of the connection); canceled: its task stopped waiting, so its reply is
-- dropped when it comes; me/id: its suspended task, when it sleeps.

local function settle(w, tag, value)
  w.done = true
  if tag == 2 then
    w.err = value
  elseif tag == 0 then  -- a failure of the connection
    w.err, w.failed = value, true
  else
    w.value = value
  end
  local me = w.me
  if me then
    w.me = nil
    wake(me, w.id)
  end
end

-- Every command in flight fails with err; the stream is closed, and the next
-- command reconnects (unless reconnect = false).
local function failAll(c, err)
  local s = c.stream
  c.stream, c.parser = false, false
  if s then s:close() end
  c.out, c.nout = {}, 0
  local q = c.queue
  for i = c.head, c.tail do
    local w = q[i]
    q[i] = nil
    if w and not w.done then settle(w, 0, err) end
  end
  c.head, c.tail = 1, 0
  c.lastError = err
end

-- The next reply: settles the oldest waiter (a batch collects its replies).
local function deliver(c, tag, value)
  if tag == 3 then  -- a RESP3 push outside pub/sub (client tracking...): handed to onPush
    if c.onPush then c.onPush(value) end
    return
  end
  local head = c.head
  local w = c.queue[head]
  if not w then
    failAll(c, errors.new("ProtocolError", "a reply came with no command waiting for it"))
    return
  end
  local want = w.want
  if want ~= 1 then
    local got = w.got
    local n = #got + 1
    got[n] = value  -- an error reply stays an error object in its place
    if n < want then return end
    tag, value = 1, got
  end
  c.queue[head] = nil
  c.head = head + 1
  if head == c.tail then setRef(c.stream, false) end  -- idle: the connection keeps no script alive
  if not w.canceled then settle(w, tag, value) end
end

-- Wakes the oldest sleeping waiter, so that it takes over the reading.
local function handOff(c)
  local q = c.queue
  for i = c.head, c.tail do
    local w = q[i]
    if w.me and not w.done then
      local me = w.me
      w.me = nil
      if wake(me, w.id) then return end
    end
  end
end

-- Reads and delivers replies until w is settled. can: this task may
-- suspend (false: the read blocks).
local function readFor(c, w, can)
  c.reader = w
  local parser = c.parser
  while not w.done do
    local tag, value = pop(parser)
    if tag then
      deliver(c, tag, value)
    elseif tag == false then
      failAll(c, errors.new("ProtocolError", value))
    else
      local ok, data, err = sread(c.stream, "chunk", nil, can)
      if not ok then  -- cancelled: someone else reads on, our reply will be dropped
        c.reader = false
        w.canceled = true
        handOff(c)
        raiseCanceled(3)
      end
      if data then
        feed(parser, data)
      else
        failAll(c, err or errors.new("EOF", "the server closed the connection"))
      end
    end
  end
  c.reader = false
  handOff(c)
end

local function onCancel(w) w.canceled, w.me = true, nil end

-- Waits for w's result: reads for everyone while no one else does, else
-- sleeps until the reader settles w or hands the reading on.
local function await(c, w, can)
  while not w.done do
    if not c.reader then
      readFor(c, w, can)
    elseif not can then
      error("a redis command cannot wait here while a task reads this connection: call it from a task " ..
        "(not from a callback, a __gc finalizer or a module's top level)", 4)
    else
      local me, id = prepare(true)
      if me == false then
        w.canceled = true
        raiseCanceled(3)
      end
      w.me, w.id = me, id
      if not suspend(onCancel, w) then
        w.canceled = true
        raiseCanceled(3)
      end
    end
  end
  return w
end

-- Writes every queued command in one write.
local function flush(c)
  local n = c.nout
  if n == 0 or not c.stream then return end
  local out = c.out
  local data = n == 1 and out[1] or concat(out, "", 1, n)
  for i = 1, n do out[i] = nil end
  c.nout = 0
  local ok, wok, werr = swrite(c.stream, isyieldable(), data)
  if ok and not wok then failAll(c, werr) end
end

local connect  -- (c) -> true | nil, err

local function ensureConnected(c)
  if c.stream then return true end
  if c.closed then return nil, errors.new("Closed", "the redis client is closed") end
  if c.dialing then  -- another task is connecting: wait for it
    local list = c.dialWaiters
    local me, id = prepare(isyieldable())
    if me == false then raiseCanceled(3) end
    if me then
      list[#list + 1] = {me, id}
      if not suspend() then raiseCanceled(3) end
    end
    if c.stream then return true end
    return nil, c.lastError or errors.new("Closed", "not connected")
  end
  if c.everConnected and c.opts.reconnect == false then
    return nil, c.lastError or errors.new("Closed", "the connection was lost")
  end
  c.dialing = true
  local ok, err = connect(c)
  c.dialing = false
  local list = c.dialWaiters
  c.dialWaiters = {}
  for i = 1, #list do wake(list[i][1], list[i][2]) end
  return ok, err
end

-- Sends wire (want replies) and waits for them: the waiter, settled.
local function send(c, wire, want, dial)
  if dial ~= false then
    local ok, err = ensureConnected(c)
    if not ok then return {done = true, err = err, failed = true} end
  end
  local w = {want = want, got = want ~= 1 and {} or nil}
  if c.head > c.tail then setRef(c.stream, true) end  -- busy: the process waits for the replies
  local tail = c.tail + 1
  c.tail = tail
  c.queue[tail] = w
  local n = c.nout + 1
  c.nout = n
  c.out[n] = wire
  local can = not blocking and isyieldable()
  if not can then
    flush(c)
    return await(c, w, false)
  end
  if not c.flushing then
    -- Cork: the tasks ready in this turn of the loop add their commands,
    -- then all of them leave in one write.
    c.flushing = true
    local ok = nyield(true)
    c.flushing = false
    flush(c)
    if not ok then
      w.canceled = true
      raiseCanceled(2)
    end
  end
  return await(c, w, true)
end

local function result(w)
  if w.err then return nil, w.err end
  return w.value
end

-- Replaces the generic message of args.fail with the argument's real type.
local function badArgument(fname, i, t)
  error(("bad argument #%d to '%s' (string expected, got %s)"):format(i, fname, t), 3)
end

local function isClient(v) return getmetatable(v) == ClientMeta end

function Client:call(...)
  if not isClient(self) then args.badSelf("call", "RedisClient", self) end
  if type((...)) ~= "string" then args.fail(1, "call", "string", (...)) end
  local wire, i, t = encode(...)
  if not wire then badArgument("call", i, t) end
  return result(send(self, wire, 1))
end

-- Runs the handshake on a fresh stream: HELLO, AUTH, SELECT, CLIENT SETNAME.
local function handshake(c)
  local o = c.opts
  local function run(...)
    local w = send(c, encode(...), 1, false)
    if w.err then return nil, w.err end
    return true
  end
  local ok, err = true, nil
  if o.protocol == 3 then
    if o.password then
      ok, err = run("HELLO", 3, "AUTH", o.user or "default", o.password)
    else
      ok, err = run("HELLO", 3)
    end
  elseif o.password then
    if o.user then ok, err = run("AUTH", o.user, o.password) else ok, err = run("AUTH", o.password) end
  end
  if ok and o.db and o.db ~= 0 then ok, err = run("SELECT", o.db) end
  if ok and o.name then ok, err = run("CLIENT", "SETNAME", o.name) end
  return ok, err
end

local function dialOnce(c)
  local o = c.opts
  local s, err
  if o.path then
    s, err = net.connect({path = o.path})
  else
    s, err = net.connect({host = o.host, port = o.port, timeout = o.connectTimeout or o.timeout or 10, tls = o.tls})
  end
  if not s then return nil, err end
  if o.timeout and o.timeout > 0 then s:settimeout(o.timeout) end
  c.stream, c.parser = s, newParser({maxDepth = o.maxDepth, maxBulk = o.maxBulk})
  local ok, herr = handshake(c)
  if not ok then
    failAll(c, herr)
    return nil, herr
  end
  return true
end

-- Connects, retrying a refused or lost connection with backoff (50 ms,
-- doubling, at most 2 s, `retries` times) after the first success.
function connect(c)
  local ok, err = dialOnce(c)
  local delay, tries = 0.05, c.everConnected and (c.opts.retries or 5) or 0
  while not ok and tries > 0 and not c.closed and (err.code ~= "NOAUTH" and err.code ~= "WRONGPASS") do
    if tasknative.sleep(delay, isyieldable()) == false then raiseCanceled(2) end
    delay, tries = math.min(delay * 2, 2), tries - 1
    ok, err = dialOnce(c)
  end
  if ok then c.everConnected = true else c.lastError = err end
  return ok, err
end

local function newClient(o)
  -- Every field is set (false for none): a missing one would be a command.
  return setmetatable({opts = o, queue = {}, head = 1, tail = 0, out = {}, nout = 0, dialWaiters = {},
    stream = false, parser = false, reader = false, flushing = false, dialing = false, closed = false,
    everConnected = false, lastError = false, onPush = false}, ClientMeta)
end

-- redis.connect(url | opts) -> client | nil, err
function redis.connect(o)
  local opts = options(1, "redis.connect", o)
  local c = newClient(opts)
  local ok, err = ensureConnected(c)
  if not ok then return nil, err end
  return c
end

-- close(): fails what is in flight with Closed; later calls return Closed.
function Client:close()
  self.closed = true
  if self.stream then failAll(self, errors.new("Closed", "the redis client is closed")) end
end

function Client:isConnected() return self.stream ~= false end

----------------------------------------------------------------- batches

local Batch = {}
local BatchMeta = {__name = "RedisPipeline"}

function Batch:call(...)
  if type((...)) ~= "string" then args.fail(1, "call", "string", (...)) end
  local wire, i, t = encode(...)
  if not wire then badArgument("call", i, t) end
  local n = self.n + 1
  self.n, self.wires[n] = n, wire
  return self
end

BatchMeta.__index = function(_, key)
  local m = Batch[key]
  if m ~= nil then return m end
  if type(key) ~= "string" then return nil end
  local name = upper(key)
  local f = function(self, ...)
    local wire, i, t = encode(name, ...)
    if not wire then badArgument(key, i - 1, t) end
    local n = self.n + 1
    self.n, self.wires[n] = n, wire
    return self
  end
  Batch[key] = f
  return f
end

local function collect(fname, fn)
  if type(fn) ~= "function" then args.fail(1, fname, "function", fn, 3) end
  local b = setmetatable({n = 0, wires = {}}, BatchMeta)
  fn(b)
  return b
end

-- pipeline(fn) -> results | nil, err: fn(p) queues commands (p:set(...),
-- p:call(...)); they leave in one write. results[i] is the reply to the
-- i-th command (an error reply is an error object in its place).
function Client:pipeline(fn)
  local b = collect("pipeline", fn)
  if b.n == 0 then return {} end
  local w = send(self, concat(b.wires), b.n)
  if w.failed then return nil, w.err end
  return w.value
end

-- transaction(fn) -> results | nil, err: the commands fn queues run between
-- MULTI and EXEC, atomically. A command the server refuses to queue aborts
-- all of them (err.code "EXECABORT"); results[i] may be an error object.
function Client:transaction(fn)
  local b = collect("transaction", fn)
  local w = send(self, encode("MULTI") .. concat(b.wires) .. encode("EXEC"), b.n + 2)
  if w.failed then return nil, w.err end
  local got = w.value
  local exec = got[b.n + 2]
  if errors.is(exec) then
    for i = 2, b.n + 1 do  -- the reason is the refused command's error
      if errors.is(got[i]) then exec.cause = got[i] break end
    end
    return nil, exec
  end
  if exec == null then return nil, errors.new("Aborted", "the transaction was aborted") end
  return exec
end

----------------------------------------------------------------- pub/sub

local Subscriber = {}
local SubscriberMeta = {__name = "RedisSubscriber", __index = Subscriber}

local function subscribeWith(c, verb, fname, ...)
  local n = select("#", ...)
  if n == 0 then args.error(1, fname, "at least one channel expected", 3) end
  for i = 1, n do
    if type((select(i, ...))) ~= "string" then args.fail(i, fname, "string", (select(i, ...)), 3) end
  end
  local sub = newClient(c.opts)
  local ok, err = ensureConnected(sub)
  if not ok then return nil, err end
  local s = setmetatable({client = sub, pending = {}, head = 1}, SubscriberMeta)
  ok, err = s:_send(verb, ...)
  if not ok then return nil, err end
  return s
end

-- subscribe(channel, ...) / psubscribe(pattern, ...) -> subscriber | nil, err:
-- a connection of its own in subscribed mode; s:receive() gives the messages.
function Client:subscribe(...) return subscribeWith(self, "SUBSCRIBE", "subscribe", ...) end
function Client:psubscribe(...) return subscribeWith(self, "PSUBSCRIBE", "psubscribe", ...) end

-- Reads the next pub/sub frame (RESP2 array or RESP3 push).
local function nextFrame(s)
  local c = s.client
  if not c.stream then return nil, c.lastError or errors.new("Closed", "the subscriber is closed") end
  while true do
    local tag, value = pop(c.parser)
    if tag then return value, tag end
    if tag == false then
      local err = errors.new("ProtocolError", value)
      failAll(c, err)
      return nil, err
    end
    local ok, data, err = sread(c.stream, "chunk", nil, not blocking and isyieldable())
    if not ok then raiseCanceled(3) end
    if not data then
      err = err or errors.new("EOF", "the server closed the connection")
      failAll(c, err)
      return nil, err
    end
    feed(c.parser, data)
  end
end

-- Sends a (un)subscribe command; its confirmations come back as frames
-- that receive() skips (the counts are kept in s.count).
function Subscriber:_send(...)
  local c = self.client
  setRef(c.stream, true)  -- a subscriber keeps the process alive until closed
  local ok, wok, err = swrite(c.stream, not blocking and isyieldable(), encode(...))
  if not ok then raiseCanceled(2) end
  if not wok then return nil, err end
  return true
end

local kinds = {message = true, pmessage = true, smessage = true}

-- receive() -> {kind = "message", channel, message} or {kind = "pmessage",
-- pattern, channel, message} | nil, err. Subscription confirmations are
-- counted in s.count, not returned.
function Subscriber:receive()
  while true do
    local frame, tag = nextFrame(self)
    if not frame then return nil, tag end
    if tag == 2 then return nil, frame end
    if type(frame) == "table" then
      local kind = frame[1]
      if kinds[kind] then
        if kind == "pmessage" then
          return {kind = kind, pattern = frame[2], channel = frame[3], message = frame[4]}
        end
        return {kind = kind, channel = frame[2], message = frame[3]}
      elseif type(frame[3]) == "number" then
        self.count = frame[3]
      end
    end
  end
end

function Subscriber:subscribe(...) return self:_send("SUBSCRIBE", ...) end
function Subscriber:psubscribe(...) return self:_send("PSUBSCRIBE", ...) end
function Subscriber:unsubscribe(...) return self:_send("UNSUBSCRIBE", ...) end
function Subscriber:punsubscribe(...) return self:_send("PUNSUBSCRIBE", ...) end
function Subscriber:settimeout(t) if self.client.stream then self.client.stream:settimeout(t) end end
function Subscriber:close() self.client:close() end

----------------------------------------------------------------- methods

-- Every other name is a command: r:hset(k, f, v) is r:call("HSET", k, f, v).
ClientMeta.__index = function(_, key)
  local m = Client[key]
  if m ~= nil then return m end
  if type(key) ~= "string" then return nil end
  local name = upper(key)
  local f = function(self, ...)
    if not isClient(self) then args.badSelf(key, "RedisClient", self) end
    local wire, i, t = encode(name, ...)
    if not wire then badArgument(key, i - 1, t) end
    return result(send(self, wire, 1))
  end
  Client[key] = f
  return f
end

redis.Client = Client
return redis
