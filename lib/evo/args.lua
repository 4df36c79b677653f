-- evo.args: argument checks with Lua's own message template, so every public
-- function of Evo's library fails the same way:
--   bad argument #1 to 'class' (string expected, got nil)
local type, error, format = type, error, string.format

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

return args
