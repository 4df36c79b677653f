-- evo.args: argument checks with Lua's own message template, so every public
-- function of Evo's library fails the same way:
--   bad argument #1 to 'class' (string expected, got nil)
local type, error, format, select, sub = type, error, string.format, select, string.sub

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

-- Whether value has the type `want`: "number", "string?" (nil allowed),
-- "number|string", "any".
local function accepts(want, value)
  if want == "any" then return true end
  local t = type(value)
  if sub(want, -1) == "?" then
    if value == nil then return true end
    want = sub(want, 1, -2)
  end
  if t == want then return true end
  for alt in want:gmatch("[^|]+") do
    if t == alt then return true end
  end
  return false
end

-- args.method(fname, fn, isSelf, selfName, types...) -> function(self, ...):
-- the public method `fname` in front of a native one. It checks self with
-- isSelf (when given) and each argument against types[i] (see accepts),
-- raising the standard messages numbered as the caller counts (self is not
-- counted) at the caller's line, then calls fn(self, ...). A native's own
-- checks cannot name the method when it is called through pcall or a tail
-- call ('?'), and count self: this is the one place that does it for them.
function args.method(fname, fn, isSelf, selfName, ...)
  local types = {...}
  local n = select("#", ...)
  return function(self, ...)
    if isSelf and not isSelf(self) then args.badSelf(fname, selfName, self, 2) end
    for i = 1, n do
      local v = select(i, ...)
      if not accepts(types[i], v) then  -- named as Lua does: the first type accepted
        args.fail(i, fname, types[i]:match("^[^|?]+"), v, 2)
      end
    end
    return fn(self, ...)
  end
end

-- Raises the standard message with a free-form reason:
--   bad argument #1 to 'serve' (port must be an integer from 0 to 65535)
function args.error(n, fname, reason, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, reason), (level or 2) + 1)
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
