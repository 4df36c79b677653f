-- base64 and hex: RFC 4648 known answers, strictness, bad input, and
-- Python's base64/binascii as a peer.
local base64 = require("base64")
local hex = require("hex")
local crypto = require("crypto")
local task = require("task")
local helpers = require("helpers")


local python = helpers.python

local raisesMatching = helpers.raisesMatching

-- Asserts decode(text) fails with `code` at `position`.
local function rejects(decode, text, code, position, pattern)
  local v, err = decode(text)
  assert.isNil(v, "decoded " .. ("%q"):format(text))
  assert.equal(err.code, code, ("%q"):format(text))
  if position then assert.equal(err.position, position, ("%q: %s"):format(text, tostring(err))) end
  if pattern then assert.match(err.message, pattern) end
  return err
end

-- RFC 4648 §10.
local VECTORS = {
  {"", "", ""},
  {"f", "Zg==", "66"},
  {"fo", "Zm8=", "666f"},
  {"foo", "Zm9v", "666f6f"},
  {"foob", "Zm9vYg==", "666f6f62"},
  {"fooba", "Zm9vYmE=", "666f6f6261"},
  {"foobar", "Zm9vYmFy", "666f6f626172"},
}

describe("base64", function()
  it("encodes and decodes the RFC 4648 test vectors", function()
    for _, v in ipairs(VECTORS) do
      assert.equal(base64.encode(v[1]), v[2])
      assert.equal(base64.decode(v[2]), v[1])
      local url = v[2]:gsub("=", "")
      assert.equal(base64.encodeUrl(v[1]), url)
      assert.equal(base64.decodeUrl(url), v[1])
      assert.equal(base64.decodeUrl(v[2]), v[1], "decodeUrl takes padding too")
    end
  end)

  it("uses '+' '/' in the standard alphabet and '-' '_' in the URL one (RFC 4648 §5)", function()
    local bytes = "\251\255\191\254"
    assert.equal(base64.encode(bytes), "+/+//g==")
    assert.equal(base64.encodeUrl(bytes), "-_-__g")
    assert.equal(base64.decode("+/+//g=="), bytes)
    assert.equal(base64.decodeUrl("-_-__g"), bytes)
    rejects(base64.decode, "-_-__g", "BadBase64", 1, "invalid base64 character '%-'")
    rejects(base64.decodeUrl, "+/+//g", "BadBase64", 1, "invalid base64 character '%+'")
  end)

  it("round-trips every byte value and random data of every small length", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert.equal(base64.decode(base64.encode(all)), all)
    assert.equal(base64.decodeUrl(base64.encodeUrl(all)), all)
    for n = 0, 200 do
      local s = crypto.randomBytes(n)
      local e = base64.encode(s)
      assert.equal(#e, math.ceil(n / 3) * 4)
      assert.equal(base64.decode(e), s)
      assert.equal(base64.decodeUrl(base64.encodeUrl(s)), s)
    end
  end)

  it("decode skips whitespace (MIME, PEM) and accepts padding or none", function()
    assert.equal(base64.decode("Zm9v\r\nYmFy\n"), "foobar")
    assert.equal(base64.decode(" Zm 9v\tYg = = "), "foob")
    assert.equal(base64.decode("Zm9vYg"), "foob")
    assert.equal(base64.decode("Zm9vYmE"), "fooba")
    assert.equal(base64.decode("\n"), "")
    local pem = base64.encode(string.rep("x", 100)):gsub(("."):rep(64), "%0\n")
    assert.equal(base64.decode(pem), string.rep("x", 100))
  end)

  it("returns nil, err (BadBase64, with the position) for bad input", function()
    rejects(base64.decode, "Zm9v!", "BadBase64", 5, "invalid base64 character '!' at position 5")
    rejects(base64.decode, "Zm9vY", "BadBase64", 5, "truncated base64")
    rejects(base64.decode, "Zg=", "BadBase64", nil, "bad base64 padding")
    rejects(base64.decode, "Zg===", "BadBase64", 5, "bad base64 padding")
    rejects(base64.decode, "Zm=9", "BadBase64", 4, "bad base64 padding")
    rejects(base64.decode, "Zm9v====", "BadBase64", 5, "bad base64 padding")
    rejects(base64.decode, "=", "BadBase64", 1)
    rejects(base64.decode, "Zm9v\0", "BadBase64", 5, "byte 0x00")
    rejects(base64.decode, "Zm9v\128", "BadBase64", 5, "invalid base64 byte 0x80 at position 5")
    rejects(base64.decodeUrl, "Zm9v Zg", "BadBase64", 5, "' '")
    local _, err = base64.decode("a$==")
    assert.equal(tostring(err), "BadBase64: invalid base64 character '$' at position 2")
  end)

  it("raises a bad argument naming the function for non-strings", function()
    raisesMatching("bad argument #1 to 'base64.encode' %(string expected, got nil%)", base64.encode)
    raisesMatching("bad argument #1 to 'base64.decode' %(string expected, got number%)", base64.decode, 5)
    raisesMatching("bad argument #1 to 'base64.encodeUrl' %(string expected, got table%)", base64.encodeUrl, {})
    raisesMatching("bad argument #1 to 'base64.decodeUrl' %(string expected, got boolean%)", base64.decodeUrl, true)
  end)

  it("is large-input safe", function()
    local big = crypto.randomBytes(3 * 1024 * 1024 + 1)
    local e = base64.encode(big)
    assert.equal(base64.decode(e), big)
  end)
end)

describe("hex", function()
  it("encodes the RFC 4648 base16 vectors in lowercase and decodes either case", function()
    for _, v in ipairs(VECTORS) do
      assert.equal(hex.encode(v[1]), v[3])
      assert.equal(hex.decode(v[3]), v[1])
      assert.equal(hex.decode(v[3]:upper()), v[1])
    end
    assert.equal(hex.encode("\0\1\127\128\255"), "00017f80ff")
    assert.equal(hex.decode("aBcDeF"), "\171\205\239")
  end)

  it("round-trips every byte value", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert.equal(hex.decode(hex.encode(all)), all)
  end)

  it("returns nil, err (BadHex) for odd lengths and non-hex digits", function()
    rejects(hex.decode, "abc", "BadHex", 4, "truncated hex input")
    rejects(hex.decode, "0g", "BadHex", 2, "invalid hex character 'g' at position 2")
    rejects(hex.decode, "zz", "BadHex", 1)
    rejects(hex.decode, "00 1", "BadHex", 3, "' '")
    rejects(hex.decode, "0x10", "BadHex", 2)
  end)

  it("raises a bad argument naming the function for non-strings", function()
    raisesMatching("bad argument #1 to 'hex.encode' %(string expected, got nil%)", hex.encode)
    raisesMatching("bad argument #1 to 'hex.decode' %(string expected, got number%)", hex.decode, 12)
  end)
end)

describe("base64 and hex with Python's base64 and binascii", function()
  it("produce and consume the same text for random data", function()
    local inputs, lines = {}, {}
    for i = 1, 60 do
      inputs[i] = crypto.randomBytes(crypto.randomInt(0, 700))
      lines[i] = hex.encode(inputs[i])
    end
    local out = python([[
import sys, base64, binascii
for line in sys.stdin:
    b = binascii.unhexlify(line.strip())
    print(base64.b64encode(b).decode(), base64.urlsafe_b64encode(b).decode().rstrip("=") or "-",
          binascii.hexlify(b).decode() or "-")
]], table.concat(lines, "\n") .. "\n")
    local answers = helpers.lines(out)
    assert.equal(#answers, #inputs)
    for i, s in ipairs(inputs) do
      local std, url, hx = answers[i]:match("^(%S*) (%S+) (%S+)$")
      if url == "-" then url = "" end
      if hx == "-" then hx = "" end
      assert.equal(base64.encode(s), std)
      assert.equal(base64.encodeUrl(s), url)
      assert.equal(hex.encode(s), hx)
      assert.equal(base64.decode(std), s)
      assert.equal(base64.decodeUrl(url), s)
    end
    -- and the other way: Python decodes what Evo encoded
    local encoded = {}
    for i, s in ipairs(inputs) do encoded[i] = base64.encode(s) .. " " .. base64.encodeUrl(s) .. "." end
    local back = helpers.lines(python([[
import sys, base64, binascii
for line in sys.stdin:
    std, url = line.rstrip("\n").rstrip(".").split(" ")
    a = base64.b64decode(std, validate=True)
    b = base64.urlsafe_b64decode(url + "=" * (-len(url) % 4))
    assert a == b
    print(binascii.hexlify(a).decode())
]], table.concat(encoded, "\n") .. "\n"))
    for i, s in ipairs(inputs) do assert.equal(back[i] or "", hex.encode(s)) end
  end)
end)

describe("in worker states", function()
  it("base64 and hex load and work in task.work", function()
    local a, b, c = task.work(function()
      local b64, hx = require("base64"), require("hex")
      return b64.encode("foobar"), hx.encode("foobar"), b64.decodeUrl("-_8")
    end)
    assert.equal(a, "Zm9vYmFy")
    assert.equal(b, "666f6f626172")
    assert.equal(c, "\251\255")
  end)
end)
