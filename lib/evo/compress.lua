-- evo.compress: response compression for lib/http.lua — http.compress{...}
-- (a middleware) and http.static's compress option. The response a handler
-- gets is a wrapper around the engine's: it watches the headers, decides
-- at the first byte of the body whether to compress (the client accepts
-- gzip or br, the type is compressible, the body is large enough, no range,
-- no encoding yet, not HEAD, not 204/206/304), and then compresses what is
-- sent, written (on the fly, streamed) or sent from a file. See
-- docs/webapp.md.
local args = require("evo.args")
local kit = require("evo.webkit")

local type, tostring, tonumber, pairs, ipairs, setmetatable, rawget, error =
  type, tostring, tonumber, pairs, ipairs, setmetatable, rawget, error
local find, lower, match, gmatch, sub = string.find, string.lower, string.match, string.gmatch, string.sub

local M = {}

local FILE_PIECE = 64 * 1024

-- The coding to use for an Accept-Encoding value: "br" or "gzip" (the
-- higher q; br on a tie), or nil. "*" stands for codings not named; q=0
-- refuses. x-gzip is gzip.
function M.negotiate(header, allowBr)
  if not header or header == "" then return nil end
  local q = {}
  for item in gmatch(header, "[^,]+") do
    local coding = lower(match(item, "^%s*([^;%s]+)") or "")
    local qv = match(item, ";%s*[qQ]%s*=%s*([%d.]+)")
    local n = qv and tonumber(qv) or 1
    if coding == "x-gzip" then coding = "gzip" end
    if coding ~= "" and (q[coding] == nil or n > q[coding]) then q[coding] = n end
  end
  local star = q["*"]
  local br = allowBr ~= false and (q.br or star) or nil
  local gz = q.gzip or star
  br, gz = br and br > 0 and br or nil, gz and gz > 0 and gz or nil
  if br and (not gz or br >= gz) then return "br" end
  if gz then return "gzip" end
  return nil
end

-- accepted(header) -> {br = true, gzip = true} for the codings the client
-- takes (q > 0, named or through "*").
function M.accepted(header)
  local out = {}
  if not header then return out end
  local q = {}
  for item in gmatch(header, "[^,]+") do
    local coding = lower(match(item, "^%s*([^;%s]+)") or "")
    local qv = match(item, ";%s*[qQ]%s*=%s*([%d.]+)")
    if coding == "x-gzip" then coding = "gzip" end
    q[coding] = qv and tonumber(qv) or 1
  end
  for _, c in ipairs({"br", "gzip"}) do
    local v = q[c] or q["*"]
    out[c] = v ~= nil and v > 0
  end
  return out
end

local DEFAULT_TYPES = {"^text/", "json", "javascript", "xml", "^image/svg", "^application/wasm", "^font/ttf",
  "^font/otf", "^application/x%-font", "ecmascript", "^application/rtf"}

-- types: a list of Lua patterns matched against the media type, or a
-- function(contentType) -> boolean.
local function typeTest(types)
  if type(types) == "function" then return types end
  local list = types or DEFAULT_TYPES
  return function(ctype)
    if not ctype then return false end
    local media = lower(match(ctype, "^[^;]*"))
    for _, p in ipairs(list) do
      if find(media, p) then return true end
    end
    return false
  end
end

local function encoder(self)
  local zlib = require("zlib")
  if self._coding == "br" then return zlib.compressor({format = "br", level = self._opts.brotliQuality}) end
  return zlib.compressor({format = "gzip", level = self._opts.level})
end

local function oneShot(self, body)
  local zlib = require("zlib")
  if self._coding == "br" then return zlib.brotliCompress(body, {quality = self._opts.brotliQuality}) end
  return zlib.gzip(body, {level = self._opts.level})
end

------------------------------------------------------------------ the wrapper

local Wrapper = {}
local WrapperMeta = {__index = Wrapper, __name = "Response"}
kit.registerResponse(WrapperMeta)

local HELD = {["content-length"] = true, etag = true}

function Wrapper:status(code, reason)
  self._real:status(code, reason)
  self._status = code
  return self
end

local function compressible(self) return not self._encoded and self._opts.test(self._type) end

-- Decides at the first byte of the body; size is the body's when known.
local function decide(self, size)
  if self._decided then return self._coding ~= nil end
  self._decided = true
  local o = self._opts
  local status = self._status or 200
  local ok = compressible(self) and self._accepted ~= nil and not self._ranged and not self._noTransform
    and self._method ~= "HEAD" and status >= 200 and status ~= 204 and status ~= 206 and status ~= 304
    and (size == nil or size >= o.threshold)
  if ok then self._coding = self._accepted end
  return ok
end

-- Content-Length and ETag are held back until the decision (the engine
-- cannot take a header back): without compression they go out as given;
-- with it the length is dropped and the tag weakened (the bytes differ).
-- Vary: Accept-Encoding goes with every compressible type.
function Wrapper:header(name, value)
  local lname = type(name) == "string" and lower(name) or name
  if not self._decided and HELD[lname] then
    if type(name) ~= "string" then args.fail(1, "header", "string", name) end
    if (type(value) ~= "string" and type(value) ~= "number") or find(tostring(value), "[%z\1-\31\127]") then
      args.error(2, "header", "invalid header value for '" .. name .. "'")
    end
    self._held[#self._held + 1] = {name, value}
    return self
  end
  if lname == "content-type" then
    self._type = type(value) == "table" and value[1] or tostring(value)
  elseif lname == "content-encoding" then
    self._encoded = true
  elseif lname == "content-range" then
    self._ranged = true
  elseif lname == "cache-control" and find(lower(tostring(value)), "no%-transform") then
    self._noTransform = true
  end
  self._real:header(name, value)
  return self
end

local function release(self)
  local real = self._real
  if compressible(self) then real:header("vary", "Accept-Encoding") end
  if self._coding then real:header("content-encoding", self._coding) end
  for _, h in ipairs(self._held) do
    local lname = lower(h[1])
    if not self._coding then
      real:header(h[1], h[2])
    elseif lname == "etag" then
      local v = tostring(h[2])
      real:header(h[1], sub(v, 1, 2) == "W/" and v or "W/" .. v)
    end
  end
  self._held = {}
end

function Wrapper:send(status, body, headers)
  if type(status) ~= "number" then args.fail(1, "send", "number", status) end
  if headers ~= nil and type(headers) ~= "table" then args.fail(3, "send", "table", headers) end
  if type(body) == "number" then body = tostring(body) end
  if body ~= nil and type(body) ~= "string" then args.fail(2, "send", "string", body) end
  self._status = status
  if headers then
    for k, v in pairs(headers) do self:header(k, v) end
  end
  body = body or ""
  if decide(self, #body) then
    release(self)
    return self._real:send(status, oneShot(self, body))
  end
  release(self)
  return self._real:send(status, body)
end

function Wrapper:write(chunk)
  if type(chunk) == "number" then chunk = tostring(chunk) end
  if type(chunk) ~= "string" then args.fail(1, "write", "string", chunk) end
  if not self._decided then
    if decide(self, nil) then self._encoder = encoder(self) end
    release(self)
  end
  local enc = self._encoder
  if not enc then return self._real:write(chunk) end
  local out = enc:write(chunk)
  if out == "" then return true end
  return self._real:write(out)
end

-- res:flush(): what the compressor holds goes out now (for streams such as
-- server-sent events); nothing to do without compression.
function Wrapper:flush()
  local enc = self._encoder
  if not enc then return true end
  local out = enc:flush()
  if out == "" then return true end
  return self._real:write(out)
end

function Wrapper:finish(chunk)
  if type(chunk) == "number" then chunk = tostring(chunk) end
  if chunk ~= nil and type(chunk) ~= "string" then args.fail(1, "finish", "string", chunk) end
  if not self._decided then
    local compress = decide(self, chunk and #chunk or 0)
    release(self)
    if compress then return self._real:finish(oneShot(self, chunk or "")) end
    return self._real:finish(chunk)
  end
  local enc = self._encoder
  if not enc then return self._real:finish(chunk) end
  self._encoder = nil
  return self._real:finish(enc:finish(chunk))
end

function Wrapper:sendFile(path, offset, length)
  if type(path) ~= "string" then args.fail(1, "sendFile", "string", path) end
  if offset ~= nil or length ~= nil or self._decided then
    if not self._decided then
      self._ranged = self._ranged or offset ~= nil or length ~= nil
      decide(self, nil)
      release(self)
    end
    if not self._coding then return self._real:sendFile(path, offset, length) end
  end
  local fs = require("fs")
  local st, err = fs.stat(path)
  if not st then return nil, err end
  if st.type ~= "file" then return self._real:sendFile(path) end  -- the engine's own error
  if not self._decided then
    local compress = decide(self, st.size)
    release(self)
    if not compress then return self._real:sendFile(path) end
  end
  local file, ferr = fs.open(path, "r")
  if not file then return nil, ferr end
  local enc = self._encoder or encoder(self)
  self._encoder = nil
  local ok, werr = true, nil
  while true do
    local piece, rerr = file:read(FILE_PIECE)
    if not piece then
      if rerr then ok, werr = nil, rerr end
      break
    end
    local out = enc:write(piece)
    if out ~= "" then
      ok, werr = self._real:write(out)
      if not ok then break end
    end
  end
  file:close()
  if not ok then return nil, werr end
  return self._real:finish(enc:finish())
end

function Wrapper:trailer(name, value)
  self._real:trailer(name, value)
  return self
end
function Wrapper:inform(status, headers) return self._real:inform(status, headers) end
function Wrapper:headersSent() return self._real:headersSent() end
function Wrapper:isFinished() return self._real:isFinished() end
-- cookie, clearCookie and json are the kit's: they call the wrapper's header and send.
Wrapper.cookie, Wrapper.clearCookie, Wrapper.json = kit.setCookie, kit.clearCookie, kit.sendJson

-- The end of the request: a compressed stream the handler left open is
-- closed properly (the engine would end the response without the
-- compressor's last bytes).
function M.close(w)
  if w._encoder and not w._real:isFinished() then w:finish() end
end

-- wrap(req, res, opts) -> the wrapper (or res itself when nothing could be
-- compressed: an upgrade).
function M.wrap(req, res, opts)
  local h = req.headers
  if h.upgrade then return res end
  return setmetatable({_real = res, _held = {}, _opts = opts, _method = req.method,
    _accepted = M.negotiate(h["accept-encoding"], opts.brotli)}, WrapperMeta)
end

-- The options of http.compress and http.static's compress.
function M.options(opts, fname, n)
  if opts == nil or opts == true then opts = {} end
  if type(opts) ~= "table" then args.fail(n or 1, fname, "table", opts, 4) end
  local threshold = opts.threshold == nil and 1024 or opts.threshold
  if type(threshold) ~= "number" or threshold < 0 then args.error(n or 1, fname, "threshold must be a number >= 0", 4) end
  if opts.types ~= nil and type(opts.types) ~= "table" and type(opts.types) ~= "function" then
    args.error(n or 1, fname, "types must be a list of patterns or a function", 4)
  end
  return {threshold = threshold, test = typeTest(opts.types), level = opts.level,
    brotliQuality = opts.brotliQuality == nil and 4 or opts.brotliQuality, brotli = opts.brotli}
end

-- http.compress([opts]) -> middleware. opts: threshold (1024 bytes: smaller
-- bodies go as they are; streamed ones of unknown size are compressed),
-- types (patterns of compressible media types, or a function), level
-- (gzip, 0-9), brotliQuality (0-11, default 4: fast enough on the fly),
-- brotli (false: gzip only).
function M.middleware(opts)
  opts = M.options(opts, "compress")
  return function(req, res, nxt)
    local w = M.wrap(req, res, opts)
    if w == res then return nxt() end
    local previous = req.res
    req.res = w
    nxt()
    req.res = previous
    M.close(w)
  end
end

return M
