-- Real servers for the specs: each start() launches Debian's server on a free
-- port in a temporary directory, waits until it answers, and returns a handle
-- whose stop() kills it and removes the directory. No mocks; nothing is left
-- running after a spec. Postgres is added here by the Postgres specs.
local process = require("process")
local task = require("task")
local net = require("net")
local fs = require("fs")

local servers = {}

-- freePort() -> a TCP port on 127.0.0.1 nobody listens on right now.
function servers.freePort()
  local s = assert(net.listen({host = "127.0.0.1", port = 0}))
  local port = s.port
  s:close()
  return port
end

local function stop(srv)
  srv.child:kill("KILL")
  srv.child:wait()
  fs.rm(srv.dir, {recursive = true})
end

-- redis([extra argv], [port]) -> {port, child, dir, url, stop}: a redis-server
-- that answers PING (or refuses it with NOAUTH when started with a password).
function servers.redis(extra, port)
  port = port or servers.freePort()
  local dir = assert(fs.mkdtemp("/tmp/evo-redis-"))
  local argv = {"--port", tostring(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", dir, "--daemonize", "no", "--logfile", dir .. "/log"}
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local child = assert(process.spawn("/usr/bin/redis-server", argv,
    {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
  for _ = 1, 100 do
    local s = net.connect({host = "127.0.0.1", port = port})
    if s then
      s:write("PING\r\n")
      local line = s:readLine()
      s:close()
      if line == "+PONG" or (line or ""):match("^%-NOAUTH") then break end
    end
    task.sleep(0.05)
  end
  return {port = port, child = child, dir = dir, url = "redis://127.0.0.1:" .. port, stop = stop}
end

return servers
