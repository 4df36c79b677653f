-- net: streams, servers, Unix sockets and UDP, in both Io modes. The peer
-- is an echo server in a child evo process, so the same client code runs
-- in either mode.
local H = require("helpers")
local net = require("net")
local task = require("task")
local fs = require("fs")

describe("net client (" .. H.mode .. ")", function()
  local port, server
  before(function() port, server = H.startEchoServer() end)
  after(function() H.stopEchoServer(server) end)

  local function connect()
    return assert(net.connect({host = "127.0.0.1", port = port}))
  end

  it("writes several strings as one and reads lines back", function()
    local c = connect()
    assert.truthy(c:write("one", "\n", "two\n", 3, "\n"))
    assert.equal(c:readLine(), "one")
    assert.equal(c:readLine(), "two")
    assert.equal(c:readLine(), "3")
    c:close()
  end)

  it("reads exact sizes, delimited records, and everything to the end", function()
    local c = connect()
    c:write("abc:def;ghi\n", "big 10\n", "bye\n")
    assert.equal(c:read(3), "abc")
    assert.equal(c:readUntil(";"), ":def")
    assert.equal(c:readLine(), "ghi")
    assert.equal(c:readAll(), "xxxxxxxxxx")
    assert.isNil(c:read(1), "nil at the end")
    assert.isNil(c:readLine())
    c:close()
  end)

  it("reports EOF in the middle of a read as an error with the partial data", function()
    local c = connect()
    c:write("half\n")
    local data, err = c:read(10)
    assert.isNil(data)
    assert.equal(err.code, "EOF")
    assert.equal(err.partial, "abc")
    c:close()
  end)

  it("times out a read with settimeout", function()
    local c = connect()
    c:settimeout(0.1)
    c:write("slow\n")
    local data, err = c:readLine()
    assert.isNil(data)
    assert.equal(err.code, "Timeout")
    c:settimeout(2)
    assert.equal(c:readLine(), "slow", "the data still arrives later")
    c:close()
  end)

  it("keeps separate read and write timeouts", function()
    if not H.evented then return end  -- needs a reader and a writer waiting at once
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    local peer = assert(server:accept())  -- never reads, never writes
    c:settimeout(5, 0.2)
    c:setHighWater(1024)
    local reader = task.concurrent(function() return select(2, c:readLine()) end)
    local t0 = task.now()
    local ok, err
    for _ = 1, 64 do
      ok, err = c:write(string.rep("w", 1024 * 1024))
      if not ok then break end
    end
    assert.equal(err and err.code, "Timeout")
    assert.truthy(task.now() - t0 < 2, "the write timed out on its own deadline")
    c:close()
    assert.equal(reader:await().code, "Closed")
    peer:close(); server:close()
  end)

  it("lets the process end after a read with a timeout succeeded", function()
    local r = require("process")
    local script = ("local net = require('net'); local c = assert(net.connect({host = '127.0.0.1', port = %d}));" ..
      "c:settimeout(30); c:write('hi\\nbye\\n'); print(c:readLine())"):format(port)
    local t0 = task.now()
    local out, _, code = r.exec(H.evo .. " -e \"" .. script .. "\"")
    assert.equal({out, code}, {"hi\n", 0})
    assert.truthy(task.now() - t0 < 5, "the read timer kept the process alive")
  end)

  it("moves a megabyte both ways", function()
    local c = connect()
    local line = string.rep("y", 1000)
    local lines = {}
    for i = 1, 1000 do lines[i] = line .. "\n" end
    assert.truthy(c:write(unpack(lines)))
    for i = 1, 1000 do assert.equal(c:readLine(), line) end
    c:write("big 1048576\n")
    assert.equal(#c:read(1048576), 1048576)
    c:close()
  end)

  it("sends a file", function()
    local dir = H.tempDir()
    assert(fs.writeFile(dir .. "/payload.txt", "from a file\nsecond line\n"))
    local c = connect()
    assert.equal(c:sendfile(dir .. "/payload.txt"), 24)
    assert.equal(c:readLine(), "from a file")
    assert.equal(c:readLine(), "second line")
    c:close()
    fs.rm(dir, {recursive = true})
  end)

  it("sends part of a file, and a large file while another task reads the echo", function()
    local dir = H.tempDir()
    assert(fs.writeFile(dir .. "/p.txt", "skip this|part one\nrest"))
    local c = connect()
    assert.equal(c:sendfile(dir .. "/p.txt", 10, 9), 9)
    assert.equal(c:readLine(), "part one")
    if H.evented then
      local lines = {}
      for i = 1, 100000 do lines[i] = ("line %06d\n"):format(i) end
      assert(fs.writeFile(dir .. "/big.txt", table.concat(lines)))
      local reader = task.concurrent(function()
        for i = 1, 100000 do
          local l = c:readLine()
          if l ~= ("line %06d"):format(i) then return "mismatch at " .. i .. ": " .. tostring(l) end
        end
        return "all echoed"
      end)
      assert.equal(c:sendfile(dir .. "/big.txt"), 1200000)
      assert.equal(reader:await(), "all echoed")
    end
    c:close()
    fs.rm(dir, {recursive = true})
  end)

  it("treats shutdown after the peer left as done, in both modes", function()
    local c = connect()
    c:write("bye\n")
    assert.isNil(c:readLine(), "the server closed")
    H.runLoop(0.02)
    c:write("x")
    H.runLoop(0.02)
    c:write("y")
    local ok = c:shutdown()
    assert.truthy(ok == true or (ok == nil), "shutdown answers without hanging")
    c:close()
  end)

  it("knows both ends' addresses", function()
    local c = connect()
    assert.equal(c:remoteAddress(), {address = "127.0.0.1", port = port})
    assert.equal(c:localAddress().address, "127.0.0.1")
    c:close()
    assert.truthy(c:isClosed())
    H.raisesCode("Closed", function() assert(c:write("x")) end)
  end)

  it("returns ECONNREFUSED and name-resolution errors as values", function()
    local s, err = net.connect({host = "127.0.0.1", port = 1})
    assert.isNil(s)
    assert.equal(err.code, "ECONNREFUSED")
    local s2, err2 = net.connect({host = "no-such-host.invalid", port = 80})
    assert.isNil(s2)
    assert.match(err2.code, "^EAI_")
  end)

  it("checks its arguments", function()
    assert.throws(function() net.connect() end, "bad argument #1 to 'connect' (table expected, got nil)")
    assert.throws(function() net.connect({port = 1}) end, "host must be a string")
    assert.throws(function() net.connect({host = "127.0.0.1", port = 70000}) end, "port must be an integer from 1 to 65535")
    local c = connect()
    assert.throws(function() c:write("a", {}) end, "bad argument #2 to 'write' (string expected, got table)")
    assert.throws(function() c:readUntil("") end, "bad argument #1 to 'readUntil'")
    c:close()
  end)
end)

describe("net server (" .. H.mode .. ")", function()
  it("accepts a connection from the same script only with concurrency (Zig's second example)", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    assert.truthy(server.port > 0)
    local accepted = {}
    function server:CONNECTION_ACCEPTED(event, p) accepted[#accepted + 1] = p.remoteAddress end
    if H.evented then
      local acceptor = task.concurrent(function()
        local conn = assert(server:accept())
        local line = conn:readLine()
        conn:write("got ", line, "\n")
        conn:close()
      end)
      local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
      c:write("ping\n")
      assert.equal(c:readLine(), "got ping")
      acceptor:await()
      c:close()
      assert.equal(accepted, {"127.0.0.1"})
    else
      H.raisesCode("ConcurrencyUnavailable", task.concurrent, function() return server:accept() end)
    end
    server:close()
  end)

  it("runs a handler task per connection", function()
    if not H.evented then
      H.raisesCode("ConcurrencyUnavailable", net.listen, {port = 0}, function() end)
      return
    end
    local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
      conn:write("hello ", conn:readLine(), "\n")
    end))
    local clients = {}
    for i = 1, 5 do
      clients[i] = task.async(function()
        local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
        c:write("client", i, "\n")
        local answer = c:readLine()
        c:close()
        return answer
      end)
    end
    for i = 1, 5 do assert.equal(clients[i]:await(), "hello client" .. i) end
    server:close()
  end)

  it("accepts in a sequential server loop in both modes", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    server:settimeout(0.1)
    local conn, err = server:accept()
    assert.isNil(conn)
    assert.equal(err.code, "Timeout")
    server:close()
  end)

  it("reports a port in use", function()
    local a = assert(net.listen({host = "127.0.0.1", port = 0}))
    local b, err = net.listen({host = "127.0.0.1", port = a.port})
    assert.isNil(b)
    assert.equal(err.code, "EADDRINUSE")
    a:close()
  end)

  it("serves and connects over a Unix socket", function()
    local dir = H.tempDir()
    local path = dir .. "/sock"
    local server = assert(net.listen({path = path}))
    if H.evented then
      local acceptor = task.concurrent(function()
        local conn = assert(server:accept())
        conn:write("unix ", conn:readLine(), "\n")
        conn:close()
      end)
      local c = assert(net.connect({path = path}))
      c:write("hi\n")
      assert.equal(c:readLine(), "unix hi")
      acceptor:await()
      c:close()
    else
      local c = assert(net.connect({path = path}))  -- connects: the kernel queues it
      c:close()
    end
    server:close()
    fs.rm(dir, {recursive = true})
  end)

  it("refuses a Unix socket path longer than 107 bytes with ENAMETOOLONG (issue 8 item 20)", function()
    local dir = H.tempDir()
    local long = dir .. "/" .. string.rep("s", 108 - #dir)  -- 109 bytes
    assert.equal(#long, 109)
    local server, err = net.listen({path = long})
    assert.isNil(server)
    assert.equal(err.code, "ENAMETOOLONG")
    assert.isNil(fs.stat(long:sub(1, 107)), "no truncated socket file was made")
    local c, cerr = net.connect({path = long})
    assert.isNil(c)
    assert.equal(cerr.code, "ENAMETOOLONG")
    -- 107 bytes is the most a socket address holds: it works
    local fits = dir .. "/" .. string.rep("f", 106 - #dir)
    assert.equal(#fits, 107)
    local ok = assert(net.listen({path = fits}))
    local c2 = assert(net.connect({path = fits}))
    c2:close()
    ok:close()
    fs.rm(dir, {recursive = true})
  end)
end)

describe("UDP (" .. H.mode .. ")", function()
  it("sends and receives datagrams", function()
    local a = net.udp()
    assert.truthy(a:bind({host = "127.0.0.1", port = 0}))
    local b = net.udp()
    assert.truthy(b:bind({host = "127.0.0.1", port = 0}))
    assert.truthy(b:send("datagram", "127.0.0.1", a.port))
    local data, host, from = a:receive()
    assert.equal({data, host, from}, {"datagram", "127.0.0.1", b.port})
    a:settimeout(0.05)
    local none, err = a:receive()
    assert.isNil(none)
    assert.equal(err.code, "Timeout")
    local c = net.udp()
    local ok, inUse = c:bind({host = "127.0.0.1", port = a.port})
    assert.isNil(ok)
    assert.equal(inUse.code, "EADDRINUSE")
    local _, bad = b:send("x", "not-an-ip", 9)
    assert.equal(bad.code, "EINVAL")
    a:close()
    b:close()
    c:close()
  end)

  it("refuses send and bind after close with Closed, sending nothing (issue 8 item 18)", function()
    local a = net.udp()
    assert.truthy(a:bind({host = "127.0.0.1", port = 0}))
    local b = net.udp()
    b:close()
    local ok, err = b:send("after close", "127.0.0.1", a.port)
    assert.isNil(ok)
    assert.equal(err.code, "Closed")
    local bound, berr = b:bind({host = "127.0.0.1", port = 0})
    assert.isNil(bound)
    assert.equal(berr.code, "Closed")
    local c = net.udp()
    assert.truthy(c:bind({host = "127.0.0.1", port = 0}))
    c:close()
    local ok2, err2 = c:send("after close", "127.0.0.1", a.port)
    assert.isNil(ok2)
    assert.equal(err2.code, "Closed")
    a:settimeout(0.1)
    local data, rerr = a:receive()
    assert.isNil(data)                 -- no datagram was delivered
    assert.equal(rerr.code, "Timeout")
    a:close()
  end)
end)
