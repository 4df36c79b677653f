-- Shared by the web conformance specs (WebSockets, TLS, a browser): real
-- peers as child processes (Python's websockets, curl, openssl, chromium),
-- their reports, and a throwaway certificate.
local uv = require("uv")
local process = require("process")
local task = require("task")
local fs = require("fs")

local W = {}

local source = debug.getinfo(1, "S").source:gsub("^@", "")
W.dir = source:match("^(.*)/[^/]+$") or "."
if W.dir:sub(1, 1) ~= "/" then W.dir = uv.cwd() .. "/" .. W.dir end
W.root = W.dir:gsub("/tests/web$", "")
W.peers = W.dir .. "/peers"
W.evo = os.getenv("EVO") or uv.exepath()
W.python = "/usr/bin/python3"  -- Debian's, with python3-websockets; not the pyenv shim on PATH

function W.exists(path) return uv.fs_stat(path) ~= nil end

function W.tempDir() return assert(fs.mkdtemp("/tmp/evo-web-")) end

function W.rmTree(dir) if dir then fs.rm(dir, {recursive = true}) end end

-- run(program, argv [, opts]) -> {out, err, code, signal, timedOut}
-- opts.input: bytes for stdin; opts.timeout: seconds before a KILL (20);
-- opts.env: the whole environment ({NAME = value}).
function W.run(program, argv, opts)
  opts = opts or {}
  local env
  if opts.env then
    env = {}
    for k, v in pairs(opts.env) do env[#env + 1] = k .. "=" .. v end
  end
  local child = assert(process.spawn(program, argv or {}, {env = env, cwd = opts.cwd}))
  local killer = uv.new_timer()
  local timedOut = false
  killer:start(math.floor((opts.timeout or 20) * 1000), 0, function()
    timedOut = true
    child:kill("KILL")
  end)
  local errReader = task.async(function() return child.stderr:readAll() end)
  local writer = task.async(function()
    if opts.input then child.stdin:write(opts.input) end
    child.stdin:close()
  end)
  local out = child.stdout:readAll()
  local err = errReader:await()
  writer:await()
  child.stdout:close()
  child.stderr:close()
  local code, signal = child:wait()
  killer:stop()
  killer:close()
  return {out = out or "", err = err or "", code = code, signal = signal, timedOut = timedOut}
end

-- A JSON encoder for peer scripts' instructions (strings must be UTF-8;
-- a table with [1] is an array).
local function json(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" or t == "number" then return tostring(v) end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  end
  local parts = {}
  if v[1] ~= nil or next(v) == nil then
    for i = 1, #v do parts[i] = json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do parts[#parts + 1] = json(tostring(k)) .. ":" .. json(x) end
  return "{" .. table.concat(parts, ",") .. "}"
end
W.json = json

-- The peers print their report as a Lua table constructor.
local function report(r, what)
  local fn = loadstring("return " .. r.out)
  if r.code ~= 0 or not fn then
    error(what .. " failed (exit " .. tostring(r.code) .. (r.timedOut and ", timed out" or "") .. "): "
      .. r.err .. r.out, 3)
  end
  return fn()
end

-- wsClient(config) -> report of peers/ws_client.py (Python websockets client).
function W.wsClient(config)
  local r = W.run(W.python, {W.peers .. "/ws_client.py"}, {input = json(config), timeout = 30})
  return report(r, "ws_client.py")
end

-- wsRaw(port, steps [, opts]) -> report of peers/ws_raw.py (hand-made frames).
function W.wsRaw(port, steps, opts)
  opts = opts or {}
  local config = {port = port, path = opts.path or "/", headers = opts.headers, steps = steps}
  local r = W.run(W.python, {W.peers .. "/ws_raw.py"}, {input = json(config), timeout = 30})
  return report(r, "ws_raw.py")
end

-- A byte pattern both sides can build: byte i (from 0) is i % 251.
function W.pattern(n)
  local parts = {}
  local block = {}
  for i = 0, 250 do block[#block + 1] = string.char(i) end
  block = table.concat(block)
  local full = math.floor(n / 251)
  for i = 1, full do parts[i] = block end
  parts[#parts + 1] = block:sub(1, n - full * 251)
  return table.concat(parts)
end

-- A long-running child (a server): started, and its stdout read up to the
-- line giving its port (pattern: "^port (%d+)$", as the peers print it);
-- peer.readLine and peer.waitFor read its later output.
function W.startPeer(program, argv, pattern)
  local child = assert(process.spawn(program, argv, {stdin = "ignore", stderr = "ignore"}))
  local port, seen = nil, {}
  task.timeout(15, function()
    repeat
      local line = child.stdout:readLine()
      seen[#seen + 1] = line
      port = line and tonumber(line:match(pattern or "^port (%d+)$"))
    until port or not line
  end)
  if not port then
    child:kill("KILL")
    child:wait()
    error("the peer did not report its port: " .. table.concat(seen, "\n"), 2)
  end
  local peer = {child = child, port = port}
  -- readLine(timeout) -> the next line of its output, or nil on timeout
  function peer.readLine(seconds)
    return task.timeout(seconds or 10, function() return child.stdout:readLine() end)
  end
  -- waitFor(pattern [, seconds]) -> the captures of the first later line that matches
  function peer.waitFor(pattern, seconds)
    local deadline = task.now() + (seconds or 10)
    while true do
      local left = deadline - task.now()
      if left <= 0 then return nil end
      local line = peer.readLine(left)
      if not line then return nil end
      local caps = {line:match(pattern)}
      if caps[1] ~= nil then return unpack(caps) end
    end
  end
  function peer.stop()
    child:kill("TERM")
    child:wait()
    child.stdout:close()
  end
  return peer
end

-- A self-signed P-256 certificate for localhost and 127.0.0.1, made now
-- with the openssl CLI: returns {dir, cert, key}.
function W.makeCert()
  local dir = W.tempDir()
  local r = W.run("openssl", {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", dir .. "/key.pem", "-out", dir .. "/cert.pem", "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"}, {timeout = 20})
  assert(r.code == 0, "openssl req failed: " .. r.err)
  return {dir = dir, cert = dir .. "/cert.pem", key = dir .. "/key.pem"}
end

W.chromiumPath = "/usr/bin/chromium"  -- Debian's

-- chromium(url [, budgetMs]) -> the DOM headless Chromium dumps after loading
-- url, and the run's {code, err}. With budgetMs, after the page's scripts
-- ran for that much virtual time (which runs ahead of the clock when only
-- sockets are pending: it does not wait for WebSocket traffic); with false,
-- as soon as the page's load event fired (the page decides when, e.g. with
-- an image the server answers late).
function W.chromium(url, budget)
  local profile = W.tempDir()
  local argv = {"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--user-data-dir=" .. profile}
  if budget ~= false then argv[#argv + 1] = "--virtual-time-budget=" .. (budget or 10000) end
  argv[#argv + 1] = "--dump-dom"
  argv[#argv + 1] = url
  local r = W.run(W.chromiumPath, argv, {timeout = 60})
  W.rmTree(profile)
  return r.out, r
end

-- curl(args...) -> stdout, stderr, exit code. Always -sS; never a proxy.
function W.curl(...)
  local r = W.run("curl", {"-sS", "--noproxy", "*", "--max-time", "15", ...}, {timeout = 20})
  return r.out, r.err, r.code
end

-- get(queue [, seconds]) -> the next value put in the queue, or fails the test
function W.get(q, seconds)
  local v, err = task.timeout(seconds or 10, function() return q:get() end)
  if v == nil then error("nothing arrived in the queue: " .. tostring(err), 2) end
  return v
end

return W
