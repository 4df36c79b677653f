-- url: WHATWG URL parsing (what browsers and Node's `new URL()` do) for
-- http, https, ws, wss and ftp; percent-encoding of components; query
-- strings.
--
--   local url = require("url")
--   local u = url.parse("HTTP://user@Example.COM:8080/a/../b c?x=1#top")
--   --> {scheme = "http", user = "user", host = "example.com", port = 8080,
--   --   path = "/b%20c", query = "x=1", fragment = "top", href = "http://user@example.com:8080/b%20c?x=1#top"}
--   url.parseQuery("a=1&b=x+y&a=2")   --> {a = {"1", "2"}, b = "x y"}
--
-- A port equal to the scheme's default is nil (as WHATWG's port ""):
-- `u.port or url.defaultPorts[u.scheme]`. IPv6 hosts keep their brackets
-- ("[::1]"). Failures: nil, err with err.code "BadUrl". See docs/url.md.
local errors = require("evo.errors")
local args = require("evo.args")

local type, tostring, tonumber, pairs, ipairs, setmetatable, getmetatable, pcall = type, tostring, tonumber,
  pairs, ipairs, setmetatable, getmetatable, pcall
local concat, sort = table.concat, table.sort
local byte, char, find, format, gsub, lower, sub, match, gmatch =
  string.byte, string.char, string.find, string.format, string.gsub, string.lower, string.sub, string.match,
  string.gmatch
local floor = math.floor

local url = {}

url.defaultPorts = {http = 80, https = 443, ws = 80, wss = 443, ftp = 21}
local SPECIAL = url.defaultPorts

local function bad(message) return nil, errors.new("BadUrl", message) end

----------------------------------------------------------------- percent-encoding

local function hex(c) return format("%%%02X", byte(c)) end

-- Encode sets as Lua patterns of the bytes to encode (WHATWG's sets; "%" is
-- never encoded by the parser, so encoding an encoded string changes nothing).
local C0 = "%z\1-\31\127-\255"
local FRAGMENT_SET = "[" .. C0 .. " \"<>`]"
local QUERY_SET = "[" .. C0 .. " \"#<>]"
local SPECIAL_QUERY_SET = "[" .. C0 .. " \"#<>']"
-- (WHATWG added "^" to the path set in 2024; Node 20 does not encode it, nor do we)
local PATH_SET = "[" .. C0 .. " \"#<>?`{}]"
local USERINFO_SET = "[" .. C0 .. " \"#<>?`{}/:;=@%[\\%]^|]"

-- encode(s): percent-encodes every byte but A-Z a-z 0-9 - . _ ~ (RFC 3986's
-- unreserved characters): a component that can go anywhere in a URL.
function url.encode(s)
  if type(s) ~= "string" then args.fail(1, "url.encode", "string", s, 2) end
  return (gsub(s, "[^%w%-%._~]", hex))
end

local function hexchar(h) return char(tonumber(h, 16)) end

-- unescape(s [, plus]): lenient decoding, as forms are decoded: a "%" not
-- followed by two hex digits stays as it is; with plus, "+" is a space.
local function unescape(s, plus)
  if plus then s = gsub(s, "+", " ") end
  return (gsub(s, "%%(%x%x)", hexchar))
end

function url.unescape(s, plus)
  if type(s) ~= "string" then args.fail(1, "url.unescape", "string", s, 2) end
  return unescape(s, plus)
end

-- decode(s [, plus]) -> string | nil, err: strict percent-decoding (like
-- decodeURIComponent, on bytes: the result need not be UTF-8).
function url.decode(s, plus)
  if type(s) ~= "string" then args.fail(1, "url.decode", "string", s, 2) end
  local i = 1
  while true do
    i = find(s, "%", i, true)
    if not i then break end
    if not match(s, "^%x%x", i + 1) then
      return bad(format("bad percent-escape at byte %d: %q", i, sub(s, i, i + 2)))
    end
    i = i + 3
  end
  return unescape(s, plus)
end

----------------------------------------------------------------- query strings

-- "a=1&b=x%20y&a=2" -> {a = {"1", "2"}, b = "x y"}: a repeated name gives a
-- list; "+" is a space; "&" or ";" separate.
function url.parseQuery(query)
  local params = {}
  if query == nil or query == "" then return params end
  if type(query) ~= "string" then args.fail(1, "url.parseQuery", "string", query, 2) end
  for pair in gmatch(query, "[^&;]+") do
    local eq = find(pair, "=", 1, true)
    local k = unescape(eq and sub(pair, 1, eq - 1) or pair, true)
    local v = eq and unescape(sub(pair, eq + 1), true) or ""
    local old = params[k]
    if old == nil then
      params[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      params[k] = {old, v}
    end
  end
  return params
end

local function queryValue(v, key)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" or t == "boolean" then return tostring(v) end
  args.error(1, "url.encodeQuery", "value of '" .. tostring(key) .. "' must be a string, number, boolean or list", 3)
end

-- encodeQuery{a = {"1", "2"}, b = "x y"} -> "a=1&a=2&b=x%20y": names in
-- sorted order (stable output), a list gives the name once per value.
function url.encodeQuery(t)
  if type(t) ~= "table" then args.fail(1, "url.encodeQuery", "table", t, 2) end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" and type(k) ~= "number" then
      args.error(1, "url.encodeQuery", "names must be strings or numbers", 2)
    end
    keys[#keys + 1] = tostring(k)
  end
  sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end
    local ek = url.encode(k)
    if type(v) == "table" then
      for _, item in ipairs(v) do out[#out + 1] = ek .. "=" .. url.encode(queryValue(item, k)) end
    else
      out[#out + 1] = ek .. "=" .. url.encode(queryValue(v, k))
    end
  end
  return concat(out, "&")
end

----------------------------------------------------------------- hosts

-- WHATWG's IPv4 number: decimal, octal (leading 0) or hex (0x); nil if none.
local function ipv4Number(s)
  if s == "" then return nil end
  local base = 10
  if match(s, "^0[xX]") then
    s, base = sub(s, 3), 16
    if s == "" then return 0 end
    if not match(s, "^%x+$") then return nil end
  elseif #s > 1 and byte(s, 1) == 48 then
    s, base = sub(s, 2), 8
    if not match(s, "^[0-7]+$") then return nil end
  elseif not match(s, "^%d+$") then
    return nil
  end
  return tonumber(s, base)
end

local function splitDots(host)
  local parts = {}
  for p in gmatch(host .. ".", "([^.]*)%.") do parts[#parts + 1] = p end
  return parts
end

-- Whether the host is meant as an IPv4 address: its last label (a trailing
-- dot aside) is a number.
local function endsInNumber(host)
  local parts = splitDots(host)
  if parts[#parts] == "" then
    if #parts == 1 then return false end
    parts[#parts] = nil
  end
  local last = parts[#parts]
  if last ~= "" and match(last, "^%d+$") then return true end
  return ipv4Number(last) ~= nil and match(last, "^0[xX]") ~= nil
end

local function parseIPv4(host)
  local parts = splitDots(host)
  if parts[#parts] == "" and #parts > 1 then parts[#parts] = nil end
  if #parts > 4 then return bad("an IPv4 address has at most 4 parts: " .. host) end
  local nums = {}
  for i, p in ipairs(parts) do
    local n = ipv4Number(p)
    if not n then return bad("bad IPv4 address: " .. host) end
    nums[i] = n
  end
  for i = 1, #nums - 1 do
    if nums[i] > 255 then return bad("bad IPv4 address: " .. host) end
  end
  if nums[#nums] >= 256 ^ (5 - #nums) then return bad("bad IPv4 address: " .. host) end
  local v = nums[#nums]
  for i = 1, #nums - 1 do v = v + nums[i] * 256 ^ (4 - i) end
  local b = {}
  for i = 4, 1, -1 do
    b[i] = floor(v % 256)
    v = floor(v / 256)
  end
  return concat(b, ".")
end

-- "[...]" contents -> the compressed serialization (without brackets) | nil, err
local function parseIPv6(s)
  local pieces = {}
  local compress
  local i, n = 1, #s
  local function fail() return bad("bad IPv6 address: [" .. s .. "]") end
  if sub(s, 1, 1) == ":" then
    if sub(s, 2, 2) ~= ":" then return fail() end
    i = 3
    compress = 1
  end
  while i <= n do
    if #pieces == 8 then return fail() end
    if sub(s, i, i) == ":" then
      if compress then return fail() end
      i = i + 1
      compress = #pieces + 1
    else
      local h = match(s, "^%x%x?%x?%x?", i)
      local after = h and sub(s, i + #h, i + #h) or sub(s, i, i)
      if after == "." then
        -- an IPv4 address in the last 32 bits
        if #pieces > 6 then return fail() end
        local v4 = sub(s, i)
        local octets = {}
        for part in gmatch(v4 .. ".", "([^.]*)%.") do
          if not match(part, "^%d+$") or (#part > 1 and byte(part, 1) == 48) then return fail() end
          local num = tonumber(part)
          if num > 255 then return fail() end
          octets[#octets + 1] = num
        end
        if #octets ~= 4 then return fail() end
        pieces[#pieces + 1] = octets[1] * 256 + octets[2]
        pieces[#pieces + 1] = octets[3] * 256 + octets[4]
        i = n + 1
        break
      end
      if not h then return fail() end
      pieces[#pieces + 1] = tonumber(h, 16)
      i = i + #h
      if i <= n then
        if sub(s, i, i) ~= ":" then return fail() end
        i = i + 1
        if i > n then return fail() end  -- a trailing single ":"
      end
    end
  end
  if compress then
    local missing = 8 - #pieces
    for _ = 1, missing do table.insert(pieces, compress, 0) end
  elseif #pieces ~= 8 then
    return fail()
  end
  -- serialize: the first longest run of two or more zero pieces becomes "::"
  local bestAt, bestLen, runAt, runLen = nil, 1, nil, 0
  for k = 1, 8 do
    if pieces[k] == 0 then
      if not runAt then runAt, runLen = k, 0 end
      runLen = runLen + 1
      if runLen > bestLen then bestAt, bestLen = runAt, runLen end
    else
      runAt = nil
    end
  end
  local out = {}
  local k = 1
  while k <= 8 do
    if k == bestAt then
      out[#out + 1] = k == 1 and "::" or ":"
      k = k + bestLen
    else
      out[#out + 1] = format("%x", pieces[k]) .. (k < 8 and ":" or "")
      k = k + 1
    end
  end
  return concat(out)
end

-- Forbidden in a domain (after percent-decoding): WHATWG's forbidden domain code points.
local FORBIDDEN_DOMAIN = "[%z\1-\32#%%/:<>%?@%[\\%]%^|\127]"
-- Forbidden in an opaque host (non-special schemes): the same, "%" allowed.
local FORBIDDEN_HOST = "[%z\9\10\13 #/:<>%?@%[\\%]%^|]"

-- Punycode (RFC 3492) of one label of code points.
local function punycode(cps)
  local base, tmin, tmax, skew, damp = 36, 1, 26, 38, 700
  local function digit(d) return char(d < 26 and d + 97 or d + 22) end
  local function adapt(delta, numPoints, first)
    delta = first and floor(delta / damp) or floor(delta / 2)
    delta = delta + floor(delta / numPoints)
    local k = 0
    while delta > floor((base - tmin) * tmax / 2) do
      delta = floor(delta / (base - tmin))
      k = k + base
    end
    return k + floor((base - tmin + 1) * delta / (delta + skew))
  end
  local out = {}
  for _, c in ipairs(cps) do
    if c < 128 then out[#out + 1] = char(c) end
  end
  local b = #out
  local h = b
  if b > 0 then out[#out + 1] = "-" end
  local n, delta, bias = 128, 0, 72
  while h < #cps do
    local m = math.huge
    for _, c in ipairs(cps) do
      if c >= n and c < m then m = c end
    end
    delta = delta + (m - n) * (h + 1)
    n = m
    for _, c in ipairs(cps) do
      if c < n then delta = delta + 1 end
      if c == n then
        local q = delta
        local k = base
        while true do
          local t = k <= bias and tmin or (k >= bias + tmax and tmax or k - bias)
          if q < t then break end
          out[#out + 1] = digit(t + (q - t) % (base - t))
          q = floor((q - t) / (base - t))
          k = k + base
        end
        out[#out + 1] = digit(q)
        bias = adapt(delta, h + 1, h == b)
        delta = 0
        h = h + 1
      end
    end
    delta = delta + 1
    n = n + 1
  end
  return concat(out)
end

-- UTF-8 bytes -> code points | nil
local function codepoints(s)
  local cps = {}
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local len, cp = 1, c
    if c >= 0xF0 and c < 0xF5 then
      len, cp = 4, c - 0xF0
    elseif c >= 0xE0 then
      len, cp = 3, c - 0xE0
    elseif c >= 0xC2 then
      len, cp = 2, c - 0xC0
    elseif c >= 0x80 then
      return nil
    end
    if len > 1 then
      if c >= 0xF5 then return nil end
      for j = i + 1, i + len - 1 do
        local cc = byte(s, j)
        if not cc or cc < 0x80 or cc > 0xBF then return nil end
        cp = cp * 64 + (cc - 0x80)
      end
    end
    cps[#cps + 1] = cp
    i = i + len
  end
  return cps
end

-- A domain to ASCII: lower case, and labels beyond ASCII as punycode
-- ("xn--"). Unicode case folding and normalization (UTS 46 mapping) are not
-- done: such labels are expected in lower case NFC already.
local function domainToAscii(host)
  if not find(host, "[\128-\255]") then return lower(host) end
  local labels = {}
  for label in gmatch(host .. ".", "([^.]*)%.") do
    if find(label, "[\128-\255]") then
      local cps = codepoints(lower(label))
      if not cps then return nil end
      label = "xn--" .. punycode(cps)
    else
      label = lower(label)
    end
    labels[#labels + 1] = label
  end
  return concat(labels, ".")
end

local function parseHost(input, special)
  if sub(input, 1, 1) == "[" then
    if sub(input, -1) ~= "]" then return bad("unclosed IPv6 address: " .. input) end
    local v6, err = parseIPv6(sub(input, 2, -2))
    if not v6 then return nil, err end
    return "[" .. v6 .. "]"
  end
  if not special then
    if find(input, FORBIDDEN_HOST) then return bad("forbidden character in host: " .. input) end
    return (gsub(input, "[" .. C0 .. "]", hex))
  end
  local decoded = unescape(input)
  local ascii = domainToAscii(decoded)
  if not ascii or ascii == "" then return bad("bad host: " .. input) end
  if find(ascii, FORBIDDEN_DOMAIN) then return bad("forbidden character in host: " .. input) end
  if endsInNumber(ascii) then return parseIPv4(ascii) end
  return ascii
end

----------------------------------------------------------------- paths

local function isSingleDot(seg)
  return seg == "." or lower(seg) == "%2e"
end

local function isDoubleDot(seg)
  local l = lower(seg)
  return l == ".." or l == ".%2e" or l == "%2e." or l == "%2e%2e"
end

-- The path of a hierarchical URL: segments encoded, dot segments applied.
local function parsePath(p, special)
  if special then p = gsub(p, "\\", "/") end
  local out = {}
  -- segments after the leading "/"; the final one is not followed by "/"
  local segs = {}
  for seg in gmatch(sub(p, 2) .. "/", "([^/]*)/") do segs[#segs + 1] = seg end
  for k, seg in ipairs(segs) do
    local last = k == #segs
    if isDoubleDot(seg) then
      if #out > 0 then out[#out] = nil end
      if last then out[#out + 1] = "" end
    elseif isSingleDot(seg) then
      if last then out[#out + 1] = "" end
    else
      out[#out + 1] = gsub(seg, PATH_SET, hex)
    end
  end
  return "/" .. concat(out, "/")
end

----------------------------------------------------------------- parse

local function trimmed(s)
  -- leading and trailing C0 controls and spaces go; tabs and newlines inside too
  s = match(s, "^[%z\1-\32]*(.-)[%z\1-\32]*$")
  return (gsub(s, "[\9\10\13]", ""))
end

-- "user:pw@host:port" -> {user, password, host, port (text)} | nil, err
local function splitAuthority(auth, special)
  local a = {}
  local at = nil
  local i = 0
  while true do
    i = find(auth, "@", i + 1, true)
    if not i then break end
    at = i
  end
  local hostport = auth
  if at then
    -- every "@" but the last belongs to the credentials (encoded there)
    local info = sub(auth, 1, at - 1)
    hostport = sub(auth, at + 1)
    local colon = find(info, ":", 1, true)
    local user = gsub(colon and sub(info, 1, colon - 1) or info, USERINFO_SET, hex)
    local password = colon and gsub(sub(info, colon + 1), USERINFO_SET, hex) or ""
    if user ~= "" then a.user = user end
    if password ~= "" then a.password = password end
    if hostport == "" then return bad("credentials without a host") end
  end
  -- the port follows the last ":" outside brackets
  local host = hostport
  local colonAt = nil
  local j = find(hostport, "]", 1, true) or 0
  while true do
    j = find(hostport, ":", j + 1, true)
    if not j then break end
    colonAt = j
  end
  if colonAt then host, a.port = sub(hostport, 1, colonAt - 1), sub(hostport, colonAt + 1) end
  if host == "" then
    if special then return bad("empty host") end
    if a.port and a.port ~= "" then return bad("a port without a host") end
  end
  a.host = host
  return a
end

local function parsePort(text, scheme)
  if text == nil or text == "" then return true, nil end
  if not match(text, "^%d+$") then return bad("bad port: " .. text) end
  local p = tonumber(text)
  if p > 65535 then return bad("port out of range: " .. text) end
  if p == SPECIAL[scheme] then return true, nil end
  return true, p
end

-- Fills u's user, password, host, port from the authority text; nil, err on failure.
local function authority(u, auth, special)
  local a, err = splitAuthority(auth, special)
  if not a then return nil, err end
  local host, herr = parseHost(a.host, special)
  if not host then return nil, herr end
  local ok, port = parsePort(a.port, u.scheme)
  if not ok then return nil, port end
  u.user, u.password, u.host, u.port = a.user, a.password, host, port
  return true
end

local Url = {}
Url.__index = Url
Url.__tostring = function(u) return u.href end

local resolveParsed  -- (parsed base, ref, asTable), below

-- The parsed URL a base stands for: a string is parsed (nil, err when it is
-- no URL); a table from parse is taken as it is; a table a user built goes
-- through format and parse, so a missing part raises here, naming argument
-- n of fname, rather than deep inside resolve.
local function parsedBase(base, n, fname)
  if type(base) == "string" then return url.parse(base) end
  if type(base) ~= "table" then args.fail(n, fname, "string or table", base, 3) end
  if getmetatable(base) == Url then return base end
  local ok, text = pcall(url.format, base)
  if not ok then
    local why = match(tostring(text), "%((.*)%)$") or tostring(text)
    args.error(n, fname, "base: " .. why, 3)
  end
  return url.parse(text)
end

-- parse(s [, base]) -> {scheme, user, password, host, port, path, query,
-- fragment, href} | nil, err. base (a string or a parsed URL) resolves a
-- relative reference ("../x", "/y", "?q", "//host/p").
function url.parse(s, base)
  if type(s) ~= "string" then args.fail(1, "url.parse", "string", s, 2) end
  s = trimmed(s)
  local scheme, rest = match(s, "^(%a[%w+.-]*):(.*)$")
  if not scheme then
    if base == nil then return bad("no scheme (not an absolute URL): " .. s) end
    local b, err = parsedBase(base, 2, "url.parse")
    if not b then return nil, err end
    return resolveParsed(b, s, true)
  end
  scheme = lower(scheme)
  local special = SPECIAL[scheme] ~= nil
  local fragment, query
  local hashAt = find(rest, "#", 1, true)
  if hashAt then
    fragment = gsub(sub(rest, hashAt + 1), FRAGMENT_SET, hex)
    rest = sub(rest, 1, hashAt - 1)
  end
  local qAt = find(rest, "?", 1, true)
  if qAt then
    query = gsub(sub(rest, qAt + 1), special and SPECIAL_QUERY_SET or QUERY_SET, hex)
    rest = sub(rest, 1, qAt - 1)
  end
  local u = {scheme = scheme, query = query, fragment = fragment}
  if special then
    if type(base) ~= "nil" and not match(rest, "^[/\\]") then
      -- "http:foo" against a base of the same scheme is relative to it
      local b = parsedBase(base, 2, "url.parse")
      if b and b.scheme == scheme then return resolveParsed(b, rest .. (qAt and "?" .. query or "") ..
        (hashAt and "#" .. fragment or ""), true) end
    end
    rest = gsub(rest, "^[/\\]*", "")  -- any number of slashes (or backslashes) before the authority
    local auth, path = match(rest, "^([^/\\]*)(.*)$")
    local ok, err = authority(u, auth, true)
    if not ok then return nil, err end
    u.path = parsePath(path == "" and "/" or path, true)
  elseif sub(rest, 1, 2) == "//" then
    local auth, path = match(sub(rest, 3), "^([^/]*)(.*)$")
    local ok, err = authority(u, auth, false)
    if not ok then return nil, err end
    u.path = path == "" and "" or parsePath(path, false)
  elseif sub(rest, 1, 1) == "/" then
    u.path = parsePath(rest, false)
  else
    -- an opaque path ("mailto:a@b", "data:..."): only controls are encoded
    u.path = gsub(rest, "[" .. C0 .. "]", hex)
    u.opaque = true
  end
  u.href = url.format(u)
  return setmetatable(u, Url)
end

----------------------------------------------------------------- format, resolve

local function hostText(host)
  if find(host, ":", 1, true) and sub(host, 1, 1) ~= "[" then return "[" .. host .. "]" end
  return host
end

-- format{scheme, user, password, host, port, path, query, fragment} -> the
-- URL text. Components are percent-encoded as the parser would (an already
-- encoded "%xx" stays as it is); a default port is left out.
function url.format(t)
  if type(t) ~= "table" then args.fail(1, "url.format", "table", t, 2) end
  local scheme = t.scheme
  if type(scheme) ~= "string" or not match(scheme, "^%a[%w+.-]*$") then
    args.error(1, "url.format", "scheme must be a string like \"https\"", 2)
  end
  scheme = lower(scheme)
  local special = SPECIAL[scheme] ~= nil
  local out = {scheme, ":"}
  local host = t.host
  if host ~= nil then
    if type(host) ~= "string" then args.error(1, "url.format", "host must be a string", 2) end
    out[#out + 1] = "//"
    if t.user or t.password then
      out[#out + 1] = gsub(tostring(t.user or ""), USERINFO_SET, hex)
      if t.password then out[#out + 1] = ":" .. gsub(tostring(t.password), USERINFO_SET, hex) end
      out[#out + 1] = "@"
    end
    out[#out + 1] = hostText(host)
    local port = t.port
    if port ~= nil then
      if type(port) == "string" then port = tonumber(port) end
      if type(port) ~= "number" or port % 1 ~= 0 or port < 0 or port > 65535 then
        args.error(1, "url.format", "port must be an integer from 0 to 65535", 2)
      end
      if port ~= SPECIAL[scheme] then out[#out + 1] = ":" .. port end
    end
  elseif special then
    args.error(1, "url.format", "a " .. scheme .. " URL needs a host", 2)
  end
  local path = t.path or ""
  if type(path) ~= "string" then args.error(1, "url.format", "path must be a string", 2) end
  if t.opaque then
    out[#out + 1] = gsub(path, "[" .. C0 .. "]", hex)
  else
    if (special or host) and path ~= "" and sub(path, 1, 1) ~= "/" then path = "/" .. path end
    if special and path == "" then path = "/" end
    out[#out + 1] = gsub(path, PATH_SET, hex)
  end
  if t.query ~= nil then out[#out + 1] = "?" .. gsub(tostring(t.query), special and SPECIAL_QUERY_SET or QUERY_SET, hex) end
  if t.fragment ~= nil then out[#out + 1] = "#" .. gsub(tostring(t.fragment), FRAGMENT_SET, hex) end
  return concat(out)
end

-- resolve(base, ref) -> the URL text of ref resolved against base (a
-- string or a parsed URL) | nil, err
function url.resolve(base, ref, asTable)
  if type(ref) ~= "string" then args.fail(2, "url.resolve", "string", ref, 2) end
  local b, err = parsedBase(base, 1, "url.resolve")
  if not b then return nil, err end
  return resolveParsed(b, ref, asTable)
end

function resolveParsed(b, ref, asTable)
  ref = trimmed(ref)
  local target
  if match(ref, "^%a[%w+.-]*:") then
    target = ref
  elseif b.opaque then
    if sub(ref, 1, 1) ~= "#" then return bad("cannot resolve against an opaque URL") end
    target = url.format({scheme = b.scheme, path = b.path, opaque = true, query = b.query}) .. ref
  else
    local special = SPECIAL[b.scheme] ~= nil
    local slashy = special and "^[/\\][/\\]" or "^//"
    local origin = sub(url.format({scheme = b.scheme, user = b.user, password = b.password, host = b.host,
      port = b.port, path = "/"}), 1, -2)
    local first = sub(ref, 1, 1)
    if match(ref, slashy) then
      target = b.scheme .. ":" .. ref
    elseif first == "/" or (special and first == "\\") then
      target = origin .. ref
    elseif first == "?" then
      target = origin .. b.path .. ref
    elseif first == "#" then
      target = origin .. b.path .. (b.query and "?" .. b.query or "") .. ref
    elseif ref == "" then
      target = origin .. b.path .. (b.query and "?" .. b.query or "")
    else
      local dir = match(b.path, "^(.*/)") or "/"
      target = origin .. dir .. ref
    end
  end
  local u, err = url.parse(target)
  if not u then return nil, err end
  if asTable then return u end
  return u.href
end

return url
