-- evo.webkit: the web-app kit of lib/http.lua — cookies (plain and
-- signed), JSON bodies and responses, forms (urlencoded and multipart, files
-- streamed to disk), CORS. http.lua installs these on req and res; see
-- docs/webapp.md.
local native = require("evo.httpkit")
local errors = require("evo.errors")
local args = require("evo.args")

local type, tostring, tonumber, pairs, ipairs, error, pcall, setmetatable, getmetatable, rawget, select =
  type, tostring, tonumber, pairs, ipairs, error, pcall, setmetatable, getmetatable, rawget, select
local concat = table.concat
local find, sub, lower, match, gsub, format, byte = string.find, string.sub, string.lower, string.match,
  string.gsub, string.format, string.byte
local floor = math.floor

local parseCookies, validName, validValue = native.parseCookies, native.cookieName, native.cookieValue

local kit = {}

-- An error a handler may leave uncaught: the server answers with its status
-- (as for req:body()'s 413).
local function statusError(code, status, message) return errors.new(code, message, {status = status}) end
kit.statusError = statusError

-- The media type of a Content-Type value, lower-cased, and its parameters.
local function mediaType(value)
  if not value then return nil, {} end
  local semi = find(value, ";", 1, true)
  local mtype = lower(match(semi and sub(value, 1, semi - 1) or value, "^%s*(.-)%s*$"))
  local params = {}
  if semi then
    for k, v in value:sub(semi + 1):gmatch('([%w!#$&%-^_.+]+)%s*=%s*("?[^";]*"?)') do
      params[lower(k)] = (gsub(v, '^"(.*)"$', "%1"))
    end
  end
  return mtype, params
end
kit.mediaType = mediaType

------------------------------------------------------------------ responses

-- res may be the engine's response or a wrapper (http.compress's); the
-- wrappers register their metatable here.
local responseMetas = setmetatable({}, {__mode = "k"})
function kit.registerResponse(meta) responseMetas[meta] = true end
local function isResponse(r)
  local mt = getmetatable(r)
  return mt ~= nil and responseMetas[mt] == true
end
kit.isResponse = isResponse
local function realResponse(r) return type(r) == "table" and rawget(r, "_real") or r end

-- The cookie secret of a request's response (set by http.serve's or
-- http.router's cookieSecret), for res:cookie(..., {signed = true}).
local secrets = setmetatable({}, {__mode = "k"})
function kit.setSecret(req, secret)
  req._cookieSecret = secret
  local res = rawget(req, "res")
  if res then secrets[realResponse(res)] = secret end
end

------------------------------------------------------------------ cookies

-- Signed values are "s:" .. value .. "." .. HMAC-SHA256(secret, value) in
-- base64url, as Express's cookie-parser writes them (with base64url for
-- the MAC); a value whose MAC does not match is not given out.
local function sign(value, secret)
  return "s:" .. value .. "." .. require("crypto").hmac("sha256", secret, value, "base64url")
end
local function unsign(signed, secret)
  if type(signed) ~= "string" or sub(signed, 1, 2) ~= "s:" then return nil end
  local dot = match(signed, "^.*()%.")
  if not dot or dot < 3 then return nil end
  local value, mac = sub(signed, 3, dot - 1), sub(signed, dot + 1)
  local crypto = require("crypto")
  if crypto.timingSafeEqual(mac, crypto.hmac("sha256", secret, value, "base64url")) then return value end
  return nil
end
kit.sign, kit.unsign = sign, unsign

-- req.cookies: name -> value, parsed when first used.
function kit.cookies(req) return parseCookies(req.headers.cookie) end

-- req.signedCookies: the signed cookies whose signature holds (needs a
-- cookieSecret; without one it is empty).
function kit.signedCookies(req)
  local out = {}
  local secret = rawget(req, "_cookieSecret")
  if not secret then return out end
  for name, value in pairs(req.cookies) do
    local v = unsign(value, secret)
    if v then out[name] = v end
  end
  return out
end

-- req:cookie(name [, {signed = true}]) -> value | nil
function kit.requestCookie(req, name, opts)
  args.check(1, "cookie", name, "string")
  if opts ~= nil then args.check(2, "cookie", opts, "table") end
  if opts and opts.signed then
    local secret = rawget(req, "_cookieSecret")
    if not secret then error("req:cookie: signed cookies need a cookieSecret (http.serve or http.router option)", 2) end
    return unsign(req.cookies[name], secret)
  end
  return req.cookies[name]
end

local function httpDate(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
kit.httpDate = httpDate

local SAMESITE = {strict = "Strict", lax = "Lax", none = "None"}

-- An attribute value must not end the attribute or the header.
local function badAttr(key, v)
  if type(v) ~= "string" then return key .. " must be a string" end
  if find(v, "[%c;]") then return key .. " must not contain ';' or control characters" end
  return nil
end

local INVALID_NAME = " (a token: no spaces, separators or controls)"
local INVALID_VALUE = "invalid cookie value (no CR, LF, ';', ',', spaces, quotes, backslashes or controls; "
  .. "encode it first, e.g. with http.encode)"

-- cookieLine(name, value, opts, secret) -> the Set-Cookie value, or nil,
-- the number of the bad argument (1 name, 2 value, 3 opts), why. The
-- public methods raise with the numbers their callers count.
local function cookieLine(name, value, opts, secret)
  if type(name) ~= "string" then return nil, 1, "string expected, got " .. type(name) end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then return nil, 2, "string expected, got " .. type(value) end
  if opts ~= nil and type(opts) ~= "table" then return nil, 3, "table expected, got " .. type(opts) end
  opts = opts or {}
  if not validName(name) then return nil, 1, "invalid cookie name " .. format("%q", name) .. INVALID_NAME end
  if not validValue(value) then return nil, 2, INVALID_VALUE end
  if opts.signed then
    if not secret then return nil, 0, "signed cookies need a cookieSecret" end
    value = sign(value, secret)
  end
  local parts = {name .. "=" .. value}
  local path = opts.path == nil and "/" or opts.path
  if path then
    local why = badAttr("path", path)
    if why then return nil, 3, why end
    parts[#parts + 1] = "Path=" .. path
  end
  if opts.domain then
    local why = badAttr("domain", opts.domain)
    if why then return nil, 3, why end
    parts[#parts + 1] = "Domain=" .. opts.domain
  end
  if opts.maxAge ~= nil then
    if type(opts.maxAge) ~= "number" or opts.maxAge ~= opts.maxAge then return nil, 3, "maxAge must be a number of seconds" end
    local age = floor(opts.maxAge)
    parts[#parts + 1] = "Max-Age=" .. format("%d", age)
    if opts.expires == nil then parts[#parts + 1] = "Expires=" .. httpDate(os.time() + (age > 0 and age or -1e6)) end
  end
  if opts.expires ~= nil then
    local e = opts.expires
    if type(e) == "number" then e = httpDate(e) end
    local why = badAttr("expires", e)
    if why then return nil, 3, why end
    parts[#parts + 1] = "Expires=" .. e
  end
  if opts.httpOnly then parts[#parts + 1] = "HttpOnly" end
  if opts.secure then parts[#parts + 1] = "Secure" end
  if opts.sameSite ~= nil and opts.sameSite ~= false then
    local site = opts.sameSite == true and "Strict" or (type(opts.sameSite) == "string" and SAMESITE[lower(opts.sameSite)])
    if not site then return nil, 3, 'sameSite must be "Strict", "Lax" or "None"' end
    parts[#parts + 1] = "SameSite=" .. site
  end
  if opts.partitioned then parts[#parts + 1] = "Partitioned" end
  return concat(parts, "; ")
end

-- The options of a cookie that tells the browser to drop it.
local function clearing(opts)
  local o = {}
  if type(opts) == "table" then
    for k, v in pairs(opts) do o[k] = v end
  end
  o.maxAge, o.expires, o.signed = nil, 0, nil
  return o
end

-- kit.cookieHeader(fname, shift, level, name, value, opts, secret) -> the
-- Set-Cookie value, raising bad argument #(n + shift) to fname otherwise.
function kit.cookieHeader(fname, shift, level, name, value, opts, secret)
  local line, n, why = cookieLine(name, value, opts, secret)
  if line then return line end
  if n == 0 then error(fname .. ": " .. why .. " (http.serve, http.router or HttpServer option)", level + 1) end
  args.error(n + shift, fname, why, level + 1)
end

function kit.clearCookieHeader(fname, shift, level, name, opts)
  if opts ~= nil and type(opts) ~= "table" then args.error(2 + shift, fname, "table expected, got " .. type(opts), level + 1) end
  return kit.cookieHeader(fname, shift, level + 1, name, "", clearing(opts))
end

-- res:cookie(name, value [, opts]): a Set-Cookie header. opts: maxAge
-- (seconds; also sets Expires), expires (a time as os.time() gives, or a
-- date string), path ("/"; false: none), domain, secure, httpOnly,
-- sameSite ("Strict", "Lax", "None"; true is "Strict"), partitioned,
-- signed (HMAC-SHA256 with the cookieSecret). The name must be a token and
-- the value cookie-octets (no spaces, '"', ',', ';', '\' or controls:
-- encode others first, e.g. with http.encode); anything else raises.
function kit.setCookie(res, name, value, opts)
  if not isResponse(res) then args.badSelf("cookie", "Response", res) end
  res:header("set-cookie", kit.cookieHeader("cookie", 0, 2, name, value, opts, secrets[realResponse(res)]))
  return res
end

-- res:clearCookie(name [, opts]): tells the browser to drop the cookie
-- (same path and domain as it was set with; path "/" by default).
function kit.clearCookie(res, name, opts)
  if not isResponse(res) then args.badSelf("clearCookie", "Response", res) end
  res:header("set-cookie", kit.clearCookieHeader("clearCookie", 0, 2, name, opts))
  return res
end

------------------------------------------------------------------ JSON

local function isJsonType(mtype) return mtype == "application/json" or (mtype and find(mtype, "%+json$")) ~= nil end

-- req:json([opts]) -> the decoded body. Raises (uncaught: the server
-- answers with err.status) 400 JsonSyntax for a malformed or empty body,
-- 500 LibraryUnavailable when libsimdjson cannot be loaded,
-- 415 UnsupportedMediaType with opts.strict when the Content-Type is not
-- JSON (application/json or */*+json).
function kit.requestJson(req, opts)
  if opts ~= nil then args.check(1, "json", opts, "table") end
  local cached = rawget(req, "_json")
  if cached ~= nil then return cached end
  if opts and opts.strict and not isJsonType((mediaType(req.headers["content-type"]))) then
    error(statusError("UnsupportedMediaType", 415, "the request body is not JSON (Content-Type: "
      .. tostring(req.headers["content-type"]) .. ")"), 2)
  end
  local body = req:body()
  if body == "" then error(statusError("JsonSyntax", 400, "the request body is empty"), 2) end
  local value, err = require("json").decode(body)
  if value == nil and err then
    -- A malformed body is the client's fault; a missing libsimdjson
    -- (LibraryUnavailable) is the server's.
    err.status = err.code == "JsonSyntax" and 400 or 500
    error(err, 2)
  end
  req._json = value
  return value
end

-- res:json(status, value [, headers]): value encoded as the body, with
-- Content-Type: application/json unless headers say otherwise.
function kit.sendJson(res, status, value, headers)
  if not isResponse(res) then args.badSelf("json", "Response", res) end
  if type(status) ~= "number" then args.fail(1, "json", "number", status) end
  if headers ~= nil and type(headers) ~= "table" then args.fail(3, "json", "table", headers) end
  local body = require("json").encode(value)
  local h = {}
  local typed = false
  if headers then
    for k, v in pairs(headers) do
      h[k] = v
      if type(k) == "string" and lower(k) == "content-type" then typed = true end
    end
  end
  if not typed then h["content-type"] = "application/json" end
  return res:send(status, body, h)
end

------------------------------------------------------------------ forms

local DEFAULTS = {maxFileSize = math.huge, maxFiles = 100, maxFields = 1000, maxFieldSize = 1024 * 1024}

local function limits(opts)
  local l = {}
  for k, v in pairs(DEFAULTS) do
    local o = opts[k]
    if o ~= nil then
      if type(o) ~= "number" or o < 0 then args.error(1, "form", k .. " must be a number >= 0", 4) end
      l[k] = o
    else
      l[k] = v
    end
  end
  return l
end

local function tooLarge(what) return statusError("FormTooLarge", 413, what) end

local function add(t, k, v)
  local old = t[k]
  if old == nil then
    t[k] = v
  elseif type(old) == "table" and old[1] ~= nil then
    old[#old + 1] = v
  else
    t[k] = {old, v}
  end
end

local function urlencoded(req, l, parseQuery)
  local body = req:body()
  local fields, n = {}, 0
  for k, v in pairs(parseQuery(body)) do
    local values = type(v) == "table" and v or {v}
    for _, x in ipairs(values) do
      n = n + 1
      if n > l.maxFields then error(tooLarge("more than " .. l.maxFields .. " fields"), 0) end
      if #x > l.maxFieldSize then error(tooLarge("field '" .. k .. "' is larger than " .. l.maxFieldSize .. " bytes"), 0) end
    end
    fields[k] = v
  end
  return {fields = fields, files = {}}
end

-- Requests holding something to let go when their handler ends (an upload
-- directory, a WebSocket), by their engine res. lib/http.lua finds here the
-- req of a handler that raised: it keeps no reference to every req, so that
-- one its handler lets go need never be allocated on a compiled trace.
kit.leftovers = setmetatable({}, {__mode = "k"})
function kit.holds(req)
  local r = rawget(req, "res")
  local real = type(r) == "table" and rawget(r, "_real")  -- (a wrapper's, http.compress)
  if real then r = real end
  if r ~= nil then kit.leftovers[r] = req end
end

-- The temporary directory of a request's uploads: made on the first file,
-- removed with what is left in it when the request ends (http.lua calls
-- kit.cleanup).
local function uploadDir(req, opts)
  local dir = rawget(req, "_uploadDir")
  if dir then return dir end
  local base = opts.uploadDir or os.getenv("TMPDIR") or "/tmp"
  local err
  dir, err = require("fs").mkdtemp(base .. "/evo-upload-")
  if not dir then error(statusError(err.code, 500, "cannot make a directory for uploads: " .. tostring(err)), 0) end
  req._uploadDir = dir
  kit.holds(req)
  return dir
end

-- Removes a request's upload directory and the files still in it (not those
-- the handler moved away). Synchronous: a few unlinks, after the response.
function kit.cleanup(dir)
  local uv = require("uv")
  local req = uv.fs_scandir(dir)
  if req then
    while true do
      local name = uv.fs_scandir_next(req)
      if not name then break end
      uv.fs_unlink(dir .. "/" .. name)
    end
  end
  uv.fs_rmdir(dir)
end

-- The multipart reader: pulls the body, feeds the parser and hands out its
-- events one at a time (a table opens a part, a string is body, false ends
-- the part), nil after the last.
local function eventSource(req, parser)
  local queue, qi, ended = {}, 1, false
  return function()
    while true do
      local e = queue[qi]
      if e ~= nil then
        queue[qi] = nil
        qi = qi + 1
        return e
      end
      if ended then return nil end
      local chunk, err = req:read()
      if err then error(err, 0) end
      local perr
      if chunk == nil then
        ended = true
        local ok
        ok, perr = parser:finish()
        if not ok then error(statusError("BadForm", 400, "malformed multipart body: " .. perr.message), 0) end
      else
        queue, perr = parser:feed(chunk)
        if not queue then error(statusError("BadForm", 400, "malformed multipart body: " .. perr.message), 0) end
        qi = 1
      end
    end
  end
end

-- Writes a file part to a new file in the upload directory.
local function saveFile(req, opts, l, info, nextEvent, index)
  local fs = require("fs")
  local path = uploadDir(req, opts) .. "/" .. index
  local file, err = fs.open(path, "wx", 384)  -- 0600: uploads are nobody else's business
  if not file then error(statusError(err.code, 500, "cannot write an upload: " .. tostring(err)), 0) end
  local size = 0
  local ok, werr = pcall(function()
    while true do
      local e = nextEvent()
      if not e then return end
      size = size + #e
      if size > l.maxFileSize then error(tooLarge("file '" .. info.name .. "' is larger than " .. l.maxFileSize .. " bytes"), 0) end
      local wok, err2 = file:write(e)
      if not wok then error(statusError(err2.code, 500, "cannot write an upload: " .. tostring(err2)), 0) end
    end
  end)
  file:close()
  if not ok then error(werr, 0) end
  return {filename = info.filename, contentType = info.contentType ~= "" and info.contentType or "application/octet-stream",
    size = size, path = path, headers = info.headers, name = info.name}
end

-- A part for opts.onFile: part:read() gives its body piece by piece, nil at
-- its end; what the callback leaves unread is skipped.
local function streamFile(l, info, nextEvent, onFile)
  local size, over = 0, false
  local part = {name = info.name, filename = info.filename, headers = info.headers,
    contentType = info.contentType ~= "" and info.contentType or "application/octet-stream"}
  function part.read()
    if over then return nil end
    local e = nextEvent()
    if not e then
      over = true
      return nil
    end
    size = size + #e
    if size > l.maxFileSize then error(tooLarge("file '" .. info.name .. "' is larger than " .. l.maxFileSize .. " bytes"), 0) end
    return e
  end
  onFile(part)
  while part.read() do end
end

local function multipart(req, opts, l, boundary)
  if not boundary then error(statusError("BadForm", 400, "multipart/form-data without a boundary"), 0) end
  local parser, perr = native.multipart(boundary)
  if not parser then error(statusError("BadForm", 400, perr.message), 0) end
  local nextEvent = eventSource(req, parser)
  local fields, files = {}, {}
  local nfields, nfiles = 0, 0
  while true do
    local info = nextEvent()
    if info == nil then break end
    local name = info.name
    if info.filename and info.filename ~= "" then
      nfiles = nfiles + 1
      if nfiles > l.maxFiles then error(tooLarge("more than " .. l.maxFiles .. " files"), 0) end
      if opts.onFile then
        streamFile(l, info, nextEvent, opts.onFile)
      else
        add(files, name, saveFile(req, opts, l, info, nextEvent, nfiles))
      end
    elseif info.filename then  -- a file input left empty: a part with filename=""
      while nextEvent() do end
    else
      nfields = nfields + 1
      if nfields > l.maxFields then error(tooLarge("more than " .. l.maxFields .. " fields"), 0) end
      local parts, size = {}, 0
      while true do
        local e = nextEvent()
        if not e then break end
        size = size + #e
        if size > l.maxFieldSize then error(tooLarge("field '" .. name .. "' is larger than " .. l.maxFieldSize .. " bytes"), 0) end
        parts[#parts + 1] = e
      end
      add(fields, name, concat(parts))
    end
  end
  return {fields = fields, files = files}
end

-- req:form([opts]) -> {fields = {name = value}, files = {name = {filename,
-- contentType, size, path, headers}}}; a repeated name gives a list.
-- opts: maxFileSize, maxFiles (100), maxFields (1000), maxFieldSize (1 MiB),
-- uploadDir ($TMPDIR or /tmp), onFile(part). Raises 415 for another
-- Content-Type, 400 BadForm for a malformed body, 413 FormTooLarge past a
-- limit (uncaught, the server answers with err.status).
function kit.requestForm(req, opts, parseQuery)
  if opts ~= nil then args.check(1, "form", opts, "table", 3) end
  opts = opts or {}
  if opts.onFile ~= nil and type(opts.onFile) ~= "function" then args.error(1, "form", "onFile must be a function", 3) end
  local cached = rawget(req, "_form")
  if cached then return cached end
  local l = limits(opts)
  local mtype, params = mediaType(req.headers["content-type"])
  local form
  if mtype == "application/x-www-form-urlencoded" then
    form = urlencoded(req, l, parseQuery)
  elseif mtype == "multipart/form-data" then
    form = multipart(req, opts, l, params.boundary)
  else
    error(statusError("UnsupportedMediaType", 415, "not a form (Content-Type: " .. tostring(req.headers["content-type"]) .. ")"), 0)
  end
  req._form = form
  return form
end

-- kit.parseForm(contentType, body [, opts]) -> {fields, files = {name =
-- {filename, contentType, size, data, headers}}} | nil, err: a form whose
-- body is already in memory (HttpServer's HTTP_REQUEST_FINISHED). err has
-- code and status as req:form's errors.
function kit.parseForm(contentType, body, opts, parseQuery)
  local l = limits(opts or {})
  local mtype, params = mediaType(contentType)
  local fake = {}
  local sent = false
  function fake:body() return body end
  function fake:read()
    if sent then return nil end
    sent = true
    return body
  end
  local ok, form = pcall(function()
    if mtype == "application/x-www-form-urlencoded" then return urlencoded(fake, l, parseQuery) end
    if mtype ~= "multipart/form-data" then
      error(statusError("UnsupportedMediaType", 415, "not a form (Content-Type: " .. tostring(contentType) .. ")"), 0)
    end
    local saved = {}
    local function keep(part)
      local chunks = {}
      while true do
        local c = part.read()
        if not c then break end
        chunks[#chunks + 1] = c
      end
      local data = concat(chunks)
      add(saved, part.name, {filename = part.filename, contentType = part.contentType, size = #data, data = data,
        headers = part.headers, name = part.name})
    end
    local f = multipart(fake, {onFile = keep}, l, params.boundary)
    f.files = saved
    return f
  end)
  if ok then return form end
  if errors.is(form) then return nil, form end
  error(form, 0)
end

------------------------------------------------------------------ CORS

local function list(v, what)
  if v == nil then return nil end
  if type(v) == "string" then return v end
  if type(v) ~= "table" then args.error(1, "cors", what .. " must be a string or a list", 4) end
  return concat(v, ", ")
end

-- http.cors{origins, methods, headers, exposeHeaders, credentials, maxAge}
-- -> middleware. origins: "*" (default), a list of origins, or a function
-- (origin, req) -> true | false | an origin string. Preflights (OPTIONS with
-- Access-Control-Request-Method) are answered 204 here; other requests get
-- the headers and go on.
function kit.cors(opts)
  if opts ~= nil then args.check(1, "cors", opts, "table", 3) end
  opts = opts or {}
  local origins = opts.origins == nil and "*" or opts.origins
  local allowed
  if type(origins) == "table" then
    allowed = {}
    for _, o in ipairs(origins) do allowed[o] = true end
  elseif origins ~= "*" and type(origins) ~= "function" then
    args.error(1, "cors", 'origins must be "*", a list or a function', 3)
  end
  local methods = list(opts.methods, "methods") or "GET, HEAD, PUT, PATCH, POST, DELETE"
  local headers = list(opts.headers, "headers")
  local expose = list(opts.exposeHeaders, "exposeHeaders")
  local credentials = opts.credentials and true or false
  local maxAge = opts.maxAge and format("%d", opts.maxAge)

  -- The Access-Control-Allow-Origin value for this request, or nil.
  local function allow(origin, req)
    if origins == "*" then return credentials and origin or "*" end
    if allowed then return allowed[origin] and origin or nil end
    local r = origins(origin, req)
    if r == true then return origin end
    if type(r) == "string" then return r end
    return nil
  end

  return function(req, res, nxt)
    local origin = req.headers.origin
    if not origin then return nxt() end
    local value = allow(origin, req)
    local preflight = req.method == "OPTIONS" and req.headers["access-control-request-method"] ~= nil
    if value then
      res:header("access-control-allow-origin", value)
      if value ~= "*" then res:header("vary", "Origin") end
      if credentials then res:header("access-control-allow-credentials", "true") end
    end
    if not preflight then
      if value and expose then res:header("access-control-expose-headers", expose) end
      return nxt()
    end
    if value then
      res:header("access-control-allow-methods", methods)
      local h = headers or req.headers["access-control-request-headers"]
      if h then
        res:header("access-control-allow-headers", h)
        if not headers then res:header("vary", "Access-Control-Request-Headers") end
      end
      if maxAge then res:header("access-control-max-age", maxAge) end
    end
    return res:send(204)
  end
end

return kit
