-- HttpServer: the HTTP server in Evo's event style, on the same native
-- engine as http.serve.
--
--   local HttpServer = require("HttpServer")
--   local server = HttpServer()
--   function server:HTTP_REQUEST_FINISHED(event, payload)
--     self:WriteStatus(payload.requestID, "200 OK")
--     self:WriteHeader(payload.requestID, "content-type", "text/plain")
--     self:SendResponse(payload.requestID, "hello " .. payload.path)
--   end
--   server:StartListening(8080, "127.0.0.1")
--
-- Events:
--   SERVER_STARTED_LISTENING {port, host}     (from StartListening, in its caller)
--   HTTP_REQUEST_STARTED     {requestID, method, path, query}        headers in
--   HTTP_REQUEST_FINISHED    {requestID, method, path, query, headers, body}
--   HTTP_CONNECTION_ABORTED  {requestID}   the client left before the response ended
--   SERVER_STOPPED_LISTENING {port, host}
-- The engine's events run their handlers in tasks of their own (pooled), as
-- http.serve runs its handler: a handler may sleep, read files or make
-- requests, suspending only itself. (The whole requests of one read run
-- one after the other in one such task, as http.serve's do: runBatch.) The STARTED and FINISHED handlers of one
-- request run one after the other, in that order. An error in either answers
-- 500 (or cuts a response already under way) and is reported.
-- A response may be written at any time after HTTP_REQUEST_STARTED, from any
-- handler or task: WriteStatus, WriteHeader, then WriteResponse (streamed,
-- chunked; in a task it waits while the client is slow to read) and/or
-- SendResponse (the body, or its last part, and the end).
local events = require("events")
local native = require("evo.http")
local args = require("evo.args")
local errors = require("evo.errors")
local reportError = require("evo.core").reportHandlerError
local summary = require("pretty").summary
local xpcall, pcall, traceback, tostring, type = xpcall, pcall, debug.traceback, tostring, type
local getmetatable, rawget, setmetatable = getmetatable, rawget, setmetatable
local isyieldable = coroutine.isyieldable
local finish = require("evo.wait").finish

local HttpServer = events.class("HttpServer", {
  "SERVER_STARTED_LISTENING", "HTTP_REQUEST_STARTED", "HTTP_REQUEST_FINISHED",
  "HTTP_CONNECTION_ABORTED", "SERVER_STOPPED_LISTENING",
})

-- HttpServer([opts]): the limits and timeouts of http.serve (maxHeaderBytes,
-- maxBodyBytes, headerTimeout, idleTimeout...).
function HttpServer:init(opts)
  if opts ~= nil then args.check(1, "HttpServer", opts, "table", 3) end
  self.options = opts or {}
end

------------------------------------------------- handlers run as tasks

local function className(object)
  local mt = getmetatable(object)
  return mt and rawget(mt, "__name") or "object"
end

local function describe(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if not (mt and mt.__tostring) then return summary(err) end
  end
  return tostring(err)
end

-- Calls one handler; its error is reported like any event handler's and,
-- for a request's STARTED or FINISHED, answers 500 (or cuts the response).
-- (The failure is a function of its own: the closure in it would stop the
-- JIT at call's return, NYI: bytecode UCLO.)
local function failed(self, event, payload, err)
  pcall(function()
    reportError(("error in %s:%s handler: %s"):format(className(self), event, describe(err)))
  end)
  local id, c = payload.requestID, rawget(self, "native")
  if id and c and event ~= "HTTP_CONNECTION_ABORTED" then
    pcall(native.fail, c, id)  -- (an answer it gives counts as sent: AlreadySent after it)
  end
end

local function call(self, handler, event, payload)
  local ok, err = xpcall(handler, traceback, self, event, payload)
  if not ok then return failed(self, event, payload, err) end
end

-- Requests whose STARTED or FINISHED handler runs, by server, then id: the
-- list of the handlers waiting for it.
local running = setmetatable({}, {__mode = "k"})

-- The engine runs every handler of its events as runEvent(self, handler,
-- EVENT, payload) in a pooled task (events::emit_task), which must not
-- raise. A request's FINISHED handler waits for its STARTED handler to end
-- (it runs in the same task, right after); one whose request was answered or
-- whose client left meanwhile is dropped. HTTP_CONNECTION_ABORTED does not
-- wait: a handler still running learns at once that its client is gone.
local STARTED, FINISHED = "HTTP_REQUEST_STARTED", "HTTP_REQUEST_FINISHED"

local function runEvent(self, handler, event, payload)
  local id = payload.requestID
  if id == nil or event == "HTTP_CONNECTION_ABORTED" then return call(self, handler, event, payload) end
  local byID = running[self]
  -- A FINISHED handler with no STARTED handler of its request running needs
  -- no bookkeeping: none of the request's handlers comes after it.
  if event == FINISHED and not (byID and byID[id]) then return call(self, handler, event, payload) end
  if not byID then
    byID = {}
    running[self] = byID
  end
  -- true while a handler of the request runs; a list once others wait (so a
  -- request whose handlers never overlap allocates nothing here).
  local queue = byID[id]
  if queue then
    if queue == true then
      queue = {}
      byID[id] = queue
    end
    queue[#queue + 1] = {handler, event, payload}
    return
  end
  byID[id] = true
  call(self, handler, event, payload)
  queue = byID[id]
  if queue ~= true then
    local i = 0
    while i < #queue do
      i = i + 1
      local job = queue[i]
      local c = rawget(self, "native")
      if c and native.pending(c, id) then call(self, job[1], job[2], job[3]) end
    end
  end
  byID[id] = nil
end

local defaultHandler = events.defaultHandler
local pending = native.pending

local function index(object, key) return object[key] end

-- (Apart from handlerOf: a closure there would keep it from being compiled.)
local function reportLookupError(self, event, err)
  pcall(function()
    reportError(("error in %s:%s handler: %s"):format(className(self), event, describe(err)))
  end)
end

local rawHandler = events.rawHandler

-- object[event] as events::emit finds it, or nil when nobody listens (the
-- silent default). The usual chains are read by events.rawHandler, without
-- a loop or a call; any other goes through a protected lookup, whose error
-- is reported as the handler's.
local function handlerOf(self, event, debugging)
  local h = rawHandler(self, event)
  if h == nil then
    local ok, v = xpcall(index, traceback, self, event)
    if not ok then
      reportLookupError(self, event, v)
      return nil
    end
    h = v
  end
  if h == nil or h == defaultHandler then
    if not debugging then return nil end
    return defaultHandler
  end
  return h
end

local ffi = require("ffi")
local fastApi = require("evo.httpfast")
-- A core's Server, by core: alive while the core is. (A void* cdata: the
-- JIT passes one to C, not a light userdata.)
local fastServers = setmetatable({}, {__mode = "k"})
local voidPtr = ffi.typeof("void*")
local function fastServer(c)
  local s = fastServers[c]
  if s == nil then
    s = ffi.cast(voidPtr, native.fastServer(c))
    fastServers[c] = s
  end
  return s
end

-- The batch's next request through the FFI (fast::next_event in
-- src/bind/http.cpp): inside the trace, its strings made here with
-- ffi.string rather than pushed through the C API by the classic
-- nextEvent, which still takes whatever the FFI refuses (-1). srv: the
-- batch's server (fastServer), or nil when its core is gone.
local ffiString = ffi.string
local fastNextEvent = fastApi.next_event
local eventOut = ffi.new("evo_http_event")
local eventPart, eventLen = eventOut.part, eventOut.len
local classicNextEvent = native.nextEvent
local function nextEvent(srv)
  if srv ~= nil then
    local got = fastNextEvent(srv, eventOut)
    -- (None in this read: the classic one may wait as the server's parked
    -- runner for the first request of a later read, which the FFI cannot.)
    if got == 0 then return classicNextEvent() end
    if got == 1 then
      return eventOut.id, ffiString(eventPart[0], eventLen[0]), ffiString(eventPart[1], eventLen[1]),
        ffiString(eventPart[2], eventLen[2]), ffiString(eventPart[3], eventLen[3]),
        ffiString(eventPart[4], eventLen[4])
    end
  end
  return classicNextEvent()
end

-- HTTP_REQUEST_FINISHED's payload.headers is made when first read: the
-- engine gives a request's headers packed in one string (push_packed_headers
-- in src/bind/http.cpp), kept in the payload until then, where building the
-- table for every request cost about as much as the rest of the payload
-- (issue 13). The first read of payload.headers (the metatable's __index)
-- unpacks them into the usual table, stores it and leaves the payload a
-- plain table again, exactly as it was made before; until then
-- pairs(payload) shows the packed string as _packedHeaders instead.
local unpackHeaders = native.unpackHeaders
local lazyHeaders = {}
lazyHeaders.__index = function(payload, key)
  if key ~= "headers" then return nil end
  local packed = rawget(payload, "_packedHeaders")
  if packed == nil then return nil end
  local headers = unpackHeaders(packed)
  rawset(payload, "headers", headers)
  rawset(payload, "_packedHeaders", nil)
  if getmetatable(payload) == lazyHeaders then setmetatable(payload, nil) end
  return headers
end

-- (The debugging default handler prints the payload as it always was.)
local function unpacked(payload) return payload.headers end

local function finishedPayload(id, method, path, query, packed, body)
  return setmetatable({requestID = id, method = method, path = path, query = query,
    _packedHeaders = packed, body = body}, lazyHeaders)
end

-- A whole request: its STARTED handler, then, if the request still waits
-- for its answer, its FINISHED handler, both looked up here. Unprotected:
-- serveBatch's caller catches what they raise. current says which event
-- of which request ran, and after STARTED what its FINISHED needs. (Not
-- the payload: a payload the handler lets go is, on a trace, never
-- allocated.)
local function serveWhole(self, debugging, current, id, method, path, query, headers, body)
  local started = handlerOf(self, STARTED, debugging)
  if started ~= nil then
    current[1], current[2], current[3], current[4] = STARTED, id, method, path
    current[5], current[6], current[7] = query, headers, body
    started(self, STARTED, {requestID = id, method = method, path = path, query = query})
    local c = rawget(self, "native")
    if not (c and pending(c, id)) then return end  -- answered, or its client left
  end
  local finished = handlerOf(self, FINISHED, debugging)
  if finished == nil then return end
  current[1], current[2] = FINISHED, id
  local payload = finishedPayload(id, method, path, query, headers, body)
  if finished == defaultHandler then unpacked(payload) end
  finished(self, FINISHED, payload)
end

-- The whole requests the connection parsed from one read, one after the
-- other on this coroutine (nextEvent gives the next one once the last has
-- been answered, or nothing) in one protected call, as http.serve's runner
-- does, so a steady stream stays on one compiled trace.
local function serveBatch(self, debugging, current, srv, id, method, path, query, headers, body)
  repeat
    serveWhole(self, debugging, current, id, method, path, query, headers, body)
    id, method, path, query, headers, body = nextEvent(srv)
  until not id  -- (false: a parked runner's wait was cancelled)
end

-- A handler that raises is reported and its request answered 500, as call()
-- does (after a STARTED handler, the FINISHED one still runs if the request
-- waits for its answer), and the batch goes on with the next request. One
-- that suspends ends the batch: the connection starts the requests after it
-- in tasks of their own, in order, once it has answered.
local function runBatch(self, debugging, id, method, path, query, headers, body)
  local current = {}
  -- (c, held here, keeps the Server srv points at alive for the batch.)
  local c = rawget(self, "native")
  local srv = c and fastServer(c) or nil
  while true do
    local ok, err = xpcall(serveBatch, traceback, self, debugging, current, srv, id, method, path, query, headers, body)
    if ok then return end
    local event, rid = current[1], current[2]
    failed(self, event, {requestID = rid}, err)
    local c = rawget(self, "native")
    if event == STARTED and c and pending(c, rid) then
      local finished = handlerOf(self, FINISHED, debugging)
      if finished ~= nil then
        call(self, finished, FINISHED,
          finishedPayload(rid, current[3], current[4], current[5], current[6], current[7]))
      end
    end
    id, method, path, query, headers, body = nextEvent(srv)
    if not id then return end
  end
end

-- The engine runs the handlers of HTTP_REQUEST_STARTED and _FINISHED as
-- runRequestEvent(self, handler, id, method, path, query [, headers, body])
-- (events::emit_task_values): the payload is made here, where its keys are
-- constants, rather than field by field from C. (A request with trailers
-- comes to runEvent with its payload made in C.) With no handler, the
-- request is whole (emit_whole_request in src/http/server.cpp, `handler`
-- whether debugging is on): runBatch serves it and the whole requests after
-- it in the same read.
local function runRequestEvent(self, handler, id, method, path, query, headers, body)
  if handler == false or handler == true then
    return runBatch(self, handler, id, method, path, query, headers, body)
  end
  if headers == nil then
    return runEvent(self, handler, STARTED, {requestID = id, method = method, path = path, query = query})
  end
  local payload = finishedPayload(id, method, path, query, headers, body)
  if handler == defaultHandler then unpacked(payload) end
  return runEvent(self, handler, FINISHED, payload)
end

-- StartListening(port [, host]) -> self | nil, err
function HttpServer:StartListening(port, host)
  args.port(1, "StartListening", port, 0)
  if host ~= nil then args.check(2, "StartListening", host, "string") end
  if self.native then error("StartListening: the server is already listening", 2) end
  local opts = {}
  for k, v in pairs(self.options) do opts[k] = v end
  opts.port, opts.host = port, host or "127.0.0.1"
  local terr
  opts, terr = require("evo.httptls")(opts)
  if not opts then return nil, terr end
  local core, err = native.serve(self, opts, nil, runEvent, runRequestEvent)
  if not core then return nil, err end
  self.native = core
  self.port = native.port(core)
  self.host = opts.host
  self:emit("SERVER_STARTED_LISTENING", {port = self.port, host = self.host})
  return self
end

-- StopListening(): no new connections; requests in flight may still be
-- answered, then their connections close. SERVER_STOPPED_LISTENING follows.
function HttpServer:StopListening()
  if not self.native then return end
  native.close(self.native, false)
end

local function core(self, fname)
  local c = self.native
  if not c then error(fname .. ": the server is not listening", 3) end
  return c
end

-- The methods check self and their arguments first (evo.args.method).
local function isServer(s) return events.isInstance(s, HttpServer) end
local function method(name, fn, ...) return args.method(name, fn, isServer, "HttpServer", ...) end

-- The methods of every response (WriteStatus, WriteHeader, SendResponse)
-- are written out rather than made by method(): the same checks and
-- messages, without the wrapper's varargs and extra call on every request.
local isInstance, fail, badSelf = events.isInstance, args.fail, args.badSelf
local writeStatus, writeHeader, sendResponse = native.writeStatus, native.writeHeader, native.sendResponse

-- Their common case goes through the FFI (src/bind/http.cpp, namespace
-- fast): compiled Lua calls these C functions inside its trace, where each
-- native costs a trace exit. A function returns 1 when it did the work and
-- 0 for anything else, which the native then answers, fails or raises as
-- it always did.
local fastStatusCode, fastStatusLine = fastApi.status_code, fastApi.status_line
local fastHeader, fastSend = fastApi.header, fastApi.send
-- Header pairs accepted before skip the engine's byte checks (as res:send's).
local fastCheckedHeader, fastLine = fastApi.checked_header, fastApi.header_line
local checkedHeaders = require("evo.checkedheaders")
local knownHeaders, knownLines, rememberHeader = checkedHeaders.pairs, checkedHeaders.lines, checkedHeaders.remember

-- WriteStatus(id, "404 Not Found" | 404) -> true | nil, err (the connection is gone)
function HttpServer.WriteStatus(self, id, status)
  if not isInstance(self, HttpServer) then badSelf("WriteStatus", "HttpServer", self) end
  if type(id) ~= "number" then fail(1, "WriteStatus", "number", id) end
  local t = type(status)
  if t ~= "number" and t ~= "string" then fail(2, "WriteStatus", "number", status) end
  local c = core(self, "WriteStatus")
  if t == "string" then
    if fastStatusLine(fastServer(c), id, status, #status) == 1 then return true end
  elseif fastStatusCode(fastServer(c), id, status) == 1 then
    return true
  end
  return writeStatus(c, id, status)
end
-- WriteHeader(id, name, value) -> true | nil, err
function HttpServer.WriteHeader(self, id, name, value)
  if not isInstance(self, HttpServer) then badSelf("WriteHeader", "HttpServer", self) end
  if type(id) ~= "number" then fail(1, "WriteHeader", "number", id) end
  if type(name) ~= "string" then fail(2, "WriteHeader", "string", name) end
  local t = type(value)
  if t ~= "string" and t ~= "number" and t ~= "table" then fail(3, "WriteHeader", "string", value) end
  local c = core(self, "WriteHeader")
  if t == "string" then
    if knownHeaders[name] == value then
      local line = knownLines[name]
      if line then
        if fastLine(fastServer(c), id, line, #line) == 1 then return true end
      elseif fastCheckedHeader(fastServer(c), id, name, #name, value, #value) ~= 0 then
        return true
      end
    else
      local added = fastHeader(fastServer(c), id, name, #name, value, #value)  -- (2: as its own line)
      if added ~= 0 then
        rememberHeader(name, value, added == 2)
        return true
      end
    end
  end
  return writeHeader(c, id, name, value)
end
-- WriteTrailer(id, name, value) -> true | nil, err: a field sent after the
-- body (res:trailer's rules).
HttpServer.WriteTrailer = method("WriteTrailer", function(self, id, name, value)
  return native.writeTrailer(core(self, "WriteTrailer"), id, name, value)
end, "number", "string", "string|number|table")
-- WriteInformational(id, status [, headers]) -> true | nil, err: a 1xx (103
-- Early Hints...) before the response (res:inform's rules).
HttpServer.WriteInformational = method("WriteInformational", function(self, id, status, headers)
  return native.writeInformational(core(self, "WriteInformational"), id, status, headers)
end, "number", "number", "table?")
-- WriteResponse(id, chunk) -> true | nil, err: streams a part of the body.
-- In a task it suspends while more than 64 KiB waits to be written to the
-- client (as res:write); elsewhere it queues the chunk and returns.
local writing = setmetatable({}, {__mode = "k"})  -- server -> {id = true} while a task waits
HttpServer.WriteResponse = method("WriteResponse", function(self, id, chunk)
  local c = core(self, "WriteResponse")
  if type(chunk) == "number" then chunk = tostring(chunk) end
  -- The connection has one slot for a waiting writer: a second task writing
  -- the same response meanwhile queues without waiting.
  local waiting = writing[self]
  local wait = isyieldable() and not (waiting and waiting[id])
  if not wait then
    local _, a, b = native.writeResponse(c, id, chunk, false)
    return a, b
  end
  if not waiting then
    waiting = {}
    writing[self] = waiting
  end
  waiting[id] = true
  local ok, a, b = native.writeResponse(c, id, chunk, true)
  waiting[id] = nil
  return finish(ok, a, b)
end, "number", "string|number")
-- SendResponse(id [, body]) -> true | nil, err: the body (or its last part)
-- and the end. err.code: "AlreadySent" (this request was answered; the
-- last 4096 answered ids are remembered), "Closed" (the client left, or no
-- such request).
function HttpServer.SendResponse(self, id, body)
  if not isInstance(self, HttpServer) then badSelf("SendResponse", "HttpServer", self) end
  if type(id) ~= "number" then fail(1, "SendResponse", "number", id) end
  local t = type(body)
  if t ~= "string" and t ~= "number" and t ~= "nil" then fail(2, "SendResponse", "string", body) end
  local c = core(self, "SendResponse")
  if t == "string" and fastSend(fastServer(c), id, body, #body) == 1 then return true end
  return sendResponse(c, id, body)
end
------------------------------------------------- the web-app kit

local kit = require("evo.webkit")

-- ReadCookies(payload) -> {name = value}: the request's Cookie header,
-- parsed as req.cookies is.
HttpServer.ReadCookies = method("ReadCookies", function(self, payload)
  return kit.cookies({headers = payload.headers or {}})
end, "table")

-- ReadSignedCookies(payload) -> the signed cookies whose signature holds
-- (HttpServer{cookieSecret = ...}; empty without one).
HttpServer.ReadSignedCookies = method("ReadSignedCookies", function(self, payload)
  local req = {headers = payload.headers or {}, _cookieSecret = self.options.cookieSecret}
  req.cookies = kit.cookies(req)
  return kit.signedCookies(req)
end, "table")

-- ReadJSON(payload) -> the body decoded | nil, err (err.code JsonSyntax).
HttpServer.ReadJSON = method("ReadJSON", function(self, payload)
  local body = payload.body
  if body == nil or body == "" then return nil, errors.new("JsonSyntax", "the request body is empty") end
  return require("json").decode(body)
end, "table")

-- ReadForm(payload [, opts]) -> {fields, files} | nil, err: a urlencoded
-- or multipart body (files come with their data: the body is in memory).
HttpServer.ReadForm = method("ReadForm", function(self, payload, opts)
  local h = payload.headers or {}
  return kit.parseForm(h["content-type"], payload.body or "", opts, require("http").parseQuery)
end, "table", "table?")

-- WriteCookie(id, name, value [, opts]) -> true | nil, err: a Set-Cookie
-- header, with res:cookie's options (signed with the cookieSecret option).
HttpServer.WriteCookie = method("WriteCookie", function(self, id, name, value, opts)
  local line = kit.cookieHeader("WriteCookie", 1, 3, name, value, opts, self.options.cookieSecret)
  return native.writeHeader(core(self, "WriteCookie"), id, "set-cookie", line)
end, "number")

-- ClearCookie(id, name [, opts]) -> true | nil, err
HttpServer.ClearCookie = method("ClearCookie", function(self, id, name, opts)
  local line = kit.clearCookieHeader("ClearCookie", 1, 3, name, opts)
  return native.writeHeader(core(self, "ClearCookie"), id, "set-cookie", line)
end, "number")

-- SendJSON(id, status, value [, headers]) -> true | nil, err: the value
-- encoded as the whole response, as application/json.
HttpServer.SendJSON = method("SendJSON", function(self, id, status, value, headers)
  if headers ~= nil and type(headers) ~= "table" then args.fail(4, "SendJSON", "table", headers) end
  local body = require("json").encode(value)
  local c = core(self, "SendJSON")
  local ok, err = native.writeStatus(c, id, status)
  if not ok then return nil, err end
  local typed = false
  for name, v in pairs(headers or {}) do
    if type(name) == "string" and name:lower() == "content-type" then typed = true end
    ok, err = native.writeHeader(c, id, name, v)
    if not ok then return nil, err end
  end
  if not typed then native.writeHeader(c, id, "content-type", "application/json") end
  return self:SendResponse(id, body)
end, "number", "number", "any")

HttpServer.StartListening = method("StartListening", HttpServer.StartListening)
HttpServer.StopListening = method("StopListening", HttpServer.StopListening)

return HttpServer
