-- --io=uring (docs/io.md): the same script gives the same results as in the
-- evented mode, the operations moved to the ring really go through it
-- (EVO_URING_STATS=1 counts the entries submitted, by opcode), cancelled
-- operations end cleanly, and a kernel that refuses io_uring (here: a real
-- seccomp filter, installed by Python's ctypes before it execs evo) makes
-- the run fail at start with a clear message, never fall back.
local h = require("helpers")

-- "evo uring stats: openat=3 read=2 ..." -> {openat = 3, read = 2, ...}
local function stats(stderr)
  local line = stderr:match("evo uring stats: ([^\n]*)")
  assert.notNil(line, "no stats line in: " .. stderr)
  local counts = {}
  for name, n in line:gmatch("([%w_]+)=(%d+)") do counts[name] = tonumber(n) end
  return counts
end

local function run(mode, path, args, env)
  local argv = {"--io=" .. mode, path}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return h.runEvo(argv, {env = env or {EVO_URING_STATS = "1", EVO_IO = false}, timeout = 20})
end

local workload = [[
local fs, net, task = require("fs"), require("net"), require("task")
local dir = arg[1]
for i = 1, 20 do assert(fs.writeFile(dir .. "/f" .. i, string.rep(tostring(i % 10), 4096 + i))) end
assert(fs.appendFile(dir .. "/f1", "!"))
local reads = {}
for i = 1, 20 do reads[i] = task.async(function() return assert(fs.readFile(dir .. "/f" .. i)) end) end
local total = 0
for i = 1, 20 do total = total + #reads[i]:await() end
print("files", total, fs.readFile(dir .. "/f1"):sub(-2))
print("missing", select(2, fs.readFile(dir .. "/nope")).code)
print("not a file", fs.readFile(dir) == nil)
print("proc", #assert(fs.readFile("/proc/self/status")) > 100)
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
  local line = conn:readLine()
  conn:write("you said: ", line, "\n", string.rep("z", 100000), "\n")
end))
local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
c:write("hello\n")
print(c:readLine())
print(#c:readLine())
print(c:read())
c:close()
server:close()
print("mode", task.mode())
]]

describe("evo --io=uring", function()
  it("reads a socket to its end when the end comes with the last bytes, with nothing else alive", function()
    -- (An end that arrived in the same batch as the data before it is told a
    -- loop turn later; until then the loop must stay alive for it.)
    local net = require("net")
    local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
      conn:write("hello world")
      conn:close()
    end))
    local script = h.tempFile("ends.lua", [[
local net = require("net")
local got = {}
for i = 1, 30 do
  local c = assert(net.connect({host = "127.0.0.1", port = tonumber(arg[1])}))
  got[#got + 1] = c:readAll()
  c:close()
end
print(#got, table.concat(got):gsub("hello world", ""), got[30])
]])
    local r = run("uring", script, {tostring(server.port)})
    server:close()
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "30\t\thello world\n")
  end, 30)

  it("reads a child's pipe to its end from the main chunk, after the child has exited", function()
    -- (A receive on the ring for a child's stderr did not keep the loop
    -- alive once the child had exited: "nothing left that could wake it".)
    local script = h.tempFile("pipes.lua", [[
local process = require("process")
local out = {}
for i = 1, 10 do
  local child = assert(process.spawn("/bin/sh", {"-c", "sleep 0.02; echo err" .. i .. " >&2"},
    {stdin = "ignore", stdout = "ignore", stderr = "pipe"}))
  out[#out + 1] = child.stderr:readAll():gsub("\n", "") .. ":" .. child:wait()
end
print(table.concat(out, " "))
]])
    local r = run("uring", script)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "err1:0 err2:0 err3:0 err4:0 err5:0 err6:0 err7:0 err8:0 err9:0 err10:0\n")
  end, 30)

  it("gives the evented results, with file reads and socket receives on the ring", function()
    local script = h.tempFile("workload.lua", workload)
    local evented = run("evented", script, {h.tempDir()})
    assert.equal(evented.code, 0, evented.stderr)
    local uring = run("uring", script, {h.tempDir()})
    assert.equal(uring.code, 0, uring.stderr)
    assert.equal(uring.stdout, evented.stdout)
    assert.match(uring.stdout, "files\t82131\t1!")
    assert.match(uring.stdout, "missing\tENOENT")
    assert.match(uring.stdout, "mode\tevented")  -- the wait model is the evented one
    local n = stats(uring.stderr)
    -- 22 writes and 21 + 2 reads of files: opened, read and closed on the ring
    assert.truthy(n.openat >= 44, uring.stderr)
    assert.truthy(n.read >= 22, uring.stderr)
    assert.truthy(n.write >= 21, uring.stderr)
    assert.truthy(n.statx >= 22, uring.stderr)
    assert.truthy(n.close >= 43, uring.stderr)
    -- both ends of the connection receive through the ring
    assert.truthy(n.recv >= 2, uring.stderr)
    -- the evented run has no ring at all
    assert.isNil(evented.stderr:find("evo uring stats", 1, true))
  end)

  it("is chosen by EVO_IO=uring as well", function()
    local r = h.runEvo({"-e", "print(require('fs').readFile('/proc/self/comm') ~= nil)"},
      {env = {EVO_IO = "uring", EVO_URING_STATS = "1"}})
    assert.equal(r.code, 0, r.stderr)
    -- the main chunk is a task: its read went through the ring
    assert.truthy((stats(r.stderr).read or 0) >= 1, r.stderr)
  end)

  it("cancels a file operation stuck in the kernel (a FIFO with no writer) and exits cleanly", function()
    local dir = h.tempDir()
    assert.equal(os.execute("mkfifo " .. dir .. "/fifo"), 0)
    local script = h.tempFile("fifo.lua", [[
      local fs, task = require("fs"), require("task")
      local data, err = task.timeout(0.2, fs.readFile, arg[1])
      print(data, err and err.code)
      -- the loop goes on: a later read works
      print(#assert(fs.readFile("/proc/self/comm")) > 0)
    ]])
    local r = run("uring", script, {dir .. "/fifo"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(h.lines(r.stdout), {"nil\tTimeout", "true"})
    assert.truthy((stats(r.stderr).cancel or 0) >= 1, r.stderr)
  end)

  it("cancels a receive (a read timeout) and reads the rest later, in order", function()
    local script = h.tempFile("recv.lua", [[
      local net, task = require("net"), require("task")
      local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
        task.sleep(0.3)
        for i = 1, 50 do conn:write(("line %d\n"):format(i)) end
      end))
      local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
      c:settimeout(0.05)
      print(select(2, c:readLine()).code)
      c:settimeout(0)
      local got = {}
      for i = 1, 50 do got[i] = c:readLine() end
      print(got[1], got[50], #got)
      c:close()
      server:close()
    ]])
    local r = run("uring", script)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(h.lines(r.stdout), {"Timeout", "line 1\tline 50\t50"})
  end)

  it("returns from uv.run('once') after one wait, a listener keeping the loop alive, as evented", function()
    local script = h.tempFile("once.lua", [[
      local uv, task, net = require("uv"), require("task"), require("net")
      local server = assert(net.listen({host = "127.0.0.1", port = 0}, function() end))
      local done = false
      task.async(function() task.sleep(0.05); done = true end)
      while not done do uv.run("once") end
      print("done")
      server:close()
    ]])
    for _, mode in ipairs({"evented", "uring"}) do
      local r = run(mode, script)  -- (a turn of the ring's own after the wake hung here)
      assert.equal(r.code, 0, mode .. ": " .. r.stderr)
      assert.equal(h.lines(r.stdout), {"done"}, mode)
    end
  end)

  it("accepts again right after an accept's timeout (its cancel still on the way), as evented", function()
    local script = h.tempFile("reaccept.lua", [[
      local net, task = require("net"), require("task")
      local server = assert(net.listen({host = "127.0.0.1", port = 0}))
      server:settimeout(0.05)
      print(select(2, server:accept()).code)
      -- The next accept starts in the same loop turn as the cancel of the
      -- last one: it must still take the connection that comes.
      server:settimeout(2)
      local client = task.async(function()
        task.sleep(0.1)
        local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
        c:write("hi\n")
        return c
      end)
      local conn, err = server:accept()
      print(conn and conn:readLine() or err.code)
      client:await():close()
      if conn then conn:close() end
      server:close()
    ]])
    for _, mode in ipairs({"evented", "uring"}) do
      local r = run(mode, script)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(h.lines(r.stdout), {"Timeout", "hi"}, mode)
    end
  end)

  it("accepts, sends and half-closes through the ring: an HTTP server's answers, a large write to a slow reader", function()
    local script = h.tempFile("send.lua", [[
      local http, net, task = require("http"), require("net"), require("task")
      local server = http.serve({host = "127.0.0.1", port = 0}, function(req, res)
        res:send(200, "hello " .. req.path)
      end)
      -- three pipelined requests in one write, the last one closing
      local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
      c:write("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local all = c:readAll()
      local n = 0
      for _ in all:gmatch("HTTP/1.1 200") do n = n + 1 end
      print("answers", n, all:match("hello /c$") ~= nil)
      c:close()
      server:close()
      -- 8 MB to a reader that waits first: the socket fills, the send goes
      -- on in pieces as the reader takes them, in order, then the
      -- half-close reaches the reader as the end
      local big = {}
      for i = 1, 8 * 1024 do big[i] = string.rep(".", 1018) .. ("%05d\n"):format(i) end
      big = table.concat(big)
      local l = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
        assert(conn:write(big))
        assert(conn:shutdown())
      end))
      local r = assert(net.connect({host = "127.0.0.1", port = l.port}))
      task.sleep(0.2)
      local got = r:readAll()
      print("big", #got, got == big)
      r:close()
      l:close()
    ]])
    local evented = run("evented", script)
    assert.equal(evented.code, 0, evented.stderr)
    local r = run("uring", script)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, evented.stdout)
    assert.equal(h.lines(r.stdout), {"answers\t3\ttrue", "big\t8388608\ttrue"})
    local n = stats(r.stderr)
    -- the client's request, the server's answers, the 8 MB (more than one
    -- entry: the socket took it in pieces) went out as ring sends, and both
    -- half-closes (the server's Connection: close, the listener's) as ring
    -- shutdowns
    assert.truthy((n.send or 0) >= 4, r.stderr)
    assert.truthy((n.shutdown or 0) >= 2, r.stderr)
    -- both listeners (the HTTP server's, net.listen's) accept on the ring
    assert.truthy((n.accept or 0) >= 2, r.stderr)
  end)

  it("with EVO_URING_SEND=off writes through libuv instead, with the same results", function()
    local script = h.tempFile("off.lua", [[
      local net = require("net")
      local l = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
        conn:write(conn:readLine(), "!\n")
      end))
      local c = assert(net.connect({host = "127.0.0.1", port = l.port}))
      c:write("hi\n")
      print(c:readLine())
      c:close()
      l:close()
    ]])
    local r = run("uring", script, nil, {EVO_URING_STATS = "1", EVO_URING_SEND = "off", EVO_IO = false})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "hi!\n")
    assert.isNil(stats(r.stderr).send, r.stderr)
    assert.truthy((stats(r.stderr).recv or 0) >= 2, r.stderr)
  end)

  -- The descriptors libuv's epoll instance watches ("tfd:" lines of its
  -- fdinfo), as a Lua snippet for the scripts below.
  local epollWatched = [[
local fs = require("fs")
local function epollWatched()
  local watched = {}
  for _, name in ipairs(fs.readdir("/proc/self/fd")) do
    if fs.readlink("/proc/self/fd/" .. name) == "anon_inode:[eventpoll]" then
      for fd in fs.readFile("/proc/self/fdinfo/" .. name):gmatch("tfd:%s*(%d+)") do watched[tonumber(fd)] = true end
    end
  end
  return watched
end
]]

  it("carries accepted and connected sockets on the ring alone: no epoll registration, close on the ring", function()
    local script = h.tempFile("ringonly.lua", epollWatched .. [==[
local net, http, task = require("net"), require("http"), require("task")
local serverSide = {}
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
  serverSide[#serverSide + 1] = conn:fileno()
  conn:write("you said: ", conn:readLine(), "\n")
  conn:close()
end))
local clients, registered = {}, 0
for i = 1, 20 do
  local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
  task.sleep(0.005)  -- the server's handler waits in readLine: its socket is read now
  if epollWatched()[serverSide[#serverSide]] then registered = registered + 1 end
  c:write("hello " .. i .. "\n")
  clients[#clients + 1] = c:readLine()
  c:close()
end
print(clients[1], clients[20], #serverSide, "registered", registered)
-- the HTTP server's connections too
local hs = http.serve({host = "127.0.0.1", port = 0}, function(req, res) res:send(200, "ok " .. req.path) end)
local res = assert(http.get("http://127.0.0.1:" .. hs.port .. "/x"))
print(res.status, res.body)
hs:close()
server:close()
]==])
    local evented = run("evented", script)
    assert.equal(evented.code, 0, evented.stderr)
    -- (libuv registers each socket it reads: the check can tell)
    assert.match(evented.stdout, "registered\t[1-9]")
    local r = run("uring", script)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(h.lines(r.stdout), {"you said: hello 1\tyou said: hello 20\t20\tregistered\t0", "200\tok /x"})
    local n = stats(r.stderr)
    -- 20 + 1 connects on the ring; the 2 x 21 socket closes are close(2) at
    -- once (nothing of theirs left unsubmitted), each told the user through a NOP
    assert.truthy((n.connect or 0) >= 21, r.stderr)
    assert.truthy((n.nop or 0) >= 42, r.stderr)
  end)

  it("makes no epoll_ctl or ioctl per accepted connection (strace)", function()
    if not require("fs").stat("/usr/bin/strace") then return end
    if os.getenv("EVO_SANITIZED") then return end  -- (LeakSanitizer does not run under ptrace)
    local script = h.tempFile("accepts.lua", [[
local net = require("net")
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
  conn:write(conn:readLine(), "\n")
end))
for i = 1, 200 do
  local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
  c:write("x\n")
  assert(c:readLine() == "x")
  c:close()
end
server:close()
]])
    local function calls(mode)
      local dir = h.tempDir()
      local r = h.spawn("/usr/bin/strace", {"-f", "-c", "-o", dir .. "/c", "-e", "trace=epoll_ctl,ioctl,close",
        h.evo, "--io=" .. mode, script}, {env = {EVO_IO = false}, timeout = 30})
      assert.equal(r.code, 0, r.stderr)
      local out = require("fs").readFile(dir .. "/c")
      local n = {}
      for line in out:gmatch("[^\n]+") do
        local f = {}
        for w in line:gmatch("%S+") do f[#f + 1] = w end
        if tonumber(f[4]) and f[#f]:match("^%a[%w_]*$") then n[f[#f]] = tonumber(f[4]) end
      end
      return n, out
    end
    local ev, evOut = calls("evented")
    local ur, urOut = calls("uring")
    -- evented: libuv registers (and unregisters) each of the 400 sockets
    assert.truthy((ev.epoll_ctl or 0) >= 400, evOut)
    -- uring: none of them (what is left is the loop's own handles)
    assert.truthy((ur.epoll_ctl or 0) < 20, urOut)
    assert.truthy((ur.ioctl or 0) < 20, urOut)
    -- the sockets' closes are close(2) calls at once, as evented's
    assert.truthy((ur.close or 0) >= (ev.close or 0) - 20, urOut .. evOut)
  end, 60)

  it("connects with the evented Io's errors: refused, unknown name, missing Unix socket, too long a path", function()
    local script = h.tempFile("connerr.lua", [[
local net = require("net")
local function show(s, err) print(s, err and err.code, err and tostring(err)) end
show(net.connect({host = "127.0.0.1", port = 1}))
show(net.connect({host = "::1", port = 1}))
show(net.connect({host = "no-such-host.invalid", port = 80}))
show(net.connect({path = arg[1] .. "/nope.sock"}))
show(net.connect({path = arg[1] .. "/" .. string.rep("x", 120)}))
-- a file that is no socket
io.open(arg[1] .. "/plain", "w"):close()
show(net.connect({path = arg[1] .. "/plain"}))
-- a name that resolves: localhost, to a listener
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn) conn:write("hi\n") end))
local c = assert(net.connect({host = "localhost", port = server.port}))
print(c:readLine())
c:close()
local u = assert(net.listen({path = arg[1] .. "/s.sock"}, function(conn) conn:write("unix\n") end))
local uc = assert(net.connect({path = arg[1] .. "/s.sock"}))
print(uc:readLine())
uc:close(); u:close(); server:close()
]])
    local dir = h.tempDir()
    local evented = run("evented", script, {dir})
    assert.equal(evented.code, 0, evented.stderr)
    local r = run("uring", script, {dir})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, evented.stdout)
    assert.match(r.stdout, "nil\tECONNREFUSED\tECONNREFUSED: connection refused: 127.0.0.1:1\n")
    assert.match(r.stdout, "nil\tEAI_NONAME")
    assert.match(r.stdout, "nil\tENOENT")
    assert.match(r.stdout, "hi\nunix\n$")
    assert.truthy((stats(r.stderr).connect or 0) >= 5, r.stderr)
  end)

  it("bounds a connect by its deadline (a linked timeout) and cancels it, as evented", function()
    -- A listener (Python's) with a full backlog that never accepts: the
    -- kernel drops further SYNs, so a connect to it waits for its deadline.
    local script = h.tempFile("conntimeout.lua", [[
local net, task = require("net"), require("task")
local port = tonumber(arg[1])
local held = {}
for i = 1, 4 do  -- fill the backlog
  local c = net.connect({host = "127.0.0.1", port = port, timeout = 0.3})
  if c then held[#held + 1] = c end
end
local c, err = net.connect({host = "127.0.0.1", port = port, timeout = 0.3})
print("timeout", c, err and err.code)
-- cancelled from outside (task.timeout around a connect without a deadline of its own)
local c2, err2 = task.timeout(0.2, net.connect, {host = "127.0.0.1", port = port})
print("cancelled", c2, err2 and err2.code)
-- the loop goes on: a connect elsewhere works
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn) conn:write("ok\n") end))
local ok = assert(net.connect({host = "127.0.0.1", port = server.port, timeout = 5}))
print(ok:readLine())
ok:close(); server:close()
for _, x in ipairs(held) do x:close() end
]])
    local fs, task = require("fs"), require("task")
    local dir = h.tempDir()
    local spawned = h.spawn("/bin/sh", {"-c", "/usr/bin/python3 -c 'import socket,sys,time,os\n" ..
      "s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(1)\n" ..
      "open(sys.argv[1]+\".tmp\",\"w\").write(str(s.getsockname()[1])); os.rename(sys.argv[1]+\".tmp\", sys.argv[1])\n" ..
      "time.sleep(20)' " .. dir .. "/port >/dev/null 2>&1 & echo $!"}, {timeout = 5})
    local pid = tonumber(spawned.stdout)
    local port
    for _ = 1, 100 do
      port = tonumber(fs.readFile(dir .. "/port") or "")
      if port then break end
      task.sleep(0.05)
    end
    assert.notNil(port, "the Python listener did not start")
    local evented = run("evented", script, {tostring(port)})
    local r = run("uring", script, {tostring(port)})
    os.execute("kill " .. pid)
    assert.equal(evented.code, 0, evented.stderr)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, evented.stdout)
    assert.equal(h.lines(r.stdout), {"timeout\tnil\tTimeout", "cancelled\tnil\tTimeout", "ok"})
    local n = stats(r.stderr)
    assert.truthy((n.link_timeout or 0) >= 1, r.stderr)
    assert.truthy((n.cancel or 0) >= 1, r.stderr)
  end, 30)

  it("connects and closes many sockets at once with the descriptors reused, nothing crossing", function()
    -- (A half-close run by the kernel's worker looked its descriptor up by
    -- number after the close beside it: a new connection under that number
    -- was shut down. Each connection here half-closes and closes while
    -- others open.)
    local script = h.tempFile("reuse.lua", [[
local net, task = require("net"), require("task")
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
  local line = conn:readLine()
  conn:write("re: ", line, "\n")
  conn:shutdown()
  conn:close()
end))
local tasks, bad = {}, 0
for i = 1, 400 do
  tasks[#tasks + 1] = task.async(function()
    local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
    c:write("n" .. i .. "\n")
    local got = c:readLine()
    if got ~= "re: n" .. i then bad = bad + 1 end
    c:shutdown()
    c:close()
  end)
  if i % 50 == 0 then for _, t in ipairs(tasks) do t:await() end tasks = {} end
end
for _, t in ipairs(tasks) do t:await() end
print("bad", bad)
server:close()
]])
    local r = run("uring", script)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "bad\t0\n")
  end, 60)

  it("does not spin when out of descriptors (EMFILE) and serves again once some are freed", function()
    -- A child evo with 64 descriptors: connections past that are accepted
    -- and closed at once (libuv's reserve-descriptor trick), the loop idle.
    local server = h.tempFile("emfile.lua", [[
local net, task = require("net"), require("task")
local s = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
  conn:write("hello\n")
  conn:readAll()  -- holds the descriptor until the client leaves
  conn:close()
end))
-- One connection's whole life (accept, write, the end read, close, the
-- collection of both streams) while descriptors are free: UBSan's vptr
-- check needs pipe(2) the first time it meets a type (see the spec).
local c = assert(net.connect({host = "127.0.0.1", port = s.port}))
assert(c:readLine() == "hello")
c:close()
task.sleep(0.1)
collectgarbage(); collectgarbage()
io.stdout:write(s.port, "\n"); io.stdout:flush()
]])
    local fs, task, net = require("fs"), require("task"), require("net")
    local dir = h.tempDir()
    local function cpu(pid)
      local stat = fs.readFile("/proc/" .. pid .. "/stat")
      local fields = {}
      for f in stat:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = f end
      return (tonumber(fields[12]) + tonumber(fields[13])) / 100  -- utime + stime, clock ticks
    end
    -- Both modes under the sanitizers too. UBSan's vptr check (clang 14's
    -- runtime) reads an unseen object's vtable only after pipe(2) says the
    -- memory is readable: with no descriptor free that fails, and it reports
    -- "invalid vptr" for a live object (a Stream, its Transport) — no use
    -- after free (ASan saw none; gdb showed the Stream intact). Once a type
    -- is checked the runtime remembers it: the server warms every type of a
    -- connection's life up before the descriptors run out.
    local modes = {"uring", "evented"}
    for _, mode in ipairs(modes) do
      local spawned = h.spawn("/bin/sh", {"-c", "ulimit -n 64; EVO_IO= exec " .. h.evo .. " --io=" .. mode .. " " ..
        server .. " > " .. dir .. "/port." .. mode .. " 2>&1 & echo $!"}, {timeout = 5})
      local pid = tonumber(spawned.stdout)
      local port
      for _ = 1, 100 do
        port = tonumber((fs.readFile(dir .. "/port." .. mode) or ""):match("^(%d+)\n"))
        if port then break end
        task.sleep(0.05)
      end
      assert.notNil(port, "the server did not start: " .. tostring(fs.readFile(dir .. "/port." .. mode)))
      local held = {}
      for i = 1, 80 do
        local c = net.connect({host = "127.0.0.1", port = port, timeout = 2})
        if c then held[#held + 1] = c end
      end
      task.sleep(0.3)
      local before = cpu(pid)
      task.sleep(1)
      local spent = cpu(pid) - before
      assert.truthy(spent < 0.3, mode .. ": the server used " .. spent .. " s of CPU in 1 s while out of descriptors")
      -- the connections past the limit were ended, the first ones served
      local served = 0
      for _, c in ipairs(held) do
        c:settimeout(2)
        if c:readLine() == "hello" then served = served + 1 end
      end
      assert.truthy(served >= 40 and served < 64, mode .. ": served " .. served)
      for _, c in ipairs(held) do c:close() end
      task.sleep(0.3)
      -- descriptors are free again: a new client is served
      local c = assert(net.connect({host = "127.0.0.1", port = port, timeout = 2}))
      c:settimeout(2)
      assert.equal(c:readLine(), "hello", mode)
      c:close()
      os.execute("kill " .. pid)
    end
  end, 60)

  local seccomp = [[
import ctypes, os, struct, sys
errno = int(sys.argv[1])
# Loads the arch and the syscall number; io_uring_setup (425 on x86_64)
# fails with errno, anything else is allowed.
def stmt(code, k): return struct.pack("HBBI", code, 0, 0, k)
def jump(code, k, jt, jf): return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
  stmt(0x20, 4), jump(0x15, 0xC000003E, 1, 0), stmt(0x06, 0x7FFF0000),
  stmt(0x20, 0), jump(0x15, 425, 0, 1), stmt(0x06, 0x00050000 | errno), stmt(0x06, 0x7FFF0000)])
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure):
  _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fp = Fprog(len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0                            # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0, ctypes.get_errno()  # SECCOMP_MODE_FILTER
os.execv(sys.argv[2], sys.argv[2:])
]]

  local function refused(errno, env)
    local args = {"-c", seccomp, tostring(errno), h.evo}
    local extra = env and {"-e", "print('ran')"} or {"--io=uring", "-e", "print('ran')"}
    for _, a in ipairs(extra) do args[#args + 1] = a end
    return h.spawn("/usr/bin/python3", args, {env = env or {EVO_IO = false}})
  end

  it("counts a sleep from its call in every Io, after work that kept the loop from polling", function()
    -- libuv counts a timer from the loop's cached time: the evented sleep
    -- ended 100 ms early here (after 46 us), the ring's and the blocking
    -- sleeps did not.
    local script = h.tempFile("early.lua", [[
      local task, uv = require("task"), require("uv")
      local t = uv.hrtime() + 100e6
      while uv.hrtime() < t do end
      local t0 = task.now()
      task.sleep(0.05)
      local d = task.now() - t0
      print("slept", d >= 0.049 and d < 1 or d)
    ]])
    for _, mode in ipairs({"evented", "uring", "blocking"}) do
      local r = run(mode, script)
      assert.equal(r.code, 0, mode .. ": " .. r.stderr)
      assert.equal(h.lines(r.stdout), {"slept\ttrue"}, mode)
    end
  end)

  it("sleeps on the ring (one IORING_OP_TIMEOUT for the earliest deadline) with the evented results", function()
    local script = h.tempFile("sleeps.lua", [[
      local task = require("task")
      local t0 = task.now()
      task.sleep(0.05)
      local d = task.now() - t0
      -- (libuv's timer counts from the loop's cached time: up to a millisecond early;
      -- the ring's never is early, tests/cpp/uring_io_test.cpp)
      print("slept", d >= 0.045 and d < 1)
      local order = {}
      local fs = {}
      for i = 1, 5 do fs[i] = task.async(function() task.sleep(0.01 * (6 - i)); order[#order + 1] = i end) end
      for i = 1, 5 do fs[i]:await() end
      print("order", table.concat(order, ","))
      print("timeout", select(2, task.timeout(0.05, task.sleep, 10)).code)
      print("in time", task.timeout(1, function() task.sleep(0.01) return "ok" end))
      local f = task.async(task.sleep, 10)
      task.sleep(0.01)
      print("cancelled", select(2, f:cancel()).code)
      -- many sleepers at once, a third cancelled while they sleep
      local many = {}
      for i = 1, 300 do many[i] = task.async(task.sleep, (i % 7) * 0.003 + 0.001) end
      task.yield()  -- each is in its sleep now
      local cancelled = 0
      for i = 1, 300, 3 do
        local _, err = many[i]:cancel()  -- (a short one may have fired meanwhile: no error then)
        if err and err.code == "Canceled" then cancelled = cancelled + 1 end
      end
      for i = 1, 300 do if i % 3 ~= 1 then many[i]:await() end end
      print("many", cancelled >= 50)
      io.stderr:write("cancelled ", cancelled, "\n")
      task.sleep(0)  -- a yield, not a timer
      -- outside a task (a finalizer cannot yield): a plain sleep
      local t1 = task.now()
      local u = newproxy(true)
      getmetatable(u).__gc = function() task.sleep(0.02) end
      u = nil
      collectgarbage()
      collectgarbage()
      print("blocking sleep", task.now() - t1 >= 0.02)
    ]])
    local evented = run("evented", script)
    assert.equal(evented.code, 0, evented.stderr)
    local uring = run("uring", script)
    assert.equal(uring.code, 0, uring.stderr)
    assert.equal(uring.stdout, evented.stdout)
    assert.equal(h.lines(uring.stdout), {"slept\ttrue", "order\t5,4,3,2,1", "timeout\tTimeout", "in time\tok",
      "cancelled\tCanceled", "many\ttrue", "blocking sleep\ttrue"})
    local n = stats(uring.stderr)
    -- 1 + 5 + 2 + 1 + 2 + 300 sleeps in tasks (the blocking one is not on the
    -- ring) share one timeout entry at a time, armed for the earliest deadline:
    -- fewer entries than sleeps; taken back (timeout_remove) when nobody sleeps
    -- any more (a cancelled last sleeper), moved earlier (an update, counted
    -- as timeout_remove too) when a shorter sleep comes
    assert.truthy((n.timeout or 0) >= 1 and n.timeout < 311, uring.stderr)
    assert.truthy((n.timeout_remove or 0) >= 2, uring.stderr)
  end, 30)

  it("ends at once when the run fails with a task still asleep (its sleep does not hold the exit)", function()
    -- (The runtime's exit runs the loop until nothing holds it: the ring's
    -- timeout for a 20 s sleep of an abandoned task did, for 20 s, until the
    -- exit sweep dropped the sleeps as it closes the evented Io's timers.)
    local script = h.tempFile("exitsleep.lua", [[
      local task = require("task")
      task.async(task.sleep, 20)
      task.sleep(0.05)
      error("the run fails here")
    ]])
    local t0 = require("task").now()
    local r = run("uring", script)
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, "the run fails here")
    assert.truthy(require("task").now() - t0 < 5, "the exit waited for the sleep")
  end, 30)

  it("puts file handles and stat on the ring (OPENAT, READ, WRITE, FSYNC, STATX, CLOSE), with the evented results",
    function()
    local script = h.tempFile("handles.lua", [[
      local fs, task, uv = require("fs"), require("task"), require("uv")
      local dir = arg[1]
      local f = assert(fs.open(dir .. "/a", "w+"))
      for i = 1, 10 do assert(f:write(("line %d\n"):format(i))) end
      assert(f:sync())
      print("size", f:stat().size, f:seek("set", 0))
      print("lines", f:readLine(), f:readLine(), #f:read())
      f:close()
      local st = assert(fs.stat(dir .. "/a"))
      local want = uv.fs_stat(dir .. "/a")
      print("stat", st.size == want.size, st.ino == want.ino, st.mode == want.mode, st.type,
        st.mtime.sec == want.mtime.sec and st.mtime.nsec == want.mtime.nsec)
      print("missing", select(2, fs.open(dir .. "/nope")).code, select(2, fs.stat(dir .. "/nope")).code,
        fs.exists(dir .. "/a"), fs.exists(dir .. "/nope"))
      -- 16 tasks sharing nothing: open, read, close each
      local ts = {}
      for i = 1, 16 do
        ts[i] = task.async(function()
          local g = assert(fs.open(dir .. "/a"))
          local line = g:readLine()
          g:close()
          return line
        end)
      end
      local same = 0
      for i = 1, 16 do if ts[i]:await() == "line 1" then same = same + 1 end end
      print("tasks", same)
    ]])
    local evented = run("evented", script, {h.tempDir()})
    assert.equal(evented.code, 0, evented.stderr)
    local uring = run("uring", script, {h.tempDir()})
    assert.equal(uring.code, 0, uring.stderr)
    assert.equal(uring.stdout, evented.stdout)
    assert.equal(h.lines(uring.stdout)[1], "size\t71\t0")
    assert.equal(h.lines(uring.stdout)[4], "missing\tENOENT\tENOENT\ttrue\tfalse")
    local n = stats(uring.stderr)
    assert.truthy(n.openat >= 18, uring.stderr)
    assert.truthy(n.write >= 10, uring.stderr)
    assert.truthy(n.fsync >= 1, uring.stderr)
    assert.truthy(n.read >= 18, uring.stderr)
    assert.truthy(n.statx >= 4, uring.stderr)
    assert.truthy(n.close >= 17, uring.stderr)
  end, 30)

  it("cancels a file-handle read stuck in the kernel (a FIFO with no writer): Timeout, then exits cleanly", function()
    -- (io_uring opens a FIFO for reading at once, as O_NONBLOCK would, where
    -- libuv's open blocks until a writer comes: docs/io.md)
    local dir = h.tempDir()
    assert.equal(os.execute("mkfifo " .. dir .. "/fifo"), 0)
    local script = h.tempFile("fiforead.lua", [[
      local fs, task = require("fs"), require("task")
      local f = assert(fs.open(arg[1]))
      print(select(2, task.timeout(0.2, f.read, f, 10)).code)
      print(f:close())
      print(#assert(fs.readFile("/proc/self/comm")) > 0)
    ]])
    local r = run("uring", script, {dir .. "/fifo"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(h.lines(r.stdout), {"Timeout", "true", "true"})
    assert.truthy((stats(r.stderr).cancel or 0) >= 1, r.stderr)
  end)

  it("cancels a file-handle call queued on the evented Io's thread pool (uv_cancel), the pool busy", function()
    local script = h.tempFile("poolstat.lua", [[
      local fs, task = require("fs"), require("task")
      local jobs = {}
      for i = 1, 4 do
        jobs[i] = task.async(task.work, function() local t = os.clock() while os.clock() - t < 0.3 do end end)
      end
      local f = task.async(fs.stat, "/")
      task.sleep(0.02)
      print(f:done())
      print(select(2, f:cancel()).code)
      for i = 1, 4 do jobs[i]:await() end
      print(fs.stat("/").type)
    ]])
    local r = run("evented", script)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(h.lines(r.stdout), {"false", "Canceled", "directory"})
  end)

  it("fails at start with a clear message when the kernel says ENOSYS (a seccomp filter here)", function()
    local r = refused(38)
    assert.equal(r.code, 1, r.stderr)
    assert.equal(r.stdout, "")  -- nothing ran: no silent fallback
    assert.match(r.stderr, "^evo: %-%-io=uring cannot run here: io_uring_setup failed: [^\n]*%(this kernel has no io_uring%)")
  end)

  it("fails at start when io_uring is forbidden (EPERM), with EVO_IO=uring too", function()
    local r = refused(1, {EVO_IO = "uring"})
    assert.equal(r.code, 1, r.stderr)
    assert.equal(r.stdout, "")
    assert.match(r.stderr, "cannot run here: io_uring_setup failed: Operation not permitted %(")
    -- the same filter leaves the evented mode alone
    local ok = refused(1, {EVO_IO = "evented"})
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(ok.stdout, "ran\n")
  end)

  it("refuses an unknown mode, naming the three", function()
    local r = h.runEvo({"--io=ring", "-e", "print(1)"})
    assert.equal(r.code, 2)
    assert.match(r.stderr, "'evented', 'blocking' or 'uring', not 'ring'")
  end)
end)

describe("both waits: the ring as the outer waiter (the default) and libuv's epoll (EVO_URING_WAIT=epoll)", function()
  -- Everything that ends the wait: ring completions (sleeps, files, sockets),
  -- libuv's own descriptors through the ring's poll of its epoll descriptor
  -- (a luv timer via the timeout, a thread-pool job's async wake-up, a child
  -- process, a uv.run("nowait") that must not block), and the loop ending
  -- when nothing is left.
  local script = [[
local task, fs, net, uv = require("task"), require("fs"), require("net"), require("uv")
local t0 = uv.hrtime()
task.sleep(0.02)
print("slept", (uv.hrtime() - t0) / 1e6 >= 19)
print("file", #assert(fs.readFile("/proc/self/status")) > 100)
local server = assert(net.listen({host = "127.0.0.1", port = 0}, function(conn)
  conn:write("echo ", conn:readLine(), "\n")
end))
local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
c:write("hi\n")
print(c:readLine())
c:close()
server:close()
print("work", task.work(function() return 6 * 7 end))
local timer = uv.new_timer()
timer:start(10, 0, function() print("uv timer"); timer:close() end)
local p = assert(uv.spawn("/bin/true", {}, function(code) print("child", code) end))
local t1 = uv.hrtime()
uv.run("nowait")
print("nowait did not block", (uv.hrtime() - t1) / 1e6 < 5)
]]

  -- A luv pipe started inside a task (libuv adds its descriptor to its epoll
  -- set only in its poll phase): its data ends the ring's wait when it comes.
  local fifoScript = [[
local uv, task = require("uv"), require("task")
local fifo = arg[1]
os.execute("(sleep 0.3; echo hi) > " .. fifo .. " &")
task.async(function()
  task.sleep(0.05)
  local p = uv.new_pipe()
  p:open(assert(uv.fs_open(fifo, "r", 0)))
  local t0 = uv.hrtime()
  p:read_start(function(err, data)
    if data then print(data:gsub("\n", ""), (uv.hrtime() - t0) / 1e9 < 1) else p:close() end
  end)
end)
]]
  for _, wait in ipairs({"ring", "epoll"}) do
    it("reads a luv pipe started in a task as its data comes (EVO_URING_WAIT=" .. wait .. ")", function()
      local fifo = h.tempDir() .. "/f"
      os.execute("mkfifo " .. fifo)
      local r = run("uring", h.tempFile("fifo.lua", fifoScript), {fifo}, {EVO_URING_WAIT = wait, EVO_IO = false})
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, "hi\ttrue\n")
    end)
  end

  for _, wait in ipairs({"ring", "epoll", false}) do
    it("serves sockets, files, sleeps, the thread pool, luv timers and children, and ends (EVO_URING_WAIT="
       .. tostring(wait) .. ")", function()
      local path = h.tempFile("ringwait.lua", script)
      local r = run("uring", path, nil, {EVO_URING_WAIT = wait, EVO_URING_STATS = "1", EVO_IO = false})
      assert.equal(r.code, 0, r.stderr)
      for _, want in ipairs({"slept\ttrue", "file\ttrue", "echo hi", "work\t42", "uv timer", "child\t0",
                             "nowait did not block\ttrue"}) do
        assert.truthy(r.stdout:find(want, 1, true), want .. " not in: " .. r.stdout)
      end
      -- libuv's epoll descriptor watched on the ring: only when the ring waits
      if wait == "epoll" then
        assert.isNil(stats(r.stderr).poll)
      else
        assert.truthy(stats(r.stderr).poll >= 1)
      end
    end)
  end
end)
