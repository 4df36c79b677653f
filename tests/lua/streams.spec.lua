-- Streams made where Lua cannot yield (evented Io mode): the Io mode is
-- the call's, not the object's (issue 8 design). A stream connected or
-- accepted outside a task is still a libuv stream, so a later read in a
-- task suspends that task instead of blocking the loop.
local net = require("net")
local task = require("task")

describe("streams made where Lua cannot yield", function()
  it("a stream connected in a non-yieldable context later suspends its reader", function()
    local server = assert(net.listen({port = 0}, function(conn)
      task.sleep(0.1)  -- the answer comes from this same loop, later
      conn:write("hi\n")
      conn:readAll()
    end))
    local c
    -- A table.sort comparator cannot yield: connect blocks there.
    table.sort({2, 1}, function(a, b)
      c = c or assert(net.connect({host = "127.0.0.1", port = server.port}))
      return a < b
    end)
    c:settimeout(2)  -- a read that blocked the loop would end here, not hang
    local line, err = c:readLine()
    assert.equal(line, "hi", tostring(err))
    c:close()
    server:close()
  end, 10)

  it("a stream accepted in a non-yieldable context later suspends its reader", function()
    local server = assert(net.listen({port = 0}))
    local client = task.async(function()
      local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
      task.sleep(0.1)
      c:write("hello\n")
      c:readAll()
      c:close()
    end)
    task.sleep(0.05)  -- the client has connected: accept finds it waiting
    local conn
    table.sort({2, 1}, function(a, b)
      conn = conn or assert(server:accept())
      return a < b
    end)
    conn:settimeout(2)
    local line, err = conn:readLine()
    assert.equal(line, "hello", tostring(err))
    conn:close()
    client:await()
    server:close()
  end, 10)
end)

describe("stream write timeouts", function()
  it("measure the peer's progress: a slow but steady reader never times a long write out", function()
    local got = 0
    local server = assert(net.listen({port = 0}, function(conn)
      while true do
        local chunk = conn:read(64 * 1024)
        if not chunk then break end
        got = got + #chunk
        task.sleep(0.005)  -- about 12 MB/s: the whole write takes over a second
      end
    end))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    c:settimeout(0, 0.3)
    local t0 = task.now()
    local ok, err = c:write(string.rep("w", 16 * 1024 * 1024))
    if ok then ok, err = c:flush() end
    assert.truthy(ok, "no Timeout while the peer keeps reading: " .. tostring(err))
    assert.truthy(task.now() - t0 > 0.3, "the write did outlast the timeout")
    c:close()
    server:close()
  end, 20)

  it("apply to shutdown too", function()
    local server = assert(net.listen({port = 0}))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local peer = assert(server:accept())
    c:settimeout(0, 0.3)
    c:write(string.rep("s", 16 * 1024 * 1024))  -- queued: nobody reads
    local t0 = task.now()
    local ok, err = c:shutdown()
    assert.isNil(ok)
    assert.equal(err.code, "Timeout")
    assert.truthy(task.now() - t0 < 2)
    c:close(); peer:close(); server:close()
  end, 20)
end)

describe("datagrams where Lua cannot yield", function()
  it("a UDP receive where Lua cannot yield blocks, with its timeout, in the evented mode too", function()
    local a = net.udp()
    assert(a:bind({host = "127.0.0.1", port = 0}))
    local b = net.udp()
    assert(b:send("ping", "127.0.0.1", a.port))
    a:settimeout(0.2)
    local got, none, err
    table.sort({2, 1}, function(x, y)
      if not got then
        got = {a:receive()}
        none, err = a:receive()  -- nothing more: the timeout ends it
      end
      return x < y
    end)
    assert.equal(got[1], "ping")
    assert.equal(got[2], "127.0.0.1")
    assert.equal(none, nil)
    assert.equal(err.code, "Timeout")
    a:close(); b:close()
  end, 10)

  it("child:wait() where Lua cannot yield blocks until the child ends, in the evented mode too", function()
    local process = require("process")
    local child = assert(process.spawn("sh", {"-c", "sleep 0.2; exit 7"}, {stdin = "ignore"}))
    local other = task.async(function() return child:wait() end)  -- a second waiter, suspended
    local code, signal
    table.sort({2, 1}, function(x, y)
      if not code then code, signal = child:wait() end
      return x < y
    end)
    assert.equal(code, 7)
    assert.equal(signal, 0)
    assert.equal(other:await(), 7)
    local killed = assert(process.spawn("sleep", {"5"}, {stdin = "ignore"}))
    assert(killed:kill("KILL"))
    table.sort({2, 1}, function(x, y)
      if not signal or signal == 0 then code, signal = killed:wait() end
      return x < y
    end)
    assert.equal(signal, 9)
  end, 10)
end)
