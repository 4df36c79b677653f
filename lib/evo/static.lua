-- evo.static: http.static's file server and http.mimeType (docs/http.md,
-- "Static files"). lib/http.lua loads this file when one of them is first
-- used: a server that serves no files keeps its code out of its heap
-- (docs/performance.md, "The heap's size").
local args = require("evo.args")
local appfs = require("evo.appfs")
local embedded = appfs.active and appfs or nil  -- a one-file executable's files (evo build)
local decode = require("url").unescape

local ipairs, tonumber = ipairs, tonumber
local concat = table.concat
local find, format, gsub, lower, sub, match, gmatch =
  string.find, string.format, string.gsub, string.lower, string.sub, string.match, string.gmatch

local static = {}

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
static.mimeTypes = mime

local function mimeType(path)
  local ext = match(path, "%.([%w]+)$")
  return ext and mime[lower(ext)] or "application/octet-stream"
end
static.mimeType = mimeType

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
function static.new(dir, opts)
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
    local ctype = mimeType(file)
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

return static
