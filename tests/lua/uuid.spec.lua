-- uuid: v4 and v7 (RFC 9562) layout, v7 ordering, parse/format/valid, and
-- Python's uuid module as a peer in both directions.
local uuid = require("uuid")
local hex = require("hex")
local task = require("task")
local helpers = require("helpers")

local PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local python = helpers.python

local raisesMatching = helpers.raisesMatching

local function nowMs()
  local s, us = require("uv").gettimeofday()
  return s * 1000 + math.floor(us / 1000)
end

-- The variant is RFC 9562's (binary 10): the first digit of the 4th group is 8, 9, a or b.
local function variantOk(s) return s:sub(20, 20):match("^[89ab]$") ~= nil end

describe("uuid.v4", function()
  it("is lowercase 8-4-4-4-12 hex with version 4 and the RFC variant", function()
    for _ = 1, 200 do
      local id = uuid.v4()
      assert.match(id, PATTERN)
      assert.equal(id, id:lower())
      assert.equal(id:sub(15, 15), "4")
      assert.truthy(variantOk(id), id)
      assert.equal(uuid.version(id), 4)
    end
  end)

  it("draws its other 122 bits at random: no repeats, every bit varies", function()
    local seen, orAll, andAll = {}, {}, {}
    for i = 1, 16 do orAll[i], andAll[i] = 0, 255 end
    for _ = 1, 5000 do
      local id = uuid.v4()
      assert.isNil(seen[id], "repeated " .. id)
      seen[id] = true
      local b = uuid.parse(id)
      for i = 1, 16 do
        orAll[i] = bit.bor(orAll[i], b:byte(i))
        andAll[i] = bit.band(andAll[i], b:byte(i))
      end
    end
    -- Fixed bits: the version nibble of byte 7 and the variant bits of byte 9.
    for i = 1, 16 do
      local fixedOnes = (i == 7 and 0x40) or (i == 9 and 0x80) or 0
      local fixedMask = (i == 7 and 0xF0) or (i == 9 and 0xC0) or 0
      assert.equal(bit.band(orAll[i], bit.bnot(fixedMask)), bit.band(0xFF, bit.bnot(fixedMask)), "byte " .. i)
      assert.equal(andAll[i], fixedOnes, "byte " .. i)
    end
  end)
end)

describe("uuid.v7", function()
  it("carries the Unix time in milliseconds, version 7 and the RFC variant", function()
    local before = nowMs()
    local id = uuid.v7()
    local after = nowMs()
    assert.match(id, PATTERN)
    assert.equal(id:sub(15, 15), "7")
    assert.truthy(variantOk(id), id)
    local ms = uuid.timestamp(id)
    assert.truthy(ms >= before - 1 and ms <= after + 1, ("timestamp %d not in [%d, %d]"):format(ms, before, after))
  end)

  it("is strictly increasing, also within one millisecond (the 12-bit counter)", function()
    local ids = {}
    for i = 1, 20000 do ids[i] = uuid.v7() end
    local sameMs = 0
    for i = 2, #ids do
      assert.truthy(ids[i - 1] < ids[i], ids[i - 1] .. " !< " .. ids[i])
      if ids[i]:sub(1, 13) == ids[i - 1]:sub(1, 13) then sameMs = sameMs + 1 end
    end
    assert.truthy(sameMs > 100, "the test never made two ids in one millisecond")
    -- Bytes sort like the text.
    assert.truthy(uuid.parse(ids[1]) < uuid.parse(ids[#ids]))
  end)

  it("is ordered across threads: one clock for the whole process", function()
    local a = uuid.v7()
    local b = task.work(function() return require("uuid").v7() end)
    local c = uuid.v7()
    assert.truthy(a < b and b < c, table.concat({a, b, c}, " "))
  end)
end)

describe("uuid.parse, format, valid, version, timestamp", function()
  it("parse gives the 16 bytes, format gives the text back", function()
    local text = "123e4567-e89b-12d3-a456-426614174000"
    local bytes = assert(uuid.parse(text))
    assert.equal(#bytes, 16)
    assert.equal(hex.encode(bytes), "123e4567e89b12d3a456426614174000")
    assert.equal(uuid.format(bytes), text)
    assert.equal(uuid.parse(text:upper()), bytes)
    assert.equal(uuid.format(string.rep("\0", 16)), "00000000-0000-0000-0000-000000000000")
    assert.equal(uuid.format(string.rep("\255", 16)), "ffffffff-ffff-ffff-ffff-ffffffffffff")
    for _ = 1, 100 do
      local id = uuid.v4()
      assert.equal(uuid.format(uuid.parse(id)), id)
    end
  end)

  it("parse returns nil, err (BadUuid) for anything but the 36-character form", function()
    for _, bad in ipairs({
      "", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-4266141740000",
      "123e4567e89b12d3a456426614174000", "{123e4567-e89b-12d3-a456-426614174000}",
      "123e4567-e89b-12d3-a456_426614174000", "123e4567-e89b-12d3-a456-42661417400g",
      "123e4567-e89b-12d3-a4-56426614174000", " 123e4567-e89b-12d3-a456-42661417400",
    }) do
      local v, err = uuid.parse(bad)
      assert.isNil(v, bad)
      assert.equal(err.code, "BadUuid")
      assert.falsy(uuid.valid(bad), bad)
      assert.isNil(uuid.version(bad))
    end
    assert.falsy(uuid.valid(nil))
    assert.falsy(uuid.valid(42))
    assert.truthy(uuid.valid("123E4567-E89B-12D3-A456-426614174000"))
  end)

  it("version reads the version digit, timestamp only for v7", function()
    assert.equal(uuid.version("123e4567-e89b-12d3-a456-426614174000"), 1)
    assert.equal(uuid.version(uuid.v7()), 7)
    assert.isNil(uuid.timestamp(uuid.v4()))
    -- RFC 9562 appendix A.6's example: 017F22E2-79B0-7CC3-98C4-DC0C0C07398F is 2022-02-22 19:22:22 UTC.
    assert.equal(uuid.timestamp("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"), 1645557742000)
  end)

  it("raises a bad argument naming the function", function()
    raisesMatching("bad argument #1 to 'uuid.parse' %(string expected, got nil%)", uuid.parse)
    raisesMatching("bad argument #1 to 'uuid.format' %(string expected, got number%)", uuid.format, 1)
    raisesMatching("bad argument #1 to 'uuid.format' %(16 bytes expected, got 15%)", uuid.format, string.rep("x", 15))
  end)
end)

describe("uuid with Python's uuid module", function()
  it("Python parses Evo's v4 and v7 and sees their version, variant and time", function()
    local ids = {}
    for i = 1, 50 do ids[#ids + 1] = uuid.v4() end
    for i = 1, 50 do ids[#ids + 1] = uuid.v7() end
    local out = python([[
import sys, uuid
for line in sys.stdin:
    u = uuid.UUID(line.strip())
    assert u.variant == uuid.RFC_4122, u
    ms = u.int >> 80
    print(u.version, str(u), u.bytes.hex(), ms)
]], table.concat(ids, "\n") .. "\n")
    local lines = helpers.lines(out)
    assert.equal(#lines, #ids)
    for i, id in ipairs(ids) do
      local version, text, bytes, ms = lines[i]:match("^(%d+) (%S+) (%x+) (%d+)$")
      assert.equal(tonumber(version), i <= 50 and 4 or 7, id)
      assert.equal(text, id)
      assert.equal(bytes, hex.encode(uuid.parse(id)))
      if i > 50 then assert.equal(tonumber(ms), uuid.timestamp(id)) end
    end
  end)

  it("Evo parses Python's uuid1, uuid3, uuid4 and uuid5", function()
    local out = python([[
import uuid
for u in [uuid.uuid1(), uuid.uuid3(uuid.NAMESPACE_DNS, "evo"), uuid.uuid4(), uuid.uuid5(uuid.NAMESPACE_URL, "x")]:
    print(u.version, str(u).upper(), u.bytes.hex())
]])
    for _, line in ipairs(helpers.lines(out)) do
      local version, text, bytes = line:match("^(%d+) (%S+) (%x+)$")
      assert.truthy(uuid.valid(text), text)
      assert.equal(uuid.version(text), tonumber(version))
      assert.equal(hex.encode(uuid.parse(text)), bytes)
      assert.equal(uuid.format(uuid.parse(text)), text:lower())
    end
  end)
end)
