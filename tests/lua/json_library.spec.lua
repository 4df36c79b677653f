-- json's simdjson, loaded at run time (src/bind/simdjson_lib.*): evo does not
-- link libsimdjson; the first decode dlopens it. Without it json.decode is
-- nil, err (LibraryUnavailable, naming Debian's libsimdjson14) and the rest
-- keeps working, json.encode included. Each case runs a fresh evo, since the
-- library is loaded once per process.
local fs = require("fs")
local json = require("json")
local h = require("helpers")

local SYSTEM_LIB = "/lib/x86_64-linux-gnu/libsimdjson.so.14"

-- Runs `evo -e code` with EVO_LIBSIMDJSON set to lib (false: unset) and
-- returns its stdout, asserting a clean exit.
local function evo(code, lib)
  local r = h.runEvo({"-e", code}, {env = {EVO_LIBSIMDJSON = lib or false}, timeout = 20})
  assert.equal(r.code, 0, r.stderr .. r.stdout)
  return r.stdout
end

-- The lines of /proc/self/maps naming simdjson, as a script prints them.
local MAPPED = [[
local function mapped()
  local f = assert(io.open("/proc/self/maps"))
  local maps = f:read("*a")
  f:close()
  return maps:find("libsimdjson", 1, true) ~= nil
end
]]

describe("json's libsimdjson, loaded on first use", function()
  it("is not a NEEDED library of evo: nothing maps it until the first decode", function()
    if fs.exists("/usr/bin/readelf") then
      local r = h.spawn("/usr/bin/readelf", {"-d", h.evo})
      assert.equal(r.code, 0, r.stderr)
      assert.truthy(r.stdout:find("(NEEDED)", 1, true))
      assert.falsy(r.stdout:find("simdjson", 1, true), r.stdout)
    end
    local out = evo(MAPPED .. [[
local json = require("json")
print(mapped(), json.encode({"plain ascii"}), mapped())
print(json.decode('{"a": [1, 2.5, "x"]}').a[2], mapped())
]])
    assert.equal(out, 'false\t["plain ascii"]\tfalse\n2.5\ttrue\n')
  end)

  it("loads once when several workers decode first at the same time", function()
    local out = evo([[
local task, json = require("task"), require("json")
local jobs = {}
for i = 1, 4 do
  jobs[i] = task.concurrent(task.work, function(n)
    local json = require("json")
    return json.decode("[" .. n .. ", {\"k\": \"\\u00e9\"}]")[2].k .. n
  end, i)
end
local got = {}
for i = 1, 4 do got[i] = jobs[i]:await() end
print(table.concat(got, " "), json.decode("[7]")[1])
]])
    assert.equal(out, "é1 é2 é3 é4\t7\n")
  end)

  it("EVO_LIBSIMDJSON names the file to load", function()
    if not fs.exists(SYSTEM_LIB) then return pending("no " .. SYSTEM_LIB) end
    local out = evo([[print(require("json").decode('[true, null, "\\u00e9"]')[3])]], SYSTEM_LIB)
    assert.equal(out, "é\n")
  end)
end)

describe("json without libsimdjson", function()
  local MISSING = "/nonexistent/libsimdjson.so.14"

  it("json.decode and json.decodeFile return nil, err LibraryUnavailable naming the package", function()
    local out = evo([[
local json = require("json")
local v, err = json.decode("[1, 2]")
print(v, err.code)
print(err.message)
local path = os.tmpname()
local f = assert(io.open(path, "w")); f:write("{}"); f:close()
local v2, err2 = json.decodeFile(path)
os.remove(path)
print(v2, err2.code)
-- misuse still raises before the library is looked at
print(pcall(json.decode, 42))
]], MISSING)
    local lines = h.lines(out)
    assert.equal(lines[1], "nil\tLibraryUnavailable")
    assert.truthy(lines[2]:find(MISSING .. " cannot be loaded: ", 1, true), lines[2])
    assert.truthy(lines[2]:find("libsimdjson14", 1, true), lines[2])
    assert.truthy(lines[2]:find("apt install libsimdjson14", 1, true), lines[2])
    assert.equal(lines[3], "nil\tLibraryUnavailable")
    assert.truthy(lines[4]:find("bad argument #1 to 'json.decode' (string expected, got number)", 1, true),
      lines[4])
  end)

  it("json.decode in a task.work worker says the same", function()
    local out = evo([[
local task = require("task")
print(task.work(function()
  local v, err = require("json").decode("{}")
  return tostring(v) .. " " .. err.code
end))
]], MISSING)
    assert.equal(out, "nil LibraryUnavailable\n")
  end)

  it("json.encode keeps working, non-ASCII text checked by the scalar validator", function()
    local out = evo([[
local json = require("json")
print(json.encode({s = "h\u{e9}llo \u{1F600}", n = {1, 2}}, {sortKeys = true}))
print(pcall(json.encode, {"\255bad"}))
print(pcall(json.encode, {"\237\160\128"}))  -- a surrogate, encoded: not UTF-8
]], MISSING)
    local lines = h.lines(out)
    assert.equal(lines[1], '{"n":[1,2],"s":"héllo 😀"}')
    assert.truthy(lines[2]:find("^false\t.*not valid UTF%-8"), lines[2])
    assert.truthy(lines[3]:find("^false\t.*not valid UTF%-8"), lines[3])
  end)

  it("the rest of the runtime runs: fs, crypto, http", function()
    local out = evo([[
local fs, http = require("fs"), require("http")
local server = http.serve({port = 0, host = "127.0.0.1"}, function(req, res) res:send(200, "pong") end)
local r = assert(http.get("http://127.0.0.1:" .. server.port .. "/"))
server:close()
print(r.body, fs.exists("/"), #require("crypto").hash("sha256", "x"))
]], MISSING)
    assert.truthy(out:find("^pong\ttrue\t%d+\n$"), out)
  end)

  it("a library that is not simdjson is refused by name", function()
    local libz = "/lib/x86_64-linux-gnu/libz.so.1"
    if not fs.exists(libz) then return pending("no " .. libz) end
    local out = evo([[local _, err = require("json").decode("1"); print(err.code); print(err.message)]], libz)
    local lines = h.lines(out)
    assert.equal(lines[1], "LibraryUnavailable")
    assert.truthy(lines[2]:find(libz .. " is not simdjson 3", 1, true), lines[2])
  end)

  it("req:json() answers 500, not 400: the server lacks a library, the client sent nothing wrong", function()
    local out = evo([[
local kit = require("evo.webkit")
local req = {headers = {["content-type"] = "application/json"}, body = function() return "[1]" end}
local ok, err = pcall(kit.requestJson, req)
print(ok, err.code, err.status)
]], MISSING)
    assert.equal(out, "false\tLibraryUnavailable\t500\n")
  end)
end)

describe("json with libsimdjson (this process)", function()
  it("decodes, and a syntax error has Evo's wording, not simdjson's", function()
    assert.same(json.decode('{"a": [1]}'), {a = {1}})
    local _, err = json.decode("[1, ]")
    assert.equal(err.code, "JsonSyntax")
    assert.falsy(err.message:find("TAPE_ERROR", 1, true))
    assert.truthy(err.message:find("at line 1, column", 1, true), err.message)
  end)
end)
