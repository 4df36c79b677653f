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

local type, error, pairs, ipairs, tostring, select, setmetatable, getmetatable, rawset, xpcall =
  type, error, pairs, ipairs, tostring, select, setmetatable, getmetatable, rawset, xpcall
local concat = table.concat
local format = string.format
local rawget, pcall = rawget, pcall
local traceback = debug.traceback
local finish = require("evo.wait").finish  -- (true, results...) | (false): Canceled

local http = {}

----------------------------------------------------------------- requests

-- Percent-encoding and query strings: one implementation, in lib/url.lua.
-- http.decode is lenient (a bad escape stays as it is), as it always was.
-- What only some servers use loads when first needed: lib/url.lua, the web
-- kit (lib/evo/webkit.lua, below), the router (lib/evo/router.lua) and the
-- file server (lib/evo/static.lua). A server that uses none keeps their
-- code out of its heap. The collector goes through the whole heap every
-- cycle, and lets garbage pile up to its size before the next: a pipelined
-- request took 3.6% less CPU without url and the kit alone
-- (docs/performance.md, "The heap's size"). The wrappers are tail calls:
-- errors keep their level.
local appfs = require("evo.appfs")
local embedded = appfs.active and appfs or nil  -- a one-file executable's files (evo build)
-- http.decode, http.encode and http.parseQuery ("a=1&b=x%20y&a=2" -> {a =
-- {"1", "2"}, b = "x y"}: a repeated name gives a list) are url's own
-- functions, and http.mimeTypes the file server's table, put in http when
-- first read.
local lazyExports = {
  decode = {"url", "unescape"},
  encode = {"url", "encode"},
  parseQuery = {"url", "parseQuery"},
  mimeTypes = {"evo.static", "mimeTypes"},
}
setmetatable(http, {
  __index = function(t, key)
    local from = lazyExports[key]
    if from == nil then return nil end
    local value = require(from[1])[from[2]]
    rawset(t, key, value)
    return value
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
-- is loaded, as only its users (uploads, ws.lua) put any there. (The empty
-- stand-in is only read and cleared: it stays empty.)
local noLeftovers = {}
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

-- http.router([opts]) -> router (lib/evo/router.lua, loaded on first use).
-- opts.strictSlash (true): false lets "/a/" match "/a" and the reverse.
-- opts.cookieSecret: the key of signed cookies for the requests it handles.
function http.router(opts) return require("evo.router").new(opts) end

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

-- http.static(dir [, opts]) -> a handler serving dir's files, and
-- http.mimeType(path), http.mimeTypes: lib/evo/static.lua, loaded on first use.
function http.static(dir, opts) return require("evo.static").new(dir, opts) end
function http.mimeType(path) return require("evo.static").mimeType(path) end

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
