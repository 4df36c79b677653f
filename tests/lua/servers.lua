-- Real servers for the specs: each start() launches Debian's server on a free
-- port in a temporary directory, waits until it answers, and returns a handle
-- whose stop() kills it and removes the directory. No mocks; nothing is left
-- running after a spec.
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

-- listening(port) -> true once something accepts TCP connections on
-- 127.0.0.1:port, false after 5 s.
function servers.listening(port)
  for _ = 1, 100 do
    local s = net.connect({host = "127.0.0.1", port = port})
    if s then
      s:close()
      return true
    end
    task.sleep(0.05)
  end
  return false
end

-- stopChild(child): SIGTERM, then SIGKILL after 3 s; waits for it either way.
function servers.stopChild(child)
  if not child then return end
  child:kill("TERM")
  if not task.timeout(3, function() return child:wait() end) then
    child:kill("KILL")
    child:wait()
  end
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

-- postgres([opts]) -> {port, dir, url, user, password, stop, restart, kill}:
-- Debian's PostgreSQL 15 in a fresh cluster (initdb) on a free port, with
-- password (scram-sha-256) authentication for TCP, so SCRAM is exercised.
-- As root (CI) the cluster belongs to the postgres user and every server
-- command runs through runuser. pg_ctl starts it and waits until it accepts
-- connections; stop() shuts it down (immediate mode) and removes the
-- directory; restart() starts it again on the same port; kill() stops it
-- without removing anything (a server that dies mid-query). opts.tls: ssl=on
-- with a self-signed certificate made here, and a url with sslmode=require.
-- opts.authHost: initdb's --auth-host method instead of scram-sha-256 ("md5":
-- initdb then sets password_encryption = md5, so passwords are stored as MD5
-- and pg_hba asks for MD5; a role stored as SCRAM still gets SCRAM).
local PG_BIN = "/usr/lib/postgresql/15/bin/"

local function sh(argv, asUser)
  if asUser then
    local a = {"-u", "postgres", "--"}
    for _, v in ipairs(argv) do a[#a + 1] = v end
    argv = a
  end
  local cmd = asUser and "/usr/sbin/runuser" or table.remove(argv, 1)
  local child = assert(process.spawn(cmd, argv, {stdin = "ignore", stdout = "ignore", stderr = "pipe"}))
  local errText = child.stderr:readAll() or ""
  local code = child:wait()
  if code ~= 0 then error(cmd .. " " .. table.concat(argv, " ") .. " failed (" .. code .. "): " .. errText, 2) end
end

local function pgStart(srv)
  sh({PG_BIN .. "pg_ctl", "-D", srv.dir .. "/data", "-l", srv.dir .. "/log", "-w", "-t", "30", "-o",
    "-p " .. srv.port .. " -k " .. srv.dir .. " -c listen_addresses=127.0.0.1 -c fsync=off" ..
    " -c full_page_writes=off -c synchronous_commit=off" .. (srv.extra or ""), "start"}, srv.root)
end

local function pgKill(srv)
  sh({PG_BIN .. "pg_ctl", "-D", srv.dir .. "/data", "-m", "immediate", "-w", "stop"}, srv.root)
end

function servers.postgres(opts)
  opts = opts or {}
  local uv = require("uv")
  local port = opts.port or servers.freePort()
  local dir = assert(fs.mkdtemp("/tmp/evo-pg-"))
  local root = uv.getuid() == 0
  local user, password = "evo", "evo-secret"
  fs.writeFile(dir .. "/pw", password .. "\n")
  if root then sh({"/bin/chown", "-R", "postgres:postgres", dir}) end
  sh({PG_BIN .. "initdb", "-D", dir .. "/data", "-U", user, "--auth-local=trust", "--auth-host=" .. (opts.authHost or "scram-sha-256"),
    "--pwfile=" .. dir .. "/pw", "-E", "UTF8", "--locale=C", "--no-sync"}, root)
  local extra = opts.extra or ""
  if opts.tls then
    -- A self-signed certificate for 127.0.0.1, made here: TLS with sslmode=require.
    local data = dir .. "/data"
    sh({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-keyout", data .. "/server.key", "-out", data .. "/server.crt"})
    sh({"/bin/chmod", "600", data .. "/server.key"})
    if root then sh({"/bin/chown", "postgres:postgres", data .. "/server.key", data .. "/server.crt"}) end
    extra = extra .. " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
  end
  local srv = {port = port, dir = dir, root = root, user = user, password = password, extra = extra,
    url = ("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=%s"):format(user, password, port,
      opts.tls and "require" or "disable")}
  pgStart(srv)
  function srv:stop()
    pcall(pgKill, self)
    fs.rm(self.dir, {recursive = true})
  end
  function srv:kill() pgKill(self) end
  function srv:restart() pgStart(self) end
  return srv
end

return servers
