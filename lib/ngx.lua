-- ngx: the OpenResty API that lua-resty-* libraries are written against, so
-- drivers such as lua-resty-redis, lua-resty-mysql, lua-resty-http and
-- pgmoon run unchanged on Evo. require("ngx") installs the global `ngx` and
-- returns it:
--
--   require("ngx")
--   local sock = ngx.socket.tcp()
--   sock:settimeout(1000)                         -- milliseconds, as in nginx
--   assert(sock:connect("127.0.0.1", 6379))
--   sock:send({"PING", "\r\n"})
--   print(sock:receive())                         --> +PONG
--   sock:setkeepalive(10000, 10)                  -- back to the pool
--
-- Cosockets (ngx.socket), ngx.re (PCRE2), ngx.shared dictionaries, timers,
-- light threads, time, logging, hashes and encodings. Not here: anything
-- that needs an nginx request (ngx.var, ngx.req, ngx.exit, ngx.location...).
-- See docs/ngx.md.
local task = require("task")
local tasknative = require("evo.task")
local errors = require("evo.errors")
local args = require("evo.args")
local crypto = require("crypto")
local base64 = require("base64")
local zlib = require("zlib")
local pcre = require("evo.pcre")
local socket = require("ngx.socket")
local shared = require("ngx.shared")

local type, tostring, tonumber, select, pairs, ipairs, setmetatable, rawget, error, pcall =
  type, tostring, tonumber, select, pairs, ipairs, setmetatable, rawget, error, pcall
local format, gsub, byte, char, sub, concat, sort = string.format, string.gsub, string.byte, string.char,
  string.sub, table.concat, table.sort
local floor = math.floor
local date, time = os.date, os.time

local ngx = {}

----------------------------------------------------------------- constants

ngx.null = pcre.null  -- NULL light userdata: the same value as cjson.null
ngx.OK, ngx.ERROR, ngx.AGAIN, ngx.DONE, ngx.DECLINED = 0, -1, -2, -4, -5

local levels = {"STDERR", "EMERG", "ALERT", "CRIT", "ERR", "WARN", "NOTICE", "INFO", "DEBUG"}
local levelNames = {}
for i, name in ipairs(levels) do
  ngx[name] = i - 1
  levelNames[i - 1] = name == "ERR" and "error" or name == "WARN" and "warn" or name:lower()
end
levelNames[0] = ""

for name, code in pairs({
  HTTP_CONTINUE = 100, HTTP_SWITCHING_PROTOCOLS = 101, HTTP_OK = 200, HTTP_CREATED = 201, HTTP_ACCEPTED = 202,
  HTTP_NO_CONTENT = 204, HTTP_PARTIAL_CONTENT = 206, HTTP_SPECIAL_RESPONSE = 300, HTTP_MOVED_PERMANENTLY = 301,
  HTTP_MOVED_TEMPORARILY = 302, HTTP_SEE_OTHER = 303, HTTP_NOT_MODIFIED = 304, HTTP_TEMPORARY_REDIRECT = 307,
  HTTP_PERMANENT_REDIRECT = 308, HTTP_BAD_REQUEST = 400, HTTP_UNAUTHORIZED = 401, HTTP_PAYMENT_REQUIRED = 402,
  HTTP_FORBIDDEN = 403, HTTP_NOT_FOUND = 404, HTTP_NOT_ALLOWED = 405, HTTP_NOT_ACCEPTABLE = 406,
  HTTP_REQUEST_TIMEOUT = 408, HTTP_CONFLICT = 409, HTTP_GONE = 410, HTTP_UPGRADE_REQUIRED = 426,
  HTTP_TOO_MANY_REQUESTS = 429, HTTP_CLOSE = 444, HTTP_ILLEGAL = 451, HTTP_INTERNAL_SERVER_ERROR = 500,
  HTTP_METHOD_NOT_IMPLEMENTED = 501, HTTP_BAD_GATEWAY = 502, HTTP_SERVICE_UNAVAILABLE = 503,
  HTTP_GATEWAY_TIMEOUT = 504, HTTP_VERSION_NOT_SUPPORTED = 505, HTTP_INSUFFICIENT_STORAGE = 507,
  HTTP_GET = "GET", HTTP_HEAD = "HEAD", HTTP_PUT = "PUT", HTTP_POST = "POST", HTTP_DELETE = "DELETE",
  HTTP_OPTIONS = "OPTIONS", HTTP_PATCH = "PATCH",
}) do
  ngx[name] = code
end

----------------------------------------------------------------- config, worker

local uv = require("uv")

ngx.config = {
  subsystem = "http",
  ngx_lua_version = 10025,
  nginx_version = 1021004,
  debug = false,
  is_console = false,
}
function ngx.config.prefix() return (uv.cwd() or ".") .. "/" end
function ngx.config.nginx_configure() return "" end

local exiting = false
ngx.worker = {}
function ngx.worker.id() return 0 end
function ngx.worker.count() return 1 end
function ngx.worker.pid() return uv.os_getpid() end
function ngx.worker.exiting() return exiting end

----------------------------------------------------------------- time

-- ngx.now() is always current here (nginx caches it per event-loop turn):
-- update_time() has nothing to do.
function ngx.now()
  local s, us = uv.gettimeofday()
  return s + floor(us / 1000) / 1000
end
function ngx.time() return time() end
function ngx.update_time() end
function ngx.today() return date("%Y-%m-%d") end
function ngx.localtime() return date("%Y-%m-%d %H:%M:%S") end
function ngx.utctime() return date("!%Y-%m-%d %H:%M:%S") end

local function checkTime(fname, t)
  if type(t) ~= "number" then args.fail(1, fname, "number", t, 3) end
  return floor(t)
end

local days = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
local months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
local monthIndex = {}
for i, m in ipairs(months) do monthIndex[m] = i end

-- http_time(t) -> "Thu, 18 Nov 2010 11:27:35 GMT" (no locale involved)
function ngx.http_time(t)
  local d = date("!*t", checkTime("ngx.http_time", t))
  return format("%s, %02d %s %04d %02d:%02d:%02d GMT", days[d.wday], d.day, months[d.month], d.year, d.hour,
    d.min, d.sec)
end

-- cookie_time(t) -> "Thu, 18-Nov-10 11:27:35 GMT"
function ngx.cookie_time(t)
  local d = date("!*t", checkTime("ngx.cookie_time", t))
  return format("%s, %02d-%s-%02d %02d:%02d:%02d GMT", days[d.wday], d.day, months[d.month], d.year % 100,
    d.hour, d.min, d.sec)
end

-- Days from 1970-01-01 to a civil date (proleptic Gregorian): no time zone,
-- unlike os.time.
local function daysFromCivil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- parse_http_time(s) -> seconds | nil (RFC 1123 dates, as http_time makes)
function ngx.parse_http_time(s)
  if type(s) ~= "string" then args.fail(1, "ngx.parse_http_time", "string", s, 2) end
  local d, mon, y, h, mi, sec = s:match("^%a+, (%d%d?)[ %-](%a%a%a)[ %-](%d+) (%d%d):(%d%d):(%d%d) GMT$")
  local m = monthIndex[mon or ""]
  if not m then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y < 70 and 2000 or 1900) end
  return daysFromCivil(y, m, tonumber(d)) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

----------------------------------------------------------------- sleep

-- sleep(seconds): suspends the task (blocks outside one); 0 lets others run
function ngx.sleep(s)
  if type(s) ~= "number" or s < 0 then args.error(1, "ngx.sleep", "number of seconds expected", 2) end
  if s == 0 then return task.yield() end
  return task.sleep(s)
end

----------------------------------------------------------------- output, log

-- The pieces of ngx.say/print/log: strings, numbers, nil, booleans, ngx.null
-- and (nested) arrays of them, as nginx writes them.
local function piece(fname, v, out)
  local t = type(v)
  if t == "string" then out[#out + 1] = v
  elseif t == "number" then out[#out + 1] = tostring(v)
  elseif t == "nil" then out[#out + 1] = "nil"
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif v == ngx.null then out[#out + 1] = "null"
  elseif t == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring then out[#out + 1] = tostring(v)
    else
      for i = 1, #v do piece(fname, v[i], out) end
    end
  else
    error(format("bad argument to '%s' (%s not allowed)", fname, t), 4)
  end
end

local function joined(fname, ...)
  local out = {}
  for i = 1, select("#", ...) do piece(fname, (select(i, ...)), out) end
  return concat(out)
end

-- print(...) / say(...): outside a request there is no response, so they
-- write to standard output (say adds a newline). -> 1
function ngx.print(...)
  io.stdout:write(joined("ngx.print", ...))
  return 1
end
function ngx.say(...)
  io.stdout:write(joined("ngx.say", ...), "\n")
  return 1
end
function ngx.flush()
  io.stdout:flush()
  return 1
end
function ngx.eof() return 1 end

-- The error log is stderr. Messages above this level (ngx.NOTICE by default,
-- set with ngx.evo.setLogLevel) are dropped, as error_log's level does.
local logLevel = ngx.NOTICE

-- log(level, ...) in nginx's error-log format:
-- 2024/05/01 12:00:00 [error] 1234#0: [lua] file.lua:12: message
function ngx.log(level, ...)
  if type(level) ~= "number" or level < 0 or level > 8 then
    args.error(1, "ngx.log", "bad log level", 2)
  end
  if level > logLevel then return end
  local msg = joined("ngx.log", ...)
  local info = debug.getinfo(2, "Sl")
  local where = info and format("%s:%d: ", (info.short_src or "?"):gsub("^.*/", ""), info.currentline or 0) or ""
  io.stderr:write(format("%s [%s] %d#0: [lua] %s%s\n", date("%Y/%m/%d %H:%M:%S"), levelNames[level],
    uv.os_getpid(), where, msg))
end

----------------------------------------------------------------- hashes, encodings

local function str(fname, v, n)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  if v == nil then return "" end
  args.fail(n or 1, fname, "string", v, 3)
end

function ngx.md5(s) return crypto.hash("md5", str("ngx.md5", s), "hex") end
function ngx.md5_bin(s) return crypto.hash("md5", str("ngx.md5_bin", s), "raw") end
function ngx.sha1_bin(s) return crypto.hash("sha1", str("ngx.sha1_bin", s), "raw") end
function ngx.hmac_sha1(key, s)
  return crypto.hmac("sha1", str("ngx.hmac_sha1", key, 1), str("ngx.hmac_sha1", s, 2), "raw")
end

-- encode_base64(s [, no_padding])
function ngx.encode_base64(s, noPadding)
  local out = base64.encode(str("ngx.encode_base64", s))
  if noPadding then out = gsub(out, "=+$", "") end
  return out
end

-- decode_base64(s) -> bytes | nil (padding optional, as nginx's decoder)
function ngx.decode_base64(s)
  if type(s) ~= "string" then args.fail(1, "ngx.decode_base64", "string", s, 2) end
  local rem = #s % 4
  if rem == 1 then return nil end
  if rem > 0 then s = s .. ("="):rep(4 - rem) end
  return (base64.decode(s))
end

-- crc32_short/long(s) -> the CRC-32 of s (the same number: nginx's two
-- differ only in speed on short and long inputs)
function ngx.crc32_short(s) return zlib.crc32(str("ngx.crc32_short", s)) end
function ngx.crc32_long(s) return zlib.crc32(str("ngx.crc32_long", s)) end

-- quote_sql_str(s) -> a MySQL string literal: quoted, with \0 \b \n \r \t
-- \Z (26) \\ \' \" escaped
local sqlEscapes = {["\0"] = "\\0", ["\b"] = "\\b", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\26"] = "\\Z", ["\\"] = "\\\\", ["'"] = "\\'", ['"'] = '\\"'}
function ngx.quote_sql_str(s)
  s = str("ngx.quote_sql_str", s)
  return "'" .. gsub(s, "[%z\b\n\r\t\26\\'\"]", sqlEscapes) .. "'"
end

-- escape_uri(s [, type = 2]): type 2 (a URI component, the default)
-- escapes all but A-Z a-z 0-9 - . _ ~; type 0 (a whole URI) also leaves
-- the reserved characters ! # $ & ' ( ) * + , / : ; = ? @ [ ] alone.
local function hexEscape(c) return format("%%%02X", byte(c)) end
function ngx.escape_uri(s, kind)
  s = str("ngx.escape_uri", s)
  if kind == 0 then return (gsub(s, "[^%w%-%._~!#%$&'%(%)%*%+,/:;=%?@%[%]]", hexEscape)) end
  return (gsub(s, "[^%w%-%._~]", hexEscape))
end

-- unescape_uri(s): %XX decoded, "+" becomes a space, a bad escape stays
local function hexChar(h) return char(tonumber(h, 16)) end
function ngx.unescape_uri(s)
  s = str("ngx.unescape_uri", s)
  return (gsub(gsub(s, "+", " "), "%%(%x%x)", hexChar))
end

-- encode_args(t) -> "a=1&b=x%20y": a list value repeats the name, true
-- gives the bare name, false is left out. Names in sorted order (nginx's
-- follows the table's: unspecified).
function ngx.encode_args(t)
  if type(t) ~= "table" then args.fail(1, "ngx.encode_args", "table", t, 2) end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out, esc = {}, ngx.escape_uri
  local function add(k, v)
    local tv = type(v)
    if v == true then out[#out + 1] = k
    elseif v == false then return
    elseif tv == "string" or tv == "number" then out[#out + 1] = k .. "=" .. esc(tostring(v))
    else error(format("attempt to use %s as query arg value", tv), 4) end
  end
  for _, k in ipairs(keys) do
    local ek = esc(tostring(k))
    local v = t[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do add(ek, x) end
    else
      add(ek, v)
    end
  end
  return concat(out, "&")
end

-- decode_args(s [, max_args = 100]) -> table: a repeated name gives a list,
-- a bare name true, "name=" an empty string
function ngx.decode_args(s, max)
  s = str("ngx.decode_args", s)
  max = max or 100
  local t, n = {}, 0
  for pair in s:gmatch("[^&]+") do
    if max > 0 and n >= max then break end
    n = n + 1
    local eq = pair:find("=", 1, true)
    local k, v
    if eq then
      k, v = ngx.unescape_uri(sub(pair, 1, eq - 1)), ngx.unescape_uri(sub(pair, eq + 1))
    else
      k, v = ngx.unescape_uri(pair), true
    end
    local old = t[k]
    if old == nil then t[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else t[k] = {old, v} end
  end
  return t
end

----------------------------------------------------------------- sockets, re, shared

ngx.socket = {tcp = socket.tcp, udp = socket.udp, connect = socket.connect, stream = socket.tcp}
ngx.re = require("ngx.re")
ngx.shared = shared.dicts

----------------------------------------------------------------- tasks: ctx, phase

-- Per-task state (ngx.ctx, the phase) keyed by the task's Future; weak, so
-- a finished task's entries go with it. Outside any task: one shared slot.
local perTask = setmetatable({}, {__mode = "k"})
local outside = {}

local function state()
  local f = tasknative.current()
  if not f then return outside end
  local s = perTask[f]
  if not s then
    s = {}
    perTask[f] = s
  end
  return s
end

-- get_phase() -> "timer" inside a timer's function, else "content": the
-- phase where every cosocket works, which drivers check for ("init" would
-- make them fall back to LuaSocket).
function ngx.get_phase() return state().phase or "content" end

setmetatable(ngx, {
  __index = function(_, k)
    if k == "ctx" then
      local s = state()
      local ctx = s.ctx
      if not ctx then
        ctx = {}
        s.ctx = ctx
      end
      return ctx
    end
  end,
  __newindex = function(t, k, v)
    if k == "ctx" then
      if type(v) ~= "table" then error("ngx.ctx must be a table", 2) end
      state().ctx = v
      return
    end
    rawset(t, k, v)
  end,
})

----------------------------------------------------------------- timers

ngx.timer = {}
local pendingTimers, runningTimers = {}, 0
local pendingCount = 0
local maxPending, maxRunning = 1024, 256  -- lua_max_pending_timers, lua_max_running_timers

local function runTimer(fn, premature, ...)
  local s = state()
  s.phase = "timer"
  runningTimers = runningTimers + 1
  local ok, err = xpcall(fn, debug.traceback, premature, ...)
  runningTimers = runningTimers - 1
  if not ok and not errors.is(err, "Canceled") then
    ngx.log(ngx.ERR, "lua entry thread aborted: runtime error: ", tostring(err))
  end
end

-- A timer is a task sleeping `delay` seconds, then running fn(false, ...).
-- ngx.evo.stopTimers() (as a worker's exit) wakes pending ones to run
-- fn(true, ...) at once.
local function schedule(delay, fn, every, ...)
  local entry = {}
  local argv, argc = {...}, select("#", ...)
  local function body()
    while true do
      local premature = false
      local ok = pcall(task.sleep, delay)
      pendingCount = pendingCount - 1
      pendingTimers[entry] = nil
      if not ok or exiting then premature = true end
      runTimer(fn, premature, unpack(argv, 1, argc))
      if not every or premature then return end
      pendingCount = pendingCount + 1
      pendingTimers[entry] = true
    end
  end
  pendingCount = pendingCount + 1
  pendingTimers[entry] = true
  entry.future = task.concurrent(body)
  return true
end

local function checkTimer(fname, delay, fn)
  if type(delay) ~= "number" or delay < 0 then args.error(1, fname, "bad delay", 3) end
  if type(fn) ~= "function" then args.fail(2, fname, "function", fn, 3) end
end

-- at(delay, fn, ...) -> true | nil, err: fn(premature, ...) runs as its own
-- task after delay seconds. Needs concurrency: the blocking Io mode has none.
function ngx.timer.at(delay, fn, ...)
  checkTimer("ngx.timer.at", delay, fn)
  if exiting then return nil, "process exiting" end
  if tasknative.mode() == "blocking" then return nil, "no timers in the blocking Io mode" end
  if pendingCount >= maxPending then return nil, "too many pending timers" end
  return schedule(delay, fn, false, ...)
end

-- every(delay, fn, ...) -> true | nil, err: fn(premature, ...) every delay
-- seconds until ngx.evo.stopTimers()
function ngx.timer.every(delay, fn, ...)
  checkTimer("ngx.timer.every", delay, fn)
  if delay == 0 then args.error(1, "ngx.timer.every", "bad delay", 2) end
  if exiting then return nil, "process exiting" end
  if tasknative.mode() == "blocking" then return nil, "no timers in the blocking Io mode" end
  if pendingCount >= maxPending then return nil, "too many pending timers" end
  return schedule(delay, fn, true, ...)
end

function ngx.timer.running_count() return runningTimers end
function ngx.timer.pending_count() return pendingCount end

----------------------------------------------------------------- light threads

ngx.thread = {}
local Thread = {}
Thread.__index = Thread
Thread.__name = "ngx.thread"

-- A thread's function runs under pcall so its Future always ends well with
-- (ok, results...): wait() returns that as OpenResty does.
local function threadBody(fn, ...)
  return pcall(fn, ...)
end

-- spawn(fn, ...) -> a thread: fn runs as a task of its own (in the blocking
-- Io mode, to its end before spawn returns)
function ngx.thread.spawn(fn, ...)
  if type(fn) ~= "function" then args.fail(1, "ngx.thread.spawn", "function", fn, 2) end
  local inherited = state().phase
  local f = task.async(function(...)
    if inherited then state().phase = inherited end
    return threadBody(fn, ...)
  end, ...)
  return setmetatable({future = f}, Thread)
end

-- wait(t1, t2, ...) -> true, results of the first to end | false, err
function ngx.thread.wait(...)
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'ngx.thread.wait' (thread expected, got no value)", 2) end
  local futures = {}
  for i = 1, n do
    local t = select(i, ...)
    if getmetatable(t) ~= Thread then args.fail(i, "ngx.thread.wait", "thread", t, 2) end
    if t.waited then return nil, "already waited or killed" end
    futures[i] = t.future
  end
  local res = {task.select(unpack(futures, 1, n))}
  local which = select(res[1], ...)
  which.waited = true
  if res[2] == false and errors.is(res[3], "Canceled") then return false, "killed" end
  return unpack(res, 2, table.maxn(res))
end

-- kill(t) -> true | nil, err
function ngx.thread.kill(t)
  if getmetatable(t) ~= Thread then args.fail(1, "ngx.thread.kill", "thread", t, 2) end
  if t.waited then return nil, "already waited or killed" end
  if t.future:done() then return nil, "already terminated" end
  t.waited = true
  t.future:cancel()
  return true
end

----------------------------------------------------------------- request APIs: stubs

-- There is no nginx request. Libraries index these tables when they load
-- (lua-resty-http keeps `ngx.req.socket` in a local), so the tables exist;
-- calling one of their functions raises, naming it.
local function unavailable(name)
  return function()
    error(name .. " needs an nginx request: not available in Evo (see docs/ngx.md)", 2)
  end
end
local function stubs(prefix, names)
  local t = {}
  for _, n in ipairs(names) do t[n] = unavailable(prefix .. n) end
  return t
end
ngx.req = stubs("ngx.req.", {"socket", "get_headers", "get_method", "set_method", "get_uri_args", "set_uri_args",
  "get_post_args", "read_body", "discard_body", "get_body_data", "get_body_file", "set_body_data", "set_header",
  "clear_header", "http_version", "raw_header", "start_time", "is_internal", "set_uri", "init_body", "append_body",
  "finish_body"})
ngx.resp = stubs("ngx.resp.", {"get_headers"})
ngx.location = stubs("ngx.location.", {"capture", "capture_multi"})
for _, n in ipairs({"exit", "exec", "redirect", "send_headers", "on_abort"}) do ngx[n] = unavailable("ngx." .. n) end
ngx.var = setmetatable({}, {__newindex = unavailable("setting ngx.var")})  -- every variable reads nil
ngx.header = {}
ngx.arg = {}
ngx.headers_sent = false

----------------------------------------------------------------- Evo's own settings

-- What an nginx.conf would say, for a process without one.
ngx.evo = {}

-- sharedDict(name, size) -> ngx.shared[name] with a capacity of size bytes
-- (lua_shared_dict name size)
ngx.evo.sharedDict = shared.declare

-- sslTrustedCertificate(path | nil): the CA file sslhandshake verifies
-- against (lua_ssl_trusted_certificate); nil: the system's store
function ngx.evo.sslTrustedCertificate(path)
  if path ~= nil and type(path) ~= "string" then args.fail(1, "ngx.evo.sslTrustedCertificate", "string", path, 2) end
  socket.settings.trusted = path
end

-- setLogLevel(level): ngx.log drops messages above it (error_log's level)
function ngx.evo.setLogLevel(level)
  if type(level) ~= "number" or level < 0 or level > 8 then args.error(1, "ngx.evo.setLogLevel", "bad log level", 2) end
  logLevel = level
end

-- stopTimers(): what a worker's exit does: ngx.worker.exiting() becomes
-- true and every pending timer runs now with premature = true; no new timer
-- starts. Lets a script with ngx.timer.every end.
function ngx.evo.stopTimers()
  exiting = true
  for entry in pairs(pendingTimers) do
    if entry.future and not entry.future:done() then tasknative.requestCancel(entry.future) end
  end
end

-- closeIdle(): closes every pooled connection
function ngx.evo.closeIdle()
  for key, pool in pairs(socket.pools) do
    for _, e in ipairs(pool.idle) do e.stream:close() end
    socket.pools[key] = nil
  end
end

_G.ngx = ngx
return ngx
