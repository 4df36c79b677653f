-- base64: RFC 4648 base64, native (src/proto/encoding.cpp).
--
--   local base64 = require("base64")
--   base64.encode("hello")          --> "aGVsbG8="
--   base64.decode("aGVsbG8=")       --> "hello"
--   base64.encodeUrl("\251\255")    --> "-_8"   (§5 alphabet, no padding)
--   base64.decodeUrl("-_8")         --> "\251\255"
--   base64.decode("a$==")           --> nil, err (err.code == "BadBase64", err.position == 2)
--
-- decode skips ASCII whitespace (MIME, PEM) and accepts complete padding or
-- none; decodeUrl takes the URL-safe alphabet, padded or not. Works in
-- worker states (task.work).
local native = require("evo.encoding")
local fail = require("evo.args").fail
local type = type
local encode, decode = native.b64encode, native.b64decode

local base64 = {}

-- encode(s) -> text with the standard alphabet and '=' padding
function base64.encode(s)
  if type(s) ~= "string" then fail(1, "base64.encode", "string", s) end
  return encode(s, false)
end

-- decode(text) -> bytes | nil, err
function base64.decode(text)
  if type(text) ~= "string" then fail(1, "base64.decode", "string", text) end
  return decode(text, false)
end

-- encodeUrl(s) -> text with '-' and '_' for '+' and '/', no padding (RFC 4648 §5)
function base64.encodeUrl(s)
  if type(s) ~= "string" then fail(1, "base64.encodeUrl", "string", s) end
  return encode(s, true)
end

-- decodeUrl(text) -> bytes | nil, err; padding optional
function base64.decodeUrl(text)
  if type(text) ~= "string" then fail(1, "base64.decodeUrl", "string", text) end
  return decode(text, true)
end

return base64
