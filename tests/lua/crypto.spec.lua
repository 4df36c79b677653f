-- crypto: known answers from the RFCs and NIST, bad input, Python's
-- hashlib/hmac as a peer, and the thread-pool KDFs in both Io modes,
-- inside and outside tasks, with cancellation.
local crypto = require("crypto")
local hex = require("hex")
local base64 = require("base64")
local task = require("task")
local uv = require("uv")
local helpers = require("helpers")

local evented = task.mode() == "evented"
local unhex = function(s) return assert(hex.decode(s)) end

local python = helpers.python

-- Runs evo with `args` (a script via -e); returns its stdout, asserting exit 0.
local function evo(args, timeout)
  local r = helpers.runEvo(args, {timeout = timeout or 30})
  assert.equal(r.code, 0, "evo failed: " .. r.stderr .. r.stdout)
  return r.stdout
end

local raisesMatching = helpers.raisesMatching

describe("crypto.hash", function()
  it("gives the FIPS 180 / 202 answers for \"abc\"", function()
    assert.equal(crypto.hash("sha256", "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert.equal(crypto.hash("sha1", "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d")
    assert.equal(crypto.hash("sha512", "abc"), "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
      .. "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    assert.equal(crypto.hash("sha3-256", "abc"), "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532")
  end)

  it("gives the known digests of the empty string for every required algorithm", function()
    local empty = {
      md5 = "d41d8cd98f00b204e9800998ecf8427e",
      sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709",
      sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      sha384 = "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
      sha512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        .. "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
      ["sha3-256"] = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
      blake2b512 = "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
        .. "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce",
    }
    for alg, digest in pairs(empty) do
      assert.equal(crypto.hash(alg, ""), digest, alg)
      local h = crypto.hasher(alg)
      assert.equal(h:digest(), digest, "hasher " .. alg)
    end
  end)

  it("lists its algorithms in crypto.hashes, and takes their names in any case", function()
    local have = {}
    for _, name in ipairs(crypto.hashes) do have[name] = true end
    for _, name in ipairs({"md5", "sha1", "sha256", "sha384", "sha512", "sha3-256", "blake2b512"}) do
      assert.truthy(have[name], name .. " missing from crypto.hashes")
    end
    assert.equal(crypto.hash("SHA256", "abc"), crypto.hash("sha256", "abc"))
    assert.equal(crypto.hash("Sha3-256", "abc"), crypto.hash("sha3-256", "abc"))
  end)

  it("encodes as hex (default), base64, base64url or raw bytes", function()
    local data = "The quick brown fox jumps over the lazy dog"
    local raw = crypto.hash("sha256", data, "raw")
    assert.equal(#raw, 32)
    assert.equal(crypto.hash("sha256", data), hex.encode(raw))
    assert.equal(crypto.hash("sha256", data, "hex"), hex.encode(raw))
    assert.equal(crypto.hash("sha256", data, "base64"), base64.encode(raw))
    assert.equal(crypto.hash("sha256", data, "base64url"), base64.encodeUrl(raw))
    assert.equal(crypto.hash("md5", data), "9e107d9d372bb6826bd81d3542a419d6")
  end)

  it("hashes binary data with zero bytes and large inputs", function()
    assert.equal(crypto.hash("sha256", "\0"), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    local big = string.rep("a", 1000000)
    assert.equal(crypto.hash("sha256", big), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  end)

  it("raises a bad argument naming crypto.hash for wrong types, unknown algorithms and encodings", function()
    raisesMatching("bad argument #2 to 'crypto.hash' %(string expected, got number%)", crypto.hash, "sha256", 5)
    raisesMatching("bad argument #2 to 'crypto.hash' %(string expected, got nil%)", crypto.hash, "sha256")
    raisesMatching("bad argument #1 to 'crypto.hash' %(string expected, got nil%)", crypto.hash, nil, "x")
    raisesMatching("bad argument #1 to 'crypto.hash' %(unknown hash algorithm 'sha999'; one of .*sha256",
      crypto.hash, "sha999", "x")
    raisesMatching("bad argument #3 to 'crypto.hash' %(unknown encoding 'latin1'", crypto.hash, "sha256", "x", "latin1")
    raisesMatching("bad argument #1 to 'crypto.hasher' %(unknown hash algorithm 'nope'", crypto.hasher, "nope")
  end)
end)

describe("crypto.hasher", function()
  it("matches the one-shot hash however the data is split, and chains update", function()
    local data = crypto.randomBytes(100000)
    for _, alg in ipairs({"md5", "sha1", "sha256", "sha512", "sha3-256", "blake2b512"}) do
      local h = crypto.hasher(alg)
      local i = 1
      while i <= #data do
        local n = crypto.randomInt(0, 5000)
        assert.equal(h:update(data:sub(i, i + n - 1)), h, "update returns the hasher")
        i = i + n
      end
      assert.equal(h:digest(), crypto.hash(alg, data), alg)
    end
    assert.equal(crypto.hasher("sha256"):update("a"):update("bc"):digest("base64"), crypto.hash("sha256", "abc", "base64"))
  end)

  it("is spent after digest (update and digest raise, as in Node); copy digests midway", function()
    local h = crypto.hasher("sha256"):update("ab")
    local c = h:copy()
    assert.equal(c:digest(), crypto.hash("sha256", "ab"))
    assert.equal(h:update("c"):digest(), crypto.hash("sha256", "abc"))
    raisesMatching("already digested", h.update, h, "more")
    raisesMatching("already digested", h.digest, h)
    raisesMatching("already digested", h.copy, h)
  end)

  it("checks its arguments and self", function()
    local h = crypto.hasher("sha1")
    raisesMatching("bad argument #1 to 'update' %(string expected, got number%)", h.update, h, 42)
    raisesMatching("bad argument #1 to 'update' %(Hasher expected, got string%)", h.update, "x", "y")
    raisesMatching("bad argument #1 to 'digest' %(unknown encoding 'x'", h.digest, h, "x")
    assert.equal(tostring(h), "Hasher")
  end)
end)

-- RFC 4231 §4: test cases 1-4, 6, 7 (5 is a truncated output).
local RFC4231 = {
  {key = string.rep("\11", 20), data = "Hi There",
   sha256 = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
   sha512 = "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
     .. "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
  {key = "Jefe", data = "what do ya want for nothing?",
   sha256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
   sha512 = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
     .. "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
  {key = string.rep("\170", 20), data = string.rep("\221", 50),
   sha256 = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
   sha512 = "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
     .. "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
  {key = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), data = string.rep("\205", 50),
   sha256 = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
   sha512 = "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
     .. "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
  {key = string.rep("\170", 131), data = "Test Using Larger Than Block-Size Key - Hash Key First",
   sha256 = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
   sha512 = "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
     .. "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
  {key = string.rep("\170", 131), data = "This is a test using a larger than block-size key and a larger "
     .. "than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
   sha256 = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
   sha512 = "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
     .. "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"},
}

describe("crypto.hmac", function()
  it("gives the RFC 4231 answers for HMAC-SHA256 and HMAC-SHA512", function()
    for i, case in ipairs(RFC4231) do
      assert.equal(crypto.hmac("sha256", case.key, case.data), case.sha256, "case " .. i .. " sha256")
      assert.equal(crypto.hmac("sha512", case.key, case.data), case.sha512, "case " .. i .. " sha512")
    end
  end)

  it("streams through crypto.hmacer with the same result", function()
    for i, case in ipairs(RFC4231) do
      local m = crypto.hmacer("sha512", case.key)
      for c in case.data:gmatch(".") do m:update(c) end
      assert.equal(m:digest(), case.sha512, "case " .. i)
    end
    local m = crypto.hmacer("sha256", "k"):update("ab")
    assert.equal(m:copy():update("c"):digest("raw"), crypto.hmac("sha256", "k", "abc", "raw"))
  end)

  it("checks its arguments", function()
    raisesMatching("bad argument #2 to 'crypto.hmac' %(string expected, got nil%)", crypto.hmac, "sha256", nil, "x")
    raisesMatching("bad argument #3 to 'crypto.hmac' %(string expected, got table%)", crypto.hmac, "sha256", "k", {})
    raisesMatching("bad argument #1 to 'crypto.hmac' %(unknown hash algorithm 'sha7'", crypto.hmac, "sha7", "k", "x")
    raisesMatching("bad argument #2 to 'crypto.hmacer' %(string expected, got number%)", crypto.hmacer, "sha1", 1)
  end)
end)

describe("randomness", function()
  it("randomBytes gives n unpredictable bytes", function()
    assert.equal(crypto.randomBytes(0), "")
    assert.equal(#crypto.randomBytes(1), 1)
    local a, b = crypto.randomBytes(4096), crypto.randomBytes(4096)
    assert.equal(#a, 4096)
    assert.notEqual(a, b)
    local seen = {}
    for i = 1, #a do seen[a:byte(i)] = true end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert.truthy(distinct > 240, "only " .. distinct .. " distinct byte values in 4096 random bytes")
  end)

  it("randomInt covers [a, b] with both ends included, uniformly", function()
    local counts = {}
    local N = 6000
    for _ = 1, N do
      local v = crypto.randomInt(1, 6)
      assert.truthy(v >= 1 and v <= 6 and v % 1 == 0, "out of range: " .. v)
      counts[v] = (counts[v] or 0) + 1
    end
    -- Chi-square with 5 degrees of freedom: 35.9 is the one-in-a-million
    -- tail (20.5, the 0.1% tail, failed make test once in a thousand runs);
    -- a lost end value (chi-square about 1200) is still far beyond it.
    local chi = 0
    for v = 1, 6 do chi = chi + ((counts[v] or 0) - N / 6) ^ 2 / (N / 6) end
    assert.truthy(chi < 35.9, "not uniform: chi-square " .. chi)
    assert.equal(crypto.randomInt(7, 7), 7)
    local neg = crypto.randomInt(-3, -1)
    assert.truthy(neg >= -3 and neg <= -1)
    local one = crypto.randomInt(3)  -- like math.random(3): 1..3
    assert.truthy(one >= 1 and one <= 3)
    local big = crypto.randomInt(0, 2 ^ 53 - 1)
    assert.truthy(big >= 0 and big < 2 ^ 53 and big % 1 == 0)
    local seen = {}
    for _ = 1, 200 do seen[crypto.randomInt(0, 1)] = true end
    assert.truthy(seen[0] and seen[1])
  end)

  it("checks randomBytes and randomInt arguments", function()
    raisesMatching("bad argument #1 to 'crypto.randomBytes' %(number expected, got string%)", crypto.randomBytes, "1")
    raisesMatching("bad argument #1 to 'crypto.randomBytes' %(length must be", crypto.randomBytes, -1)
    raisesMatching("bad argument #1 to 'crypto.randomBytes' %(length must be", crypto.randomBytes, 1.5)
    -- Past a LuaJIT string's limit (2^31 - 256): refused before 2 GB are drawn.
    raisesMatching("bad argument #1 to 'crypto.randomBytes' %(length must be", crypto.randomBytes, 2 ^ 31 - 1)
    raisesMatching("bad argument #2 to 'crypto.randomInt' %(the range is empty", crypto.randomInt, 5, 4)
    raisesMatching("bad argument #1 to 'crypto.randomInt' %(integer", crypto.randomInt, 0.5, 4)
    raisesMatching("bad argument #2 to 'crypto.randomInt' %(integer", crypto.randomInt, 1, "x")
    raisesMatching("bad argument #2 to 'crypto.randomInt' %(the range must be smaller", crypto.randomInt, -2 ^ 53, 2 ^ 53)
  end)

  it("timingSafeEqual compares in constant time; different lengths are simply unequal", function()
    assert.truthy(crypto.timingSafeEqual("", ""))
    assert.truthy(crypto.timingSafeEqual("abc\0d", "abc\0d"))
    assert.falsy(crypto.timingSafeEqual("abc\0d", "abc\0e"))
    assert.falsy(crypto.timingSafeEqual("abc", "abcd"))
    local mac = crypto.hmac("sha256", "k", "m", "raw")
    assert.truthy(crypto.timingSafeEqual(mac, crypto.hmac("sha256", "k", "m", "raw")))
    raisesMatching("bad argument #2 to 'crypto.timingSafeEqual' %(string expected, got nil%)",
      crypto.timingSafeEqual, "a")
  end)
end)

-- RFC 6070 (PBKDF2-HMAC-SHA1) without the 16777216-iteration case (seconds of CPU).
local RFC6070 = {
  {"password", "salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
  {"password", "salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
  {"password", "salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"},
  {"passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25,
   "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
  {"pass\0word", "sa\0lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"},
}

-- RFC 7914 §12 without the N = 2^20 case (1 GiB of memory).
local RFC7914 = {
  {"", "", {N = 16, r = 1, p = 1}, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
    .. "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"},
  {"password", "NaCl", {N = 1024, r = 8, p = 16}, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
    .. "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"},
  {"pleaseletmein", "SodiumChloride", {N = 16384, r = 8, p = 1},
   "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
    .. "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"},
}

-- A scrypt that takes about half a second on one core (p multiplies the
-- time, not the memory).
local SLOW = {N = 16384, r = 8, p = 10}

describe("crypto.pbkdf2 and crypto.scrypt", function()
  it("give the RFC 6070 PBKDF2-HMAC-SHA1 answers", function()
    for i, v in ipairs(RFC6070) do
      assert.equal(hex.encode(crypto.pbkdf2(v[1], v[2], v[3], v[4], "sha1")), v[5], "vector " .. i)
    end
  end)

  it("give the RFC 7914 scrypt answers", function()
    for i, v in ipairs(RFC7914) do
      assert.equal(hex.encode(crypto.scrypt(v[1], v[2], 64, v[3])), v[4], "vector " .. i)
    end
  end)

  it("default to PBKDF2-HMAC-SHA256 and scrypt N=16384 r=8 p=1, as Python computes them", function()
    local out = python([[
import hashlib
print(hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000, 32).hex())
print(hashlib.pbkdf2_hmac("sha512", b"pw", b"salt", 10, 100).hex())
print(hashlib.scrypt(b"pw", salt=b"salt", n=16384, r=8, p=1, dklen=32).hex())
print(hashlib.scrypt(b"pw", salt=b"salt", n=4096, r=4, p=2, dklen=17).hex())
]])
    local lines = helpers.lines(out)
    assert.equal(hex.encode(crypto.pbkdf2("pw", "salt", 1000, 32)), lines[1])
    assert.equal(hex.encode(crypto.pbkdf2("pw", "salt", 10, 100, "sha512")), lines[2])
    assert.equal(hex.encode(crypto.scrypt("pw", "salt", 32)), lines[3])
    assert.equal(hex.encode(crypto.scrypt("pw", "salt", 17, {N = 4096, r = 4, p = 2})), lines[4])
  end)

  it("check their arguments", function()
    raisesMatching("bad argument #1 to 'crypto.pbkdf2' %(string expected, got nil%)", crypto.pbkdf2)
    raisesMatching("bad argument #3 to 'crypto.pbkdf2' %(iterations must be", crypto.pbkdf2, "p", "s", 0, 16)
    raisesMatching("bad argument #4 to 'crypto.pbkdf2' %(length must be", crypto.pbkdf2, "p", "s", 1, 0)
    raisesMatching("bad argument #5 to 'crypto.pbkdf2' %(unknown hash algorithm 'sha0'", crypto.pbkdf2, "p", "s", 1, 8, "sha0")
    raisesMatching("bad argument #2 to 'crypto.scrypt' %(string expected, got number%)", crypto.scrypt, "p", 1, 16)
    raisesMatching("bad argument #4 to 'crypto.scrypt' %(opts.N must be a power of two", crypto.scrypt, "p", "s", 16, {N = 1000})
    raisesMatching("bad argument #4 to 'crypto.scrypt' %(opts.r must be a positive integer", crypto.scrypt, "p", "s", 16, {r = 0})
    -- a misspelt option is refused, not ignored (N, not n)
    raisesMatching("bad argument #4 to 'crypto.scrypt' %(unknown option 'n'%)", crypto.scrypt, "p", "s", 16, {n = 16})
    raisesMatching("bad argument #4 to 'crypto.scrypt' %(needs %d+ bytes", crypto.scrypt, "p", "s", 16, {N = 2 ^ 20})
    raisesMatching("bad argument #4 to 'crypto.scrypt' %(table expected, got string%)", crypto.scrypt, "p", "s", 16, "x")
  end)

  it("run on the thread pool: the loop keeps running while a task derives a key", function()
    if not evented then return end  -- one task at a time in the blocking mode
    local ticks = 0
    local ticker = task.async(function()
      for _ = 1, 1000 do
        task.sleep(0.005)
        ticks = ticks + 1
      end
    end)
    local t0 = task.now()
    local a = task.async(crypto.scrypt, "pw", "salt", 32, {N = 16384, r = 8, p = 4})
    local b = task.async(crypto.pbkdf2, "pw", "salt", 200000, 32)
    local ka, kb = a:await(), b:await()
    local elapsed = task.now() - t0
    ticker:cancel()
    assert.equal(#ka, 32)
    assert.equal(ka, crypto.scrypt("pw", "salt", 32, {N = 16384, r = 8, p = 4}))
    assert.equal(kb, crypto.pbkdf2("pw", "salt", 200000, 32))
    -- The ticker ran during the derivations (run on the loop's thread, they
    -- would have left it a tick or two).
    assert.truthy(elapsed > 0.1 and ticks >= 10, ("%d ticks in %.3f s"):format(ticks, elapsed))
  end)

  it("stop waiting when cancelled: task.timeout around a long scrypt returns Timeout", function()
    local t0 = task.now()
    local key, err = task.timeout(0.1, crypto.scrypt, "pw", "salt", 32, SLOW)
    assert.isNil(key)
    assert.equal(err.code, "Timeout")
    if evented then
      assert.truthy(task.now() - t0 < 0.5, "the timeout waited for the derivation: " .. (task.now() - t0) .. " s")
    end
    -- More cancelled than the pool has threads: some are dequeued, some run on and are dropped.
    if evented then
      local futures = {}
      for i = 1, 6 do futures[i] = task.async(crypto.scrypt, "pw", "salt" .. i, 32, {N = 16384, r = 8, p = 4}) end
      task.sleep(0.05)
      for _, f in ipairs(futures) do f:cancel() end
    end
    -- The process is healthy: the next derivations give the right keys.
    local v = RFC7914[3]
    assert.equal(hex.encode(crypto.scrypt(v[1], v[2], 64, v[3])), v[4])
    assert.equal(hex.encode(crypto.pbkdf2("password", "salt", 2, 20, "sha1")), RFC6070[2][5])
  end, {timeout = 60})

  it("work in both Io modes, in and outside tasks, and in task.work", function()
    local script = [[
      local crypto, hex, task, uv = require("crypto"), require("hex"), require("task"), require("uv")
      local function show(tag, key) print(tag .. " " .. hex.encode(key)) end
      show("main", crypto.pbkdf2("password", "salt", 4096, 20, "sha1"))
      show("task", task.async(crypto.scrypt, "password", "NaCl", 64, {N = 1024, r = 8, p = 16}):await())
      local co = coroutine.wrap(function() show("coroutine", crypto.pbkdf2("password", "salt", 2, 20, "sha1")) end)
      co()
      local t = uv.new_timer()
      t:start(1, 0, function()
        show("callback", crypto.pbkdf2("password", "salt", 1, 20, "sha1"))
        t:close()
      end)
      show("work", task.work(function()
        return require("crypto").scrypt("", "", 64, {N = 16, r = 1, p = 1})
      end))
      local key, err = task.timeout(0.05, crypto.scrypt, "pw", "salt", 32, {N = 16384, r = 8, p = 6})
      print("timeout " .. tostring(err and err.code))
    ]]
    for _, mode in ipairs({"evented", "blocking"}) do
      local lines = helpers.lines(evo({"--io=" .. mode, "-e", script}, 60))
      local got = {}
      for _, line in ipairs(lines) do
        local tag, value = line:match("^(%S+) (%S+)$")
        if tag then got[tag] = value end
      end
      assert.equal(got.main, RFC6070[3][5], mode)
      assert.equal(got.task, RFC7914[2][4], mode)
      assert.equal(got.coroutine, RFC6070[2][5], mode)
      assert.equal(got.callback, RFC6070[1][5], mode)
      assert.equal(got.work, RFC7914[1][4], mode)
      assert.equal(got.timeout, "Timeout", mode)
    end
  end, {timeout = 90})
end)

-- The GCM specification's AES-256 test cases 13 to 18 (McGrew and Viega,
-- also in NIST's validation vectors).
local K15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
local P15 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
  .. "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
local P16 = P15:sub(1, 120)
local A16 = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
local GCM = {
  {n = 13, key = string.rep("00", 32), iv = string.rep("00", 12), pt = "", ct = "",
   tag = "530f8afbc74536b9a963b4f1c4cb738b"},
  {n = 14, key = string.rep("00", 32), iv = string.rep("00", 12), pt = string.rep("00", 16),
   ct = "cea7403d4d606b6e074ec5d3baf39d18", tag = "d0d1c8a799996bf0265b98b5d48ab919"},
  {n = 15, key = K15, iv = "cafebabefacedbaddecaf888", pt = P15,
   ct = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     .. "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
   tag = "b094dac5d93471bdec1a502270e3cc6c"},
  {n = 16, key = K15, iv = "cafebabefacedbaddecaf888", pt = P16, aad = A16,
   ct = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     .. "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
   tag = "76fc6ece0f4e1768cddf8853bb2d551b"},
  {n = 17, key = K15, iv = "cafebabefacedbad", pt = P16, aad = A16,
   ct = "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0"
     .. "feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f",
   tag = "3a337dbf46a792c45e454913fe2ea8f2"},
  {n = 18, key = K15, iv = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
     .. "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b", pt = P16, aad = A16,
   ct = "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf4"
     .. "0fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
   tag = "a44a8266ee1c8eb0c8b5d4cf5ae9f19a"},
}

describe("AES-256-GCM", function()
  it("encrypts the GCM test cases 13-18 to their ciphertext and tag", function()
    for _, v in ipairs(GCM) do
      local aad = v.aad and unhex(v.aad)
      local ct, tag = crypto.encrypt(unhex(v.key), unhex(v.iv), unhex(v.pt), aad)
      assert.equal(hex.encode(ct), v.ct, "case " .. v.n)
      assert.equal(hex.encode(tag), v.tag, "case " .. v.n)
    end
  end)

  it("decrypts them, and refuses any alteration with AuthFailed", function()
    for _, v in ipairs(GCM) do
      local key, iv, ct, tag = unhex(v.key), unhex(v.iv), unhex(v.ct), unhex(v.tag)
      local aad = v.aad and unhex(v.aad)
      assert.equal(hex.encode(assert(crypto.decrypt(key, iv, ct, tag, aad))), v.pt, "case " .. v.n)
      local badTag = string.char((tag:byte(1) + 1) % 256) .. tag:sub(2)
      local pt, err = crypto.decrypt(key, iv, ct, badTag, aad)
      assert.isNil(pt)
      assert.equal(err.code, "AuthFailed", "case " .. v.n)
      if #ct > 0 then
        local badCt = ct:sub(1, -2) .. string.char((ct:byte(-1) + 1) % 256)
        assert.equal(select(2, crypto.decrypt(key, iv, badCt, tag, aad)).code, "AuthFailed")
      end
      assert.equal(select(2, crypto.decrypt(key, iv, ct, tag, (aad or "") .. "x")).code, "AuthFailed")
      local otherKey = string.char((key:byte(1) + 1) % 256) .. key:sub(2)
      assert.equal(select(2, crypto.decrypt(otherKey, iv, ct, tag, aad)).code, "AuthFailed")
    end
  end)

  it("round-trips random messages with random keys and ivs", function()
    for _ = 1, 50 do
      local key, iv = crypto.randomBytes(32), crypto.randomBytes(12)
      local msg = crypto.randomBytes(crypto.randomInt(0, 3000))
      local ct, tag = crypto.encrypt(key, iv, msg)
      assert.equal(#ct, #msg)
      assert.equal(#tag, 16)
      assert.equal(crypto.decrypt(key, iv, ct, tag), msg)
    end
  end)

  it("checks key, iv and tag lengths and types", function()
    local key, iv = string.rep("k", 32), string.rep("i", 12)
    raisesMatching("bad argument #1 to 'crypto.encrypt' %(the key must be 32 bytes, got 16%)",
      crypto.encrypt, string.rep("k", 16), iv, "x")
    raisesMatching("bad argument #2 to 'crypto.encrypt' %(the iv must be 1 to 1024 bytes", crypto.encrypt, key, "", "x")
    raisesMatching("bad argument #3 to 'crypto.encrypt' %(string expected, got nil%)", crypto.encrypt, key, iv)
    raisesMatching("bad argument #4 to 'crypto.encrypt' %(string expected, got number%)", crypto.encrypt, key, iv, "x", 1)
    local ct, tag = crypto.encrypt(key, iv, "x")
    raisesMatching("bad argument #4 to 'crypto.decrypt' %(the tag must be 16 bytes, got 12%)",
      crypto.decrypt, key, iv, ct, tag:sub(1, 12))
    raisesMatching("bad argument #1 to 'crypto.decrypt' %(string expected, got nil%)", crypto.decrypt)
  end)
end)

describe("interop with Python's hashlib and hmac", function()
  it("Python computes the same digests and HMACs of random data", function()
    local algs = {md5 = "md5", sha1 = "sha1", sha224 = "sha224", sha256 = "sha256", sha384 = "sha384",
      sha512 = "sha512", ["sha3-224"] = "sha3_224", ["sha3-256"] = "sha3_256", ["sha3-384"] = "sha3_384",
      ["sha3-512"] = "sha3_512", blake2b512 = "blake2b", blake2s256 = "blake2s",
      ["sha512-256"] = "sha512_256"}
    local lines, cases = {}, {}
    for alg, pyname in pairs(algs) do
      for _, size in ipairs({0, 1, 63, 64, 65, 1000, 100000}) do
        local key, data = crypto.randomBytes(crypto.randomInt(0, 200)), crypto.randomBytes(size)
        cases[#cases + 1] = {alg = alg, key = key, data = data}
        lines[#lines + 1] = pyname .. " " .. hex.encode(key) .. " " .. hex.encode(data)
      end
    end
    local out = python([[
import sys, hashlib, hmac
for line in sys.stdin:
    name, key, data = line.split(" ")
    key, data = bytes.fromhex(key), bytes.fromhex(data.strip())
    print(hashlib.new(name, data).hexdigest(), hmac.new(key, data, name).hexdigest())
]], table.concat(lines, "\n") .. "\n")
    local answers = helpers.lines(out)
    assert.equal(#answers, #cases)
    for i, c in ipairs(cases) do
      local digest, mac = answers[i]:match("^(%x+) (%x+)$")
      assert.equal(crypto.hash(c.alg, c.data), digest, c.alg .. " of " .. #c.data .. " bytes")
      assert.equal(crypto.hmac(c.alg, c.key, c.data), mac, "hmac " .. c.alg .. " key " .. #c.key)
    end
  end)
end)
