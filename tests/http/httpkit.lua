-- Shared by the HTTP conformance specs: servers in this process, real peers
-- (curl, Python's raw sockets and http.client) as child processes, and a
-- small parser for the raw bytes a server sent back.
local uv = require("uv")
local http = require("http")
local process = require("process")
local task = require("task")
local fs = require("fs")

local K = {}

local source = debug.getinfo(1, "S").source:gsub("^@", "")
K.dir = source:match("^(.*)/[^/]+$") or "."
if K.dir:sub(1, 1) ~= "/" then K.dir = uv.cwd() .. "/" .. K.dir end
K.peers = K.dir .. "/peers"
K.fixtures = K.dir .. "/fixtures"
K.evo = os.getenv("EVO") or uv.exepath()
K.python = "/usr/bin/python3"  -- Debian's, not a pyenv shim on PATH

-- What K.cleanup() undoes after each test, last first. A server a failed
-- test leaves listening would keep `evo test` from ever exiting.
local cleanups = {}

-- onCleanup(fn): fn() runs (bounded in time) after the current test.
function K.onCleanup(fn) cleanups[#cleanups + 1] = fn end

-- cleanup(): for afterEach; closes what the test left open.
function K.cleanup()
  local list = cleanups
  cleanups = {}
  for i = #list, 1, -1 do pcall(task.timeout, 3, list[i]) end
end

-- serveShared(opts, handler) -> server, its base URL; the caller closes it
-- (for servers made in before() and closed in after()).
function K.serveShared(opts, handler)
  opts = opts or {}
  if opts.port == nil then opts.port = 0 end
  local server = assert(http.serve(opts, handler))
  assert(server.port > 0, "the server reports its port")
  return server, "http://127.0.0.1:" .. server.port
end

-- serve(opts, handler) -> server, its base URL; closed after the test at
-- the latest (server:close() may be called before: it is idempotent).
function K.serve(opts, handler)
  local server, url = K.serveShared(opts, handler)
  K.onCleanup(function() server:close() end)
  return server, url
end

-- run(program, argv [, opts]) -> {out, err, code, signal, timedOut}
-- opts.input: bytes for the child's stdin; opts.timeout: seconds (20)
function K.run(program, argv, opts)
  opts = opts or {}
  local child = assert(process.spawn(program, argv or {}, {}))
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

-- curl(args...) -> stdout, stderr, exit code. Always -sS; never a proxy.
function K.curl(...)
  local argv = {"-sS", "--noproxy", "*", "--max-time", "20", ...}
  local r = K.run("curl", argv, {timeout = 25})
  return r.out, r.err, r.code
end

-- rssMiB(pid): a process's resident memory, in MiB.
function K.rssMiB(pid)
  local status = assert(fs.readFile("/proc/" .. pid .. "/status"))
  return tonumber(status:match("VmRSS:%s*(%d+)")) / 1024
end

-- Under sanitizers (make test-asan) memory figures mean nothing: freed
-- memory sits in ASan's quarantine. The bound is checked elsewhere.
K.sanitized = os.getenv("EVO_SANITIZED") == "1"

-- assertGrowth(grown, limit, what): grown (MiB, or KiB per connection) is
-- under limit, except in a sanitized build.
function K.assertGrowth(grown, limit, what)
  if K.sanitized then return end
  assert(grown < limit, string.format("%s grew by %.1f (limit %s)", what, grown, limit))
end

function K.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function loadReport(r, what)
  local fn = (loadstring or load)("return " .. r.out)
  if r.code ~= 0 or not fn then
    error(what .. " failed (exit " .. tostring(r.code) .. "): " .. r.err .. r.out, 3)
  end
  return fn()
end

-- raw(port, steps [, timeout]) -> report (see peers/raw.py). Steps are
-- {"send", bytes}, {"drip", seconds, bytes}, {"sleep", seconds}, {"shut"},
-- {"reset"} (an RST, then the report at once);
-- a plain string is one "send". tls: speak TLS (certificate not checked).
function K.raw(port, steps, timeout, tls)
  if type(steps) == "string" then steps = {{"send", steps}} end
  local lines = {}
  for i, s in ipairs(steps) do
    if s[1] == "send" then
      lines[i] = "send " .. K.hex(s[2])
    elseif s[1] == "drip" then
      lines[i] = "drip " .. s[2] .. " " .. K.hex(s[3])
    elseif s[1] == "sleep" then
      lines[i] = "sleep " .. s[2]
    else
      lines[i] = s[1]
    end
  end
  timeout = timeout or 5
  local r = K.run(K.python, {K.peers .. "/raw.py", tostring(port), tostring(timeout), tls and "tls" or nil},
    {input = table.concat(lines, "\n") .. "\n", timeout = timeout + 10})
  return loadReport(r, "raw.py")
end

-- client(port, requests) -> list of responses (see peers/client.py).
-- requests: {method, path, headers = {{name, value}...}, body = "..."}
function K.client(port, requests)
  local lines = {}
  for i, q in ipairs(requests) do
    local parts = {q[1], q[2]}
    for _, h in ipairs(q.headers or {}) do parts[#parts + 1] = "H" .. K.hex(h[1] .. ": " .. h[2]) end
    if q.body then parts[#parts + 1] = "B" .. K.hex(q.body) end
    lines[i] = table.concat(parts, " ")
  end
  local r = K.run(K.python, {K.peers .. "/client.py", tostring(port)},
    {input = table.concat(lines, "\n") .. "\n", timeout = 20})
  return loadReport(r, "client.py")
end

-- parse(bytes [, opts]) -> list of responses {status, reason, version,
-- headers = {lower-name = value or list when repeated}, lines = {raw header
-- lines}, body, chunked, complete}, and the unparsed rest. opts.head: the
-- responses answer HEAD (no body); opts.interim: keep 1xx responses.
function K.parse(data, opts)
  opts = opts or {}
  local out, pos = {}, 1
  while pos <= #data do
    local hend = data:find("\r\n\r\n", pos, true)
    if not hend then break end
    local head = data:sub(pos, hend - 1)
    local statusLine = head:match("^[^\r\n]*")
    local version, status, reason = statusLine:match("^HTTP/(%d%.%d) (%d%d%d) ?(.*)$")
    if not version then error("not a status line: " .. statusLine, 2) end
    local r = {status = tonumber(status), reason = reason, version = version, headers = {}, lines = {}, raw = head}
    for line in head:sub(#statusLine + 3):gmatch("[^\r\n]+") do
      r.lines[#r.lines + 1] = line
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        local old = r.headers[name]
        if old == nil then
          r.headers[name] = value
        elseif type(old) == "table" then
          old[#old + 1] = value
        else
          r.headers[name] = {old, value}
        end
      end
    end
    pos = hend + 4
    local nobody = (r.status >= 100 and r.status < 200) or r.status == 204 or r.status == 304 or opts.head
    if nobody then
      r.body, r.complete = "", true
    elseif (r.headers["transfer-encoding"] or ""):lower():find("chunked") then
      r.chunked = true
      local parts = {}
      while true do
        local lend = data:find("\r\n", pos, true)
        if not lend then break end
        local size = tonumber(data:sub(pos, lend - 1):match("^%x+"), 16)
        if not size then error("bad chunk size line: " .. data:sub(pos, lend - 1), 2) end
        if size == 0 then
          local tend = data:find("\r\n\r\n", lend, true)  -- trailers, then the end
          if data:sub(lend, lend + 3) == "\r\n\r\n" then tend = lend end
          if tend then r.complete = true; pos = tend + 4 end
          break
        end
        if #data < lend + 2 + size + 1 then break end
        parts[#parts + 1] = data:sub(lend + 2, lend + 1 + size)
        pos = lend + 2 + size + 2
      end
      r.body = table.concat(parts)
      if not r.complete then pos = #data + 1 end
    elseif r.headers["content-length"] then
      local n = tonumber(r.headers["content-length"])
      r.body = data:sub(pos, pos + n - 1)
      r.complete = #r.body == n
      pos = pos + n
    else  -- until the end of the connection
      r.body = data:sub(pos)
      r.complete = true
      pos = #data + 1
    end
    if opts.interim or not (r.status >= 100 and r.status < 200) then out[#out + 1] = r end
  end
  return out, data:sub(pos)
end

-- parse1(bytes [, opts]) -> the only response (asserting there is exactly one)
function K.parse1(data, opts)
  local list, rest = K.parse(data, opts)
  if #list ~= 1 then
    error(("expected one response, got %d in %q"):format(#list, data:sub(1, 400)), 2)
  end
  if rest ~= "" then error(("bytes after the response: %q"):format(rest:sub(1, 200)), 2) end
  return list[1]
end

-- A request's bytes: req("GET", "/x", {"Host: a", ...}, body)
function K.req(method, target, headers, body)
  local lines = {method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1"}
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- pipeline({paths}) -> GETs of the paths as one send's bytes; the last one
-- closes the connection (the batch specs: the server reads them together).
function K.pipeline(paths)
  local parts = {}
  for i, p in ipairs(paths) do
    parts[i] = K.req("GET", p, i == #paths and {"Connection: close"} or nil)
  end
  return table.concat(parts)
end

-- answers(report) -> {"status body", ...} of the responses K.raw received
function K.answers(rep)
  local out = {}
  for i, r in ipairs(K.parse(rep.data)) do out[i] = r.status .. " " .. r.body end
  return out
end

-- tempDirShared() -> a new directory under /tmp; the caller removes it.
function K.tempDirShared()
  return assert(fs.mkdtemp("/tmp/evo-http-"))
end

-- tempDir() -> a new directory, removed after the test at the latest.
function K.tempDir()
  local dir = K.tempDirShared()
  K.onCleanup(function() K.rmrf(dir) end)
  return dir
end

function K.writeFile(path, data)
  assert(fs.writeFile(path, data))
  return path
end

function K.rmrf(path)
  if path and path:match("^/tmp/evo%-http%-") then fs.rm(path, {recursive = true}) end
end

-- Deterministic bytes of every value 0..255.
function K.bytes(n, seed)
  local t, x = {}, seed or 7
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = string.char(math.floor(x / 65536) % 256)
  end
  return table.concat(t)
end

-- waitFor(fn [, seconds = 5]) -> fn's first truthy result, or nil when the
-- time is up; polls every 10 ms while the loop runs.
function K.waitFor(fn, seconds)
  local deadline = task.now() + (seconds or 5)
  while true do
    local v = fn()
    if v then return v end
    if task.now() > deadline then return nil end
    task.sleep(0.01)
  end
end

K.datePattern = "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"

return K
