-- json: strictness (JSONTestSuite-style cases in json_cases.lua), round
-- trips, kinds, big integers, errors with positions, bad arguments, NDJSON,
-- files, workers, and interop with Python's json module.
local json = require("json")
local task = require("task")
local h = require("helpers")

local cases = dofile(h.root .. "/tests/lua/json_cases.lua")
local encode, decode = json.encode, json.decode

local function python(code, stdin) return h.python(code, stdin, nil, 20) end

describe("json.decode strictness (RFC 8259)", function()
  it("accepts every y_ case (" .. #cases.y .. ")", function()
    for _, c in ipairs(cases.y) do
      local v, err = decode(c[2])
      assert.truthy(err == nil, c[1] .. ": " .. tostring(err))
      assert.truthy(v ~= nil, c[1])
    end
  end)

  it("rejects every n_ case (" .. #cases.n .. ") with a JsonSyntax error and a position", function()
    for _, c in ipairs(cases.n) do
      local v, err = decode(c[2])
      assert.isNil(v, c[1] .. " was accepted")
      assert.equal(err.code, "JsonSyntax", c[1])
      assert.truthy(err.line >= 1 and err.column >= 1 and err.offset >= 1 and err.offset <= #c[2] + 1, c[1])
    end
  end)

  it("never crashes on i_ cases (" .. #cases.i .. ") and gives the documented outcome", function()
    local accepted = {
      number_double_huge_neg_exp = true, number_real_underflow = true,  -- underflow to 0
      number_too_big_neg_int = true, number_too_big_pos_int = true,     -- beyond 64 bits: doubles
      number_very_big_negative_int = true, structure_500_nested_arrays = true,
    }
    for _, c in ipairs(cases.i) do
      local ok, v, err = pcall(decode, c[2])
      assert.truthy(ok, c[1] .. " raised " .. tostring(v))
      if accepted[c[1]] then
        assert.truthy(v ~= nil, c[1] .. ": " .. tostring(err))
      else
        assert.equal(err and err.code, "JsonSyntax", c[1] .. " (rejected: huge exponents, lone surrogates, bad UTF-8, BOM)")
      end
    end
  end)

  it("decodes each kind of value", function()
    local v = assert(decode('{"s":"x","n":-1.5,"i":42,"t":true,"f":false,"z":null,"a":[1,[2]],"o":{"k":{}}}'))
    assert.equal(v.s, "x")
    assert.equal(v.n, -1.5)
    assert.equal(v.i, 42)
    assert.equal(v.t, true)
    assert.equal(v.f, false)
    assert.equal(v.z, json.null)
    assert.equal(v.a[2][1], 2)
    assert.equal(json.kind(v.o.k), "object")
    assert.equal(json.kind(v.a), "array")
    assert.equal(decode("  7 "), 7)
    assert.equal(decode('"\\u0000"'), "\0")
  end)

  it("keeps the last of repeated keys", function()
    assert.equal(decode('{"a":1,"a":2}').a, 2)
  end)

  it("tells apart repeated short strings that differ in one byte (the decoder's string cache)", function()
    -- Every length 0..40, strings differing only at the start, the middle
    -- or the end (the cache hashes the ends: middle differences collide),
    -- each used many times as a key and as a value, in a document large
    -- enough for the cache to be on.
    local pool = {}
    for len = 0, 40 do
      local base = {}
      for i = 1, len do base[i] = string.char(97 + (i * 7 + len) % 26) end
      pool[#pool + 1] = table.concat(base)
      for _, at in ipairs({1, math.floor(len / 2) + 1, len}) do
        if at >= 1 and at <= len then
          local s = {unpack(base)}
          s[at] = "\xc3\xa9"  -- a two-byte character changes the length too
          pool[#pool + 1] = table.concat(s)
          s[at] = "Z"
          pool[#pool + 1] = table.concat(s)
        end
      end
    end
    local items, want = {}, {}
    for i = 1, 3000 do
      local k, v = pool[(i * 31) % #pool + 1], pool[(i * 17) % #pool + 1]
      items[i] = encode(k) .. ":" .. encode(v) .. "," .. '"n":' .. i
      want[i] = {k, v}
    end
    local doc = assert(decode("[{" .. table.concat(items, "},{") .. "}]"))
    assert.equal(#doc, 3000)
    for i, kv in ipairs(want) do
      local t = doc[i]
      if kv[1] ~= "n" then assert.equal(t[kv[1]], kv[2]) end
      assert.equal(t.n, i)
      local n = 0
      for _ in pairs(t) do n = n + 1 end
      assert.equal(n, 2)
    end
  end)
end)

describe("json.decode errors", function()
  it("gives line, column (characters), offset and an excerpt with a caret", function()
    local v, err = decode('{\n  "name": "café",\n  "tags": ["a", "b",]\n}')
    assert.isNil(v)
    assert.equal(err.code, "JsonSyntax")
    assert.equal(err.line, 3)
    assert.equal(err.column, 21)
    assert.match(err.message, "unexpected character ']': expected a value at line 3, column 21", nil)
    assert.match(tostring(err), '  "tags": %["a", "b",%]\n                    %^$')
    local _, e2 = decode('["café", x]')
    assert.equal(e2.column, 10)  -- é is one character
    assert.equal(e2.offset, 11)  -- and two bytes
  end)

  it("names each kind of mistake", function()
    local expect = {
      {'', "unexpected end of input: expected a value"},
      {'[1,2', "unexpected end of input: expected ',' or ']'"},
      {'{"a" 1}', "expected ':'"},
      {'{"a":1,}', "expected a string key"},
      {'[01]', "leading zero"},
      {'[1.]', "expected a digit after '.'"},
      {'["\\q"]', "invalid escape"},
      {'["\\u12"]', "expected four hex digits"},
      {'["\\uDC00"]', "lone surrogate"},
      {'["\\uD800x"]', "lone surrogate"},
      {'["a\tb"]', "control character"},
      {'["\255"]', "invalid UTF%-8"},
      {'[tru]', "expected 'true'"},
      {'[1] [2]', "after the JSON value"},
      {'[1e999]', "number out of range"},
      {'"abc', "unterminated string"},
    }
    for _, e in ipairs(expect) do
      local _, err = decode(e[1])
      assert.match(err.message, e[2], e[1])
    end
  end)

  it("limits nesting to 1000 levels by default, opts.maxDepth otherwise", function()
    assert.truthy(decode(string.rep("[", 1000) .. string.rep("]", 1000)))
    local _, err = decode(string.rep("[", 1001) .. string.rep("]", 1001))
    assert.match(err.message, "nesting too deep: more than 1000 levels")
    assert.equal(err.column, 1001)
    local deepObject = string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001)
    assert.match(select(2, decode(deepObject)).message, "nesting too deep")
    assert.truthy(decode("[[[1]]]", {maxDepth = 3}))
    assert.match(select(2, decode("[[[[1]]]]", {maxDepth = 3})).message, "more than 3 levels")
    assert.truthy(decode('{"a":{"b":{"c":1}}}', {maxDepth = 3}))
    assert.isNil(decode('{"a":{"b":{"c":{}}}}', {maxDepth = 3}))
    assert.truthy(decode(string.rep("[", 3000) .. string.rep("]", 3000), {maxDepth = 3000}))
    assert.isNil(decode(string.rep("[", 100000)))  -- no crash, no stack overflow
  end)
end)

describe("json.encode", function()
  it("writes each kind of value", function()
    assert.equal(encode(nil), "null")
    assert.equal(encode(json.null), "null")
    assert.equal(encode(true), "true")
    assert.equal(encode(0), "0")
    assert.equal(encode(-7), "-7")
    assert.equal(encode(0.1), "0.1")
    assert.equal(encode(1 / 3), "0.3333333333333333")
    assert.equal(encode(1e300), "1e+300")
    assert.equal(encode(5e-324), "5e-324")
    assert.equal(encode(-0.0), "-0.0")
    assert.equal(encode(2 ^ 53), "9007199254740992")
    assert.equal(encode(1e20), "1e+20")  -- never digits alone beyond 64 bits
    assert.equal(encode("a\"b\\c\n\r\t\b\f\1\31/"), '"a\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/"')
    assert.equal(encode("é😀\226\128\168"), '"é😀\226\128\168"')  -- UTF-8 as is, U+2028 too
    assert.equal(encode({1, "two", {3}}), '[1,"two",[3]]')
    assert.equal(encode({a = {b = {}}}), '{"a":{"b":{}}}')
  end)

  it("arrays and objects: sequences, marks, empty tables", function()
    assert.equal(encode({}), "{}")
    assert.equal(encode(json.array()), "[]")
    assert.equal(encode(json.object()), "{}")
    assert.equal(encode(json.array({})), "[]")
    assert.equal(encode(json.decode("[]")), "[]")
    assert.equal(encode(json.decode("{}")), "{}")
    assert.equal(encode(json.decode('{"a":[],"b":{},"c":[{}]}'), {sortKeys = true}), '{"a":[],"b":{},"c":[{}]}')
    -- a marked object writes number keys as strings
    assert.equal(encode(json.object({[1] = "a"})), '{"1":"a"}')
    assert.equal(encode(json.object({[1.5] = true})), '{"1.5":true}')
    -- a marked array writes holes as null
    assert.equal(encode(json.array({1, nil, 3})), "[1,null,3]")
    assert.equal(encode(json.array({[3] = "x"})), '[null,null,"x"]')
    -- a decoded array stays an array when emptied, an object when given integer keys
    local a = decode("[1,2]")
    a[1], a[2] = nil, nil
    assert.equal(encode(a), "[]")
    local o = decode("{}")
    o[1] = true
    assert.equal(encode(o), '{"1":true}')
    -- a table with a metatable of its own is marked without losing it
    local mt = {__index = {hello = function() return "hi" end}}
    local t = json.array(setmetatable({}, mt))
    assert.equal(getmetatable(t), mt)
    assert.equal(encode(t), "[]")
    assert.equal(json.kind(t), "array")
    assert.equal(json.kind(json.object(setmetatable({}, mt))), "object")
    assert.isNil(json.kind({}))
    -- a sequence built backwards (hash part) is still an array
    local back = {}
    for i = 5, 1, -1 do back[i] = i end
    assert.equal(encode(back), "[1,2,3,4,5]")
  end)

  it("writes each repeated key right (the encoder's key cache), compact, pretty and sorted", function()
    -- Keys from a pool (escapes, non-ASCII, empty, long), reused across
    -- thousands of objects, some json.object-marked with number keys (the
    -- slow path, which allocates), some holding int64 cdata (a Lua call).
    local pool = {"", "a", "id", "id_str", 'q"uote', "back\\slash", "new\nline", "tab\t", "\1ctl",
      "café", "東京", "😀", string.rep("k", 24), string.rep("long", 10), "x/y"}
    for i = 1, 120 do pool[#pool + 1] = "key" .. i end
    local docs = {}
    for i = 1, 1500 do
      local t = {}
      for j = 1, 1 + i % 9 do t[pool[(i * 7 + j * 13) % #pool + 1]] = i * 10 + j end
      if i % 50 == 0 then t.big = 2LL ^ 60 + i end
      if i % 70 == 0 then t.num = json.object({[1] = "one", [2.5] = "two and a half", [pool[i % 20 + 1]] = i}) end
      docs[i] = t
    end
    for _, opts in ipairs({{}, {pretty = true}, {sortKeys = true}, {pretty = 2, sortKeys = true}}) do
      local back = assert(decode(encode(docs, opts)))
      assert.equal(#back, #docs)
      for i, t in ipairs(docs) do
        local n = 0
        for k, v in pairs(back[i]) do
          n = n + 1
          if k == "num" then
            assert.equal(v["1"], "one")
            assert.equal(v["2.5"], "two and a half")
            assert.equal(v[pool[i % 20 + 1]], i)
          elseif k == "big" then
            assert.equal(v, t.big)
          else
            assert.equal(v, t[k])
          end
        end
        local want = 0
        for _ in pairs(t) do want = want + 1 end
        assert.equal(n, want)
      end
    end
  end)

  it("pretty prints and sorts keys", function()
    local v = {b = {1, {c = json.array()}}, a = "x"}
    assert.equal(encode(v, {pretty = true, sortKeys = true}),
      '{\n  "a": "x",\n  "b": [\n    1,\n    {\n      "c": []\n    }\n  ]\n}')
    assert.equal(encode({1, 2}, {pretty = 4}), "[\n    1,\n    2\n]")
    assert.equal(encode({1}, {pretty = "\t"}), "[\n\t1\n]")
    assert.equal(encode({z = 1, a = 2, m = 3}, {sortKeys = true}), '{"a":2,"m":3,"z":1}')
    assert.equal(encode(json.object({[10] = 1, [9] = 2, x = 3}), {sortKeys = true}), '{"10":1,"9":2,"x":3}')
  end)

  it("raises naming the path of a value JSON cannot hold", function()
    local function fails(v, pattern, opts)
      local ok, err = pcall(encode, v, opts)
      assert.falsy(ok)
      assert.match(err, "^bad argument #1 to 'json.encode' %(", tostring(err))
      assert.match(err, pattern, nil)
    end
    fails({users = {{}, {}, {name = print}}}, "bad value at %.users%[3%]%.name: a function cannot be encoded")
    fails({x = 0 / 0}, "bad value at %.x: NaN cannot be encoded")
    fails({1, math.huge}, "bad value at %[2%]: inf cannot be encoded")
    fails(-math.huge, "%-inf cannot be encoded")
    fails({["a b"] = {coroutine.create(print)}}, 'bad value at %["a b"%]%[1%]: a thread cannot be encoded')
    fails({io.stdout}, "a userdata cannot be encoded")
    local t = {a = {}}
    t.a.back = t
    fails(t, "bad value at %.a%.back: circular reference")
    fails({1, 2, x = 3}, "both integer keys and string keys")
    fails({1, nil, 3}, "sparse array")
    fails({[0] = 1}, "number key 0 is not an array index")
    fails({[true] = 1}, "key of type boolean")
    fails({"\255"}, "bad value at %[1%]: the string is not valid UTF%-8")
    fails({["\255"] = 1}, "the key is not valid UTF%-8")
    fails(json.array({x = 1}), "json.array table has a string key 'x'")
    fails(json.array({[1e6] = 1}), "sparse array")
    local deep = {}
    for _ = 1, 1001 do deep = {deep} end
    fails(deep, "nested more than 1000 levels deep")
    fails({{{}}}, "nested more than 2 levels", {maxDepth = 2})
  end)

  it("writes 64-bit integer cdata as integers", function()
    local ffi = require("ffi")
    assert.equal(encode({ffi.new("int64_t", -9223372036854775807LL - 1), 18446744073709551615ULL}),
      "[-9223372036854775808,18446744073709551615]")
    local ok, err = pcall(encode, ffi.new("int32_t", 1))
    assert.falsy(ok)
    assert.match(err, "cdata other than int64_t/uint64_t")
  end)
end)

describe("json round trips", function()
  it("integers beyond 2^53 keep every digit", function()
    for _, s in ipairs({"12345678901234567890", "18446744073709551615", "-9223372036854775808", "9007199254740993",
                        "-9007199254740993", "9223372036854775807"}) do
      assert.equal(encode(decode(s)), s)
    end
    assert.equal(type(decode("9007199254740992")), "number")
    assert.equal(decode("12345678901234567890"), 12345678901234567890ULL)
    assert.equal(decode("-9007199254740993"), -9007199254740993LL)
    -- beyond 64 bits: the nearest double, as JavaScript reads it
    assert.equal(decode("100000000000000000000"), 1e20)
    assert.equal(decode("[" .. ("9"):rep(308) .. "]")[1], 1e308)
    -- beyond the largest double too: refused as 1e400 is (the fuzzer found
    -- "does not fit in 64 bits" said of a 340-digit integer)
    local nines = ("5"):rep(340)
    local ok, err = decode("[" .. nines .. ",0]")
    assert.equal(ok, nil)
    assert.truthy(tostring(err):find("number out of range: " .. nines .. " is beyond the largest double", 1, true), tostring(err))
  end)

  it("doubles come back bit for bit", function()
    math.randomseed(9)
    local specials = {0.1, 0.2, 0.3, 1 / 3, 2 / 3, 1e-7, 123456.789e3, 2 ^ 63, -2 ^ 70, 5e-324, 2.2250738585072014e-308,
                      1.7976931348623157e308, 4.35, 0.000001, 1e21, 1e22, 9007199254740993.0}
    for _, x in ipairs(specials) do assert.equal(decode(encode(x)), x, encode(x)) end
    for _ = 1, 20000 do
      local x = (math.random() - 0.5) * 10 ^ math.random(-300, 300)
      local back = decode(encode(x))
      assert.truthy(back == x, ("%.17g -> %s -> %.17g"):format(x, encode(x), back))
    end
  end)

  it("strings with every byte value that is UTF-8, escapes and surrogate pairs", function()
    local parts = {}
    for c = 0, 127 do parts[#parts + 1] = string.char(c) end
    local s = table.concat(parts) .. "é€😀\239\191\191\244\143\191\191"
    assert.equal(decode(encode(s)), s)
    assert.equal(decode('"\\u00e9\\u20AC\\ud83d\\ude00\\/"'), "é€😀/")
    assert.equal(decode('"\\uD834\\uDD1E"'), "\240\157\132\158")
  end)

  it("a nested document with every kind, compact and pretty", function()
    local text = '{"a":[1,2.5,-3,"x",true,false,null,[],{}],"b":{"c":{"d":[{"e":"é"}]}},"n":12345678901234567890}'
    local v = decode(text)
    assert.equal(encode(v, {sortKeys = true}), text)
    assert.equal(encode(decode(encode(v, {pretty = true})), {sortKeys = true}), text)
  end)

  it("nullValue replaces json.null on decode", function()
    local v = decode("[null,1]", {nullValue = "NULL"})
    assert.equal(v[1], "NULL")
    local sentinel = {}
    assert.equal(decode('{"a":null}', {nullValue = sentinel}).a, sentinel)
  end)
end)

describe("json bad arguments", function()
  local function raises(fn, pattern, ...)
    local ok, err = pcall(fn, ...)
    assert.falsy(ok)
    assert.match(err, pattern, nil)
  end
  it("raise with the function's name", function()
    raises(decode, "bad argument #1 to 'json.decode' %(string expected, got nil%)")
    raises(decode, "bad argument #1 to 'json.decode' %(string expected, got number%)", 5)
    raises(decode, "bad argument #2 to 'json.decode' %(table expected, got string%)", "1", "x")
    raises(decode, "bad argument #2 to 'json.decode' %(unknown option 'maxdepth'%)", "1", {maxdepth = 3})
    raises(decode, "maxDepth must be an integer from 1 to 3000", "1", {maxDepth = 0})
    raises(decode, "maxDepth must be an integer from 1 to 3000", "1", {maxDepth = 1.5})
    raises(encode, "bad argument #1 to 'json.encode' %(value expected%)")
    raises(encode, "bad argument #2 to 'json.encode' %(unknown option 'indent'%)", {}, {indent = 2})
    raises(encode, "pretty must be true, a number of spaces", {}, {pretty = "xx"})
    raises(encode, "pretty must be true, a number of spaces", {}, {pretty = -1})
    raises(json.array, "bad argument #1 to 'json.array' %(table expected, got string%)", "x")
    raises(json.object, "bad argument #1 to 'json.object' %(table expected, got number%)", 1)
    raises(json.decodeFile, "bad argument #1 to 'json.decodeFile' %(string expected, got nil%)")
    raises(json.lines, "bad argument #1 to 'json.lines'", 42)
  end)

  it("report the caller's line when called directly", function()
    local ok, err = pcall(function()
      local s = encode(print)  -- not a tail call: the caller's frame stays
      return s
    end)
    assert.falsy(ok)
    assert.match(err, "^[^:]*json%.spec%.lua:%d+: bad argument #1 to 'json.encode' %(a function cannot be encoded%)")
  end)
end)

describe("json.decodeFile and json.lines", function()
  it("decodeFile reads a file (colourless) and names it in errors", function()
    local path, dir = h.tempFile("doc.json", '{"a": [1, 2]}')
    local v = assert(json.decodeFile(path))
    assert.equal(v.a[2], 2)
    local inTask = task.async(function() return json.decodeFile(path) end):await()
    assert.equal(inTask.a[1], 1)
    h.writeFile(dir .. "/bad.json", '{"a":\n  [1, 2,]}')
    local bad, err = json.decodeFile(dir .. "/bad.json")
    assert.isNil(bad)
    assert.equal(err.code, "JsonSyntax")
    assert.equal(err.path, dir .. "/bad.json")
    assert.equal(err.line, 2)
    assert.match(err.message, "bad%.json: unexpected character ']'")
    local missing, merr = json.decodeFile(dir .. "/missing.json")
    assert.isNil(missing)
    assert.equal(merr.code, "ENOENT")
  end)

  it("lines iterates NDJSON from a string, skipping blank lines, with line numbers", function()
    local got, numbers = {}, {}
    for v, n in json.lines('{"a":1}\n\n  \n[2]\r\n"three"\nnull') do
      got[#got + 1] = v
      numbers[#numbers + 1] = n
    end
    assert.equal(#got, 4)
    assert.equal(got[1].a, 1)
    assert.equal(got[3], "three")
    assert.equal(got[4], json.null)
    assert.equal(numbers, {1, 4, 5, 6})
  end)

  it("lines raises a JsonSyntax error naming the line of the source", function()
    local ok, err = pcall(function()
      for _ in json.lines('{"a":1}\n{"b":}\n') do end
    end)
    assert.falsy(ok)
    assert.equal(err.code, "JsonSyntax")
    assert.equal(err.line, 2)
    assert.match(err.message, "at line 2, column 6")
  end)

  it("lines reads an Evo stream, a Lua file and a function", function()
    -- A child process's stdout (a Stream) carrying NDJSON written by Python.
    local process = require("process")
    local child = assert(process.spawn("/usr/bin/python3",
      {"-c", "import json\nfor i in range(1, 101): print(json.dumps({'i': i, 's': 'é' * i}))"}, {stdout = "pipe"}))
    local sum = 0
    for v in json.lines(child.stdout) do
      sum = sum + v.i
      assert.equal(#v.s, 2 * v.i)
    end
    assert.equal(sum, 5050)
    child:wait()
    local path = h.tempFile("x.ndjson", "[1]\n[2]\n")
    local f = assert(io.open(path))
    local count = 0
    for v in json.lines(f) do count = count + v[1] end
    f:close()
    assert.equal(count, 3)
    count = 0
    for v in json.lines(io.lines(path)) do count = count + v[1] end
    assert.equal(count, 3)
  end)
end)

describe("json in workers", function()
  it("loads and runs in task.work", function()
    local out = task.work(function(text)
      local j = require("json")
      local v = assert(j.decode(text))
      v.extra = j.null
      return j.encode(v, {sortKeys = true}), j.kind(v), j.null == nil
    end, '{"a":[1,2,12345678901234567890]}')
    assert.equal(out, '{"a":[1,2,12345678901234567890],"extra":null}')
  end)

  it("decodeFile fails in a worker with the codes it has in the main state (never nil, nil)", function()
    local out = task.work(function()
      local j = require("json")
      local codes = {}
      for _, p in ipairs({"/no/such/file.json", "/tmp"}) do
        local v, err = j.decodeFile(p)
        codes[#codes + 1] = tostring(v) .. " " .. tostring(err and err.code)
      end
      return table.concat(codes, ",")
    end)
    assert.equal(out, "nil ENOENT,nil EISDIR")
    local _, missing = json.decodeFile("/no/such/file.json")
    local _, dir = json.decodeFile("/tmp")
    assert.equal(missing.code .. "," .. dir.code, "ENOENT,EISDIR")
  end)
end)

describe("json interop with Python's json module", function()
  it("Python encodes, Evo decodes equal; Evo encodes, Python decodes equal", function()
    -- Python builds a seeded random document (unicode, floats, big ints,
    -- nesting), writes it with ensure_ascii on and off; Evo decodes both,
    -- encodes back (plain and pretty), and Python checks equality.
    local gen = [[
import json, random, sys
rng = random.Random(7)
def val(d):
    r = rng.random()
    if d > 4 or r < 0.3:
        k = rng.randrange(9)
        if k == 0: return rng.randrange(-2**63, 2**64)
        if k == 1: return rng.uniform(-1e6, 1e6) * 10 ** rng.randrange(-300, 300)
        if k == 2: return ''.join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 32), rng.randrange(0x80, 0xD800), rng.randrange(0xE000, 0x10FFFF)])) for _ in range(rng.randrange(12)))
        if k == 3: return None
        if k == 4: return rng.random() < 0.5
        if k == 5: return rng.randrange(-1000, 1000)
        if k == 6: return -0.0 if rng.random() < 0.1 else rng.random()
        if k == 7: return 2**53 + rng.randrange(1000)
        return ""
    if r < 0.65: return [val(d + 1) for _ in range(rng.randrange(6))]
    return {val(d + 1) if False else ''.join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(1, 8))): val(d + 1) for _ in range(rng.randrange(6))}
doc = [val(0) for _ in range(300)]
sys.stdout.write(json.dumps(doc, ensure_ascii=True) + "\n" + json.dumps(doc, ensure_ascii=False) + "\n")
]]
    local out = python(gen)
    local ascii, raw = out:match("^(.-)\n(.-)\n$")
    local a, b = assert(decode(ascii)), assert(decode(raw))
    local evoText = encode(a)
    assert.equal(encode(b), evoText)  -- both spellings decode to the same value
    local check = [[
import json, sys
lines = sys.stdin.read().split("\n", 2)  # the last one is pretty, on many lines
ref = json.loads(lines[0])
for i, text in enumerate(lines[1:]):
    got = json.loads(text)
    # == compares numbers by value (an integral double comes back as an
    # int: Lua has one number type) and dicts whatever their key order.
    if got != ref:
        print("differs in encoding", i); sys.exit(1)
print("equal")
]]
    local result = python(check, ascii .. "\n" .. evoText .. "\n" .. encode(a, {pretty = true, sortKeys = true}))
    assert.equal(result, "equal\n")
  end, 30)

  it("Evo-encoded documents read the same in Python as in Evo", function()
    local ffi = require("ffi")
    local v = {
      name = "Zoë 😀", tags = json.array(), meta = json.object(), n = 12345678901234567890ULL,
      neg = ffi.new("int64_t", -9223372036854775807LL), f = 0.1, big = 1e300, tiny = 5e-324,
      list = {1, 2.5, "x\n\"\\", json.null, true, false}, ctl = "\1\31\127",
    }
    local text = encode(v, {sortKeys = true})
    local back = python([[
import json, sys
v = json.loads(sys.stdin.read())
assert v["name"] == "Zo\u00eb \U0001F600", v["name"]
assert v["tags"] == [] and v["meta"] == {}
assert v["n"] == 12345678901234567890 and v["neg"] == -9223372036854775807
assert v["f"] == 0.1 and v["big"] == 1e300 and v["tiny"] == 5e-324
assert v["list"] == [1, 2.5, "x\n\"\\", None, True, False]
assert v["ctl"] == "\x01\x1f\x7f"
sys.stdout.write(json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
]], text)
    assert.equal(back, text)
  end, 20)
end)
