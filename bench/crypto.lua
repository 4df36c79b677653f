-- Evo's side of bench/crypto.sh: sha256 and gzip throughput on the input
-- file the script wrote (the same bytes Node and Python read).
--   evo bench/crypto.lua INPUT SECONDS
-- Prints "name value unit" lines.
local crypto = require("crypto")
local zlib = require("evo.zlib")
local uv = require("uv")

local path, seconds = arg[1], tonumber(arg[2] or "1")
local f = assert(io.open(path, "rb"))
local data = f:read("*a")
f:close()
local now = uv.hrtime

-- Runs fn until `seconds` have passed; returns calls per second.
local function rate(fn)
  fn()
  local n, t0 = 0, now()
  repeat
    for _ = 1, 8 do fn() end
    n = n + 8
  until now() - t0 >= seconds * 1e9
  return n / ((now() - t0) / 1e9)
end

local MB = 1024 * 1024
local small = data:sub(1, 64)
print(("sha256-1MiB %.1f MB/s"):format(rate(function() crypto.hash("sha256", data, "raw") end) * #data / MB))
print(("sha256-64B %.0f ops/s"):format(rate(function() crypto.hash("sha256", small) end)))
local function gzip(s)
  local d = zlib.deflater("gzip", 6)
  return d:update(s) .. d:finish()
end
local packed = gzip(data)
print(("gzip %.1f MB/s"):format(rate(function() gzip(data) end) * #data / MB))
print(("gunzip %.1f MB/s"):format(rate(function()
  local i = zlib.inflater("gzip")
  local _ = i:update(packed) .. i:finish()
end) * #data / MB))
print(("ratio %.2f x"):format(#data / #packed))
