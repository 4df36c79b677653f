-- evo.errors: Evo's error objects.
--
-- An error is a table {code = "ENOENT", message = "..."} whose tostring is
-- "ENOENT: ...". Operational failures (a missing file, a refused
-- connection, EOF in the middle of a read, a timeout) are *returned* as
-- `nil, err`, Lua style, so `assert(fs.readFile(p))` reads naturally.
-- Cancellation is *raised*: a `Canceled` error propagates until someone
-- handles it. Codes are libuv's error names (ENOENT, ECONNREFUSED, EOF, ...)
-- or Evo's own: Canceled, Timeout, ConcurrencyUnavailable, Closed.
local setmetatable, type, tostring, error = setmetatable, type, tostring, error

local errors = {}

local Error = {__name = "Error"}
Error.__index = Error
Error.__tostring = function(e)
  if e.message and e.message ~= "" then return e.code .. ": " .. e.message end
  return e.code
end
-- "failed: " .. err and err .. " (context)" work like string concatenation.
Error.__concat = function(a, b) return tostring(a) .. tostring(b) end
errors.Error = Error

-- new(code, message [, fields]) -> error object
function errors.new(code, message, fields)
  local e = fields or {}
  e.code, e.message = code, message or ""
  return setmetatable(e, Error)
end

function errors.is(value, code)
  return type(value) == "table" and getmetatable(value) == Error and (code == nil or value.code == code)
end

-- Raises an error object at the caller's caller (level 2 by default).
function errors.raise(code, message, level)
  error(errors.new(code, message), (level or 1) + 1)
end

local canceledMessage = "the task was canceled"
function errors.canceled() return errors.new("Canceled", canceledMessage) end

-- From luv: a call returns nil, "ENOENT: no such file or directory: /x", "ENOENT";
-- a callback receives "ENOENT: no such file or directory: /x" alone.
function errors.fromUv(message, name)
  message = tostring(message)
  local code = name or message:match("^(%u[%u%d_]+):") or message:match("^(%u[%u%d_]+)$") or "EIO"
  local text = message:gsub("^" .. code .. ":?%s*", "")
  if text == "" and code:match("^EAI_") then text = "name resolution failed" end
  return errors.new(code, text)
end

return errors
