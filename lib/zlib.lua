-- zlib: gzip, zlib ("deflate"), raw DEFLATE and Brotli, one-shot and
-- streaming. Native (src/proto/compress.cpp on zlib and libbrotli); works in
-- workers (task.work, uv.new_thread).
--
--   local zlib = require("zlib")
--   local gz = zlib.gzip(text)
--   local back, err = zlib.gunzip(gz, {maxOutput = 1024 * 1024})  -- nil, err.code == "TooLarge" past it
--   local c = zlib.compressor{format = "br"}
--   local out = c:write(part1) .. c:write(part2) .. c:finish()
--
-- Decompression failures are returned: nil, err with err.code "BadData"
-- (corrupt or truncated input) or "TooLarge" (past maxOutput). See docs/zlib.md.
local native = require("evo.zlib")
local args = require("evo.args")

local type, setmetatable, getmetatable, error = type, setmetatable, getmetatable, error
local huge = math.huge
local ncompress, ndecompress, nencoder, ndecoder = native.compress, native.decompress, native.encoder, native.decoder

local zlib = {}

-- The largest output a one-shot decompression returns unless told
-- otherwise: a LuaJIT string cannot be much longer than 2 GiB anyway.
zlib.MAX_OUTPUT = 1024 * 1024 * 1024

local ZLIB_FORMATS = {gzip = true, deflate = true, raw = true}

local function checkData(fname, data)
  if type(data) ~= "string" then args.fail(1, fname, "string", data, 3) end
end

-- The options each kind of call takes.
local COMPRESS_OPTS = {level = true}
local DECOMPRESS_OPTS = {maxOutput = true}
local BROTLI_OPTS = {quality = true, level = true, lgwin = true}
local COMPRESSOR_OPTS = {format = true, level = true, quality = true, lgwin = true}
local DECOMPRESSOR_OPTS = {format = true, maxOutput = true}

local function checkOpts(fname, opts, allowed)
  local checked = args.options(2, fname, opts, allowed, 3)  -- not a tail call: the levels count this frame
  return checked
end

local function isInt(v, lo, hi) return type(v) == "number" and v % 1 == 0 and v >= lo and v <= hi end

-- zlib's level: -1 (default, 6) or 0-9.
local function zlibLevel(n, fname, level)
  if level == nil then return -1 end
  if not isInt(level, -1, 9) then args.error(n, fname, "level must be an integer from -1 to 9", 3) end
  return level
end

-- Brotli's quality 0-11 (default 11, as Node and the brotli tool) and
-- window 10-24 (default 22).
local function brotliParams(n, fname, quality, lgwin)
  if quality == nil then
    quality = -1
  elseif not isInt(quality, 0, 11) then
    args.error(n, fname, "quality must be an integer from 0 to 11", 3)
  end
  if lgwin == nil then
    lgwin = 0
  elseif not isInt(lgwin, 10, 24) then
    args.error(n, fname, "lgwin must be an integer from 10 to 24", 3)
  end
  return quality, lgwin
end

local function maxOutput(n, fname, v, default)
  if v == nil then return default end
  if type(v) ~= "number" or v < 0 or (v ~= huge and v % 1 ~= 0) then
    args.error(n, fname, "maxOutput must be a non-negative integer", 3)
  end
  return v
end

----------------------------------------------------------------- one-shot

local function compressor(format, fname)
  return function(data, opts)
    checkData(fname, data)
    opts = checkOpts(fname, opts, COMPRESS_OPTS)
    return ncompress(format, data, zlibLevel(2, fname, opts.level))
  end
end

local function decompressor(format, fname)
  return function(data, opts)
    checkData(fname, data)
    opts = checkOpts(fname, opts, DECOMPRESS_OPTS)
    return ndecompress(format, data, maxOutput(2, fname, opts.maxOutput, zlib.MAX_OUTPUT))
  end
end

-- gzip(data [, {level}]) -> string; gunzip(data [, {maxOutput}]) -> string | nil, err
zlib.gzip = compressor("gzip", "zlib.gzip")
zlib.gunzip = decompressor("gzip", "zlib.gunzip")
-- zlib format (RFC 1950), what HTTP's Content-Encoding and Node call "deflate"
zlib.deflate = compressor("deflate", "zlib.deflate")
zlib.inflate = decompressor("deflate", "zlib.inflate")
-- raw DEFLATE (RFC 1951), no header or checksum
zlib.deflateRaw = compressor("raw", "zlib.deflateRaw")
zlib.inflateRaw = decompressor("raw", "zlib.inflateRaw")
-- unzip: gzip, zlib or raw DEFLATE, told apart by the header
zlib.unzip = decompressor("auto", "zlib.unzip")

-- brotliCompress(data [, {quality, lgwin}]) -> string
function zlib.brotliCompress(data, opts)
  checkData("zlib.brotliCompress", data)
  opts = checkOpts("zlib.brotliCompress", opts, BROTLI_OPTS)
  local quality, lgwin = brotliParams(2, "zlib.brotliCompress", opts.quality or opts.level, opts.lgwin)
  return ncompress("br", data, quality, lgwin)
end

-- brotliDecompress(data [, {maxOutput}]) -> string | nil, err
zlib.brotliDecompress = decompressor("br", "zlib.brotliDecompress")

-- crc32(data [, crc]) -> the CRC-32 (as gzip's) of data, continuing crc
function zlib.crc32(data, crc)
  checkData("zlib.crc32", data)
  if crc ~= nil and not isInt(crc, 0, 4294967295) then args.error(2, "zlib.crc32", "crc must be a 32-bit unsigned integer") end
  return native.crc32(data, crc)
end

----------------------------------------------------------------- streaming

local Compressor = {__name = "Compressor"}
Compressor.__index = Compressor
local Decompressor = {__name = "Decompressor"}
Decompressor.__index = Decompressor

local function isCompressor(v) return getmetatable(v) == Compressor end
local function isDecompressor(v) return getmetatable(v) == Decompressor end

local FLUSH_NONE, FLUSH_SYNC, FLUSH_FINISH = 0, 1, 2

local function encode(self, chunk, mode, fname)
  if not isCompressor(self) then args.badSelf(fname, "Compressor", self, 3) end
  if chunk == nil then
    chunk = ""
  elseif type(chunk) ~= "string" then
    args.fail(1, fname, "string", chunk, 3)
  end
  if self._finished then error("'" .. fname .. "' called after finish", 3) end
  if mode == FLUSH_FINISH then self._finished = true end
  local out, err = self._native:write(chunk, mode)
  if not out then error(err, 3) end  -- only when the library fails: out of memory
  return out
end

-- c:write(chunk) -> the compressed bytes ready so far (often "")
function Compressor:write(chunk)
  local out = encode(self, chunk, FLUSH_NONE, "write")  -- not a tail call: errors blame the caller
  return out
end
-- c:flush([chunk]) -> everything written so far, decodable now (zlib's sync flush, Brotli's flush)
function Compressor:flush(chunk)
  local out = encode(self, chunk, FLUSH_SYNC, "flush")  -- not a tail call: errors blame the caller
  return out
end
-- c:finish([chunk]) -> the rest of the stream
function Compressor:finish(chunk)
  local out = encode(self, chunk, FLUSH_FINISH, "finish")  -- not a tail call: errors blame the caller
  return out
end

-- compressor{format = "gzip"|"deflate"|"raw"|"br", level, lgwin}
-- level: zlib 0-9 (default 6); Brotli's quality 0-11 (default 11).
function zlib.compressor(opts)
  opts = args.options(1, "zlib.compressor", opts, COMPRESSOR_OPTS)
  local format = opts.format or "gzip"
  local n
  if format == "br" then
    local quality, lgwin = brotliParams(1, "zlib.compressor", opts.level or opts.quality, opts.lgwin)
    n = nencoder("br", quality, lgwin)
  elseif ZLIB_FORMATS[format] then
    n = nencoder(format, zlibLevel(1, "zlib.compressor", opts.level))
  else
    args.error(1, "zlib.compressor", 'format must be "gzip", "deflate", "raw" or "br"', 2)
  end
  if not n then error("zlib.compressor: the codec could not start (out of memory)", 2) end
  return setmetatable({format = format, _native = n}, Compressor)
end

-- d:write(chunk) -> the decompressed bytes so far | nil, err
function Decompressor:write(chunk)
  if not isDecompressor(self) then args.badSelf("write", "Decompressor", self, 2) end
  if type(chunk) ~= "string" then args.fail(1, "write", "string", chunk, 2) end
  return self._native:write(chunk)
end

-- d:finish() -> the rest | nil, err (BadData when the stream is incomplete)
function Decompressor:finish()
  if not isDecompressor(self) then args.badSelf("finish", "Decompressor", self, 2) end
  return self._native:finish()
end

-- d:totalOut() -> bytes decompressed so far
function Decompressor:totalOut()
  if not isDecompressor(self) then args.badSelf("totalOut", "Decompressor", self, 2) end
  return self._native:totalOut()
end

-- decompressor{format = "gzip"|"deflate"|"raw"|"br"|"auto", maxOutput}
-- maxOutput bounds the whole stream (default: none).
function zlib.decompressor(opts)
  opts = args.options(1, "zlib.decompressor", opts, DECOMPRESSOR_OPTS)
  local format = opts.format or "gzip"
  if not (ZLIB_FORMATS[format] or format == "br" or format == "auto") then
    args.error(1, "zlib.decompressor", 'format must be "gzip", "deflate", "raw", "br" or "auto"', 2)
  end
  local max = maxOutput(1, "zlib.decompressor", opts.maxOutput, huge)
  return setmetatable({format = format, maxOutput = max, _native = ndecoder(format, max)}, Decompressor)
end

return zlib
