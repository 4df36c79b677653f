-- evo.httpclient: the HTTP/1.1 client behind http.request and http.get.
--
-- Colourless like the rest of net: inside a task a request suspends only
-- that task. Connections are kept alive and pooled per scheme, host and
-- port; redirects are followed when asked (follow = n); gzip and deflate
-- bodies are decoded; https goes through net.connect's TLS (verified against
-- the system CA store, with SNI).
local net = require("net")
local errors = require("evo.errors")
local args = require("evo.args")
local zlib = require("zlib")
local url = require("url")
local parser = require("evo.httpresponse")
local h2client = require("evo.h2client")

local type, tostring, tonumber, pairs, ipairs, setmetatable, error =
  type, tostring, tonumber, pairs, ipairs, setmetatable, error
local concat = table.concat
local find, sub, lower, match, gsub, upper = string.find, string.sub, string.lower, string.match,
  string.gsub, string.upper

local newParser, pfeed, pfinish, pnext = parser.parser, parser.feed, parser.finish, parser.next

local client = {}

local DEFAULT_MAX_BODY = 64 * 1024 * 1024  -- for bodies read whole (not with stream = true)
local MAX_IDLE_PER_HOST = 16

local function fail(code, message) return nil, errors.new(code, message) end

-- For error messages: controls shown as \13, \10...
local function printable(s) return (gsub(s, "%c", function(c) return "\\" .. c:byte() end)) end

-- "https://user@host:8443/p?q" -> {scheme, host, port, target, hostHeader}
-- | nil, why. The URL is parsed by url.parse (WHATWG: a space or a byte past
-- ASCII in the path or query is percent-encoded, dot segments removed, the
-- host lower-cased). Controls (CR, LF, NUL...) are refused anywhere rather
-- than dropped as WHATWG would: nothing in a URL may break the request line
-- or the Host header. Userinfo is not sent.
function client.parseUrl(s)
  if find(s, "%c") then return nil, "control characters in the URL" end
  local u, err = url.parse(s)
  if not u then return nil, err.message end
  if u.scheme ~= "http" and u.scheme ~= "https" then return nil, "not an http(s) URL" end
  local port = u.port or url.defaultPorts[u.scheme]
  if port < 1 then return nil, "port out of range" end
  local target = u.path .. (u.query and "?" .. u.query or "")
  local hostHeader = u.host .. (u.port and ":" .. u.port or "")
  local host = match(u.host, "^%[(.*)%]$") or u.host  -- an IPv6 address connects without its brackets
  return {scheme = u.scheme, host = host, port = port, target = target, hostHeader = hostHeader}
end

-- Resolves a Location header against the URL it came from (WHATWG, as
-- browsers do).
local function resolve(base, location)
  return url.resolve(base.scheme .. "://" .. base.hostHeader .. base.target, location) or location
end

----------------------------------------------------------------- pool

local pool = {}  -- key -> {stream, ...} idle connections

-- Connections are shared only between requests with the same trust settings.
local function poolKey(u, opts)
  local key = u.scheme .. "://" .. u.host .. ":" .. u.port
  if u.scheme == "https" then key = key .. "|" .. tostring(opts.ca) .. "|" .. tostring(opts.verify ~= false) end
  return key
end

local function takeIdle(key)
  local list = pool[key]
  while list and #list > 0 do
    local s = list[#list]
    list[#list] = nil
    if not s:isClosed() then
      s:ref(true)
      return s
    end
  end
  return nil
end

local function giveBack(key, stream)
  local list = pool[key]
  if not list then
    list = {}
    pool[key] = list
  end
  if #list >= MAX_IDLE_PER_HOST then
    stream:close()
  else
    stream:ref(false)  -- an idle pooled connection does not keep the process alive
    list[#list + 1] = stream
  end
end

-- Closes every pooled connection (at the end of a script, or in tests).
function client.closeIdle()
  h2client.closeIdle()
  for key, list in pairs(pool) do
    for _, s in ipairs(list) do s:close() end
    pool[key] = nil
  end
end

local function connect(u, opts)
  local tls
  if u.scheme == "https" then
    tls = {servername = u.host, ca = opts.ca, verify = opts.verify ~= false}
  end
  return net.connect({host = u.host, port = u.port, timeout = opts.timeout, tls = tls})
end

----------------------------------------------------------------- wire

-- A method or a header name is a token (RFC 9110 5.6.2); a header value has
-- no controls but tab (CR, LF and NUL would end or split the request head).
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"
local function validToken(s) return type(s) == "string" and find(s, TOKEN) ~= nil end
local function validHeader(name, value)
  return validToken(name) and not find(value, "[%z\1-\8\10-\31\127]")
end
client.validHeader = validHeader

-- Fields a request's trailers must not carry (RFC 9110 6.5.1): framing,
-- routing, request controls, authentication, processing; the server's
-- res:trailer refuses the same.
local FORBIDDEN_TRAILERS = {}
for name in ("age authorization cache-control connection content-encoding content-length content-range " ..
    "content-type cookie date expect expires host keep-alive location max-forwards pragma proxy-authenticate " ..
    "proxy-authorization proxy-connection range retry-after set-cookie te trailer transfer-encoding upgrade " ..
    "vary www-authenticate"):gmatch("%S+") do
  FORBIDDEN_TRAILERS[name] = true
end

-- The request trailers of opts.trailers (a table, or a function giving one
-- once the body is sent) -> {name, value, name, value...} | nil, err.
function client.trailerList(trailers)
  if type(trailers) == "function" then trailers = trailers() end
  if trailers == nil then return {} end
  if type(trailers) ~= "table" then
    return nil, errors.new("BadHeader", "the trailers function gave a " .. type(trailers) .. ", not a table")
  end
  local list = {}
  for name, value in pairs(trailers) do
    value = tostring(value)
    if not validHeader(name, value) or FORBIDDEN_TRAILERS[lower(name)] then
      return nil, errors.new("BadHeader", "invalid or forbidden trailer '" .. printable(tostring(name)) .. "'")
    end
    list[#list + 1], list[#list + 2] = name, value
  end
  return list
end

-- A streamed body (a function or a Stream) goes chunked unless the caller
-- set its Content-Length.
local function buildRequest(method, u, headers, body, streamed)
  local lines = {method .. " " .. u.target .. " HTTP/1.1"}
  local have = {}
  for name, value in pairs(headers) do
    value = tostring(value)
    if not validHeader(name, value) then
      return nil, errors.new("BadHeader", "invalid header '" .. printable(tostring(name)) .. "'")
    end
    lines[#lines + 1] = name .. ": " .. value
    have[lower(name)] = true
  end
  if not have.host then lines[#lines + 1] = "Host: " .. u.hostHeader end
  if not have["user-agent"] then lines[#lines + 1] = "User-Agent: evo" end
  if not have["accept-encoding"] then lines[#lines + 1] = "Accept-Encoding: gzip, deflate, br" end
  if streamed then
    if not have["content-length"] then lines[#lines + 1] = "Transfer-Encoding: chunked" end
  elseif body then
    if not have["content-length"] then lines[#lines + 1] = "Content-Length: " .. #body end
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    lines[#lines + 1] = "Content-Length: 0"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  return concat(lines, "\r\n")
end

-- The response is parsed by llhttp (src/modules/http_response_parser.cpp):
-- pull() feeds it what the stream reads until it has an event for us.
local function pull(stream, p)
  while true do
    local kind, a, b = pnext(p)
    if kind then return kind, a, b end
    local data, err = stream:read()
    if data then
      pfeed(p, data)
    elseif err then
      return "ioerror", err
    else
      pfinish(p)  -- the connection ended: the parser says whether that was the end
    end
  end
end

local function parseError(message, eof)
  return errors.new(eof and "EOF" or "BadResponse", message)
end

-- Reads the status line and headers (interim responses skipped).
-- -> head {status, reason, version, headers, keepAlive, framing} | nil, err
local function readHead(stream, p)
  local kind, a, b = pull(stream, p)
  if kind == "head" then return a end
  if kind == "error" then return nil, parseError(a, b) end
  return nil, a
end

-- A body reader: returns the next piece of the body, nil at its end (and the
-- bytes that followed the response, and its trailers if any), or nil, err.
local function bodyReader(stream, p)
  return function()
    local kind, a, b = pull(stream, p)
    if kind == "body" then return a end
    if kind == "done" then return nil, nil, a, b end
    if kind == "error" then return nil, parseError(a, b) end
    return nil, a
  end
end

-- A request cancelled (or failing) while it waits closes its connection at
-- once: it is in an unknown state, and must neither be pooled nor linger
-- until garbage collection.
local function closeOnRaise(stream, ok, ...)
  if not ok then
    stream:close()
    error((...), 0)
  end
  return ...
end

-- The last chunk, with the request's trailers if any.
local function lastChunk(trailers)
  if trailers == nil then return "0\r\n\r\n" end
  local list, err = client.trailerList(trailers)
  if not list then return nil, err end
  local lines = {"0"}
  for i = 1, #list, 2 do lines[#lines + 1] = list[i] .. ": " .. list[i + 1] end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  return concat(lines, "\r\n")
end

-- Sends a streamed body: each piece the reader gives (nil: the end, or
-- nil, err) as a chunk, or as is when the length was declared; then the
-- trailers, after a chunked one.
local function sendStreamed(stream, reader, chunked, trailers)
  while true do
    local piece, err = reader()
    if piece == nil then
      if err ~= nil then return nil, errors.is(err) and err or errors.new("BodyError", tostring(err)) end
      if chunked then
        local last, terr = lastChunk(trailers)
        if not last then return nil, terr end
        return stream:write(last)
      end
      return true
    end
    if type(piece) ~= "string" then
      return nil, errors.new("BodyError", "the body function gave a " .. type(piece) .. ", not a string")
    end
    if piece ~= "" then
      local ok, werr
      if chunked then
        ok, werr = stream:write(string.format("%x\r\n", #piece), piece, "\r\n")
      else
        ok, werr = stream:write(piece)
      end
      if not ok then return nil, werr end
    end
  end
end

local function sendAndReadHead(stream, p, wire, body, reader, chunked, trailers)
  local ok, err = stream:write(wire, body or "")
  if not ok then return nil, err end
  if reader then
    ok, err = sendStreamed(stream, reader, chunked, trailers)
    if not ok then return nil, err end
  end
  return readHead(stream, p)
end

----------------------------------------------------------------- responses

local Response = {}
Response.__index = Response

-- res:read() -> the next chunk of the (decoded) body, nil at its end, or nil, err
-- (Without stream = true the body was read already: read() returns it once.)
function Response:read()
  if self.body ~= nil and not self._bodyRead then
    self._bodyRead = true
    if self.body ~= "" then return self.body end
  end
  if self._done then return nil end
  while true do
    local chunk, err, rest, trailers = closeOnRaise(self._stream, pcall(self._next))
    if chunk == nil then
      if rest and rest ~= "" then self._reusable = false end  -- the server sent more than asked
      if trailers then  -- res.trailers, {} until now, gets them at the body's end
        local t = self.trailers
        for k, v in pairs(trailers) do t[k] = v end
      end
      if err then
        self._done = true
        self._stream:close()
        return nil, err
      end
      self._done = true
      if self._inflater then
        local rest, zerr = self._inflater:finish()
        if not rest then return nil, zerr end
        self:_release()
        if rest ~= "" then return rest end
        return nil
      end
      self:_release()
      return nil
    end
    if self._inflater then
      local out, zerr = self._inflater:write(chunk)
      if not out then
        self._stream:close()
        if zerr.code == "TooLarge" then
          return fail("BodyTooLarge", "the decoded body is larger than " .. self._inflater.maxOutput .. " bytes")
        end
        return nil, zerr
      end
      if out ~= "" then return out end
    else
      return chunk
    end
  end
end

-- res:json() -> the body decoded as JSON | nil, err (err.code "JsonSyntax";
-- with stream = true the rest of the body is read first)
function Response:json()
  local body = self.body
  if body == nil then
    local err
    body, err = self:readAll()
    if not body then return nil, err end
    self.body, self._bodyRead = body, true
  end
  return require("json").decode(body)
end

function Response:_release()
  local s = self._stream
  if self._reusable and not s:isClosed() then giveBack(self._key, s) else s:close() end
end

-- res:readAll([maxBytes]) -> the whole remaining body | nil, err (err.code
-- "BodyTooLarge" past maxBytes; the connection is closed then)
function Response:readAll(maxBytes)
  local parts, size = {}, 0
  while true do
    local chunk, err = self:read()
    if not chunk then
      if err then return nil, err end
      return concat(parts)
    end
    size = size + #chunk
    if maxBytes and size > maxBytes then
      self._done = true
      self._stream:close()
      return nil, errors.new("BodyTooLarge", "the response body is larger than " .. maxBytes .. " bytes")
    end
    parts[#parts + 1] = chunk
  end
end

-- A Response from the fields of an HTTP/1.1 or an HTTP/2 exchange.
local function newResponse(res, key, opts)
  res._key = key
  res.trailers = {}  -- filled at the body's end (a chunked or HTTP/2 body's trailers)
  setmetatable(res, Response)
  local enc = lower(res.headers["content-encoding"] or "")
  if opts.decompress ~= false and (enc == "gzip" or enc == "x-gzip" or enc == "deflate" or enc == "br") then
    -- "deflate" is zlib's format, or raw DEFLATE from some servers: "auto" takes both
    res._inflater = zlib.decompressor({format = enc == "br" and "br" or "auto",
      maxOutput = opts.maxBodyBytes or DEFAULT_MAX_BODY})
  end
  return res
end

-- One exchange on one connection; retries once on a fresh connection when
-- a pooled one turns out to have been closed by the server meanwhile.
-- A streamed body (reader) cannot be sent twice: it goes on a fresh
-- connection, without the retry.
local function exchange(u, method, headers, body, opts, reader)
  local key = poolKey(u, opts)
  local chunked = false
  if reader then
    chunked = true
    for name in pairs(headers) do
      if lower(name) == "content-length" then chunked = false end
    end
  end
  local wire, werr = buildRequest(method, u, headers, body, reader ~= nil)
  if not wire then return nil, werr end
  local fresh  -- a TLS connection where ALPN chose HTTP/1.1
  local http2 = opts.http2
  if http2 == "prior-knowledge" or (u.scheme == "https" and http2 ~= false)
      or (http2 == "upgrade" and u.scheme == "http") then
    local up  -- Upgrade: h2c rides on a bodyless request (RFC 7540 3.2)
    if http2 == "upgrade" and reader == nil and (body == nil or body == "") then
      local h = {Connection = "Upgrade, HTTP2-Settings", Upgrade = "h2c",
        ["HTTP2-Settings"] = h2client.settingsHeader()}
      for k, v in pairs(headers) do
        local lk = lower(k)
        if lk ~= "connection" and lk ~= "upgrade" and lk ~= "http2-settings" then h[k] = v end
      end
      up = {wire = buildRequest(method, u, h, body, false), method = method}
    end
    local fields, err, h1head, h1parser = h2client.request(u, key, method, headers, body, reader, opts, up)
    if fields then return newResponse(fields, key, opts) end
    if fields == nil then return nil, err end
    if h1head then  -- the server answered the upgrade request over HTTP/1.1
      return newResponse({status = h1head.status, reason = h1head.reason, headers = h1head.headers,
        version = h1head.version, _stream = err, _next = bodyReader(err, h1parser), _reusable = h1head.keepAlive,
        _length = h1head.contentLength}, key, opts)
    end
    fresh = err
  end
  for attempt = 1, reader and 1 or 2 do
    local reused = true
    local stream = fresh or attempt == 1 and not reader and takeIdle(key) or nil
    if fresh then reused, fresh = false, nil end
    if not stream then
      reused = false
      local err
      stream, err = connect(u, opts)
      if not stream then return nil, err end
    end
    if opts.timeout then stream:settimeout(opts.timeout, opts.timeout) end
    local p = newParser(method == "HEAD")
    local head, err = closeOnRaise(stream, pcall(sendAndReadHead, stream, p, wire, body, reader, chunked,
      opts.trailers))
    if head then
      return newResponse({status = head.status, reason = head.reason, headers = head.headers,
        version = head.version, _stream = stream, _next = bodyReader(stream, p), _reusable = head.keepAlive,
        _length = head.contentLength}, key, opts)
    end
    stream:close()
    if not (reused and errors.is(err, "EOF") or reused and errors.is(err, "ECONNRESET")
        or reused and errors.is(err, "EPIPE")) then
      return nil, err
    end
  end
end

local REDIRECTS = {[301] = true, [302] = true, [303] = true, [307] = true, [308] = true}

-- request{method, url, headers, body, json, timeout, follow, stream, decompress, ca,
--   verify, maxBodyBytes (64 MiB: the largest body read whole)}
-- body: a string, or a function returning the next piece (nil: the end) or a
-- Stream (read until its end), sent chunked unless headers give the
-- Content-Length; json: a value sent encoded, as application/json.
--   -> res {status, reason, headers, body} | nil, err
-- With stream = true, res.body is absent: read it with res:read() / res:readAll().
function client.request(opts)
  if type(opts) == "string" then opts = {url = opts} end
  args.check(1, "request", opts, "table")
  if type(opts.url) ~= "string" then args.fail(1, "request", "url", opts.url) end
  if opts.method ~= nil and type(opts.method) ~= "string" then args.fail(1, "request", "string method", opts.method) end
  local method = upper(opts.method or "GET")
  local headers = opts.headers or {}
  local body, reader = opts.body, nil
  if opts.json ~= nil then
    if body ~= nil then args.error(1, "request", "body and json are exclusive") end
    body = require("json").encode(opts.json)
    local typed = false
    for name in pairs(headers) do
      if type(name) == "string" and lower(name) == "content-type" then typed = true end
    end
    if not typed then
      local h = {["content-type"] = "application/json"}
      for k, v in pairs(headers) do h[k] = v end
      headers = h
    end
  elseif type(body) == "function" then
    body, reader = nil, body
  elseif body ~= nil and type(body) ~= "string" then
    local ok, read = pcall(function() return body.read end)
    if not (ok and type(read) == "function") then
      args.fail(1, "request", "string, function or Stream body", body)
    end
    local source = body
    body, reader = nil, function() return source:read() end
  end
  local trailers = opts.trailers
  if trailers ~= nil then
    if type(trailers) ~= "table" and type(trailers) ~= "function" then
      args.fail(1, "request", "table or function trailers", trailers)
    end
    for name in pairs(headers) do
      if type(name) == "string" and lower(name) == "content-length" then
        args.error(1, "request", "trailers need a chunked body: no content-length header")
      end
    end
    -- HTTP/1.1 sends trailers only after a chunked body: a string body
    -- goes as one chunk then.
    if reader == nil then
      local whole = body or ""
      body, reader = nil, function()
        local piece = whole
        whole = nil
        return piece
      end
    end
  end
  local http2 = opts.http2
  if not (http2 == nil or type(http2) == "boolean" or http2 == "prior-knowledge" or http2 == "upgrade") then
    args.fail(1, "request", "http2 = true, false, \"prior-knowledge\" or \"upgrade\"", http2)
  end
  if not validToken(method) then return fail("BadMethod", "invalid method '" .. printable(method) .. "'") end
  local u, why = client.parseUrl(opts.url)
  if not u then return fail("BadUrl", why .. ": " .. printable(opts.url)) end
  local follow = opts.follow or 0
  for _ = 0, follow do
    local res, err = exchange(u, method, headers, body, opts, reader)
    if not res then return nil, err end
    local location = res.headers.location
    if REDIRECTS[res.status] and location and follow == 0 and (opts.follow or 0) > 0 then
      res._stream:close()
      return fail("TooManyRedirects", "more than " .. opts.follow .. " redirects")
    end
    -- A streamed body is gone: a redirect that would send it again (307,
    -- 308, a 301 or 302 not turning it into a GET) is returned as it is.
    local toGet = res.status == 303 or ((res.status == 301 or res.status == 302) and method == "POST")
    local replay = reader and not toGet
    if replay or not (REDIRECTS[res.status] and location and follow > 0) then
      if not opts.stream then
        local max = opts.maxBodyBytes or DEFAULT_MAX_BODY
        if res._length and res._length > max and not res._inflater then  -- no need to wait for it
          res._stream:close()
          return fail("BodyTooLarge", "the response body is larger than " .. max .. " bytes")
        end
        local all, berr = res:readAll(max)
        if not all then return nil, berr end
        res.body = all
      end
      res.url = u.scheme .. "://" .. u.hostHeader .. u.target
      return res
    end
    follow = follow - 1
    res:readAll()  -- drain, so the connection can be reused
    local nextUrl = resolve(u, location)
    local nu, why = client.parseUrl(nextUrl)
    if not nu then return fail("BadUrl", "bad redirect location (" .. why .. "): " .. printable(location)) end
    if res.status == 303 or ((res.status == 301 or res.status == 302) and method == "POST") then
      method, body, reader = method == "HEAD" and "HEAD" or "GET", nil, nil
    end
    if nu.host ~= u.host then  -- credentials stay with their host
      local h = {}
      for k, v in pairs(headers) do
        local lk = lower(k)
        if lk ~= "authorization" and lk ~= "cookie" then h[k] = v end
      end
      headers = h
    end
    u = nu
  end
end

return client
