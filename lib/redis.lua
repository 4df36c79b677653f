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
local events = require("events")
local task = require("task")
local Timer = require("Timer")

local type, error, select, setmetatable, tostring, tonumber = type, error, select, setmetatable, tostring, tonumber
local concat, upper, isyieldable = table.concat, string.upper, coroutine.isyieldable
local encode, feed, pop, newParser = native.encode, native.feed, native.pop, native.parser
local sread, swrite, setRef = netnative.stream.read, netnative.stream.write, netnative.stream.setRef
local prepare, suspend, wake, nyield = tasknative.prepare, tasknative.suspend, tasknative.wake, tasknative.yield
local spawnTask = tasknative.spawn
local unpack, pairs = unpack, pairs
local raiseCanceled = require("evo.wait").raiseCanceled
local replyqueue = require("evo.replyqueue")
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

local handOff = replyqueue.handOff

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

local function cancelWaiter(_, w) w.canceled = true end

local function await(c, w, can) return replyqueue.await(c, w, can, readFor, cancelWaiter, "a redis command") end

-- Writes every queued command in one write.
local function flush(c)
  local n = c.nout
  if n == 0 or not c.stream then return end
  local out = c.out
  local data = n == 1 and out[1] or concat(out, "", 1, n)
  for i = 1, n do out[i] = nil end
  c.nout = 0
  local ok, wok, werr = swrite(c.stream, true, data)
  if ok and not wok then failAll(c, werr) end
end

local connect  -- (c) -> true | nil, err

local function ensureConnected(c)
  if c.stream then return true end
  if c.closed then return nil, errors.new("Closed", "the redis client is closed") end
  if c.dialing then  -- another task is connecting: wait for it
    local list = c.dialWaiters
    local me, id = prepare(true)
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
    if tasknative.sleep(delay, true) == false then raiseCanceled(2) end
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

-- A subscriber owns a connection in subscribed mode and remembers its
-- channels and patterns, so that after the connection is lost it connects
-- again and subscribes to them again. Two ways to read it, one at a time:
-- s:receive() (task style), or s:start(), which starts a task that reads on
-- its own and reports each message as a MESSAGE_RECEIVED event.
local Subscriber = events.class("RedisSubscriber", {"MESSAGE_RECEIVED", "CONNECTION_LOST", "CONNECTION_RESTORED"})

local function isSubscriber(v) return getmetatable(v) == Subscriber end

local function closedError() return errors.new("Closed", "the subscriber is closed") end

-- Records what the subscriber wants, so a reconnection can restore it.
-- UNSUBSCRIBE / PUNSUBSCRIBE without arguments drop every one.
local function remember(s, verb, ...)
  local n = select("#", ...)
  local set = (verb == "SUBSCRIBE" or verb == "UNSUBSCRIBE") and s.channelSet or s.patternSet
  local add = verb == "SUBSCRIBE" or verb == "PSUBSCRIBE"
  if not add and n == 0 then
    for k in pairs(set) do set[k] = nil end
    return
  end
  for i = 1, n do set[(select(i, ...))] = add or nil end
end

local function names(set)
  local list, n = {}, 0
  for k in pairs(set) do n = n + 1; list[n] = k end
  table.sort(list)  -- a stable order, for the server's confirmations and the tests
  return list, n
end

-- Writes one (un)subscribe command. Its confirmations come back as frames
-- that are counted in s.count, not returned. Without a connection the
-- command only updates what the next connection subscribes to.
local function sendVerb(s, ...)
  local c = s.client
  if not c.stream then return true end
  setRef(c.stream, true)  -- a subscriber keeps the process alive until closed
  local ok, wok, err = swrite(c.stream, not blocking and isyieldable(), encode(...))
  if not ok then raiseCanceled(3) end
  if not wok then
    failAll(c, err)
    return nil, err
  end
  return true
end

-- Connects (with the client's backoff) and subscribes to every channel and
-- pattern remembered.
local function resubscribe(s)
  local c = s.client
  local ok, err = ensureConnected(c)
  if not ok then return nil, err end
  setRef(c.stream, true)
  if s.timeout then c.stream:settimeout(s.timeout) end
  local list, n = names(s.channelSet)
  if n > 0 then
    ok, err = sendVerb(s, "SUBSCRIBE", unpack(list, 1, n))
    if not ok then return nil, err end
  end
  list, n = names(s.patternSet)
  if n > 0 then
    ok, err = sendVerb(s, "PSUBSCRIBE", unpack(list, 1, n))
    if not ok then return nil, err end
  end
  return true
end

local function subscribeWith(opts, verb, fname, ...)
  local n = select("#", ...)
  if n == 0 then args.error(1, fname, "at least one channel expected", 3) end
  for i = 1, n do
    if type((select(i, ...))) ~= "string" then args.fail(i, fname, "string", (select(i, ...)), 3) end
  end
  local sub = newClient(opts)
  local ok, err = ensureConnected(sub)
  if not ok then return nil, err end
  local s = setmetatable({client = sub, channelSet = {}, patternSet = {}, count = 0, reader = false, closed = false,
    lost = false, timeout = false}, Subscriber)
  remember(s, verb, ...)
  ok, err = sendVerb(s, verb, ...)
  if not ok then return nil, err end
  return s
end

-- subscribe(channel, ...) / psubscribe(pattern, ...) -> subscriber | nil, err:
-- a connection of its own in subscribed mode.
function Client:subscribe(...) return subscribeWith(self.opts, "SUBSCRIBE", "subscribe", ...) end
function Client:psubscribe(...) return subscribeWith(self.opts, "PSUBSCRIBE", "psubscribe", ...) end

-- Reads the next pub/sub frame (RESP2 array or RESP3 push); a lost
-- connection is closed and returned as nil, err.
local function nextFrame(s)
  local c = s.client
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
      if err and err.code == "Timeout" then return nil, err end  -- no message for a while: still subscribed
      err = err or errors.new("EOF", "the server closed the connection")
      failAll(c, err)
      return nil, err
    end
    feed(c.parser, data)
  end
end

local kinds = {message = true, pmessage = true, smessage = true}

-- The next message: {kind = "message", channel, message} or {kind =
-- "pmessage", pattern, channel, message}, or nil, err when the connection
-- is lost (s.lost is set then) or cannot be made again. A subscriber whose
-- connection was lost connects and subscribes again first.
local function nextMessage(s)
  if s.closed then return nil, closedError() end
  local c = s.client
  if not c.stream then
    local ok, err = resubscribe(s)
    if not ok then return nil, err end
  end
  while true do
    local frame, tag = nextFrame(s)
    if not frame then
      s.lost = c.stream == false  -- not for a Timeout
      return nil, tag
    end
    if tag == 2 then return nil, frame end  -- an error reply to a (un)subscribe
    if type(frame) == "table" then
      local kind = frame[1]
      if kinds[kind] then
        if kind == "pmessage" then
          return {kind = kind, pattern = frame[2], channel = frame[3], message = frame[4]}
        end
        return {kind = kind, channel = frame[2], message = frame[3]}
      elseif type(frame[3]) == "number" then
        s.count = frame[3]
      end
    end
  end
end

-- receive() -> message | nil, err. After nil, err for a lost connection,
-- the next receive() connects again (with the client's backoff) and
-- subscribes again to every channel and pattern.
function Subscriber:receive()
  if not isSubscriber(self) then args.badSelf("receive", "RedisSubscriber", self) end
  if self.closed then return nil, closedError() end
  if self.reader then
    error("receive: this subscriber was started: its messages come as MESSAGE_RECEIVED events", 2)
  end
  return nextMessage(self)
end

-- The reader task of a started subscriber: every message becomes a
-- MESSAGE_RECEIVED event; a lost connection is reported (CONNECTION_LOST)
-- and made again, for as long as the subscriber is open, backing off up to
-- 2 s between rounds of the client's retries (CONNECTION_RESTORED once
-- subscribed again).
local function readLoop(s)
  local delay = 0.05
  while not s.closed do
    local wasLost = s.lost
    local m, err = nextMessage(s)
    if s.closed then return end
    if m then
      if wasLost then
        s.lost, delay = false, 0.05
        s:emit("CONNECTION_RESTORED", {})
      end
      s:emit("MESSAGE_RECEIVED", m)
    elseif s.lost and not wasLost then
      s:emit("CONNECTION_LOST", {error = err})
      if s.client.opts.reconnect == false then return end  -- asked not to reconnect
    elseif not s.client.stream then  -- the reconnection failed: try again later
      s.lost = true
      if not tasknative.sleep(delay, true) then return end  -- cancelled
      delay = math.min(delay * 2, 2)
    end  -- else a Timeout (settimeout): read on
  end
end

-- start() -> self: a task of the subscriber's own reads it from now on and
-- delivers MESSAGE_RECEIVED {kind, channel, message, pattern} to the
-- handler. Needs the evented Io mode (raises ConcurrencyUnavailable).
function Subscriber:start()
  if not isSubscriber(self) then args.badSelf("start", "RedisSubscriber", self) end
  if self.closed then return nil, closedError() end
  if self.reader then return self end
  if blocking then
    error(errors.new("ConcurrencyUnavailable",
      "start() needs the evented Io mode; in the blocking mode read with receive()"), 2)
  end
  self.reader = spawnTask(readLoop, self)
  return self
end

-- close(): closes the connection and stops the reader task (if started).
function Subscriber:close()
  if not isSubscriber(self) then args.badSelf("close", "RedisSubscriber", self) end
  if self.closed then return end
  self.closed = true
  local reader = self.reader
  if reader and reader ~= tasknative.current() then tasknative.requestCancel(reader) end
  self.client:close()
end

local function verb(fname, command)
  return function(self, ...)
    if not isSubscriber(self) then args.badSelf(fname, "RedisSubscriber", self) end
    local n = select("#", ...)
    if n == 0 and (command == "SUBSCRIBE" or command == "PSUBSCRIBE") then
      args.error(1, fname, "at least one channel expected", 2)
    end
    for i = 1, n do
      if type((select(i, ...))) ~= "string" then args.fail(i, fname, "string", (select(i, ...)), 2) end
    end
    if self.closed then return nil, closedError() end
    remember(self, command, ...)
    return sendVerb(self, command, ...)
  end
end
Subscriber.subscribe = verb("subscribe", "SUBSCRIBE")
Subscriber.psubscribe = verb("psubscribe", "PSUBSCRIBE")
Subscriber.unsubscribe = verb("unsubscribe", "UNSUBSCRIBE")
Subscriber.punsubscribe = verb("punsubscribe", "PUNSUBSCRIBE")

-- settimeout(seconds): receive() returns nil, err (Timeout) after that
-- long without a message; the subscription stays. nil: no limit.
function Subscriber:settimeout(t)
  if not isSubscriber(self) then args.badSelf("settimeout", "RedisSubscriber", self) end
  if t ~= nil then args.check(1, "settimeout", t, "number") end
  self.timeout = t
  if self.client.stream then self.client.stream:settimeout(t) end
end

-- channels() -> the channels and patterns subscribed to, sorted.
function Subscriber:channels()
  return (names(self.channelSet)), (names(self.patternSet))
end

redis.Subscriber = Subscriber

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

----------------------------------------------------------------- the pool

-- A pool hands each call a connection of its own and takes it back after.
-- One client already pipelines the commands of concurrent tasks, so a pool
-- is for what holds a connection: blocking commands (BLPOP, XREAD BLOCK),
-- transactions, and WATCH through withConnection.
local Pool = {}
local PoolMeta = {__name = "RedisPool"}

local function isPool(v) return getmetatable(v) == PoolMeta end
local function poolClosed() return errors.new("Closed", "the redis pool is closed") end

-- Closes the connections idle for longer than idleTimeout (oldest first:
-- the idle list is in order of return).
local function sweep(p)
  local limit = p.idleTimeout
  if limit <= 0 then return end
  local idle, now = p.idle, task.now()
  while idle[1] and now - idle[1].idleSince >= limit do
    local c = table.remove(idle, 1)
    p.open = p.open - 1
    c:close()
  end
  if not idle[1] and p.timer then p.timer:stop() end
end

-- An unref'd timer closes idle connections even when no call comes.
local function watchIdle(p)
  if p.idleTimeout <= 0 then return end
  local t = p.timer
  if not t then
    t = Timer()
    function t.TIMER_FIRED() sweep(p) end
    t:unref()
    p.timer = t
  end
  if not t:isActive() then t:start(p.idleTimeout / 2, p.idleTimeout / 2) end
end

-- Wakes the oldest waiting caller (if any) to try again.
local function wakeWaiter(p)
  local q = p.waiters
  while q[1] do
    local wt = table.remove(q, 1)
    if not wt.canceled and wake(wt.me, wt.id) then return end
  end
end

local function onWaiterCancel(wt) wt.canceled = true end

local release

-- acquire(p) -> client | nil, err: the most recently returned idle
-- connection, or a new one while fewer than max are open, or waits (FIFO)
-- for one to come back. Where the caller cannot wait (the blocking Io mode,
-- outside a task) a full pool is an error: PoolExhausted.
local function acquire(p)
  while true do
    if p.closed then return nil, poolClosed() end
    sweep(p)
    local idle = p.idle
    local n = #idle
    while n > 0 do
      local c = idle[n]
      idle[n], n = nil, n - 1
      if c.stream then return c end
      p.open = p.open - 1  -- lost while idle
      c:close()
    end
    if p.open < p.max then
      p.open = p.open + 1
      local c = newClient(p.opts)
      local ok, err = ensureConnected(c)
      if ok then return c end
      p.open = p.open - 1
      wakeWaiter(p)  -- a place is free again
      return nil, err
    end
    local me, id = prepare(not blocking and isyieldable())
    if me == false then raiseCanceled(3) end
    if not me then
      return nil, errors.new("PoolExhausted",
        ("all %d connections of the pool are in use and this caller cannot wait"):format(p.max))
    end
    local wt = {me = me, id = id, canceled = false, client = false}
    p.waiters[#p.waiters + 1] = wt
    if not suspend(onWaiterCancel, wt) then
      if wt.client then release(p, wt.client) end
      raiseCanceled(3)
    end
    if wt.client then return wt.client end
  end
end

-- Takes c back: a connection that broke (or whose caller raised, so its
-- state is unknown) is closed and its place freed.
function release(p, c, broken)
  if broken or p.closed or not c.stream then
    p.open = p.open - 1
    c:close()
    wakeWaiter(p)  -- a place is free: the waiter opens a connection
    return
  end
  -- Straight to the oldest waiter, so that no later caller overtakes it.
  local q = p.waiters
  while q[1] do
    local wt = table.remove(q, 1)
    if not wt.canceled then
      wt.client = c
      if wake(wt.me, wt.id) then return end
      wt.client = false
    end
  end
  c.idleSince = task.now()
  p.idle[#p.idle + 1] = c
  watchIdle(p)
end

local function finishCall(p, c, ok, ...)
  release(p, c, not ok)
  if not ok then error((...), 0) end  -- Canceled or the caller's own error, as raised
  return ...
end

-- Runs f(client, ...) on a connection of the pool.
local function withClient(p, f, ...)
  local c, err = acquire(p)
  if not c then return nil, err end
  return finishCall(p, c, pcall(f, c, ...))
end

local function poolMethod(fname, f)
  return function(self, ...)
    if not isPool(self) then args.badSelf(fname, "RedisPool", self) end
    return withClient(self, f, ...)
  end
end

local function sendWire(c, wire) return result(send(c, wire, 1)) end

-- The command is encoded (and its arguments checked) before a connection
-- is taken.
function Pool:call(...)
  if not isPool(self) then args.badSelf("call", "RedisPool", self) end
  if type((...)) ~= "string" then args.fail(1, "call", "string", (...)) end
  local wire, i, t = encode(...)
  if not wire then badArgument("call", i, t) end
  return withClient(self, sendWire, wire)
end
Pool.pipeline = poolMethod("pipeline", Client.pipeline)
-- transaction(fn): MULTI ... EXEC on one connection, held by this call alone.
Pool.transaction = poolMethod("transaction", Client.transaction)

-- withConnection(fn) -> fn's results: fn(client) has one connection to
-- itself until it returns (WATCH, then a transaction; several blocking
-- commands). A connection whose fn raised is closed, not reused.
Pool.withConnection = poolMethod("withConnection", function(c, fn)
  return fn(c)
end)

-- subscribe / psubscribe: a subscriber on a connection of its own (not
-- one of the pool's).
function Pool:subscribe(...) return subscribeWith(self.subscriberOpts, "SUBSCRIBE", "subscribe", ...) end
function Pool:psubscribe(...) return subscribeWith(self.subscriberOpts, "PSUBSCRIBE", "psubscribe", ...) end

-- stats() -> {open, idle, waiting}, after closing the connections idle for
-- too long (which the blocking Io mode, whose sleeps run no timer, does only
-- at the next call).
function Pool:stats()
  sweep(self)
  local waiting = 0
  for _, wt in ipairs(self.waiters) do
    if not wt.canceled then waiting = waiting + 1 end
  end
  return {open = self.open, idle = #self.idle, waiting = waiting}
end

-- close(): closes the idle connections now and the busy ones when they come
-- back; waiting and later calls return nil, err (Closed).
function Pool:close()
  if not isPool(self) then args.badSelf("close", "RedisPool", self) end
  if self.closed then return end
  self.closed = true
  for i = #self.idle, 1, -1 do
    self.idle[i]:close()
    self.idle[i] = nil
    self.open = self.open - 1
  end
  if self.timer then self.timer:close(); self.timer = false end
  while self.waiters[1] do wakeWaiter(self) end
end

PoolMeta.__index = function(_, key)
  local m = Pool[key]
  if m ~= nil then return m end
  if type(key) ~= "string" then return nil end
  local name = upper(key)
  local f = function(self, ...)
    if not isPool(self) then args.badSelf(key, "RedisPool", self) end
    local wire, i, t = encode(name, ...)
    if not wire then badArgument(key, i - 1, t) end
    return withClient(self, sendWire, wire)
  end
  Pool[key] = f
  return f
end

-- redis.pool(url | opts) -> pool: connect's options plus max (10
-- connections at most) and idleTimeout (30 s; 0: never closed for being
-- idle). No connection is made until the first call.
function redis.pool(o)
  local opts = options(1, "redis.pool", o)
  local max, idleTimeout = opts.max or 10, opts.idleTimeout or 30
  if type(max) ~= "number" or max < 1 or max % 1 ~= 0 then
    args.error(1, "redis.pool", "max must be an integer of 1 or more", 2)
  end
  if type(idleTimeout) ~= "number" or idleTimeout < 0 then
    args.error(1, "redis.pool", "idleTimeout must be a number of 0 or more", 2)
  end
  opts.max, opts.idleTimeout = nil, nil
  local subscriberOpts = {}
  for k, v in pairs(opts) do subscriberOpts[k] = v end
  opts.reconnect = false  -- a broken connection is replaced by the pool
  return setmetatable({opts = opts, subscriberOpts = subscriberOpts, max = max, idleTimeout = idleTimeout, idle = {}, open = 0, waiters = {},
    closed = false, timer = false}, PoolMeta)
end

redis.Pool = Pool
redis.Client = Client
return redis
