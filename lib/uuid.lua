-- uuid: RFC 9562 UUIDs.
--
--   local uuid = require("uuid")
--   uuid.v4()          --> "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b" (122 random bits)
--   uuid.v7()          --> "01934f8e-6a2b-7c3d-9e4f-0123456789ab" (time-ordered)
--   uuid.valid(s)      --> boolean
--   uuid.parse(s)      --> 16 bytes | nil, err
--   uuid.format(bytes) --> text
--   uuid.version(s)    --> 4, 7, ... | nil
--   uuid.timestamp(s)  --> Unix time in ms of a v7 | nil
--
-- Random bits come from OpenSSL's CSPRNG. v7 ids made by one process sort
-- (as strings or bytes) in the order they were made, also within one
-- millisecond and across threads. Works in worker states (task.work).
local crypto = require("evo.crypto")
local encoding = require("evo.encoding")
local errors = require("evo.errors")
local fail = require("evo.args").fail
local argError = require("evo.args").error
local type, tonumber, sub = type, tonumber, string.sub
local nparse, nformat = encoding.uuidParse, encoding.uuidFormat

local uuid = {}

uuid.v4 = crypto.uuid4
uuid.v7 = crypto.uuid7

-- valid(s) -> true when s is a UUID in its 36-character text form (any case)
function uuid.valid(s)
  return type(s) == "string" and nparse(s) ~= nil
end

-- parse(s) -> the 16 bytes | nil, err {code = "BadUuid"}
function uuid.parse(s)
  if type(s) ~= "string" then fail(1, "uuid.parse", "string", s) end
  local b = nparse(s)
  if b then return b end
  return nil, errors.new("BadUuid", "not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): " .. sub(s, 1, 40))
end

-- format(bytes) -> the lowercase text of 16 bytes
function uuid.format(bytes)
  if type(bytes) ~= "string" then fail(1, "uuid.format", "string", bytes) end
  if #bytes ~= 16 then argError(1, "uuid.format", "16 bytes expected, got " .. #bytes) end
  return nformat(bytes)
end

-- version(s) -> the version digit of a valid UUID, or nil
function uuid.version(s)
  if not uuid.valid(s) then return nil end
  return tonumber(sub(s, 15, 15), 16)
end

-- timestamp(s) -> the Unix time in milliseconds a v7 UUID carries, or nil
function uuid.timestamp(s)
  if uuid.version(s) ~= 7 then return nil end
  return tonumber(sub(s, 1, 8) .. sub(s, 10, 13), 16)
end

return uuid
