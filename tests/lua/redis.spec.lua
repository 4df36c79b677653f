-- redis: the client against a real redis-server (Debian's), started here on
-- a free port in a temporary directory and stopped after: every reply type
-- in RESP2 and RESP3, error replies, automatic pipelining from 50 tasks,
-- cancellation in the middle of a pipeline, a server killed mid-command,
-- timeouts, AUTH and SELECT from the URL, pipelines, transactions, pub/sub,
-- bad arguments. Runs in both Io modes (the concurrent parts in the evented one).
local redis = require("redis")
local process = require("process")
local task = require("task")
local net = require("net")
local fs = require("fs")
local errors = require("evo.errors")
local h = require("helpers")

local evented = task.mode() ~= "blocking"
local servers = require("servers")
local freePort, start = servers.freePort, servers.redis

local function stop(srv)
  srv:stop()
end

describe("redis", function()
  local srv, r
  before(function()
    srv = start()
    r = assert(redis.connect(srv.url))
  end)
  after(function()
    if r then r:close() end
    if srv then stop(srv) end
  end)

  it("maps RESP2 replies: status, bulk, integer, null, arrays, nested arrays", function()
    assert.equal(r:set("s", "value"), "OK")
    assert.equal(r:get("s"), "value")
    assert.equal(r:get("missing"), redis.null)
    assert.equal(tostring(redis.null), "redis.null")
    assert.equal(r:rpush("list", "a", "", "c\r\n\0"), 3)
    assert.same(r:lrange("list", 0, -1), {"a", "", "c\r\n\0"})
    assert.same(r:lrange("nolist", 0, -1), {})
    assert.equal(r:incrby("n", -7), -7)
    local scan = r:scan(0, "MATCH", "lis*")
    assert.equal(scan[1], "0")
    assert.same(scan[2], {"list"})
    assert.same(r:mget("s", "missing"), {"value", redis.null})
    assert.equal(r:hset("h", "f", "v"), 1)
    assert.same(r:hgetall("h"), {"f", "v"})  -- RESP2: a flat array
    local big = string.rep("x", 300000)
    assert.equal(r:set("big", big), "OK")
    assert.equal(big, r:get("big"))
    assert.equal(r:call("EXISTS", "big"), 1)
  end)

  it("maps RESP3 replies: maps, sets, doubles, booleans, nulls, verbatim strings", function()
    local r3 = assert(redis.connect({url = srv.url, protocol = 3}))
    assert.equal(r3:hset("h3", "a", "1", "b", "2"), 2)
    assert.same(r3:hgetall("h3"), {a = "1", b = "2"})
    assert.equal(r3:get("missing"), redis.null)
    r3:sadd("set3", "x", "y")
    local members = r3:smembers("set3")
    table.sort(members)
    assert.same(members, {"x", "y"})
    r3:zadd("z", 1.5, "m")
    assert.equal(r3:zscore("z", "m"), 1.5)  -- a RESP3 double
    assert.equal(r3:eval("redis.setresp(3); return true", 0), true)
    assert.equal(r3:eval("redis.setresp(3); return nil", 0), redis.null)
    local info = r3:info("server")
    assert.equal(type(info), "string")
    assert.truthy(info:match("^# Server"))  -- a verbatim string, without its "txt:"
    local hello = r3:hello()
    assert.equal(hello.proto, 3)
    r3:close()
  end)

  it("returns error replies as nil, err with the server's code", function()
    r:set("str", "x")
    local v, err = r:lpush("str", "a")
    assert.isNil(v)
    assert.equal(err.code, "WRONGTYPE")
    assert.truthy(err.message:match("wrong kind of value"))
    assert.truthy(errors.is(err))
    v, err = r:call("NOSUCHCOMMAND", "x")
    assert.isNil(v)
    assert.equal(err.code, "ERR")
    v, err = r:get()
    assert.equal(err.code, "ERR")
    assert.truthy(tostring(err):match("wrong number of arguments"))
    assert.equal(r:get("str"), "x")  -- the connection goes on
  end)

  it("selects the database and authenticates from the URL", function()
    local a = start({"--requirepass", "s3cret"})
    local c, err = redis.connect(a.url)
    assert.truthy(c)
    local v
    v, err = c:get("k")
    assert.equal(err.code, "NOAUTH")
    c:close()
    c, err = redis.connect("redis://:wrong@127.0.0.1:" .. a.port)
    assert.isNil(c)
    assert.equal(err.code, "WRONGPASS")
    c = assert(redis.connect("redis://:s3cret@127.0.0.1:" .. a.port .. "/2"))
    assert.equal(c:set("k", "in db 2"), "OK")
    local c0 = assert(redis.connect({port = a.port, password = "s3cret", db = 0}))
    assert.equal(c0:get("k"), redis.null)
    assert.equal(c0:select(2), "OK")
    assert.equal(c0:get("k"), "in db 2")
    c:close()
    c0:close()
    stop(a)
  end)

  it("runs an explicit pipeline and a transaction", function()
    local res = assert(r:pipeline(function(p)
      p:set("p1", "one")
      p:get("p1")
      p:lpush("p1", "x")  -- WRONGTYPE, in its place
      p:call("INCR", "pn")
    end))
    assert.equal(res[1], "OK")
    assert.equal(res[2], "one")
    assert.equal(res[3].code, "WRONGTYPE")
    assert.equal(res[4], 1)
    assert.same(r:pipeline(function() end), {})
    local tx = assert(r:transaction(function(t)
      t:set("t1", "10")
      t:incrby("t1", 5)
      t:get("t1")
    end))
    assert.same(tx, {"OK", 15, "15"})
    local v, err = r:transaction(function(t)
      t:set("t2", "x")
      t:call("NOSUCH")
    end)
    assert.isNil(v)
    assert.equal(err.code, "EXECABORT")
    assert.equal(r:get("t2"), redis.null)  -- nothing ran
  end)

  it("delivers pub/sub messages to a subscriber", function()
    local sub = assert(r:subscribe("news", "sport"))
    local psub = assert(r:psubscribe("ne*"))
    -- wait until the server has both subscriptions, then publish once (a
    -- publish retried until it reached both would leave extra messages)
    for _ = 1, 100 do
      local numsub = r:pubsub("NUMSUB", "news")
      if numsub[2] == 1 and r:pubsub("NUMPAT") == 1 then break end
      task.sleep(0.02)
    end
    assert.equal(r:publish("news", "hello"), 2)
    local m = assert(sub:receive())
    assert.equal(m.kind, "message")
    assert.equal(m.channel, "news")
    assert.equal(m.message, "hello")
    local pm = assert(psub:receive())
    assert.equal(pm.kind, "pmessage")
    assert.equal(pm.pattern, "ne*")
    assert.equal(pm.channel, "news")
    r:publish("sport", "goal")
    m = assert(sub:receive())
    assert.equal(m.channel, "sport")
    assert.equal(m.message, "goal")
    sub:close()
    psub:close()
    local v, err = sub:receive()
    assert.isNil(v)
    assert.equal(err.code, "Closed")
  end)

  it("delivers MESSAGE_RECEIVED events to a started subscriber, or refuses start() in the blocking mode", function()
    local sub = assert(r:subscribe("ev"))
    sub:psubscribe("e*")
    assert.same({sub:channels()}, {{"ev"}, {"e*"}})
    if not evented then
      local ok, err = pcall(sub.start, sub)
      assert.equal(ok, false)
      assert.equal(err.code, "ConcurrencyUnavailable")
      sub:close()
      return
    end
    local got = task.queue()
    function sub:MESSAGE_RECEIVED(event, p)
      assert.equal(event, "MESSAGE_RECEIVED")
      got:put(p)
    end
    assert.equal(sub:start(), sub)
    assert.equal(sub:start(), sub)  -- once
    assert.throws(function() sub:receive() end, "receive: this subscriber was started")
    for _ = 1, 100 do
      if r:pubsub("NUMSUB", "ev")[2] == 1 and r:pubsub("NUMPAT") == 1 then break end
      task.sleep(0.02)
    end
    assert.equal(r:publish("ev", "one"), 2)
    local a, b = got:get(), got:get()
    if a.kind == "pmessage" then a, b = b, a end
    assert.same(a, {kind = "message", channel = "ev", message = "one"})
    assert.same(b, {kind = "pmessage", pattern = "e*", channel = "ev", message = "one"})
    sub:punsubscribe()
    assert.same({sub:channels()}, {{"ev"}, {}})
    -- close() stops the reader task
    sub:close()
    task.sleep(0.05)
    assert.truthy(sub.reader:done())
    local v, err = sub:receive()
    assert.isNil(v)
    assert.equal(err.code, "Closed")
  end)

  it("reports an error in a MESSAGE_RECEIVED handler and reads on", function()
    if not evented then return end
    local res = h.runEvo({"-e", ([[
      local redis = require("redis")
      local task = require("task")
      local r = assert(redis.connect("redis://127.0.0.1:%d"))
      local sub = assert(r:subscribe("errs"))
      function sub:MESSAGE_RECEIVED(_, p)
        if p.message == "bad" then error("handler broke") end
        print("got " .. p.message)
        self:close()
      end
      sub:start()
      while r:pubsub("NUMSUB", "errs")[2] ~= 1 do task.sleep(0.01) end
      r:publish("errs", "bad")
      r:publish("errs", "good")
    ]]):format(srv.port)})
    assert.equal(res.stdout, "got good\n")
    assert.match(res.stderr, "^evo: error in RedisSubscriber:MESSAGE_RECEIVED handler: %(command line%):6: handler broke\n")
    assert.equal(res.code, 0)
  end)

  -- A shell loop publishing "after-1", "after-2"... every 50 ms: a peer that
  -- goes on while this task blocks (in the blocking mode) or sleeps.
  local function publisher(port, channel)
    return assert(process.spawn("/bin/sh", {"-c", ("for i in $(seq 1 200); do redis-cli -p %d publish %s after-$i " ..
      ">/dev/null 2>&1; sleep 0.05; done"):format(port, channel)}, {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
  end

  it("subscribes again after the server restarts (receive)", function()
    local s2 = start()
    local c = assert(redis.connect({port = s2.port}))
    local sub = assert(c:subscribe("news"))
    sub:psubscribe("sp*")
    s2.child:kill("KILL")
    s2.child:wait()
    fs.rm(s2.dir, {recursive = true})
    local v, err = sub:receive()
    assert.isNil(v)
    assert.truthy(err.code == "EOF" or err.code == "ECONNRESET", tostring(err))
    local s3 = start(nil, s2.port)
    local pub = publisher(s3.port, "news")
    local pub2 = publisher(s3.port, "sport")
    local m = assert(sub:receive())  -- connects, subscribes again, then reads
    assert.equal(m.channel == "news" and m.kind or m.pattern, m.channel == "news" and "message" or "sp*")
    assert.match(m.message, "^after%-%d+$")
    local seen = {[m.channel] = true}
    while not (seen.news and seen.sport) do
      m = assert(sub:receive())
      seen[m.channel] = true
    end
    assert.equal(sub.count, 2)  -- both confirmed again
    pub:kill("KILL"); pub:wait()
    pub2:kill("KILL"); pub2:wait()
    sub:close()
    c:close()
    stop(s3)
  end)

  it("subscribes again after the server restarts (events)", function()
    if not evented then return end
    local s2 = start()
    local c = assert(redis.connect({port = s2.port}))
    local sub = assert(c:subscribe("news"))
    local seen = task.queue()
    function sub:CONNECTION_LOST(_, p) seen:put("lost " .. p.error.code) end
    function sub:CONNECTION_RESTORED() seen:put("restored") end
    function sub:MESSAGE_RECEIVED(_, p) seen:put(p.message) end
    sub:start()
    for _ = 1, 100 do
      if c:pubsub("NUMSUB", "news")[2] == 1 then break end
      task.sleep(0.02)
    end
    c:publish("news", "before")
    assert.equal(seen:get(), "before")
    s2.child:kill("KILL")
    s2.child:wait()
    fs.rm(s2.dir, {recursive = true})
    assert.match(seen:get(), "^lost E")
    task.sleep(0.3)  -- the reader retries meanwhile
    local s3 = start(nil, s2.port)
    local pub = publisher(s3.port, "news")
    assert.equal(seen:get(), "restored")
    assert.match(seen:get(), "^after%-%d+$")
    pub:kill("KILL"); pub:wait()
    sub:close()
    c:close()
    stop(s3)
  end)

  describe("pool", function()
    it("runs commands, pipelines and transactions on connections it reuses", function()
      local p = redis.pool({url = srv.url, max = 3})
      assert.same(p:stats(), {open = 0, idle = 0, waiting = 0})  -- nothing until the first call
      assert.equal(p:set("pk", "v"), "OK")
      assert.equal(p:get("pk"), "v")
      assert.equal(p:call("APPEND", "pk", "w"), 2)
      local v, err = p:lpush("pk", "x")
      assert.isNil(v)
      assert.equal(err.code, "WRONGTYPE")
      assert.same(p:pipeline(function(q) q:incr("poolpn"); q:incr("poolpn") end), {1, 2})
      assert.same(p:transaction(function(t) t:set("pt", 1); t:incrby("pt", 2) end), {"OK", 3})
      assert.same(p:stats(), {open = 1, idle = 1, waiting = 0})  -- one connection did it all
      -- withConnection: WATCH on a connection of its own
      local res = p:withConnection(function(c)
        c:watch("pt")
        local n = tonumber(c:get("pt"))
        return c:transaction(function(t) t:set("pt", n * 10) end)
      end)
      assert.same(res, {"OK"})
      assert.equal(p:get("pt"), "30")
      v, err = p:withConnection(function(c)
        c:watch("pt")
        r:set("pt", "changed")  -- another connection changes the key
        return c:transaction(function(t) t:set("pt", "mine") end)
      end)
      assert.isNil(v)
      assert.equal(err.code, "Aborted")
      assert.equal(p:get("pt"), "changed")
      -- an error raised in fn closes that connection
      assert.throws(function() p:withConnection(function() error("boom") end) end, "boom")
      assert.same(p:stats(), {open = 0, idle = 0, waiting = 0})
      p:close()
      v, err = p:get("pk")
      assert.isNil(v)
      assert.equal(err.code, "Closed")
    end)

    it("drops a broken connection and replaces it", function()
      local s2 = start()
      local p = redis.pool({port = s2.port, max = 2})
      assert.equal(p:set("a", "1"), "OK")
      s2.child:kill("KILL")
      s2.child:wait()
      fs.rm(s2.dir, {recursive = true})
      local v, err = p:get("a")  -- the idle connection is dead
      assert.isNil(v)
      assert.truthy(err)
      v, err = p:get("a")  -- no server: a new connection is refused
      assert.isNil(v)
      assert.equal(err.code, "ECONNREFUSED")
      assert.same(p:stats(), {open = 0, idle = 0, waiting = 0})
      local s3 = start(nil, s2.port)
      assert.equal(p:get("a"), redis.null)  -- a new connection to the new server
      assert.equal(p:stats().open, 1)
      p:close()
      stop(s3)
    end)

    it("closes connections idle for longer than idleTimeout", function()
      local p = redis.pool({url = srv.url, idleTimeout = 0.2})
      assert.equal(p:ping(), "PONG")
      assert.equal(p:stats().idle, 1)
      task.sleep(0.5)
      assert.equal(p:stats().idle, 0)
      assert.equal(p:stats().open, 0)
      assert.equal(p:ping(), "PONG")
      p:close()
    end)

    it("refuses bad options and arguments", function()
      assert.throws(function() redis.pool({max = 0}) end, "bad argument #1 to 'redis.pool' %(max must be")
      assert.throws(function() redis.pool({idleTimeout = -1}) end, "bad argument #1 to 'redis.pool' %(idleTimeout")
      assert.throws(function() redis.pool("http://x") end, "bad argument #1 to 'redis.pool' %(not a redis:// URL")
      local p = redis.pool(srv.url)
      assert.throws(function() p:set("k", {}) end, "bad argument #2 to 'set' %(string expected, got table%)")
      assert.throws(function() p:call() end, "bad argument #1 to 'call' %(string expected, got nil%)")
      assert.throws(function() p.get(1, "k") end, "bad argument #1 to 'get' %(RedisPool expected, got number%)")
      assert.equal(p:stats().open, 0)  -- arguments are checked before a connection is taken
      p:close()
    end)

    it("makes a caller that cannot wait fail when every connection is busy", function()
      local p = redis.pool({url = srv.url, max = 1})
      if evented then
        local inner
        local outer = task.async(function()
          return p:withConnection(function(c)
            inner = task.async(function() return p:get("k") end)
            task.sleep(0.05)
            assert.equal(p:stats().waiting, 1)
            return c:ping()
          end)
        end)
        assert.equal(outer:await(), "PONG")
        assert.equal(inner:await(), redis.null)  -- it waited for the connection
      else
        local v, err = p:withConnection(function() return p:get("k") end)
        assert.isNil(v)
        assert.equal(err.code, "PoolExhausted")
      end
      p:close()
    end)

    describe("with concurrent tasks", function()
      if not evented then return end

      it("gives blocking commands a connection each, at most max, the others waiting", function()
        local p = redis.pool({url = srv.url, max = 3})
        local pops = {}
        for i = 1, 5 do pops[i] = task.async(function() return p:blpop("queue", 5) end) end
        task.sleep(0.1)
        assert.same(p:stats(), {open = 3, idle = 0, waiting = 2})
        for i = 1, 5 do assert.equal(r:rpush("queue", "item" .. i), 1) task.sleep(0.05) end
        local got = {}
        for i = 1, 5 do
          local v = pops[i]:await()
          assert.equal(v[1], "queue")
          got[#got + 1] = v[2]
        end
        table.sort(got)
        assert.same(got, {"item1", "item2", "item3", "item4", "item5"})
        assert.same(p:stats(), {open = 3, idle = 3, waiting = 0})
        p:close()
        assert.same(p:stats(), {open = 0, idle = 0, waiting = 0})
      end)

      it("hands a returned connection to the waiting callers in their order of arrival", function()
        local p = redis.pool({url = srv.url, max = 1})
        local order = {}
        local holder = task.async(function()
          return p:withConnection(function(c) task.sleep(0.1) return c:ping() end)
        end)
        local waiting = {}
        for i = 1, 5 do
          waiting[i] = task.async(function()
            assert.equal(p:incr("fifo"), i)
            order[#order + 1] = i
          end)
        end
        task.sleep(0.02)
        assert.equal(p:stats().waiting, 5)
        assert.equal(holder:await(), "PONG")
        for i = 1, 5 do waiting[i]:await() end
        assert.same(order, {1, 2, 3, 4, 5})
        assert.same(p:stats(), {open = 1, idle = 1, waiting = 0})
        p:close()
      end)

      it("closes a connection whose task was cancelled, and a waiter cancelled leaves the queue", function()
        local p = redis.pool({url = srv.url, max = 1})
        local a = task.async(function() return p:blpop("never", 5) end)
        local b = task.async(function() return p:get("k") end)
        local c = task.async(function() return p:ping() end)
        task.sleep(0.05)
        assert.equal(p:stats().waiting, 2)
        b:cancel()
        assert.equal(p:stats().waiting, 1)
        a:cancel()  -- its BLPOP still holds the server side: the connection is closed
        assert.equal(c:await(), "PONG")
        assert.same(p:stats(), {open = 1, idle = 1, waiting = 0})
        p:close()
      end)

      it("wakes the callers waiting when the pool is closed", function()
        local p = redis.pool({url = srv.url, max = 1})
        local a = task.async(function() return p:blpop("never", 0.3) end)
        local b = task.async(function() return p:get("k") end)
        task.sleep(0.05)
        p:close()
        local v, err = b:await()
        assert.isNil(v)
        assert.equal(err.code, "Closed")
        assert.equal(a:await(), redis.null)  -- the busy one finishes, then is closed
        assert.equal(p:stats().open, 0)
      end)
    end)
  end)

  it("times out and reconnects", function()
    local c = assert(redis.connect({url = srv.url, timeout = 0.2}))
    local t0 = task.now()
    local v, err = c:blpop("emptylist", 2)
    assert.isNil(v)
    assert.equal(err.code, "Timeout")
    assert.truthy(task.now() - t0 < 1.5)
    assert.equal(c:ping(), "PONG")  -- a new connection
    c:close()
    v, err = c:ping()
    assert.equal(err.code, "Closed")
  end)

  it("fails cleanly when the server dies mid-command, and reconnects to a new one", function()
    local s2 = start()
    local c = assert(redis.connect({port = s2.port, retries = 1}))
    assert.equal(c:set("a", "1"), "OK")
    if evented then
      local f = task.async(function() return c:blpop("never", 10) end)
      task.sleep(0.1)
      s2.child:kill("KILL")
      s2.child:wait()
      local v, err = f:await()
      assert.isNil(v)
      assert.truthy(err.code == "EOF" or err.code == "ECONNRESET", tostring(err))
    else
      s2.child:kill("KILL")
      s2.child:wait()
      local v, err = c:get("a")
      assert.isNil(v)
      assert.truthy(err)
    end
    local v, err = c:get("a")  -- the server is gone: the reconnection fails
    assert.isNil(v)
    assert.equal(err.code, "ECONNREFUSED")
    local s3 = start(nil, s2.port)
    assert.equal(c:get("a"), redis.null)  -- reconnected to the new (empty) server
    c:close()
    stop(s3)
    fs.rm(s2.dir, {recursive = true})
  end)

  it("raises on bad arguments", function()
    assert.throws(function() r:set("k", {}) end, "bad argument #2 to 'set' %(string expected, got table%)")
    assert.throws(function() r:call() end, "bad argument #1 to 'call' %(string expected, got nil%)")
    assert.throws(function() r:call("GET", true) end, "bad argument #2 to 'call' %(string expected, got boolean%)")
    assert.throws(function() redis.connect(42) end, "bad argument #1 to 'redis.connect' %(string or table expected")
    assert.throws(function() redis.connect("http://x") end, "bad argument #1 to 'redis.connect' %(not a redis:// URL")
    assert.throws(function() redis.connect({port = 0}) end, "bad argument #1 to 'redis.connect' %(port must be")
    assert.throws(function() redis.connect({protocol = 4}) end, "protocol must be 2 or 3")
    assert.throws(function() r:pipeline(nil) end, "bad argument #1 to 'pipeline' %(function expected, got nil%)")
    assert.throws(function() r:subscribe() end, "bad argument #1 to 'subscribe'")
    assert.throws(function() r.get(42, "k") end, "bad argument #1 to 'get' %(RedisClient expected, got number%)")
    local v, err = redis.connect({port = freePort()})
    assert.isNil(v)
    assert.equal(err.code, "ECONNREFUSED")
  end)

  describe("with concurrent tasks", function()
    if not evented then return end

    it("pipelines 50 tasks' commands and matches every reply", function()
      local N, M = 50, 200
      local group = {}
      for i = 1, N do
        group[i] = task.async(function()
          for j = 1, M do
            local key = "k" .. i
            assert.equal(r:set(key, i .. ":" .. j), "OK")
            assert.equal(r:get(key), i .. ":" .. j)
            r:incr("shared")
          end
          return i
        end)
      end
      for i = 1, N do assert.equal(group[i]:await(), i) end
      assert.equal(r:get("shared"), tostring(N * M))  -- none lost, none twice
      assert.equal(r.nout, 0)
      assert.truthy(r.head > r.tail)
    end)

    it("sends the commands of one loop turn in one write", function()
      -- A listener in place of the server counts the writes it reads.
      local server = assert(net.listen({host = "127.0.0.1", port = 0}))
      local c = task.async(function() return redis.connect({port = server.port}) end)
      local conn = assert(server:accept())
      local client = assert(c:await())
      local fs2 = {}
      for i = 1, 20 do fs2[i] = task.async(function() return client:get("k" .. i) end) end
      local data = conn:read()  -- everything of the first write
      local count = select(2, data:gsub("%*2\r\n%$3\r\nGET", ""))
      assert.equal(count, 20)
      local replies = {}
      for i = 1, 20 do replies[i] = "$" .. #("v" .. i) .. "\r\nv" .. i .. "\r\n" end
      conn:write(table.concat(replies))
      for i = 1, 20 do assert.equal(fs2[i]:await(), "v" .. i) end
      client:close()
      conn:close()
      server:close()
    end)

    it("drops the replies of cancelled tasks in the middle of a pipeline", function()
      for i = 1, 50 do r:set("c" .. i, "value " .. i) end
      -- The first task reads for everyone and is cancelled while it reads.
      local reader = task.async(function() return r:blpop("emptylist", 0.3) end)
      local fs3 = {}
      for i = 1, 50 do fs3[i] = task.async(function() return r:get("c" .. i) end) end
      task.sleep(0.05)
      reader:cancel()
      for i = 2, 50, 2 do fs3[i]:cancel() end
      for i = 1, 50, 2 do assert.equal(fs3[i]:await(), "value " .. i) end
      -- The next command gets its own reply, not a cancelled one's.
      assert.equal(r:get("c7"), "value 7")
      assert.equal(r:ping(), "PONG")
    end)
  end)
end)
