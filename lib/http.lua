-- http: an HTTP/1.1 server (each request a task), a router, static files,
-- and a client. The engine is native (src/modules/http_server.cpp): llhttp
-- parses, responses are built in C++, pipelined answers leave in one write.
--
--   local http = require("http")
--   local server = http.serve({host = "127.0.0.1", port = 8080}, function(req, res)
--     res:send(200, "hello " .. req.path, {["content-type"] = "text/plain"})
--   end)
--   print(server.port); ... server:close()
--
-- See docs/http.md.
local native = require("evo.http")
local tasknative = require("evo.task")
local errors = require("evo.errors")
local args = require("evo.args")

local type, error, pairs, ipairs, tostring, tonumber, select, setmetatable, getmetatable, rawset, xpcall =
  type, error, pairs, ipairs, tostring, tonumber, select, setmetatable, getmetatable, rawset, xpcall
local concat = table.concat
local find, format, gsub, lower, sub, match, gmatch =
  string.find, string.format, string.gsub, string.lower, string.sub, string.match, string.gmatch
local byte, rawget, pcall = string.byte, rawget, pcall
local traceback = debug.traceback
local finish = require("evo.wait").finish  -- (true, results...) | (false): Canceled

local http = {}

----------------------------------------------------------------- requests

-- Percent-encoding and query strings: one implementation, in lib/url.lua.
-- http.decode is lenient (a bad escape stays as it is), as it always was.
-- lib/url.lua and lib/evo/webkit.lua (below) load when first needed: a server
-- that never decodes a path nor reads a cookie, a form or JSON keeps their
-- ~65 KB of code out of its heap. The collector goes through the whole heap
-- every cycle, and lets garbage pile up to twice it before the next: a
-- pipelined request took 3.6% less CPU without them (docs/performance.md,
-- "The heap's size"). The wrappers are tail calls: errors keep their level.
local url
local function decode(s, plus)
  url = url or require("url")
  return url.unescape(s, plus)
end
local appfs = require("evo.appfs")
local embedded = appfs.active and appfs or nil  -- a one-file executable's files (evo build)
-- http.decode, http.encode and http.parseQuery ("a=1&b=x%20y&a=2" -> {a =
-- {"1", "2"}, b = "x y"}: a repeated name gives a list) are url's own
-- functions, put in http when first read.
local fromUrl = {decode = "unescape", encode = "encode", parseQuery = "parseQuery"}
setmetatable(http, {
  __index = function(t, key)
    local name = fromUrl[key]
    if name == nil then return nil end
    url = url or require("url")
    local fn = url[name]
    rawset(t, key, fn)
    return fn
  end,
})

local Request = {}
-- Response's metatable (below): a res is {ref} with it, ref the number the
-- engine knows the request's exchange by (src/bind/http.cpp, ref_number).
local responseMeta

-- The ref of a res, or nil for anything else (the natives check the same,
-- src/bind/http.cpp res_ref).
local function resRef(r)
  local ref = getmetatable(r) == responseMeta and rawget(r, 1)
  if type(ref) == "number" then return ref end
end

-- The engine's response of a request: req.res, or what a wrapper put there
-- (http.compress) wraps.
local function engineRes(req)
  local r = req.res
  if getmetatable(r) ~= responseMeta then r = r._real end
  return r
end

-- req:read() -> the next chunk of the body, nil at its end, or nil, err.
-- The first read answers "Expect: 100-continue".
function Request:read() return finish(native.read(engineRes(self), true)) end

-- req:body() -> the whole body (a string; "" when there is none). Raises on a
-- failed body (e.g. err.status 413 beyond maxBodyBytes): the server answers
-- with that status.
function Request:body()
  local cached = self._body
  if cached then return cached end
  local parts, n = {}, 0
  while true do
    local chunk, err = finish(native.read(engineRes(self), true))
    if chunk == nil then
      if err then error(err, 2) end
      break
    end
    n = n + 1
    parts[n] = chunk
  end
  local body = n == 1 and parts[1] or concat(parts)
  self._body = body
  return body
end

-- req:trailers() -> the trailer fields of a chunked (or HTTP/2) body, as
-- req.headers gives headers ({} when none), once the body has arrived whole
-- (after req:body(), or req:read() returned nil); nil before.
function Request:trailers() return native.trailers(engineRes(self)) end

function Request:queryParams()
  local q = self._query
  if not q then
    q = http.parseQuery(self.query)
    self._query = q
  end
  return q
end

-- Fields computed when first read (req.cookies...): name -> fn(req).
local lazyFields = {}

-- req.method, req.path and req.query are read from the request when first
-- asked for (requestLine, below, once the FFI table is loaded): a handler
-- that never reads them makes no string.
local lineParts = {method = 0, path = 1, query = 2}
local requestLine

local function requestIndex(req, key)
  local part = lineParts[key]
  if part then return requestLine(req, key, part) end
  local method = Request[key]
  if method then return method end
  local lazy = lazyFields[key]
  if lazy then
    local v = lazy(req)
    rawset(req, key, v)
    return v
  end
  if key == "headers" then
    local h = native.headers(engineRes(req))
    rawset(req, "headers", h)
    return h
  elseif key == "remoteAddress" or key == "remotePort" or key == "httpVersion" or key == "id" then
    local ip, port, version, id = native.info(engineRes(req), key)
    rawset(req, "remoteAddress", ip)
    rawset(req, "remotePort", port)
    rawset(req, "httpVersion", version)
    rawset(req, "id", id)
    return req[key]
  end
end

----------------------------------------------------------------- responses

local Response = {}
local function isResponse(r)
  return type(r) == "table" and getmetatable(r) == responseMeta
end
local function resMethod(name, fn, ...) return args.method(name, fn, isResponse, "Response", ...) end

-- res:send(status, body, headers): the whole response at once. Plain
-- arguments (a string body, a table of string headers) of a response the
-- engine can finish from compiled code go through the FFI (see fastSend
-- below); anything else, and every error, through the native, which checks
-- its arguments with the public name.
local nativeSend = native.send
Response.send = nativeSend  -- (fastSend, once responseMeta exists)
-- res:status(code [, reason])
Response.status = resMethod("status", native.status, "number", "string?")
-- res:header(name, value | {values})
Response.header = resMethod("header", native.header, "string", "string|number|table")
-- res:trailer(name, value | {values}): a field sent after the body
-- (HTTP/1.1: chunked bodies only; set before the head, it makes the body
-- chunked and is declared in a Trailer header).
Response.trailer = resMethod("trailer", native.trailer, "string", "string|number|table")
-- res:inform(status [, headers]): a 1xx (103 Early Hints...) before the response.
Response.inform = resMethod("inform", native.inform, "number", "table?")
-- res:finish([lastChunk])
Response.finish = resMethod("finish", native.finish, "string|number?")

-- res:write(chunk): streams the body (chunked unless a Content-Length was
-- set); suspends while more than 64 KiB waits to be written.
function Response:write(chunk)
  if type(chunk) ~= "string" then
    if type(chunk) == "number" then chunk = tostring(chunk) else args.fail(1, "write", "string", chunk) end
  end
  return finish(native.write(self, chunk, true))
end

-- res:sendFile(path [, offset, length]): the file as the body, with sendfile(2).
function Response:sendFile(path, offset, length)
  args.check(1, "sendFile", path, "string")
  if offset ~= nil then args.check(2, "sendFile", offset, "number") end
  if length ~= nil then args.check(3, "sendFile", length, "number") end
  -- An embedded file (evo build) goes out with sendfile(2) too, from its memfd.
  if embedded then path = embedded.fdPath(path) or path end
  return finish(native.sendFile(self, path, offset, length, true))
end

-- res:headersSent() / res:isFinished(): whether the head (or the whole
-- response) has been sent.
function Response:headersSent() return (native.state(self)) end
function Response:isFinished() return (select(2, native.state(self))) end

-- Methods are found in a table: no function call per lookup of res:send.
responseMeta = {__index = Response}
native.setup(responseMeta)

-- The FFI fast path of res:send and of a request's end (src/bind/http.cpp):
-- C functions LuaJIT calls from compiled code, so a batch of pipelined
-- requests runs on one trace instead of leaving it at every native call.
-- They refuse (-1) what they cannot do without calling back into Lua; the
-- classic native does it then.
local fast = require("evo.httpfast")
local fastBegin, fastHeader, fastAbort = fast.send_begin, fast.send_header, fast.send_abort
local fastEnd, fastDone, fastPart = fast.send_end, fast.done, fast.request_part
local fastCheckedHeader, fastLine = fast.send_checked_header, fast.send_line
local checkedHeaders = require("evo.checkedheaders")
local knownHeaders, knownLines, rememberHeader = checkedHeaders.pairs, checkedHeaders.lines, checkedHeaders.remember
local next = next
-- (OpenResty's LuaJIT, which evo is built on, has table.nkeys; counted by
-- hand on another LuaJIT.)
local hasNkeys, nkeys = pcall(require, "table.nkeys")
if not hasNkeys then
  nkeys = function(t)
    local n = 0
    for _ in next, t do n = n + 1 end
    return n
  end
end
local ffi = require("ffi")
local ffiString = ffi.string
local partPtr = ffi.new("const char*[1]")

-- (req, key, part): req.method, .path or .query, copied from the exchange
-- and kept in req. After the handler has returned the request may be gone:
-- a field not read before then raises, as req.headers does.
function requestLine(req, key, part)
  local r = engineRes(req)
  local ref = resRef(r)
  if not ref then
    return (native.info(r, key))  -- raises the native's own bad argument
  end
  local n = fastPart(ref, part, partPtr)
  if n < 0 then error("req." .. key .. ": the request is over (its handler has returned)", 0) end
  local v = ffiString(partPtr[0], n)
  rawset(req, key, v)
  return v
end

-- One header of res:send's table through the FFI; false for anything but
-- a string name and value, or a header the engine refuses. A pair accepted
-- before skips the byte checks, and goes as its whole line unless the
-- engine acts on its name (lib/evo/checkedheaders.lua).
local function addHeader(name, value)
  -- (The type first: LuaJIT's == finds a const char* cdata equal to a string
  -- at the same bytes, and a value must be a string.)
  if type(value) == "string" and knownHeaders[name] == value then
    local line = knownLines[name]
    if line then return fastLine(line, #line) == 0 end
    return fastCheckedHeader(name, #name, value, #value) >= 0
  end
  if type(name) ~= "string" or type(value) ~= "string" then return false end
  local added = fastHeader(name, #name, value, #value)  -- (1: as its own line)
  if added < 0 then return false end
  rememberHeader(name, value, added == 1)
  return true
end

-- The headers of res:send's table. The first few without a loop, so the
-- request's trace goes on through them (a loop here would be a trace of
-- its own, and the request's tables could not be sunk across it). Counted
-- first (table.nkeys, compiled to one call): after the last header no
-- next() has to look its key up again to find there is none.
local function addHeaders(headers)
  local n = nkeys(headers)
  if n == 0 then return true end
  local k, v = next(headers)
  if not addHeader(k, v) then return false end
  if n == 1 then return true end
  k, v = next(headers, k)
  if not addHeader(k, v) then return false end
  if n == 2 then return true end
  k, v = next(headers, k)
  if not addHeader(k, v) then return false end
  if n == 3 then return true end
  k, v = next(headers, k)
  while k ~= nil do
    if not addHeader(k, v) then return false end
    k, v = next(headers, k)
  end
  return true
end

local function fastSend(res, status, body, headers)
  local ref = resRef(res)
  if ref and type(status) == "number" and (headers == nil or type(headers) == "table") then
    local tb = type(body)
    if tb == "nil" then body, tb = "", "string" end
    if tb == "string" and fastBegin(ref, status) == 0 then
      if headers == nil or addHeaders(headers) then
        fastEnd(body, #body)
        return true
      end
      fastAbort()
    end
  end
  -- (A tail call: the native's errors name the caller's line.)
  return nativeSend(res, status, body, headers)
end
Response.send = fastSend
local requestMeta = {__index = requestIndex}

-- The web-app kit (lib/evo/webkit.lua): cookies, JSON, forms; loaded on
-- first use (see url above), when it learns what a res is.
local kit
local function webkit()
  if not kit then
    kit = require("evo.webkit")
    kit.registerResponse(responseMeta)
  end
  return kit
end
-- Requests holding something to let go (kit.leftovers): none before the kit
-- is loaded, as only its users (uploads, ws.lua) put any there.
local noLeftovers = setmetatable({}, {__newindex = function() end})
local function leftovers()
  local loaded = kit or package.loaded["evo.webkit"]
  return loaded and loaded.leftovers or noLeftovers
end
lazyFields.cookies = function(req) return webkit().cookies(req) end
lazyFields.signedCookies = function(req) return webkit().signedCookies(req) end
-- req:cookie(name [, {signed = true}]), req:json([opts]), req:form([opts])
function Request.cookie(...) return webkit().requestCookie(...) end
function Request.json(...) return webkit().requestJson(...) end
function Request:form(opts) return webkit().requestForm(self, opts, http.parseQuery) end
-- res:cookie(name, value [, opts]), res:clearCookie(name [, opts]),
-- res:json(status, value [, headers]): they check their self themselves
-- (res may be a wrapper, see http.compress).
function Response.cookie(...) return webkit().setCookie(...) end
function Response.clearCookie(...) return webkit().clearCookie(...) end
function Response.json(...) return webkit().sendJson(...) end

-- Every method of req and res checks its self (evo.args.method).
local function isRequest(r) return getmetatable(r) == requestMeta end
for _, name in ipairs({"read", "body", "trailers", "queryParams", "cookie", "json", "form"}) do
  Request[name] = args.method(name, Request[name], isRequest, "Request")
end
for _, name in ipairs({"write", "sendFile", "headersSent", "isFinished"}) do
  Response[name] = resMethod(name, Response[name])
end

----------------------------------------------------------------- server

-- A handler's errors keep their traceback; an error object with a status
-- (413 from req:body()) is passed through for the engine to answer with it,
-- and so is Canceled (its client left: nothing to report).
local function handlerError(err)
  if type(err) == "table" then
    if err.status or err.code == "Canceled" then return err end
    local mt = getmetatable(err)
    if not (mt and mt.__tostring) then err = require("pretty").summary(err) end
  end
  return traceback(tostring(err), 2)
end

local done = native.done
local nextRef = native.next
local fastNext = fast.next_request

-- A request's res, of the number the engine gives for it (next(), or the
-- runner's argument): a table made here, in Lua, so that fast.next_request
-- (an FFI call) can hand out the requests of a batch without leaving the
-- batch's compiled trace, which a C function making a userdata would end at
-- every request.
local function newResponse(ref)
  return setmetatable({ref}, responseMeta)
end

-- The next request of the batch's read: the FFI's common case, else the
-- native (which also waits as the parked runner, see src/http/server.cpp).
-- Its ref, or nothing (false: a parked runner's wait was cancelled).
local function nextRequest()
  local ref = fastNext()
  if ref == 0 then ref = nextRef() end
  return ref
end

local function newRequest(res)
  -- A one-key template (the store needs no new key), which on a trace may
  -- be sunk (never allocated) when the handler lets req go. method, path
  -- and query are not in it: requestIndex reads them when first asked for.
  local req = {res = false}
  req.res = res
  return setmetatable(req, requestMeta)
end

-- The request's res as the engine made it: res itself, or a new one of its
-- ref when the handler wrote over res[1] (the request is still answered).
local function ownRes(res, ref)
  if rawget(res, 1) == ref then return res end
  return newResponse(ref)
end

-- After a handler: what it left behind, then the end of its response.
-- (req is nil for a handler that raised and left nothing behind.) ref:
-- res's, as the runner gave it.
local function afterHandler(req, res, ref, ok, err)
  local own = ownRes(res, ref)
  if req == nil then return done(own, ok, err) end
  -- A WebSocket the handler accepted ends with it, as a net.listen stream does.
  local websocket = rawget(req, "_websocket")
  if websocket and not websocket:isClosed() then pcall(websocket.close, websocket, 1000, "") end
  if not ok then
    done(own, ok, err)
  else
    if fastDone(ref) ~= 0 then done(own, true) end
  end
  -- Uploads req:form() saved and the handler did not move away.
  local uploads = rawget(req, "_uploadDir")
  if uploads then pcall(webkit().cleanup, uploads) end
  if websocket or uploads then leftovers()[res] = nil end
end

local function runRequest(handler, req, res, ref)
  local ok, err = xpcall(handler, handlerError, req, res)
  afterHandler(req, res, ref, ok, err)
end

-- The requests the connection parsed from one read, one after the other on
-- this coroutine (nextRequest gives the next one once the last is answered)
-- in one protected call, so a steady stream of requests stays on one
-- compiled trace. current[1] and [2] say which request an error belongs
-- to (its res and ref); req is not kept there (its handler may let it go,
-- and on a trace it is then never allocated): one holding something to let
-- go is in kit.leftovers.
local function serveOne(handler, res, ref)
  local req = newRequest(res)
  handler(req, res)
  afterHandler(req, res, ref, true)
end

local function serveBatch(current, handler, ref)
  repeat
    local res = newResponse(ref)
    current[1], current[2] = res, ref
    serveOne(handler, res, ref)
    ref = nextRequest()
  until not ref
end

-- The server's runner: a batch of requests; a handler that raises has its
-- request answered (500) and the batch goes on with the next request. A
-- handler that suspends ends the batch: the connection starts the requests
-- after it on other tasks, in order, once it has answered.
local spareCurrent = false
local function runBatch(handler, ref)
  -- With its array slots from the start: serveBatch's current[1] = res is then
  -- a plain store, not a new key that resizes the table (a keep-alive read
  -- brings one request, so every batch paid that: ~350 instructions). The
  -- table of the last batch that ended serves the next one (a batch that
  -- suspended has its own meanwhile): no table per keep-alive read.
  local current = spareCurrent or {false, false}
  spareCurrent = false
  while true do
    local ok, err = xpcall(serveBatch, handlerError, current, handler, ref)
    if ok then
      current[1] = false
      spareCurrent = current
      return
    end
    local failed, failedRef = current[1], current[2]
    local held = leftovers()
    local req = held[failed]
    held[failed] = nil
    afterHandler(req, failed, failedRef, false, err)
    ref = nextRequest()
    if not ref then
      current[1] = false
      spareCurrent = current
      return
    end
  end
end

-- accessLog: after each request, an entry {time, remoteAddress, method,
-- path, query, httpVersion, status, bytes, duration, userAgent, referer}
-- to a function, or (true) a line in the common log format on stderr.
local function commonLog(e)
  local target = e.query ~= "" and e.path .. "?" .. e.query or e.path
  io.stderr:write(format('%s - - [%s] "%s %s HTTP/%s" %d %s\n', e.remoteAddress or "-",
    os.date("%d/%b/%Y:%H:%M:%S %z", e.time), e.method, target, e.httpVersion or "1.1", e.status,
    e.bytes > 0 and format("%d", e.bytes) or "-"))
end

local function withAccessLog(log)
  local hrtime = require("uv").hrtime
  if log == true then log = commonLog end
  return function(handler, ref)
    local start = hrtime()
    local res = newResponse(ref)
    local req = newRequest(res)
    local method, path, query = req.method, req.path, req.query  -- as they came, whatever the handler does
    runRequest(handler, req, res, ref)
    local _, _, status, bytes = native.state(ownRes(res, ref))
    local h = req.headers
    local entry = {time = os.time(), remoteAddress = req.remoteAddress, method = method, path = path,
      query = query, httpVersion = req.httpVersion, status = status, bytes = bytes,
      duration = (hrtime() - start) / 1e9, userAgent = h["user-agent"], referer = h.referer}
    local ok, err = pcall(log, entry)
    if not ok then require("evo.core").reportHandlerError("accessLog: " .. tostring(err)) end
  end
end

local Server = {}
Server.__index = Server

-- server:close(): stops accepting; waits (in a task) until every in-flight
-- request has been answered and every connection is closed.
function Server:close()
  if self.closed then return true end
  self.closed = true
  return finish(native.close(self.native, true))
end

function Server:connections() return native.connections(self.native) end

local function asHandler(h, fname)
  if type(h) == "function" then return h end
  if type(h) == "table" and getmetatable(h) and getmetatable(h).__call then
    return function(req, res) return h(req, res) end
  end
  args.fail(2, fname, "function", h, 3)
end

local function checkOptions(opts, fname)
  if opts == nil then return {} end
  args.check(1, fname, opts, "table", 3)
  return opts
end

-- opts.tls -> opts.tlsContext (lib/evo/httptls.lua; HttpServer uses it too)
local withTls = require("evo.httptls")

-- http.serve(opts, handler) -> server | nil, err
-- opts: host ("127.0.0.1"), port (0: any free one), backlog, maxHeaderBytes
-- (16 KiB), maxUriBytes (8 KiB), maxBodyBytes (8 MiB), headerTimeout (10 s),
-- idleTimeout (5 s).
function http.serve(opts, handler)
  opts = checkOptions(opts, "serve")
  if opts.port ~= nil then args.port(1, "serve", opts.port, 0) end
  handler = asHandler(handler, "serve")
  if tasknative.mode() == "blocking" then
    error(errors.new("ConcurrencyUnavailable",
      "http.serve runs each request as a concurrent task; it needs the evented Io mode"), 2)
  end
  if opts.cookieSecret ~= nil then
    local secret, inner = opts.cookieSecret, handler
    if type(secret) ~= "string" or secret == "" then args.error(1, "serve", "cookieSecret must be a non-empty string") end
    handler = function(req, res)
      webkit().setSecret(req, secret)
      return inner(req, res)
    end
  end
  local run = runBatch
  if opts.accessLog then
    if opts.accessLog ~= true and type(opts.accessLog) ~= "function" then
      args.error(1, "serve", "accessLog must be true or a function")
    end
    run = withAccessLog(opts.accessLog)
  end
  local server = setmetatable({}, Server)
  local o, terr = withTls(opts)
  if not o then return nil, terr end
  local core, err = native.serve(server, o, handler, run)
  if not core then return nil, err end
  server.native = core
  server.port = native.port(core)
  server.host = opts.host or "127.0.0.1"
  server.secure = opts.tls ~= nil
  return server
end

----------------------------------------------------------------- router

-- A router is a list of layers tried in the order they were added: routes
-- (a method and a pattern) and middleware (router:use, on every path or
-- under a prefix). A layer runs as fn(req, res, next): next() runs the
-- layers after it and returns when they are done (so a middleware can act
-- before and after the rest, as in Koa), next(err) raises err. The layers
-- get req.res as their res, so a middleware may put a wrapper there
-- (http.compress does).
local Router = {}
Router.__index = Router

-- Without strictSlash a trailing slash does not count: "/a/" is "/a".
local function trimSlash(path)
  if #path > 1 and byte(path, -1) == 47 then return (gsub(path, "/+$", "")) end
  return path
end

local function compile(pattern, strict)
  if not strict then pattern = trimSlash(pattern) end
  local names = {}
  local lua = gsub(pattern, "[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
  lua = gsub(lua, "/:([%w_]+)", function(name)
    names[#names + 1] = name
    return "/([^/]+)"
  end)
  lua = gsub(lua, "%*$", function()
    names[#names + 1] = "*"
    return "(.*)"
  end)
  return "^" .. lua .. "$", names
end

-- Several handlers for one route run one after the other, each passing on
-- with next() (e.g. an authorization check before the handler).
local function chain(fname, first, ...)
  local list = {first, ...}
  for i = 1, #list do
    local h = list[i]
    if type(h) ~= "function" and not (type(h) == "table" and getmetatable(h) and getmetatable(h).__call) then
      args.fail(i + 1, fname, "function", h, 4)
    end
  end
  if #list == 1 then return first end
  return function(req, res, done)
    local i = 0
    local function step(err)
      if err ~= nil then error(err, 0) end
      i = i + 1
      local h = list[i]
      if h == nil then return done() end
      return h(req, req.res or res, step)
    end
    return step()
  end
end

local function route(self, method, pattern, ...)
  local fname = method == "*" and "all" or lower(method)
  args.check(1, fname, pattern, "string", 3)
  local handler = chain(fname, ...)
  local lua, names = compile(pattern, self.strictSlash)
  local stack = self.stack
  stack[#stack + 1] = {method = method, pattern = lua, names = names, handler = handler}
  return self
end

for _, m in ipairs({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}) do
  Router[lower(m)] = function(self, pattern, ...) return route(self, m, pattern, ...) end
end
-- router:all(pattern, handler): any method
function Router:all(pattern, ...) return route(self, "*", pattern, ...) end

local function isRouter(v) return getmetatable(v) == Router end

-- router:use([prefix,] fn, ...): middleware fn(req, res, next) for every
-- request, or for those under prefix ("/api" takes "/api" and "/api/x",
-- not "/apix"); inside it req.path is the rest ("/x") and req.baseUrl the
-- prefix. A router given as fn is mounted there as a sub-router.
function Router:use(prefix, ...)
  local fns, first = {...}, 2
  local n = select("#", ...)
  if type(prefix) ~= "string" then
    table.insert(fns, 1, prefix)
    n, first, prefix = n + 1, 1, "/"
  elseif byte(prefix, 1) ~= 47 then
    args.error(1, "use", "a prefix must start with '/'")
  end
  if n == 0 then args.fail(first, "use", "function", nil) end
  prefix = trimSlash(prefix)
  if prefix == "/" then prefix = nil end
  for i = 1, n do
    local fn = fns[i]
    local callable = type(fn) == "function" or (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call)
    if not callable then args.fail(first + i - 1, "use", "function", fn) end
    local stack = self.stack
    stack[#stack + 1] = {prefix = prefix, fn = fn, router = isRouter(fn) and fn or nil}
  end
  return self
end

local function captures(r, path)
  local caps = {match(path, r.pattern)}
  if caps[1] == nil then return nil end
  local params = {}
  for i, name in ipairs(r.names) do params[name] = decode(caps[i]) end
  return params
end

local function under(prefix, path)
  return path == prefix or (sub(path, 1, #prefix) == prefix and byte(path, #prefix + 1) == 47)
end

local function addAllowed(req, method)
  local allow = rawget(req, "_allow")
  if not allow then
    allow = {}
    req._allow = allow
  end
  if not allow[method] then
    allow[method] = true
    allow[#allow + 1] = method
  end
end

local plainText = {["content-type"] = "text/plain; charset=utf-8"}

-- The end of the line: 405 (or, for OPTIONS, 204) with Allow when routes
-- matched the path for other methods, else the notFound handler or 404.
local function finalize(self, req, res)
  local allow = rawget(req, "_allow")
  if allow then
    local list = concat(allow, ", ")
    if req.method == "OPTIONS" then
      if not allow.OPTIONS then list = list .. ", OPTIONS" end
      return res:send(204, nil, {allow = list})
    end
    return res:send(405, "405 Method Not Allowed\n",
      {["content-type"] = "text/plain; charset=utf-8", allow = list})
  end
  if self.fallback then return self.fallback(req, res) end
  return res:send(404, "404 Not Found\n", plainText)
end

-- Runs a use layer; under a prefix the layer sees the path below it, and
-- the layers after it (through next) the whole path again.
local function runUse(layer, req, nextLayer)
  local prefix = layer.prefix
  local fn = layer.router or layer.fn
  if prefix == nil then
    if layer.router then return layer.router:handle(req, nextLayer) end
    return fn(req, req.res, nextLayer)
  end
  local path, base = req.path, rawget(req, "baseUrl") or ""
  local inner = sub(path, #prefix + 1)
  if inner == "" then inner = "/" end
  local mounted = base .. prefix
  req.path, req.baseUrl = inner, mounted
  local function outer(err)
    req.path, req.baseUrl = path, base
    nextLayer(err)
    req.path, req.baseUrl = inner, mounted
  end
  if layer.router then
    layer.router:handle(req, outer)
  else
    fn(req, req.res, outer)
  end
  req.path, req.baseUrl = path, base
end

-- handle(req, outerNext): runs the layers for req; a mounted router whose
-- layers all pass calls outerNext (its parent's next), unless it has a
-- notFound handler of its own.
function Router:handle(req, outerNext)
  local stack, strict = self.stack, self.strictSlash
  local i = 0
  local function nextLayer(err)
    if err ~= nil then error(err, 0) end
    local path = req.path
    local method = req.method
    local mpath = strict and path or trimSlash(path)
    while true do
      i = i + 1
      local layer = stack[i]
      if layer == nil then break end
      local pattern = layer.pattern
      if pattern then
        local params = captures(layer, mpath)
        if params then
          local m = layer.method
          if m == method or m == "*" or (method == "HEAD" and m == "GET") then
            req.params = params
            return layer.handler(req, req.res, nextLayer)
          end
          addAllowed(req, m)
          if m == "GET" then addAllowed(req, "HEAD") end
        end
      elseif layer.prefix == nil or under(layer.prefix, mpath) then
        return runUse(layer, req, nextLayer)
      end
    end
    if outerNext and not self.fallback then return outerNext() end
    return finalize(self, req, req.res)
  end
  local onError = self.errorHandler
  if not onError then return nextLayer() end
  local path, base = req.path, rawget(req, "baseUrl")
  local trace
  local ok, err = xpcall(nextLayer, function(e)
    trace = traceback(tostring(e), 2)
    return e
  end)
  if ok then return end
  if type(err) == "table" and err.code == "Canceled" then error(err, 0) end
  req.path, req.baseUrl = path, base
  return onError(err, req, req.res, trace)
end

-- The top-level router is the handler http.serve calls.
function Router:__call(req, res, outerNext)
  if rawget(req, "res") == nil then req.res = res end
  return self:handle(req, outerNext)
end

-- router:notFound(handler): what runs instead of the 404 (e.g.
-- http.static(dir)); router:otherwise is the same.
local function callable(v)
  return type(v) == "function" or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call) and true
end
local function checkCallable(n, fname, v)
  if not callable(v) then args.fail(n, fname, "function", v, 3) end
  return v
end

function Router:notFound(handler)
  self.fallback = checkCallable(1, "notFound", handler)
  return self
end
function Router:otherwise(handler)
  self.fallback = checkCallable(1, "otherwise", handler)
  return self
end

-- router:onError(fn(err, req, res, trace)): what runs when a layer raises
-- (or calls next(err)); err is the value raised, trace its message with the
-- traceback (for a log). Canceled is not given to it.
-- Without one the error goes up to the server: 500, logged with its
-- traceback.
function Router:onError(handler)
  self.errorHandler = checkCallable(1, "onError", handler)
  return self
end

-- http.router([opts]) -> router. opts.strictSlash (true): false lets "/a/"
-- match "/a" and the reverse. opts.cookieSecret: the key of signed cookies
-- for the requests it handles.
function http.router(opts)
  if opts ~= nil then args.check(1, "router", opts, "table") end
  opts = opts or {}
  local self = setmetatable({stack = {}, strictSlash = opts.strictSlash ~= false}, Router)
  if opts.cookieSecret ~= nil then
    local secret = args.check(1, "router", opts.cookieSecret, "string")
    self:use(function(req, res, nxt)
      webkit().setSecret(req, secret)
      return nxt()
    end)
  end
  return self
end

-- http.compress([opts]) -> middleware compressing responses (gzip, br) on
-- the fly: opts threshold (1024), types, level, brotliQuality (4), brotli
-- (lib/evo/compress.lua).
function http.compress(opts)
  local middleware = require("evo.compress").middleware(opts)
  return middleware
end

-- http.cors{origins, methods, headers, exposeHeaders, credentials, maxAge}
-- -> middleware answering preflights and adding CORS headers (evo.webkit).
function http.cors(...) return webkit().cors(...) end

----------------------------------------------------------------- static files

local mime = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8", css = "text/css; charset=utf-8",
  js = "text/javascript; charset=utf-8", mjs = "text/javascript; charset=utf-8",
  json = "application/json", txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png", jpg = "image/jpeg",
  jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp", ico = "image/x-icon",
  avif = "image/avif", wasm = "application/wasm", pdf = "application/pdf", zip = "application/zip",
  gz = "application/gzip", tar = "application/x-tar", mp3 = "audio/mpeg", mp4 = "video/mp4",
  webm = "video/webm", ogg = "audio/ogg", wav = "audio/wav", woff = "font/woff", woff2 = "font/woff2",
  ttf = "font/ttf", otf = "font/otf", csv = "text/csv; charset=utf-8", lua = "text/plain; charset=utf-8",
}
http.mimeTypes = mime

function http.mimeType(path)
  local ext = match(path, "%.([%w]+)$")
  return ext and mime[lower(ext)] or "application/octet-stream"
end

-- The path under the root for a request path, or nil when it would leave
-- it ("..", NUL, an encoded slash is still a slash after decoding: checked).
local function safeRelative(path)
  local decoded = decode(path)
  if find(decoded, "%z") or find(decoded, "\\", 1, true) then return nil end
  local parts = {}
  for seg in gmatch(decoded, "[^/]+") do
    if seg == ".." then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  return concat(parts, "/"), sub(decoded, -1) == "/"
end

local function httpDate(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

-- "bytes=a-b" -> offset, length; nil when absent or not a single range we
-- serve (the whole file goes then); false when unsatisfiable.
local function parseRange(header, size)
  if not header then return nil end
  local a, b = match(header, "^%s*bytes%s*=%s*(%d*)%s*%-%s*(%d*)%s*$")
  if a == nil or (a == "" and b == "") then return nil end
  local first, last
  if a == "" then  -- the last b bytes
    local n = tonumber(b)
    if n == 0 then return false end
    first, last = size - n, size - 1
    if first < 0 then first = 0 end
  else
    first = tonumber(a)
    last = b == "" and size - 1 or tonumber(b)
    if last >= size then last = size - 1 end
    if first > last or first >= size then return false end
  end
  return first, last - first + 1
end

-- noneMatch(header, etag) -> whether If-None-Match's value matches etag:
-- "*", or a list of entity-tags compared weakly (RFC 9110 13.1.2: W/"x"
-- matches "x"), each tag whole (a quoted tag may hold a comma).
local function noneMatch(header, etag)
  if match(header, "^[ \t]*%*[ \t]*$") then return true end
  local want = gsub(etag, "^W/", "")
  local pos, n = 1, #header
  while pos <= n do
    local s = match(header, "^[ \t,]*()", pos)
    if s > n then break end
    if sub(header, s, s + 1) == "W/" then s = s + 2 end
    if sub(header, s, s) ~= '"' then return false end  -- not a list of tags
    local close = find(header, '"', s + 1, true)
    if not close then return false end
    if sub(header, s, close) == want then return true end
    pos = close + 1
    local after = match(header, "^[ \t]*()", pos)
    if after <= n and sub(header, after, after) ~= "," then return false end
    pos = after
  end
  return false
end

-- http.static(dir [, opts]) -> handler serving dir's files: GET and HEAD,
-- Content-Type by extension, ETag and Last-Modified with If-None-Match /
-- If-Modified-Since (304), single byte ranges (206/416), index.html for
-- directories, nothing outside dir (404), with sendfile(2).
-- opts: index ("index.html"), maxAge (seconds for Cache-Control),
-- precompressed (true: serve file.br / file.gz when the client accepts
-- them), compress (false; true or http.compress's options: compress on the
-- fly).
local SIBLINGS = {{"br", ".br"}, {"gzip", ".gz"}}
function http.static(dir, opts)
  args.check(1, "static", dir, "string")
  if opts ~= nil then args.check(2, "static", opts, "table") end
  opts = opts or {}
  local fs = require("fs")
  local compress = require("evo.compress")
  local precompressed = opts.precompressed ~= false
  local copts = opts.compress and compress.options(opts.compress, "static", 2)
  local compressible = compress.options().test
  local index = opts.index == nil and "index.html" or opts.index
  local root = dir
  local plain = {["content-type"] = "text/plain; charset=utf-8"}
  local function notFound(res, nxt)
    if nxt then return nxt() end
    return res:send(404, "404 Not Found\n", plain)
  end

  -- As a middleware (given next), a miss passes the request on.
  return function(req, res, nxt)
    if req.method ~= "GET" and req.method ~= "HEAD" then
      if nxt then return nxt() end
      return res:send(405, "405 Method Not Allowed\n",
        {["content-type"] = "text/plain; charset=utf-8", allow = "GET, HEAD"})
    end
    local rel, slash = safeRelative(req.path)
    if rel == nil then return notFound(res, nxt) end
    local file = rel == "" and root or root .. "/" .. rel
    local st = fs.stat(file)
    -- "/file.txt/" names a directory, and there is none
    if slash and st and st.type ~= "directory" then return notFound(res, nxt) end
    if st and st.type == "directory" then
      if not slash and rel ~= "" then
        -- One leading slash only: "//host/x" would send the client off-site.
        local location = (rawget(req, "baseUrl") or "") .. "/" .. gsub(req.path, "^[/\\]+", "") .. "/"
        if req.query ~= "" then location = location .. "?" .. req.query end
        return res:send(301, "", {location = location})
      end
      if not index then return notFound(res, nxt) end
      file = file .. "/" .. index
      st = fs.stat(file)
    end
    if not st or st.type ~= "file" then return notFound(res, nxt) end

    -- Symbolic links may point anywhere: the real path must stay inside.
    -- An embedded file (evo build) has no links: rel is already inside.
    local inApp = embedded and embedded.stat(file)
    local realRoot
    if not inApp then
      local realFile
      realRoot, realFile = fs.realpath(root), fs.realpath(file)
      if not realRoot or not realFile or sub(realFile, 1, #realRoot + 1) ~= realRoot .. "/" then
        return notFound(res, nxt)
      end
    end

    local h = req.headers
    local ctype = http.mimeType(file)
    -- A precompressed sibling (file.br, file.gz) the client accepts is sent
    -- instead, whole (a range gets the plain file); with compress, the
    -- plain file is compressed on the fly.
    local coding, vary
    if precompressed and compressible(ctype) then
      local accepted = compress.accepted(h["accept-encoding"])
      for _, c in ipairs(SIBLINGS) do
        local sib = fs.stat(file .. c[2])
        if sib and sib.type == "file" then
          vary = true
          local inside
          if inApp then
            inside = embedded.stat(file .. c[2]) ~= nil
          else
            local realSib = fs.realpath(file .. c[2])
            inside = realSib and sub(realSib, 1, #realRoot + 1) == realRoot .. "/"
          end
          if not coding and accepted[c[1]] and not h.range and inside then
            coding, file, st = c[1], file .. c[2], sib
          end
        end
      end
    end
    if copts and not coding then
      res = compress.wrap(req, res, copts)
      vary = false  -- the wrapper says it
    end

    local size, mtime = st.size, st.mtime.sec
    local etag = format(coding and 'W/"%x-%x-%s"' or 'W/"%x-%x"', size, mtime, coding)
    local lastModified = httpDate(mtime)
    if vary then res:header("vary", "Accept-Encoding") end
    local inm = h["if-none-match"]
    if (inm and noneMatch(inm, etag))
      or (not inm and h["if-modified-since"] == lastModified) then
      return res:send(304, nil, {etag = etag, ["last-modified"] = lastModified})
    end
    res:header("content-type", ctype)
    if coding then res:header("content-encoding", coding) end
    res:header("etag", etag)
    res:header("last-modified", lastModified)
    res:header("accept-ranges", "bytes")
    if opts.maxAge then res:header("cache-control", "max-age=" .. opts.maxAge) end
    local rangeHeader = h.range
    local ifRange = h["if-range"]
    if ifRange and ifRange ~= etag and ifRange ~= lastModified then rangeHeader = nil end
    local offset, length = parseRange(rangeHeader, size)
    if offset == false then
      return res:send(416, "", {["content-range"] = "bytes */" .. size})
    elseif offset then
      res:status(206)
      res:header("content-range", format("bytes %d-%d/%d", offset, offset + length - 1, size))
      return res:sendFile(file, offset, length)
    end
    return res:sendFile(file)
  end
end

----------------------------------------------------------------- client

-- http.request{method = "GET", url, headers, body, timeout, follow = 0,
--   stream = false, decompress = true, ca, verify = true, maxBodyBytes = 64 MiB}
--   -> res {status, reason, headers, body} | nil, err
-- err.code: a DNS code (EAI_NONAME...), ECONNREFUSED, Timeout,
-- TLSVerifyFailed, BadResponse... With stream = true read the body with
-- res:read() (chunks, nil at the end) or res:readAll().
function http.request(opts) return require("evo.httpclient").request(opts) end

-- http.get(url [, opts]) -> res | nil, err
function http.get(url, opts)
  args.check(1, "get", url, "string")
  local o = {url = url}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  return require("evo.httpclient").request(o)
end

-- Closes the client's idle pooled connections.
function http.closeIdle() return require("evo.httpclient").closeIdle() end

return http
