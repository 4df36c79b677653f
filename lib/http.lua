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
local isyieldable = coroutine.isyieldable
local traceback = debug.traceback
local finish = require("evo.wait").finish  -- (true, results...) | (false): Canceled

local http = {}

----------------------------------------------------------------- requests

-- Percent-encoding and query strings: one implementation, in lib/url.lua.
-- http.decode is lenient (a bad escape stays as it is), as it always was.
local url = require("url")
local decode = url.unescape
http.decode = decode
http.encode = url.encode
-- "a=1&b=x%20y&a=2" -> {a = {"1", "2"}, b = "x y"}: a repeated name gives a list.
http.parseQuery = url.parseQuery

local Request = {}

-- req:read() -> the next chunk of the body, nil at its end, or nil, err.
-- The first read answers "Expect: 100-continue".
function Request:read() return finish(native.read(self.res, isyieldable())) end

-- req:body() -> the whole body (a string; "" when there is none). Raises on a
-- failed body (e.g. err.status 413 beyond maxBodyBytes): the server answers
-- with that status.
function Request:body()
  local cached = self._body
  if cached then return cached end
  local parts, n = {}, 0
  while true do
    local chunk, err = finish(native.read(self.res, isyieldable()))
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

function Request:queryParams()
  local q = self._query
  if not q then
    q = http.parseQuery(self.query)
    self._query = q
  end
  return q
end

local function requestIndex(req, key)
  local method = Request[key]
  if method then return method end
  if key == "headers" then
    local h = native.headers(req.res)
    rawset(req, "headers", h)
    return h
  elseif key == "remoteAddress" or key == "remotePort" or key == "httpVersion" or key == "id" then
    local ip, port, version, id = native.info(req.res)
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
  local mt = getmetatable(r)
  return type(r) == "userdata" and type(mt) == "table" and mt.__index == Response
end
local function resMethod(name, fn, ...) return args.method(name, fn, isResponse, "Response", ...) end

-- res:send(status, body, headers): the whole response at once
Response.send = resMethod("send", native.send, "number", "string|number?", "table?")
-- res:status(code [, reason])
Response.status = resMethod("status", native.status, "number", "string?")
-- res:header(name, value | {values})
Response.header = resMethod("header", native.header, "string", "string|number|table")
-- res:finish([lastChunk])
Response.finish = resMethod("finish", native.finish, "string|number?")

-- res:write(chunk): streams the body (chunked unless a Content-Length was
-- set); suspends while more than 64 KiB waits to be written.
function Response:write(chunk)
  if type(chunk) ~= "string" then
    if type(chunk) == "number" then chunk = tostring(chunk) else args.fail(1, "write", "string", chunk) end
  end
  return finish(native.write(self, chunk, isyieldable()))
end

-- res:sendFile(path [, offset, length]): the file as the body, with sendfile(2).
function Response:sendFile(path, offset, length)
  args.check(1, "sendFile", path, "string")
  if offset ~= nil then args.check(2, "sendFile", offset, "number") end
  if length ~= nil then args.check(3, "sendFile", length, "number") end
  return finish(native.sendFile(self, path, offset, length, isyieldable()))
end

-- res:headersSent() / res:isFinished(): whether the head (or the whole
-- response) has been sent.
function Response:headersSent() return (native.state(self)) end
function Response:isFinished() return (select(2, native.state(self))) end

-- Methods are found in a table: no function call per lookup of res:send.
native.setup({__index = Response})
local requestMeta = {__index = requestIndex}

-- Every method of req and res checks its self (evo.args.method).
local function isRequest(r) return getmetatable(r) == requestMeta end
for _, name in ipairs({"read", "body", "queryParams"}) do
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
local newTable = require("table.new")
local function runRequest(handler, res, method, path, query)
  -- Sized for its four fields up front (a constructor grows it key by key
  -- once the JIT compiles it).
  local req = newTable(0, 4)
  req.method, req.path, req.query, req.res = method, path, query, res
  setmetatable(req, requestMeta)
  local ok, err = xpcall(handler, handlerError, req, res)
  -- A WebSocket the handler accepted ends with it, as a net.listen stream does.
  local websocket = rawget(req, "_websocket")
  if websocket and not websocket:isClosed() then pcall(websocket.close, websocket, 1000, "") end
  done(res, ok, err)
end

local Server = {}
Server.__index = Server

-- server:close(): stops accepting; waits (in a task) until every in-flight
-- request has been answered and every connection is closed.
function Server:close()
  if self.closed then return true end
  self.closed = true
  return finish(native.close(self.native, isyieldable()))
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
  local server = setmetatable({}, Server)
  local o, terr = withTls(opts)
  if not o then return nil, terr end
  local core, err = native.serve(server, o, handler, runRequest)
  if not core then return nil, err end
  server.native = core
  server.port = native.port(core)
  server.host = opts.host or "127.0.0.1"
  server.secure = opts.tls ~= nil
  return server
end

----------------------------------------------------------------- router

local Router = {}
Router.__index = Router

local function compile(pattern)
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

local function route(self, method, pattern, handler)
  args.check(1, lower(method), pattern, "string", 3)
  args.check(2, lower(method), handler, "function", 3)
  local lua, names = compile(pattern)
  self.routes[#self.routes + 1] = {method = method, pattern = lua, names = names, handler = handler}
  return self
end

for _, m in ipairs({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}) do
  Router[lower(m)] = function(self, pattern, handler) return route(self, m, pattern, handler) end
end
-- router:all(pattern, handler): any method
function Router:all(pattern, handler) return route(self, "*", pattern, handler) end

local function captures(r, path)
  local caps = {match(path, r.pattern)}
  if caps[1] == nil then return nil end
  local params = {}
  for i, name in ipairs(r.names) do params[name] = decode(caps[i]) end
  return params
end

-- Finds the route for req; 404 when no pattern matches the path, 405 (with
-- Allow) when some do but not for this method. HEAD falls back to GET.
function Router:__call(req, res)
  local path, method = req.path, req.method
  local allowed
  for _, r in ipairs(self.routes) do
    local params = captures(r, path)
    if params then
      if r.method == method or r.method == "*" or (method == "HEAD" and r.method == "GET") then
        req.params = params
        return r.handler(req, res)
      end
      allowed = allowed or {}
      allowed[#allowed + 1] = r.method
      if r.method == "GET" then allowed[#allowed + 1] = "HEAD" end
    end
  end
  if allowed then
    return res:send(405, "405 Method Not Allowed\n",
      {["content-type"] = "text/plain; charset=utf-8", allow = concat(allowed, ", ")})
  end
  if self.fallback then return self.fallback(req, res) end
  return res:send(404, "404 Not Found\n", {["content-type"] = "text/plain; charset=utf-8"})
end

-- router:otherwise(handler): what runs instead of the 404 (e.g. http.static(dir))
function Router:otherwise(handler)
  self.fallback = args.check(1, "otherwise", handler, "function")
  return self
end

function http.router() return setmetatable({routes = {}}, Router) end

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
-- opts: index ("index.html"), maxAge (seconds for Cache-Control).
function http.static(dir, opts)
  args.check(1, "static", dir, "string")
  opts = opts or {}
  local fs = require("fs")
  local index = opts.index == nil and "index.html" or opts.index
  local root = dir
  local plain = {["content-type"] = "text/plain; charset=utf-8"}

  return function(req, res)
    if req.method ~= "GET" and req.method ~= "HEAD" then
      return res:send(405, "405 Method Not Allowed\n",
        {["content-type"] = "text/plain; charset=utf-8", allow = "GET, HEAD"})
    end
    local rel, slash = safeRelative(req.path)
    if rel == nil then return res:send(404, "404 Not Found\n", plain) end
    local file = rel == "" and root or root .. "/" .. rel
    local st = fs.stat(file)
    -- "/file.txt/" names a directory, and there is none
    if slash and st and st.type ~= "directory" then return res:send(404, "404 Not Found\n", plain) end
    if st and st.type == "directory" then
      if not slash and rel ~= "" then
        -- One leading slash only: "//host/x" would send the client off-site.
        local location = "/" .. gsub(req.path, "^[/\\]+", "") .. "/"
        if req.query ~= "" then location = location .. "?" .. req.query end
        return res:send(301, "", {location = location})
      end
      if not index then return res:send(404, "404 Not Found\n", plain) end
      file = file .. "/" .. index
      st = fs.stat(file)
    end
    if not st or st.type ~= "file" then return res:send(404, "404 Not Found\n", plain) end

    -- Symbolic links may point anywhere: the real path must stay inside.
    local realRoot, realFile = fs.realpath(root), fs.realpath(file)
    if not realRoot or not realFile or sub(realFile, 1, #realRoot + 1) ~= realRoot .. "/" then
      return res:send(404, "404 Not Found\n", plain)
    end

    local size, mtime = st.size, st.mtime.sec
    local etag = format('W/"%x-%x"', size, mtime)
    local lastModified = httpDate(mtime)
    local h = req.headers
    local inm = h["if-none-match"]
    if (inm and noneMatch(inm, etag))
      or (not inm and h["if-modified-since"] == lastModified) then
      return res:send(304, nil, {etag = etag, ["last-modified"] = lastModified})
    end
    res:header("content-type", http.mimeType(file))
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
