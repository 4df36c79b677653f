-- zlib: known answers, round trips, interop with Python's gzip, zlib and
-- brotli (Debian's python3-brotli) both ways, streaming in odd pieces,
-- corrupt input, decompression bombs, bad arguments, workers.
local zlib = require("zlib")
local process = require("process")
local helpers = require("helpers")
local uv = require("uv")

local PY = "/usr/bin/python3"  -- Debian's, with python3-brotli
local rep, char, byte, concat = string.rep, string.char, string.byte, table.concat

-- Deterministic pseudo-random bytes (incompressible enough).
local function randomBytes(n, seed)
  local x = seed or 12345
  local t = {}
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = char(math.floor(x / 65536) % 256)
  end
  return concat(t)
end

local TEXT = rep("The quick brown fox jumps over the lazy dog; évo says hello. ", 4000) .. "end\n"
local RANDOM = randomBytes(200 * 1024)

local function readFile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Feeds data to a streaming object in pieces of the given sizes (cycled).
local function pieces(data, sizes, fn)
  local out, i, k = {}, 1, 1
  while i <= #data do
    local n = sizes[k]
    k = k % #sizes + 1
    out[#out + 1] = assert(fn(data:sub(i, i + n - 1)))
    i = i + n
  end
  return concat(out)
end

local ODD = {1, 7, 4093, 13, 65537, 2, 999}

local function streamCompress(format, data, opts)
  opts = opts or {}
  opts.format = format
  local c = zlib.compressor(opts)
  local k = 0
  local body = pieces(data, ODD, function(p)
    k = k + 1
    if k % 5 == 0 then return c:flush(p) end
    return c:write(p)
  end)
  return body .. c:finish()
end

local function streamDecompress(format, data, opts)
  opts = opts or {}
  opts.format = format
  local d = zlib.decompressor(opts)
  local out = {}
  local i, k = 1, 1
  while i <= #data do
    local n = ODD[k]
    k = k % #ODD + 1
    local part, err = d:write(data:sub(i, i + n - 1))
    if not part then return nil, err end
    out[#out + 1] = part
    i = i + n
  end
  local rest, err = d:finish()
  if not rest then return nil, err end
  return concat(out) .. rest
end

local ONESHOT = {
  gzip = {zlib.gzip, zlib.gunzip},
  deflate = {zlib.deflate, zlib.inflate},
  raw = {zlib.deflateRaw, zlib.inflateRaw},
  br = {function(s, o) return zlib.brotliCompress(s, o and {quality = o.level}) end, zlib.brotliDecompress},
}
local FORMATS = {"gzip", "deflate", "raw", "br"}

describe("zlib known answers", function()
  it("computes CRC-32 and writes the formats' headers", function()
    assert.equal(zlib.crc32("123456789"), 0xCBF43926)
    assert.equal(zlib.crc32(""), 0)
    assert.equal(zlib.crc32("6789", zlib.crc32("12345")), 0xCBF43926)
    local gz = zlib.gzip("hello")
    assert.equal(gz:sub(1, 3), "\31\139\8")  -- magic, DEFLATE
    -- gzip's trailer: CRC-32 and length, little-endian
    local b1, b2, b3, b4 = byte(gz, -8, -5)
    assert.equal(b1 + b2 * 256 + b3 * 65536 + b4 * 16777216, zlib.crc32("hello"))
    assert.equal(gz:sub(-4), "\5\0\0\0")
    local zz = zlib.deflate("hello")
    assert.equal((byte(zz, 1) * 256 + byte(zz, 2)) % 31, 0)
    assert.equal(byte(zz, 1) % 16, 8)
  end)

  it("decodes fixed streams made by other tools", function()
    -- printf 'hello' | gzip -n | xxd; zlib.compress(b'hello'); brotli.compress(b'hello')
    assert.equal(zlib.gunzip("\31\139\8\0\0\0\0\0\0\3\203\72\205\201\201\7\0\134\166\16\54\5\0\0\0"), "hello")
    assert.equal(zlib.inflate("x\156\203H\205\201\201\7\0\6,\2\21"), "hello")
    assert.equal(zlib.brotliDecompress("\11\2\128hello\3"), "hello")
    assert.equal(zlib.inflateRaw("\3\0"), "")
  end)
end)

describe("zlib round trips", function()
  it("round-trips text, random and empty data in every format and level", function()
    for _, f in ipairs(FORMATS) do
      local comp, decomp = ONESHOT[f][1], ONESHOT[f][2]
      for _, data in ipairs({"", "a", TEXT, RANDOM}) do
        for _, level in ipairs(f == "br" and {0, 5, 11} or {0, 1, 6, 9}) do
          if not (f == "br" and level == 11 and #data > 100000) then
            local packed = comp(data, {level = level})
            assert.equal(decomp(packed), data, f .. " level " .. level)
            if #data > 1000 and level > 0 and data == TEXT then
              assert(#packed < #data / 10, f .. " compresses text")
            end
          end
        end
      end
    end
  end)

  it("streams in odd pieces with flushes, and one-shot decodes the stream", function()
    for _, f in ipairs(FORMATS) do
      for _, data in ipairs({TEXT, RANDOM}) do
        local packed = streamCompress(f, data, {level = f == "br" and 5 or nil})
        assert.equal(ONESHOT[f][2](packed), data, f)
        assert.equal(streamDecompress(f, packed), data, f)
      end
    end
  end)

  it("makes a flushed prefix decodable at once", function()
    for _, f in ipairs(FORMATS) do
      local c = zlib.compressor({format = f})
      local d = zlib.decompressor({format = f})
      assert.equal(d:write(c:write("first part ") .. c:flush()), "first part ", f)
      assert.equal(d:write(c:flush("second")), "second", f)
      assert.equal(d:write(c:finish()), "", f)
      assert.equal(d:finish(), "", f)
    end
  end)

  it("unzip and the auto decompressor take gzip, zlib and raw", function()
    for _, f in ipairs({"gzip", "deflate", "raw"}) do
      local packed = ONESHOT[f][1](TEXT)
      assert.equal(zlib.unzip(packed), TEXT, f)
      assert.equal(streamDecompress("auto", packed), TEXT, f)
      -- one byte at a time: the header is told apart across writes
      local d = zlib.decompressor({format = "auto"})
      local out = {}
      for i = 1, 64 do out[i] = assert(d:write(packed:sub(i, i))) end
      out[#out + 1] = assert(d:write(packed:sub(65)))
      out[#out + 1] = assert(d:finish())
      assert.equal(concat(out), TEXT, f .. " byte by byte")
    end
  end)

  it("decodes several gzip members as one stream", function()
    local two = zlib.gzip("one ") .. zlib.gzip("") .. zlib.gzip("two")
    assert.equal(zlib.gunzip(two), "one two")
    assert.equal(streamDecompress("gzip", two), "one two")
    assert.equal(zlib.unzip(two), "one two")
  end)
end)

describe("zlib with Python", function()
  local dir
  before(function()
    dir = helpers.tempDir("evo-zlib-")
    helpers.writeFile(dir .. "/text", TEXT)
    helpers.writeFile(dir .. "/random", RANDOM)
  end)

  it("decodes what Python's gzip, zlib and brotli made", function()
    local script = [[
import gzip, zlib, brotli, sys
d = sys.argv[1]
for name in ("text", "random"):
    data = open(f"{d}/{name}", "rb").read()
    open(f"{d}/{name}.py.gzip", "wb").write(gzip.compress(data, 9))
    open(f"{d}/{name}.py.deflate", "wb").write(zlib.compress(data, 1))
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    open(f"{d}/{name}.py.raw", "wb").write(c.compress(data) + c.flush())
    open(f"{d}/{name}.py.br", "wb").write(brotli.compress(data, quality=5))
    half = len(data) // 2
    open(f"{d}/{name}.py.multi", "wb").write(gzip.compress(data[:half]) + gzip.compress(data[half:]))
]]
    local r = helpers.spawn(PY, {"-c", script, dir})
    assert.equal(r.code, 0, r.stderr)
    for _, name in ipairs({"text", "random"}) do
      local original = name == "text" and TEXT or RANDOM
      for _, f in ipairs(FORMATS) do
        local packed = readFile(dir .. "/" .. name .. ".py." .. f)
        assert.equal(ONESHOT[f][2](packed), original, name .. " " .. f)
        assert.equal(streamDecompress(f, packed), original, name .. " " .. f .. " streamed")
      end
      local multi = readFile(dir .. "/" .. name .. ".py.multi")
      assert.equal(zlib.gunzip(multi), original)
      assert.equal(streamDecompress("gzip", multi), original)
    end
  end, {timeout = 20})

  it("makes what Python's gzip, zlib and brotli decode", function()
    local names = {}
    for _, name in ipairs({"text", "random"}) do
      local original = name == "text" and TEXT or RANDOM
      for _, f in ipairs(FORMATS) do
        local a = dir .. "/" .. name .. ".evo." .. f
        helpers.writeFile(a, ONESHOT[f][1](original))
        helpers.writeFile(a .. ".stream", streamCompress(f, original))
        names[#names + 1] = name .. ".evo." .. f
        names[#names + 1] = name .. ".evo." .. f .. ".stream"
      end
    end
    local script = [[
import gzip, zlib, brotli, sys
d = sys.argv[1]
for n in sys.argv[2:]:
    packed = open(f"{d}/{n}", "rb").read()
    original = open(f"{d}/{n.split('.')[0]}", "rb").read()
    kind = n.split('.')[2]
    if kind == "gzip": out = gzip.decompress(packed)
    elif kind == "deflate": out = zlib.decompress(packed)
    elif kind == "raw": out = zlib.decompress(packed, -15)
    else: out = brotli.decompress(packed)
    print(n, "ok" if out == original else "DIFFERENT")
]]
    local r = helpers.spawn(PY, {"-c", script, dir, unpack(names)})
    assert.equal(r.code, 0, r.stderr)
    local lines = helpers.lines(r.stdout)
    assert.equal(#lines, #names)
    for i, n in ipairs(names) do assert.equal(lines[i], n .. " ok") end
  end, {timeout = 20})

  it("decodes Node's Brotli and Node decodes Evo's", function()
    local packed = zlib.brotliCompress(TEXT, {quality = 4})
    helpers.writeFile(dir .. "/evo.br", packed)
    local r = helpers.spawn("node", {"-e", [[
const z = require('zlib'), fs = require('fs'), d = process.argv[1];
const text = fs.readFileSync(d + '/text');
process.stdout.write(z.brotliDecompressSync(fs.readFileSync(d + '/evo.br')).equals(text) ? 'ok' : 'DIFFERENT');
fs.writeFileSync(d + '/node.br', z.brotliCompressSync(text));
]], dir})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "ok")
    assert.equal(zlib.brotliDecompress(readFile(dir .. "/node.br")), TEXT)
  end, {timeout = 20})
end)

describe("zlib on bad input", function()
  it("returns BadData for corrupt, truncated and trailing data", function()
    local gz = zlib.gzip(TEXT)
    local flipped = gz:sub(1, 100) .. char((byte(gz, 101) + 1) % 256) .. gz:sub(102)
    local badCrc = gz:sub(1, -9) .. char((byte(gz, -8) + 1) % 256) .. gz:sub(-7)
    local cases = {
      {zlib.gunzip, ""},
      {zlib.gunzip, "not gzip at all"},
      {zlib.gunzip, gz:sub(1, -2)},
      {zlib.gunzip, gz:sub(1, 10)},
      {zlib.gunzip, badCrc},
      {zlib.gunzip, flipped},
      {zlib.gunzip, gz .. "garbage"},
      {zlib.inflate, zlib.deflate("x") .. "y"},
      {zlib.inflate, zlib.gzip("x")},
      {zlib.inflateRaw, "\255\255\255"},
      {zlib.brotliDecompress, ""},
      {zlib.brotliDecompress, "\255\255\255\255"},
      {zlib.brotliDecompress, zlib.brotliCompress(TEXT):sub(1, -5)},
      {zlib.brotliDecompress, zlib.brotliCompress("x") .. "y"},
      {zlib.unzip, "\31\139\8\0garbage"},
    }
    for i, c in ipairs(cases) do
      local out, err = c[1](c[2])
      assert.equal(out, nil, "case " .. i)
      assert.equal(err.code, "BadData", "case " .. i .. ": " .. tostring(err))
      assert(#err.message > 0)
    end
  end)

  it("returns BadData from a streaming decompressor, and keeps returning it", function()
    local d = zlib.decompressor({format = "gzip"})
    local out, err = d:write("garbage that is not gzip")
    assert.equal(out, nil)
    assert.equal(err.code, "BadData")
    local _, again = d:write(zlib.gzip("x"))
    assert.equal(again.code, "BadData")
    local t = zlib.decompressor({format = "deflate"})
    assert.equal(t:write(zlib.deflate(TEXT):sub(1, 50)) ~= nil, true)
    local rest, terr = t:finish()
    assert.equal(rest, nil)
    assert.equal(terr.code, "BadData")
    assert(terr.message:find("truncated"), terr.message)
  end)

  it("never crashes on random bytes", function()
    for seed = 1, 200 do
      local junk = randomBytes(seed * 3, seed)
      for _, fn in ipairs({zlib.gunzip, zlib.inflate, zlib.inflateRaw, zlib.unzip, zlib.brotliDecompress}) do
        local out, err = fn(junk, {maxOutput = 65536})
        assert(out ~= nil or err.code == "BadData" or err.code == "TooLarge", tostring(err))
      end
    end
  end)
end)

describe("zlib bombs", function()
  local MiB = 1024 * 1024

  it("refuses output past maxOutput exactly", function()
    local packed = zlib.gzip(rep("a", 1000))
    assert.equal(#zlib.gunzip(packed, {maxOutput = 1000}), 1000)
    local out, err = zlib.gunzip(packed, {maxOutput = 999})
    assert.equal(out, nil)
    assert.equal(err.code, "TooLarge")
    local d = zlib.decompressor({format = "br", maxOutput = 10})
    assert.equal(d:write(zlib.brotliCompress("0123456789")), "0123456789")
    assert.equal(d:finish(), "")
    d = zlib.decompressor({format = "raw", maxOutput = 5})
    local _, serr = d:write(zlib.deflateRaw("0123456789"))
    assert.equal(serr.code, "TooLarge")
  end)

  it("believes a gzip trailer's size only so far: one claiming 4 GiB sizes nothing", function()
    local packed = zlib.gzip(rep("x", 100000))
    local before = process.memoryUsage().rss
    for _ = 1, 20 do
      local out, err = zlib.gunzip(packed:sub(1, -5) .. "\255\255\255\255")
      assert.equal(out, nil)
      assert.equal(err.code, "BadData")  -- zlib checks the size it claims
    end
    assert.truthy(process.memoryUsage().rss - before < 64 * MiB, "a lying trailer made a large buffer")
    -- and a truthful one still gives the data back, in one piece
    assert.equal(zlib.gunzip(packed), rep("x", 100000))
  end)

  it("stops a 1 GB bomb quickly with little memory", function()
    -- 100 gzip members of 10 MiB of zeros: 1000 MiB out of ~1 MB in; also a
    -- 256 MiB zlib stream and a 256 MiB Brotli stream.
    local dir = helpers.tempDir("evo-bomb-")
    local c = zlib.compressor({format = "gzip", level = 9})
    local zeros = rep("\0", MiB)
    local parts = {}
    for _ = 1, 10 do parts[#parts + 1] = c:write(zeros) end
    parts[#parts + 1] = c:finish()
    local member = concat(parts)
    helpers.writeFile(dir .. "/bomb.gz", rep(member, 100))
    local d = zlib.compressor({format = "deflate", level = 9})
    local b = zlib.compressor({format = "br", level = 1})
    local zp, bp = {}, {}
    for _ = 1, 256 do
      zp[#zp + 1] = d:write(zeros)
      bp[#bp + 1] = b:write(zeros)
    end
    zp[#zp + 1], bp[#bp + 1] = d:finish(), b:finish()
    helpers.writeFile(dir .. "/bomb.zz", concat(zp))
    helpers.writeFile(dir .. "/bomb.br", concat(bp))
    assert(#member * 100 < 2 * MiB and #concat(bp) < MiB)
    -- In a fresh process, so its peak RSS (VmHWM) measures the decoding alone.
    local script = [[
      local zlib, uv = require("zlib"), require("uv")
      local function read(p) local f = io.open(p, "rb"); local s = f:read("*a"); f:close(); return s end
      local d = ...
      local t0 = uv.hrtime()
      local results = {}
      for _, case in ipairs({{zlib.gunzip, "bomb.gz"}, {zlib.inflate, "bomb.zz"}, {zlib.brotliDecompress, "bomb.br"}}) do
        local out, err = case[1](read(d .. "/" .. case[2]), {maxOutput = 1024 * 1024})
        results[#results + 1] = tostring(out) .. " " .. err.code
      end
      -- streamed: the bound is over the whole stream
      local s = zlib.decompressor({format = "gzip", maxOutput = 1024 * 1024})
      local data, got, serr = read(d .. "/bomb.gz"), 0, nil
      for i = 1, #data, 64 do
        local out, err = s:write(data:sub(i, i + 63))
        if not out then serr = err break end
        got = got + #out
      end
      results[#results + 1] = got .. " " .. tostring(serr and serr.code)
      local ms = (uv.hrtime() - t0) / 1e6
      local hwm = read("/proc/self/status"):match("VmHWM:%s*(%d+)")
      print(table.concat(results, ","), ms, hwm)
    ]]
    helpers.writeFile(dir .. "/bomb.lua", script)
    local r = helpers.runEvo({dir .. "/bomb.lua", dir})
    assert.equal(r.code, 0, r.stderr)
    local res, ms, hwm = r.stdout:match("^(.-)\t(%S+)\t(%d+)")
    local got
    res, got = res:match("^(.*),(%d+) TooLarge$")
    assert.equal(res, "nil TooLarge,nil TooLarge,nil TooLarge")
    assert(tonumber(got) > 0 and tonumber(got) <= 1024 * 1024, got)
    assert(tonumber(ms) < 1000, "took " .. ms .. " ms")
    assert(tonumber(hwm) < 64 * 1024, "peak RSS " .. hwm .. " KiB")
  end, {timeout = 30})
end)

describe("zlib arguments", function()
  it("names the function in argument errors", function()
    local cases = {
      {function() zlib.gzip(nil) end, "bad argument #1 to 'zlib.gzip' (string expected, got nil)"},
      {function() zlib.gzip("x", 5) end, "bad argument #2 to 'zlib.gzip' (table expected, got number)"},
      {function() zlib.gzip("x", {level = 10}) end, "bad argument #2 to 'zlib.gzip' (level must be an integer from -1 to 9)"},
      -- a misspelt option is refused, not ignored
      {function() zlib.gzip("x", {levle = 3}) end, "bad argument #2 to 'zlib.gzip' (unknown option 'levle')"},
      {function() zlib.gunzip("x", {maxoutput = 3}) end, "bad argument #2 to 'zlib.gunzip' (unknown option 'maxoutput')"},
      {function() zlib.compressor({formt = "br"}) end, "bad argument #1 to 'zlib.compressor' (unknown option 'formt')"},
      {function() zlib.decompressor({max = 1}) end, "bad argument #1 to 'zlib.decompressor' (unknown option 'max')"},
      {function() zlib.gunzip("x", {maxOutput = -1}) end,
        "bad argument #2 to 'zlib.gunzip' (maxOutput must be a non-negative integer)"},
      {function() zlib.brotliCompress("x", {quality = 12}) end,
        "bad argument #2 to 'zlib.brotliCompress' (quality must be an integer from 0 to 11)"},
      {function() zlib.brotliCompress("x", {lgwin = 9}) end,
        "bad argument #2 to 'zlib.brotliCompress' (lgwin must be an integer from 10 to 24)"},
      {function() zlib.compressor({format = "lz4"}) end,
        "bad argument #1 to 'zlib.compressor' (format must be \"gzip\", \"deflate\", \"raw\" or \"br\")"},
      {function() zlib.decompressor({format = "zip"}) end,
        "bad argument #1 to 'zlib.decompressor' (format must be \"gzip\", \"deflate\", \"raw\", \"br\" or \"auto\")"},
      {function() zlib.compressor({format = "gzip"}):write(5) end, "bad argument #1 to 'write' (string expected, got number)"},
      {function() zlib.decompressor():write({}) end, "bad argument #1 to 'write' (string expected, got table)"},
      {function() zlib.compressor().write("x") end, "bad argument #1 to 'write' (Compressor expected, got string)"},
      {function() zlib.decompressor().finish(1) end, "bad argument #1 to 'finish' (Decompressor expected, got number)"},
      {function() zlib.decompressor().totalOut(1) end, "bad argument #1 to 'totalOut' (Decompressor expected, got number)"},
      {function() zlib.crc32(1) end, "bad argument #1 to 'zlib.crc32' (string expected, got number)"},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.equal(ok, false)
      assert(tostring(err):find(c[2], 1, true), tostring(err))
      assert(tostring(err):find("zlib.spec.lua", 1, true), "blames the caller: " .. tostring(err))
    end
    local c = zlib.compressor()
    c:finish()
    local ok, err = pcall(c.write, c, "more")
    assert.equal(ok, false)
    assert(tostring(err):find("after finish", 1, true), tostring(err))
  end)

  it("works in a worker", function()
    local task = require("task")
    local out = task.work(function(s)
      local z = require("zlib")
      return z.gunzip(z.gzip(s)) .. z.brotliDecompress(z.brotliCompress(s))
    end, "worker ")
    assert.equal(out, "worker worker ")
  end)
end)
