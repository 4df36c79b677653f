-- Many connections: 10,000 idle keep-alive connections held by one evo
-- process (its RSS is reported), and slow clients (slowloris) cut by the
-- header timeout while other clients are served.
local process = require("process")
local net = require("net")
local task = require("task")
local http = require("http")
local ffi = require("ffi")

local N = tonumber(os.getenv("EVO_IDLE_CONNECTIONS")) or 10000

ffi.cdef [[
  struct evo_rlimit { unsigned long cur, max; };
  int getrlimit(int resource, struct evo_rlimit* r);
  int setrlimit(int resource, const struct evo_rlimit* r);
]]
-- This process holds the client side of every connection: raise its
-- descriptor limit as far as allowed (RLIMIT_NOFILE is 7 on Linux).
local function raiseFileLimit()
  local r = ffi.new("struct evo_rlimit")
  ffi.C.getrlimit(7, r)
  r.cur = r.max
  ffi.C.setrlimit(7, r)
  return tonumber(r.cur)
end

local function startServer(headerTimeout)
  local evo = os.getenv("EVO") or "build/evo"
  -- The server needs N descriptors too: ulimit -n in its shell.
  local child = assert(process.spawn("/bin/sh", {"-c", "ulimit -n $(ulimit -Hn); exec " .. evo
    .. " tests/load/idle_server.lua " .. headerTimeout}, {stdin = "ignore", stderr = "inherit"}))
  local port = tonumber(child.stdout:readLine())
  assert(port, "the server did not start")
  return child, port
end

local function rssKiB(pid)
  for line in io.lines("/proc/" .. pid .. "/status") do
    local kib = line:match("^VmRSS:%s+(%d+)")
    if kib then return tonumber(kib) end
  end
end

local function request(stream)
  local ok, err = stream:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
  if not ok then return nil, err end
  local status = stream:readLine()
  if not status then return nil end
  repeat local line = stream:readLine() until line == "" or line == nil
  local body = stream:read(5)
  return status, body
end

describe("many connections", function()
  it("holds 10,000 idle keep-alive connections in one process, and each still works", function()
    local limit = raiseFileLimit()
    assert.truthy(limit >= N + 100, "needs " .. (N + 100) .. " file descriptors, the hard limit is " .. limit)
    local child, port = startServer(10)
    local before = rssKiB(child.pid)
    local conns = {}
    -- Open them 200 at a time, each making one request and staying open.
    local opened = 0
    while opened < N do
      local batch = math.min(200, N - opened)
      local g = task.group()
      for i = 1, batch do
        local idx = opened + i
        g:concurrent(function()
          local s = assert(net.connect({host = "127.0.0.1", port = port}))
          local status, body = request(s)
          assert(status == "HTTP/1.1 200 OK" and body == "hello", "request " .. idx .. " failed")
          conns[idx] = s
        end)
      end
      g:await()
      opened = opened + batch
    end
    task.sleep(0.2)
    local after = rssKiB(child.pid)
    print(("\n      %d idle keep-alive connections: server RSS %.1f MiB (%.1f MiB at start, %.2f KiB per connection)")
      :format(N, after / 1024, before / 1024, (after - before) / N))
    -- Every connection is still usable (none was dropped), spot-checked.
    for i = 1, N, math.floor(N / 50) do
      local status, body = request(conns[i])
      assert.equal("HTTP/1.1 200 OK", status)
      assert.equal("hello", body)
    end
    assert.truthy(after < 400 * 1024, "RSS stays bounded (" .. after .. " KiB)")
    -- An idle connection keeps no exchange and no parser of its own (the
    -- server pools a few of each for whichever connection asks next): 2.35
    -- KiB each when every one kept its last exchange, 1.8 with the exchange
    -- pooled, 1.3 with the parser too; issue 13 asks for 1.5 at most. (The
    -- sanitizers' allocator pads every block.)
    if os.getenv("EVO_SANITIZED") ~= "1" then
      local each = (after - before) / N
      assert.truthy(each <= 1.5, ("%.2f KiB per idle connection"):format(each))
    end
    for _, s in ipairs(conns) do s:close() end
    child:kill()
    child:wait()
  end)

  it("cuts slow clients (slowloris) at the header timeout while serving others", function()
    local child, port = startServer(0.6)
    local slow = {}
    for i = 1, 20 do
      local s = assert(net.connect({host = "127.0.0.1", port = port}))
      s:write("GET / HTTP/1.1\r\n")
      slow[i] = s
    end
    local started = task.now()
    -- Dribble a header byte every 0.1 s on every slow connection...
    local dribble = task.async(function()
      for _ = 1, 30 do
        for _, s in ipairs(slow) do s:write("X") end
        task.sleep(0.1)
      end
    end)
    -- ...while normal clients are served at once.
    task.sleep(0.2)
    for _ = 1, 5 do
      local r = assert(http.get("http://127.0.0.1:" .. port .. "/"))
      assert.equal(200, r.status)
      assert.equal("hello", r.body)
    end
    -- The slow ones get 408 and are closed, about when the timeout says.
    for _, s in ipairs(slow) do
      local all = s:readAll()
      assert.truthy(all and all:match("^HTTP/1.1 408 "), "a slow client gets 408: " .. tostring(all))
    end
    local took = task.now() - started
    assert.truthy(took < 2.5, "cut at the header timeout, not later (" .. took .. " s)")
    dribble:cancel()
    for _, s in ipairs(slow) do s:close() end
    http.closeIdle()
    child:kill()
    child:wait()
  end)
end)
