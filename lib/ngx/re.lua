-- ngx.re: OpenResty's regex API (match, find, gmatch, sub, gsub) on PCRE2
-- (src/bind/pcre.cpp over src/proto/regex.cpp). Positions are 1-based as in
-- Lua; captures tables hold [0] (the whole match), [1..n] (false for a group
-- that did not take part) and named groups. See docs/ngx.md.
local native = require("evo.pcre")
local args = require("evo.args")

local type, error, tostring, tonumber = type, error, tostring, tonumber
local sub, byte, find, concat = string.sub, string.byte, string.find, table.concat
local ncompile, nexec, ninfo = native.compile, native.exec, native.info

local re = {}

----------------------------------------------------------------- compiling

-- Compiled regexes are cached by (pattern, options) whatever the options:
-- OpenResty's "o" asks for it, and without "o" caching changes nothing a
-- caller can see but the cost. Bounded as lua_regex_cache_max_entries is.
local cache, cached, maxCached = {}, 0, 1024

local function compile(fname, pattern, opts)
  if type(pattern) ~= "string" then args.fail(2, fname, "string", pattern, 3) end
  if opts ~= nil and type(opts) ~= "string" then args.fail(3, fname, "string", opts, 3) end
  opts = opts or ""
  local key = opts .. "\0" .. pattern
  local entry = cache[key]
  if entry then return entry end
  local rx, err = ncompile(pattern, opts)
  if rx == false then error(err, 3) end  -- an unknown option letter raises, as in OpenResty
  if not rx then return nil, err end
  local ncap, names, utf = ninfo(rx)
  entry = {rx = rx, ncap = ncap, names = names, utf = utf, dup = opts:find("D", 1, true) ~= nil}
  if cached >= maxCached then cache, cached = {}, 0 end
  cache[key] = entry
  cached = cached + 1
  return entry
end

local ovec = {}  -- reused by every match: exec fills it

-- Runs one match from 1-based position pos; returns true, false (none) or nil, err.
local function exec(entry, subject, pos)
  local pairs, err = nexec(entry.rx, subject, pos - 1, ovec)
  if not pairs then return nil, err end
  return pairs > 0
end

-- The captures table of the last exec (into res when given).
local function captures(entry, subject, res)
  local m = res or {}
  for i = 0, entry.ncap do
    local s, e = ovec[2 * i + 1], ovec[2 * i + 2]
    if s and s >= 0 then m[i] = sub(subject, s + 1, e) else m[i] = false end
  end
  local names = entry.names
  if names then
    for name, groups in pairs(names) do
      if entry.dup then
        local list = {}
        for _, g in ipairs(groups) do
          if m[g] then list[#list + 1] = m[g] end
        end
        m[name] = list
      else
        m[name] = m[groups[1]]
      end
    end
  end
  return m
end

local function checkSubject(fname, subject)
  if type(subject) == "number" then return tostring(subject) end
  if type(subject) ~= "string" then args.fail(1, fname, "string", subject, 3) end
  return subject
end

local function startPos(fname, ctx)
  if ctx == nil then return 1 end
  if type(ctx) ~= "table" then args.fail(4, fname, "table", ctx, 3) end
  local pos = ctx.pos
  if pos == nil then return 1 end
  if type(pos) ~= "number" then args.error(4, fname, "ctx.pos must be a number", 3) end
  return pos < 1 and 1 or pos
end

----------------------------------------------------------------- match, find

-- match(subject, regex, options?, ctx?, res?) -> captures | nil | nil, err
function re.match(subject, regex, opts, ctx, res)
  subject = checkSubject("ngx.re.match", subject)
  local entry, err = compile("ngx.re.match", regex, opts)
  if not entry then return nil, err end
  local pos = startPos("ngx.re.match", ctx)
  local ok, xerr = exec(entry, subject, pos)
  if not ok then return nil, xerr end
  if ctx then ctx.pos = ovec[2] + 1 end
  return captures(entry, subject, res)
end

-- find(subject, regex, options?, ctx?, nth?) -> from, to | nil | nil, err
function re.find(subject, regex, opts, ctx, nth)
  subject = checkSubject("ngx.re.find", subject)
  local entry, err = compile("ngx.re.find", regex, opts)
  if not entry then return nil, err end
  local pos = startPos("ngx.re.find", ctx)
  if nth ~= nil and (type(nth) ~= "number" or nth < 0) then
    args.error(5, "ngx.re.find", "nth must be a number from 0", 2)
  end
  nth = nth or 0
  local ok, xerr = exec(entry, subject, pos)
  if not ok then return nil, xerr end
  if ctx then ctx.pos = ovec[2] + 1 end
  if nth > entry.ncap then return nil end
  local s, e = ovec[2 * nth + 1], ovec[2 * nth + 2]
  if s < 0 then return nil end
  return s + 1, e
end

----------------------------------------------------------------- gmatch

-- After an empty match the next search starts one character later (a
-- whole UTF-8 sequence in UTF mode), so "" matches once between characters.
local function nextPos(entry, subject, s, e)
  if e >= s then return e + 1 end  -- s..e non-empty (e is inclusive)
  local p = e + 1
  if entry.utf then
    local b = byte(subject, p)
    if b and b >= 0xC0 then
      p = p + 1
      while true do
        local c = byte(subject, p)
        if not c or c < 0x80 or c >= 0xC0 then break end
        p = p + 1
      end
      return p
    end
  end
  return p + 1
end

-- gmatch(subject, regex, options?) -> iterator | nil, err; the iterator
-- returns each match's captures table, then nil (nil, err on failure).
function re.gmatch(subject, regex, opts)
  subject = checkSubject("ngx.re.gmatch", subject)
  local entry, err = compile("ngx.re.gmatch", regex, opts)
  if not entry then return nil, err end
  local pos, len, done = 1, #subject, false
  return function()
    if done or pos > len + 1 then return nil end
    local ok, xerr = exec(entry, subject, pos)
    if not ok then
      done = true
      return nil, xerr
    end
    local m = captures(entry, subject)
    pos = nextPos(entry, subject, ovec[1] + 1, ovec[2])
    return m
  end
end

----------------------------------------------------------------- sub, gsub

-- A replacement template compiles once into a list: strings are literal,
-- numbers are capture groups, {name} a named group.
local templates, ntemplates = {}, 0

local function parseTemplate(t)
  local parts, i, lit = {}, 1, {}
  local n = #t
  while i <= n do
    local d = find(t, "$", i, true)
    if not d then
      lit[#lit + 1] = sub(t, i)
      break
    end
    lit[#lit + 1] = sub(t, i, d - 1)
    local c = sub(t, d + 1, d + 1)
    if c == "$" then
      lit[#lit + 1] = "$"
      i = d + 2
    elseif c:match("^%d$") then  -- one digit, as nginx's own "$1"
      parts[#parts + 1] = concat(lit); lit = {}
      parts[#parts + 1] = tonumber(c)
      i = d + 2
    elseif c == "{" then
      local close = find(t, "}", d + 2, true)
      if not close then return nil, ("the closing bracket in \"%s\" variable is missing"):format(sub(t, d)) end
      local name = sub(t, d + 2, close - 1)
      parts[#parts + 1] = concat(lit); lit = {}
      if name:match("^%d+$") then
        parts[#parts + 1] = tonumber(name)
      elseif name:match("^[%a_][%w_]*$") then
        parts[#parts + 1] = {name}
      else
        return nil, ("invalid capturing variable name found in \"%s\""):format(t)
      end
      i = close + 1
    else
      return nil, ("invalid capturing variable name found in \"%s\""):format(t)
    end
  end
  parts[#parts + 1] = concat(lit)
  return parts
end

local function template(t)
  local parts = templates[t]
  if parts then return parts end
  local err
  parts, err = parseTemplate(t)
  if not parts then return nil, err end
  if ntemplates >= maxCached then templates, ntemplates = {}, 0 end
  templates[t] = parts
  ntemplates = ntemplates + 1
  return parts
end

local function group(entry, subject, g)
  if g > entry.ncap then return "" end
  local s, e = ovec[2 * g + 1], ovec[2 * g + 2]
  if s < 0 then return "" end
  return sub(subject, s + 1, e)
end

-- Appends the replacement for the current match to out.
local function expand(entry, subject, parts, out)
  for k = 1, #parts do
    local p = parts[k]
    local tp = type(p)
    if tp == "string" then
      if p ~= "" then out[#out + 1] = p end
    elseif tp == "number" then
      out[#out + 1] = group(entry, subject, p)
    else
      local groups = entry.names and entry.names[p[1]]
      if groups then
        for _, g in ipairs(groups) do
          local v = group(entry, subject, g)
          if v ~= "" or not entry.dup then
            out[#out + 1] = v
            break
          end
        end
      end
    end
  end
end

local function substitute(fname, subject, regex, replace, opts, global)
  subject = checkSubject(fname, subject)
  local tr = type(replace)
  if tr == "number" then replace, tr = tostring(replace), "string" end
  if tr ~= "string" and tr ~= "function" then args.fail(3, fname, "string or function", replace, 3) end
  local entry, err = compile(fname, regex, opts)
  if not entry then return nil, nil, err end
  local parts
  if tr == "string" then
    parts, err = template(replace)
    if not parts then return nil, nil, err end
  end
  local out, pos, last, n, len = {}, 1, 1, 0, #subject
  while pos <= len + 1 do
    local ok, xerr = exec(entry, subject, pos)
    if ok == nil then return nil, nil, xerr end
    if not ok then break end
    local s, e = ovec[1] + 1, ovec[2]
    out[#out + 1] = sub(subject, last, s - 1)
    if parts then
      expand(entry, subject, parts, out)
    else
      local r = replace(captures(entry, subject))
      if type(r) == "number" then r = tostring(r) end
      if type(r) ~= "string" then error(("%s: the replace function returned a %s, not a string"):format(fname, type(r)), 3) end
      out[#out + 1] = r
    end
    n = n + 1
    last = e + 1
    if not global then break end
    pos = nextPos(entry, subject, s, e)
    if e < s and pos > s then  -- an empty match: the character skipped is kept
      out[#out + 1] = sub(subject, s, pos - 1)
      last = pos
    end
  end
  if n == 0 then return subject, 0 end
  out[#out + 1] = sub(subject, last)
  return concat(out), n
end

-- sub(subject, regex, replace, options?) -> newstr, n | nil, nil, err
function re.sub(subject, regex, replace, opts)
  return substitute("ngx.re.sub", subject, regex, replace, opts, false)
end

-- gsub(subject, regex, replace, options?) -> newstr, n | nil, nil, err
function re.gsub(subject, regex, replace, opts)
  return substitute("ngx.re.gsub", subject, regex, replace, opts, true)
end

return re
