-- evo.args: argument checks with Lua's own message template, so every public
-- function of Evo's library fails the same way:
--   bad argument #1 to 'class' (string expected, got nil)
local type, error, format, select, sub, setmetatable = type, error, string.format, select, string.sub, setmetatable
local pairs, tostring, getinfo = pairs, tostring, debug.getinfo

local args = {}

-- Raises the standard message, blaming the caller of the checked function.
function args.fail(n, fname, expected, value, level)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected, type(value)), (level or 2) + 1)
end

-- Returns value when type(value) == expected, else raises the standard message.
function args.check(n, fname, value, expected, level)
  if type(value) ~= expected then args.fail(n, fname, expected, value, (level or 2) + 1) end
  return value
end

-- Raises the message for a method called on something else (its self is
-- argument #1, as in File:close):
--   bad argument #1 to 'readLine' (Stream expected, got number)
function args.badSelf(fname, expected, value, level)
  args.fail(1, fname, expected, value, (level or 2) + 1)
end

-- args.method(fname, fn, isSelf, selfName, types...) -> function(self, ...):
-- the public method `fname` in front of a native one. It checks self with
-- isSelf (when given) and each argument against types[i] ("number",
-- "string?" (nil allowed), "number|string", "any"; at most three),
-- raising the standard messages numbered as the caller counts (self is not
-- counted) at the caller's line, then calls fn(self, ...). A native's own
-- checks cannot name the method when it is called through pcall or a tail
-- call ('?'), and count self: this is the one place that does it for them.
--
-- The checks run on every call (res:send is on a server's hot path): each
-- type is compiled once into a set of accepted type names, so a call costs
-- a table lookup per argument and no string work.
local function typeSet(want)
  local set = {}
  if want == "any" then return setmetatable(set, {__index = function() return true end}) end
  if sub(want, -1) == "?" then
    set["nil"] = true
    want = sub(want, 1, -2)
  end
  for alt in want:gmatch("[^|]+") do set[alt] = true end
  return set
end

function args.method(fname, fn, isSelf, selfName, ...)
  local n = select("#", ...)
  local sets, names = {}, {}
  for i = 1, n do
    local want = select(i, ...)
    sets[i], names[i] = typeSet(want), want:match("^[^|?]+")  -- named as Lua does: the first type
  end
  assert(n <= 3, "args.method checks at most 3 arguments")
  local s1, s2, s3 = sets[1], sets[2], sets[3]
  local function bad(i, v) args.fail(i, fname, names[i], v, 3) end
  -- A Lua function with at most three parameters after self and no
  -- varargs never sees more arguments than that: its wrapper takes them by
  -- name, which a trace runs without the vararg frame (about 80
  -- instructions per call of Timer:start from a handler).
  local info = type(fn) == "function" and getinfo(fn, "u")
  if info and not info.isvararg and info.nparams <= 4 then  -- (a C function counts as vararg)
    return function(self, a, b, c)
      if isSelf and not isSelf(self) then args.badSelf(fname, selfName, self, 2) end
      if n > 0 then
        if not s1[type(a)] then bad(1, a) end
        if n > 1 and not s2[type(b)] then bad(2, b) end
        if n > 2 and not s3[type(c)] then bad(3, c) end
      end
      return fn(self, a, b, c)
    end
  end
  return function(self, ...)
    if isSelf and not isSelf(self) then args.badSelf(fname, selfName, self, 2) end
    if n > 0 then
      local a, b, c = ...
      if not s1[type(a)] then bad(1, a) end
      if n > 1 and not s2[type(b)] then bad(2, b) end
      if n > 2 and not s3[type(c)] then bad(3, c) end
    end
    return fn(self, ...)
  end
end

-- Raises the standard message with a free-form reason:
--   bad argument #1 to 'serve' (port must be an integer from 0 to 65535)
function args.error(n, fname, reason, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, reason), (level or 2) + 1)
end

-- Returns opts (a table, or {} for nil) when every key in it is one of
-- allowed (a set: {level = true, ...}), else raises naming the first other:
--   bad argument #2 to 'zlib.gzip' (unknown option 'levle')
-- so a misspelt option fails loudly instead of being ignored.
function args.options(n, fname, opts, allowed, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then args.fail(n, fname, "table", opts, (level or 2) + 1) end
  for k in pairs(opts) do
    if not allowed[k] then
      args.error(n, fname, format("unknown option '%s'", tostring(k)), (level or 2) + 1)
    end
  end
  return opts
end

-- Returns port when it is an integer from min (0: "any free port" allowed,
-- 1: a peer's port) to 65535, else raises naming the option:
--   bad argument #n to 'fname' (port must be an integer from 0 to 65535)
function args.port(n, fname, port, min, level)
  min = min or 0
  if type(port) ~= "number" or port % 1 ~= 0 or port < min or port > 65535 then
    args.error(n, fname, format("port must be an integer from %d to 65535", min), (level or 2) + 1)
  end
  return port
end

return args
