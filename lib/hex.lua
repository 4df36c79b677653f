-- hex: bytes <-> hexadecimal text, native (src/proto/encoding.cpp).
--
--   local hex = require("hex")
--   hex.encode("\1\171")   --> "01ab"   (lowercase)
--   hex.decode("01AB")     --> "\1\171" (either case)
--   hex.decode("abc")      --> nil, err (err.code == "BadHex": odd length)
--
-- Works in worker states (task.work).
local native = require("evo.encoding")
local fail = require("evo.args").fail
local type = type
local encode, decode = native.hexEncode, native.hexDecode

local hex = {}

-- encode(s) -> lowercase hex, two digits per byte
function hex.encode(s)
  if type(s) ~= "string" then fail(1, "hex.encode", "string", s) end
  return encode(s)
end

-- decode(text) -> bytes | nil, err (odd length, or a character that is not a hex digit)
function hex.decode(text)
  if type(text) ~= "string" then fail(1, "hex.decode", "string", text) end
  return decode(text)
end

return hex
