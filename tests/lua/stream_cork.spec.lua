-- Corked stream writes (issue 13): in the evented Io mode a task's writes
-- wait in the stream's output buffer and leave together, with one system
-- call, when the loop's current batch of ready tasks has run (or before the
-- loop polls again) — never later, and in order, with every failure still
-- reported, and nothing lost to close(), shutdown() or os.exit().
local net = require("net")
local task = require("task")
local H = require("helpers")

-- The main thread's write-family system calls so far (write, writev: what libuv
-- writes a socket with). Read with Lua's io, which never suspends the task:
-- a suspension would end the batch and flush what is corked.
local function syscw()
  local f = assert(io.open("/proc/thread-self/io"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("syscw:%s*(%d+)"))
end

-- Under --io=uring sockets are written through the ring (io_uring_enter,
-- not write(2)): the system-call counts do not apply there, and a send
-- left on the ring at os.exit() is not made (the same without corking).
local function underUring()
  local f = io.open("/proc/self/cmdline")
  local cmd = f and f:read("*a") or ""
  if f then f:close() end
  return os.getenv("EVO_IO") == "uring" or cmd:find("--io=uring", 1, true) ~= nil
end
local uring = underUring()
-- Sanitizers probe memory by writing it to a pipe (sanitizer_common's
-- IsAccessibleMemoryRange): a few writes that are not the stream's.
local slack = os.getenv("EVO_SANITIZED") == "1" and 4 or 0

-- A listener and a connected pair (client, accepted conn).
local function pair()
  local server = assert(net.listen({host = "127.0.0.1", port = 0}))
  local client = assert(net.connect({host = "127.0.0.1", port = server.port}))
  local conn = assert(server:accept())
  return server, client, conn
end

describe("corked stream writes", function()
  if task.mode() ~= "evented" then
    it("are the evented mode's (the blocking mode writes at once)", function() end)
    return
  end

  it("100 writes in one turn leave with one system call, in order", function()
    local server, client, conn = pair()
    local before = syscw()
    for i = 1, 100 do assert.equal(conn:write("m", i, "\n"), true) end
    local during = syscw() - before
    assert.truthy(during <= slack, "nothing is written while the task runs: " .. during)
    task.yield()  -- the batch ends: the corked bytes go out
    local calls = syscw() - before
    if not uring then assert.truthy(calls >= 1 and calls <= 2 + slack, "write calls for 100 writes: " .. calls) end
    assert(conn:shutdown())
    local got = client:readAll()
    local want = {}
    for i = 1, 100 do want[i] = "m" .. i .. "\n" end
    assert.equal(got, table.concat(want))
    client:close(); conn:close(); server:close()
  end, 10)

  it("a write from code that cannot suspend goes out at once", function()
    local server, client, conn = pair()
    local before, during = syscw(), nil
    -- A table.sort comparator cannot yield: no task can wait there.
    table.sort({2, 1}, function(a, b)
      if not during then
        conn:write("now\n")
        during = syscw() - before
      end
      return a < b
    end)
    if not uring then assert.truthy(during >= 1 and during <= 1 + slack, "write calls: " .. during) end
    assert.equal(client:readLine(), "now")
    client:close(); conn:close(); server:close()
  end, 10)

  it("a write corked outside a drain (from a timer callback) goes out in the same loop iteration", function()
    local server, client, conn = pair()
    local reader = task.async(function()
      local line = client:readLine()
      return line, task.now()
    end)
    H.sleep(0.05)  -- from here the test runs inside a luv timer's callback, not a drain
    local t0 = task.now()
    conn:write("from the timer phase\n")
    H.sleep(0.6)  -- nothing else wakes the loop before this timer: no flush would wait for it
    local line, t1 = reader:await()
    assert.equal(line, "from the timer phase")
    assert.truthy(t1 - t0 < 0.3, ("the write waited %.3f s"):format(t1 - t0))
    client:close(); conn:close(); server:close()
  end, 10)

  it("keeps the order of write, flush, sendfile and shutdown", function()
    local path = H.tempFile("body.txt", "[file]")
    local server, client, conn = pair()
    conn:write("a")
    assert(conn:flush())  -- uncorks: what was written goes first
    conn:write("b")
    assert.equal(conn:sendfile(path), 6)
    conn:write("c")
    conn:write("d")
    assert(conn:shutdown())  -- the corked "cd" before the end of the stream
    assert.equal(client:readAll(), "ab[file]cd")
    client:close(); conn:close(); server:close()
  end, 10)

  it("close() sends what was corked first", function()
    local server, client, conn = pair()
    conn:write("last words\n")
    conn:close()  -- in the same turn: the bytes were never handed to the socket yet
    assert.equal(client:readAll(), "last words\n")
    client:close(); server:close()
  end, 10)

  it("os.exit() sends what was corked first", function()
    -- (Under --io=uring the bytes are handed to the ring: its exit handler
    -- submits them and waits for the send.)
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    local script = H.tempFile("exit.lua", string.format([[
      local net = require("net")
      local c = assert(net.connect({host = "127.0.0.1", port = %d}))
      c:write("bye from the child\n")
      os.exit(0)
    ]], server.port))
    local child = task.async(H.runEvo, {script})
    local conn = assert(server:accept())
    conn:settimeout(5)
    assert.equal(conn:readAll(), "bye from the child\n")
    assert.equal(child:await().code, 0)
    conn:close(); server:close()
  end, 15)

  it("a write beyond the high-water mark is not corked: it waits for the socket", function()
    local server, client, conn = pair()
    conn:setHighWater(1024)
    local reader = task.async(function() return #client:readAll() end)
    local before = syscw()
    -- 4 KiB > the mark: handed to the socket at once, and the task waits
    -- only if the socket did not take it.
    assert(conn:write(string.rep("x", 4096)))
    if not uring then assert.truthy(syscw() - before >= 1, "written before write returned") end
    assert(conn:shutdown())
    assert.equal(reader:await(), 4096)
    client:close(); conn:close(); server:close()
  end, 10)

  it("a corked write that fails reports it at the next call", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}))
    -- Python resets the connection (SO_LINGER 0) as soon as it is made.
    local py = task.async(H.python, [[
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset")
]], nil, {tostring(server.port)})
    local conn = assert(server:accept())
    assert.equal(py:await(), "reset\n")
    local _, rerr = conn:read()  -- the reset has arrived
    assert.truthy(rerr, "the read sees the reset")
    local ok, err = conn:write("into the void\n")
    if ok then  -- corked: the failure comes with the flush, at the end of the turn
      task.yield()
      ok, err = conn:write("again\n")
    end
    assert.isNil(ok)
    assert.truthy(err.code == "EPIPE" or err.code == "ECONNRESET", tostring(err))
    conn:close(); server:close()
  end, 15)

  it("interop: Python receives 2,000 corked lines in order, from two streams written in turn", function()
    local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
      local which = conn:readLine()
      -- Each server task writes its lines in bursts of 100 per turn.
      for i = 1, 1000 do
        conn:write(which, " ", i, "\n")
        if i % 100 == 0 then task.yield() end
      end
      conn:shutdown()
      conn:readAll()
      conn:close()
    end))
    local out = H.python([[
import socket, sys, threading
port = int(sys.argv[1])
res = {}
def run(name):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((name + "\n").encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    res[name] = data.decode().splitlines() == ["%s %d" % (name, i) for i in range(1, 1001)]
ts = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
[t.start() for t in ts]
[t.join() for t in ts]
print(res["a"], res["b"])
]], nil, {tostring(server.port)})
    assert.equal(out, "True True\n")
    server:close()
  end, 20)
end)
