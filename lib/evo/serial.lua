-- evo.serial: copies plain values between Lua states (task.work).
--
-- encode(value) -> a Lua chunk that rebuilds it; decode(chunk) -> value.
-- Plain data only: nil, booleans, numbers, strings and tables of those
-- (no metatables, no cycles). Anything else is an error saying what and
-- where, since a function, a coroutine or a userdata cannot cross states.
-- Tables may nest up to MAX_DEPTH levels (the decoder is Lua's parser,
-- which has a limit of its own); deeper is an error, never a crash.
local type, pairs, format, concat, tostring = type, pairs, string.format, table.concat, tostring

local serial = {}

local MAX_DEPTH = 150
serial.MAX_DEPTH = MAX_DEPTH

local function number(n)
  if n ~= n then return "(0/0)" end
  if n == 0 and 1 / n < 0 then return "(-0)" end  -- keep the sign of -0.0
  if n == math.huge then return "math.huge" end
  if n == -math.huge then return "-math.huge" end
  if n == math.floor(n) and n >= -2^53 and n <= 2^53 then return format("%d", n) end
  return format("%.17g", n)
end

local function encode(v, out, path, active, depth)
  local t = type(v)
  if t == "nil" then out[#out + 1] = "nil"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then out[#out + 1] = number(v)
  elseif t == "string" then out[#out + 1] = format("%q", v)
  elseif t == "table" then
    if getmetatable(v) ~= nil then error(("%s is a table with a metatable: only plain tables can be copied"):format(path), 0) end
    if active[v] then error(("%s refers back to itself: tables with cycles cannot be copied"):format(path), 0) end
    if depth >= MAX_DEPTH then
      error(("%s has tables nested more than %d deep: too deep to copy"):format(path:match("^[^%[]*"), MAX_DEPTH), 0)
    end
    active[v] = true
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      local kt = type(k)
      if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
        error(("%s has a %s key: only plain keys can be copied"):format(path, kt), 0)
      end
      out[#out + 1] = "["
      encode(k, out, path, active, depth)
      out[#out + 1] = "]="
      encode(x, out, path .. "[" .. tostring(k) .. "]", active, depth + 1)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
    active[v] = nil
  else
    error(("%s is a %s: only nil, booleans, numbers, strings and plain tables can be copied"):format(path, t), 0)
  end
end

-- encode a list of n values (for arguments and results)
function serial.encodeList(n, ...)
  local out = {"return {n=", number(n), ","}
  for i = 1, n do
    out[#out + 1] = "["
    out[#out + 1] = number(i)
    out[#out + 1] = "]="
    encode((select(i, ...)), out, ("value #%d"):format(i), {}, 0)
    out[#out + 1] = ","
  end
  out[#out + 1] = "}"
  return concat(out)
end

-- decodeList(chunk) -> the list {n = k, ...}; raises if chunk is not one.
function serial.decodeList(chunk)
  local fn, err = loadstring(chunk, "=serial")
  if not fn then error("cannot decode a copied value: " .. err, 0) end
  setfenv(fn, {math = math})
  return fn()
end

return serial
