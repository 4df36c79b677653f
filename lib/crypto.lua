-- crypto: hashes, HMAC, random bytes and integers, constant-time comparison,
-- password hashing (PBKDF2, scrypt) and AES-256-GCM, on OpenSSL 3.
--
--   local crypto = require("crypto")
--   crypto.hash("sha256", "abc")                 --> "ba7816bf..."
--   crypto.hmac("sha256", key, message, "base64")
--   local h = crypto.hasher("sha256"); h:update("a"):update("bc"); h:digest()
--   local key = crypto.scrypt(password, salt, 32)   -- thread pool, colourless
--   local ct, tag = crypto.encrypt(key, iv, plaintext [, aad])
--   local pt, err = crypto.decrypt(key, iv, ct, tag [, aad])
--
-- Bad arguments raise ('bad argument #1 to 'crypto.hash' (...)'); a failed
-- authentication or derivation returns nil, err. See docs/crypto.md.
local native = require("evo.crypto")
local args = require("evo.args")
local finish = require("evo.wait").finish

local type, pairs, tostring, lower, floor, concat, sort, getmetatable =
  type, pairs, tostring, string.lower, math.floor, table.concat, table.sort, getmetatable
local fail, argError = args.fail, args.error
local ndigest, nhmac, nhasher, nhmacer = native.digest, native.hmac, native.hasher, native.hmacer
local nrandomBytes, nrandomInt, nequal = native.randomBytes, native.randomInt, native.timingSafeEqual
local npbkdf2, nscrypt, nencrypt, ndecrypt = native.pbkdf2, native.scrypt, native.encrypt, native.decrypt

local crypto = {}

-- name -> native id, for the algorithms this OpenSSL provides.
local DIGESTS = native.digests()
local names = {}
for name in pairs(DIGESTS) do names[#names + 1] = name end
sort(names)
-- crypto.hashes: the algorithm names hash, hasher, hmac and pbkdf2 accept.
crypto.hashes = names
local namesText = concat(names, ", ")

-- Output encodings of digests (ids shared with src/bind/crypto.cpp).
local ENCODINGS = {hex = 0, base64 = 1, raw = 2, base64url = 3}

local MAX_BYTES = 2 ^ 31 - 1
-- The longest string LuaJIT makes (LJ_MAX_STR): randomBytes past it would
-- draw 2 GB and then fail with "string length overflow".
local MAX_STRING = 2 ^ 31 - 256
local TWO53 = 2 ^ 53

-- The digest id of alg (any case: "SHA256" works), or a raise naming fname.
local function digestId(n, fname, alg)
  local id = DIGESTS[alg]
  if id then return id end
  if type(alg) ~= "string" then fail(n, fname, "string", alg, 3) end
  id = DIGESTS[lower(alg)]
  if id then return id end
  argError(n, fname, "unknown hash algorithm '" .. alg .. "'; one of " .. namesText, 3)
end

local function encodingId(n, fname, enc)
  if enc == nil then return 0 end
  local id = ENCODINGS[enc]
  if id then return id end
  if type(enc) ~= "string" then fail(n, fname, "string", enc, 3) end
  argError(n, fname, "unknown encoding '" .. enc .. "'; one of hex, base64, base64url, raw", 3)
end

local function checkString(n, fname, v)
  if type(v) ~= "string" then fail(n, fname, "string", v, 3) end
  return v
end

local function isInteger(v) return type(v) == "number" and v == floor(v) and v == v end

------------------------------------------------------------------ hashes

-- hash(alg, data [, enc = "hex"]) -> digest ("hex", "base64", "base64url" or "raw" bytes)
function crypto.hash(alg, data, enc)
  local id = DIGESTS[alg] or digestId(1, "crypto.hash", alg)
  if type(data) ~= "string" then fail(2, "crypto.hash", "string", data) end
  return ndigest(id, data, enc == nil and 0 or ENCODINGS[enc] or encodingId(3, "crypto.hash", enc))
end

-- hmac(alg, key, data [, enc = "hex"]) -> MAC
function crypto.hmac(alg, key, data, enc)
  local id = DIGESTS[alg] or digestId(1, "crypto.hmac", alg)
  if type(key) ~= "string" then fail(2, "crypto.hmac", "string", key) end
  if type(data) ~= "string" then fail(3, "crypto.hmac", "string", data) end
  return nhmac(id, key, data, enc == nil and 0 or ENCODINGS[enc] or encodingId(4, "crypto.hmac", enc))
end

-- Hasher: a running hash (crypto.hasher) or HMAC (crypto.hmacer).
-- :update(data) -> the hasher (chainable); :digest([enc]) -> the digest, and
-- the hasher is spent (update or digest again raises, as in Node);
-- :copy() -> an independent hasher with the same state (a digest midway).
local meta = native.hasherMeta
local function isHasher(v) return getmetatable(v) == meta end
local nupdate, nfinal, ncopy = meta.__index.update, meta.__index.digest, meta.__index.copy
local Hasher = {}
Hasher.update = args.method("update", nupdate, isHasher, "Hasher", "string")
function Hasher.digest(self, enc)
  if not isHasher(self) then args.badSelf("digest", "Hasher", self) end
  return nfinal(self, enc == nil and 0 or ENCODINGS[enc] or encodingId(1, "digest", enc))
end
Hasher.copy = args.method("copy", ncopy, isHasher, "Hasher")
meta.__index = Hasher
meta.__name = "Hasher"
meta.__tostring = function() return "Hasher" end

-- hasher(alg) -> Hasher
function crypto.hasher(alg)
  return nhasher(DIGESTS[alg] or digestId(1, "crypto.hasher", alg))
end

-- hmacer(alg, key) -> Hasher computing the HMAC of what it is fed
function crypto.hmacer(alg, key)
  local id = DIGESTS[alg] or digestId(1, "crypto.hmacer", alg)
  checkString(2, "crypto.hmacer", key)
  return nhmacer(id, key)
end

------------------------------------------------------------------ randomness

-- randomBytes(n) -> n bytes from OpenSSL's CSPRNG
function crypto.randomBytes(n)
  if not isInteger(n) or n < 0 or n > MAX_STRING then
    if type(n) ~= "number" then fail(1, "crypto.randomBytes", "number", n) end
    argError(1, "crypto.randomBytes", "length must be an integer from 0 to 2^31-256")
  end
  return nrandomBytes(n)
end

-- randomInt([a = 1,] b) -> a uniform integer with a <= x <= b (both ends
-- included, as math.random), b - a < 2^53. Unbiased (rejection sampling).
function crypto.randomInt(a, b)
  if b == nil then a, b = 1, a end
  if not isInteger(a) or a < -TWO53 or a > TWO53 then
    argError(1, "crypto.randomInt", "integer from -2^53 to 2^53 expected, got " .. tostring(a))
  end
  if not isInteger(b) or b < -TWO53 or b > TWO53 then
    argError(2, "crypto.randomInt", "integer from -2^53 to 2^53 expected, got " .. tostring(b))
  end
  if b < a then argError(2, "crypto.randomInt", "the range is empty (b < a)") end
  if b - a >= TWO53 then argError(2, "crypto.randomInt", "the range must be smaller than 2^53") end
  return nrandomInt(a, b)
end

-- timingSafeEqual(a, b) -> boolean, in time that depends only on the
-- length. Strings of different lengths are unequal (false, not an error as
-- in Node): the length is not secret, and a forged MAC of the wrong length
-- should fail the check, not the request.
function crypto.timingSafeEqual(a, b)
  if type(a) ~= "string" then fail(1, "crypto.timingSafeEqual", "string", a) end
  if type(b) ~= "string" then fail(2, "crypto.timingSafeEqual", "string", b) end
  return nequal(a, b)
end

------------------------------------------------------------------ key derivation

local function checkLength(n, fname, len)
  if not isInteger(len) or len < 1 or len > MAX_STRING then
    if type(len) ~= "number" then fail(n, fname, "number", len, 3) end
    argError(n, fname, "length must be an integer from 1 to 2^31-256", 3)
  end
end

-- pbkdf2(password, salt, iterations, length [, alg = "sha256"]) -> key bytes | nil, err.
-- Runs on the thread pool: suspends only the calling task.
function crypto.pbkdf2(password, salt, iterations, length, alg)
  checkString(1, "crypto.pbkdf2", password)
  checkString(2, "crypto.pbkdf2", salt)
  if not isInteger(iterations) or iterations < 1 or iterations > MAX_BYTES then
    if type(iterations) ~= "number" then fail(3, "crypto.pbkdf2", "number", iterations) end
    argError(3, "crypto.pbkdf2", "iterations must be an integer from 1 to 2^31-1")
  end
  checkLength(4, "crypto.pbkdf2", length)
  local id = alg == nil and DIGESTS.sha256 or DIGESTS[alg] or digestId(5, "crypto.pbkdf2", alg)
  return finish(npbkdf2(password, salt, iterations, length, id, true))
end

local SCRYPT_DEFAULTS = {N = 16384, r = 8, p = 1, maxmem = 32 * 1024 * 1024}

local function isPowerOfTwo(n)
  while n > 1 and n % 2 == 0 do n = n / 2 end
  return n == 1
end

local SCRYPT_OPTIONS = {N = true, r = true, p = true, maxmem = true}

local function option(opts, name)
  local v = opts[name]
  if v == nil then return SCRYPT_DEFAULTS[name] end
  if not isInteger(v) or v < 1 then
    argError(4, "crypto.scrypt", "opts." .. name .. " must be a positive integer", 3)
  end
  return v
end

-- scrypt(password, salt, length [, {N = 16384, r = 8, p = 1, maxmem = 32 MiB}])
-- -> key bytes | nil, err. N is a power of two > 1; the memory needed,
-- 128 * r * (N + p + 2) bytes, must fit in maxmem. Thread pool, colourless.
function crypto.scrypt(password, salt, length, opts)
  checkString(1, "crypto.scrypt", password)
  checkString(2, "crypto.scrypt", salt)
  checkLength(3, "crypto.scrypt", length)
  opts = args.options(4, "crypto.scrypt", opts, SCRYPT_OPTIONS)
  opts = opts or SCRYPT_DEFAULTS
  local N, r, p, maxmem = option(opts, "N"), option(opts, "r"), option(opts, "p"), option(opts, "maxmem")
  if not isPowerOfTwo(N) or N < 2 or N >= 2 ^ 53 then
    argError(4, "crypto.scrypt", "opts.N must be a power of two greater than 1")
  end
  -- scrypt's own bound (RFC 7914 §2): N < 2^(128 * r / 8).
  if 16 * r < 53 and N >= 2 ^ (16 * r) then
    argError(4, "crypto.scrypt", "opts.N must be below 2^(16 * r)")
  end
  if r * p >= 2 ^ 30 then argError(4, "crypto.scrypt", "opts.r * opts.p must be below 2^30") end
  local need = 128 * r * (N + p + 2)
  if need > maxmem then
    argError(4, "crypto.scrypt", ("needs %d bytes (128 * r * (N + p + 2)), more than opts.maxmem (%d)")
      :format(need, maxmem))
  end
  -- OpenSSL counts the memory the same way and refuses past maxmem too.
  return finish(nscrypt(password, salt, length, N, r, p, maxmem, true))
end

------------------------------------------------------------------ AES-256-GCM

local function checkGcm(fname, key, iv)
  if type(key) ~= "string" then fail(1, fname, "string", key, 3) end
  if #key ~= 32 then argError(1, fname, "the key must be 32 bytes, got " .. #key, 3) end
  if type(iv) ~= "string" then fail(2, fname, "string", iv, 3) end
  if #iv < 1 or #iv > 1024 then argError(2, fname, "the iv must be 1 to 1024 bytes (12 recommended)", 3) end
end

-- encrypt(key, iv, plaintext [, aad]) -> ciphertext, tag (16 bytes).
-- key: 32 bytes; iv: 12 random bytes, never reused with the same key.
function crypto.encrypt(key, iv, plaintext, aad)
  checkGcm("crypto.encrypt", key, iv)
  if type(plaintext) ~= "string" then fail(3, "crypto.encrypt", "string", plaintext) end
  if aad ~= nil and type(aad) ~= "string" then fail(4, "crypto.encrypt", "string", aad) end
  return nencrypt(key, iv, plaintext, aad)
end

-- decrypt(key, iv, ciphertext, tag [, aad]) -> plaintext | nil, err (err.code
-- == "AuthFailed" when anything was altered or a wrong key, iv or aad was given).
function crypto.decrypt(key, iv, ciphertext, tag, aad)
  checkGcm("crypto.decrypt", key, iv)
  if type(ciphertext) ~= "string" then fail(3, "crypto.decrypt", "string", ciphertext) end
  if type(tag) ~= "string" then fail(4, "crypto.decrypt", "string", tag) end
  if #tag ~= 16 then argError(4, "crypto.decrypt", "the tag must be 16 bytes, got " .. #tag) end
  if aad ~= nil and type(aad) ~= "string" then fail(5, "crypto.decrypt", "string", aad) end
  return ndecrypt(key, iv, ciphertext, tag, aad)
end

return crypto
