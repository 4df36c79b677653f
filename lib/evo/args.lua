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
