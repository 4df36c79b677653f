-- pretty: readable text for any Lua value, used by the REPL, assertion
-- messages and debug output.
--
--   pretty.format({1, 2, x = "a"})            --> {1, 2, x = "a"}
--   pretty.format(t, {indent = "  "})          -- one entry per line
--   pretty.summary(payload, 80)                -- one line, cut to 80 chars
local type, tostring, pairs, ipairs, next = type, tostring, pairs, ipairs, next
local format, rep, concat, sort = string.format, string.rep, table.concat, table.sort

local pretty = {}

local function isIdentifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local typeOrder = {number = 1, string = 2, boolean = 3}

local function keyLess(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (typeOrder[ta] or 9) < (typeOrder[tb] or 9) or
    ((typeOrder[ta] or 9) == (typeOrder[tb] or 9) and ta < tb) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return format("%q", v):gsub("\\\n", "\\n") end
  if t == "number" then
    if v ~= v then return "nan" end
    if v == math.floor(v) and v > -1e15 and v < 1e15 then return format("%d", v) end
    return format("%.14g", v)
  end
  return tostring(v)
end

local function render(v, opts, depth, seen, out)
  if type(v) ~= "table" then
    out[#out + 1] = scalar(v)
    return
  end
  local mt = getmetatable(v)
  if mt and rawget(mt, "__tostring") then
    out[#out + 1] = tostring(v)
    return
  end
  if seen[v] then
    out[#out + 1] = "<cycle>"
    return
  end
  if next(v) == nil then
    out[#out + 1] = "{}"
    return
  end
  if depth >= opts.depth then
    out[#out + 1] = "{...}"
    return
  end
  seen[v] = true
  local n = #v
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  sort(keys, keyLess)
  local indent = opts.indent
  local pad = indent and rep(indent, depth + 1) or ""
  local sep = indent and (",\n" .. pad) or ", "
  out[#out + 1] = indent and ("{\n" .. pad) or "{"
  local count = 0
  for i = 1, n do
    if count > 0 then out[#out + 1] = sep end
    render(v[i], opts, depth + 1, seen, out)
    count = count + 1
  end
  for _, k in ipairs(keys) do
    if count > 0 then out[#out + 1] = sep end
    if isIdentifier(k) then
      out[#out + 1] = k
    else
      out[#out + 1] = "["
      render(k, opts, depth + 1, seen, out)
      out[#out + 1] = "]"
    end
    out[#out + 1] = " = "
    render(v[k], opts, depth + 1, seen, out)
    count = count + 1
  end
  out[#out + 1] = indent and ("\n" .. rep(indent, depth) .. "}") or "}"
  seen[v] = nil
end

-- opts.depth (default 4): nesting shown before "{...}"; opts.indent: a
-- string to put entries on their own lines.
function pretty.format(value, opts)
  opts = opts or {}
  local o = {depth = opts.depth or 4, indent = opts.indent}
  local out = {}
  render(value, o, 0, {}, out)
  return concat(out)
end

-- One line, at most `limit` characters (default 120).
function pretty.summary(value, limit)
  limit = limit or 120
  local s = pretty.format(value, {depth = 2})
  if #s > limit then s = s:sub(1, limit - 3) .. "..." end
  return s
end

return pretty
