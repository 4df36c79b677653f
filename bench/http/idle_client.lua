-- Opens N keep-alive HTTP connections to 127.0.0.1:PORT, 200 at a time; each
-- sends one GET, reads the whole response (status 200, body by content-length)
-- and stays open. Prints "ready" once all are open, then holds them until killed.
-- The client of bench/http_idle.sh.
--   evo bench/http/idle_client.lua PORT [N]      (N: CONNECTIONS, default 10000)
local net = require("net")
local task = require("task")
local ffi = require("ffi")

local port = assert(tonumber(arg[1]), "usage: idle_client.lua PORT [N]")
local n = tonumber(arg[2]) or tonumber(os.getenv("CONNECTIONS")) or 10000
local batch = 200

-- One descriptor per connection: raise the soft limit to the hard one
-- (RLIMIT_NOFILE is 7 on Linux).
ffi.cdef [[
  struct evo_bench_rlimit { unsigned long cur, max; };
  int getrlimit(int resource, struct evo_bench_rlimit* r);
  int setrlimit(int resource, const struct evo_bench_rlimit* r);
]]
local lim = ffi.new("struct evo_bench_rlimit")
ffi.C.getrlimit(7, lim)
lim.cur = lim.max
ffi.C.setrlimit(7, lim)
if tonumber(lim.cur) < n + 50 then
  io.stderr:write(("idle_client: %d connections need more descriptors than the limit, %d\n"):format(n, tonumber(lim.cur)))
  os.exit(1)
end

-- One request on a fresh connection; returns the open stream or raises.
local function open(i)
  local s = assert(net.connect({host = "127.0.0.1", port = port}))
  assert(s:write("GET / HTTP/1.1\r\nHost: 127.0.0.1:" .. port .. "\r\n\r\n"))
  local status = s:readLine()
  assert(status and status:match("^HTTP/1%.1 200 "), ("connection %d: status %q"):format(i, tostring(status)))
  local length
  while true do
    local line = assert(s:readLine(), "connection " .. i .. ": closed in the headers")
    if line == "" then break end
    local v = line:lower():match("^content%-length:%s*(%d+)")
    if v then length = tonumber(v) end
  end
  assert(length, "connection " .. i .. ": no content-length")
  if length > 0 then assert(s:read(length), "connection " .. i .. ": closed in the body") end
  return s
end

local conns = {}
local opened = 0
while opened < n do
  local count = math.min(batch, n - opened)
  local g = task.group()
  for i = opened + 1, opened + count do
    g:concurrent(function() conns[i] = open(i) end)
  end
  g:await()
  opened = opened + count
end

io.stdout:write("ready\n")
io.stdout:flush()
while true do task.sleep(3600) end
