-- evo build embeds the libsimdjson.so.14 the running evo loaded, and a built
-- app loads that copy from its archive (a memfd), so it needs only glibc and
-- libstdc++: checked with ldd, and by running the app in a mount namespace
-- where the system's libsimdjson.so.14 is an empty file (a plain evo there
-- gets LibraryUnavailable). docs/build.md, src/bind/simdjson_lib.*.
local fs = require("fs")
local uv = require("uv")

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."
local ROOT = fs.realpath(here .. "/../..")
package.path = ROOT .. "/tests/lua/?.lua;" .. package.path
local helpers = require("helpers")
local EVO = helpers.evo

local SYSTEM_LIB = "/lib/x86_64-linux-gnu/libsimdjson.so.14"

-- The app prints what it decoded, the file its simdjson came from and the
-- /proc/self/maps line that maps it.
local APP = [[
local json = require("json")
local v, err = json.decode('{"ok": [1, 2.5, "\\u00e9"]}')
if not v then print("error=" .. err.code .. ": " .. err.message) return end
print("decoded=" .. json.encode(v))
print("from=" .. tostring(require("evo.appfs").runtimeLibraries()[1].path))
local f = assert(io.open("/proc/self/maps"))
for line in f:lines() do
  if line:find("libsimdjson", 1, true) then print("mapped=" .. line:match("^%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(.*)$")) break end
end
f:close()
]]

local function fields(text)
  local t = {}
  for k, v in text:gmatch("([^=\n]+)=([^\n]*)") do t[k] = v end
  return t
end

local function canUnshare() return helpers.spawn("/usr/bin/unshare", {"-m", "/bin/true"}).code == 0 end

-- Runs argv with the system's libsimdjson.so.14 replaced by an empty file
-- (a bind mount of /dev/null, private to a new mount namespace).
local function withoutSystemLib(argv, env)
  local script = "set -e; /bin/mount --bind /dev/null " .. SYSTEM_LIB .. '; exec "$@"'
  local args = {"-m", "/bin/sh", "-c", script, "sh"}
  for _, a in ipairs(argv) do args[#args + 1] = a end
  return helpers.spawn("/usr/bin/unshare", args, {env = env})
end

describe("evo build: libsimdjson travels inside the app", function()
  local dir, app

  before(function()
    dir = helpers.tempDir("evo-build-simdjson-")
    assert(fs.writeFile(dir .. "/app.lua", APP))
    app = dir .. "/app"
    local r = helpers.spawn(EVO, {"build", dir .. "/app.lua", "-o", app}, {env = {EVO_LIBSIMDJSON = false}})
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    assert.truthy(r.stdout:find("1 libraries;", 1, true), r.stdout)
  end)

  it("links nothing but glibc and libstdc++ (ldd)", function()
    local r = helpers.spawn("/usr/bin/ldd", {app})
    assert.equal(r.code, 0, r.stderr)
    local libs = {}
    for name in r.stdout:gmatch("\n?%s*(%S+%.so[%.%d]*)") do libs[#libs + 1] = name:match("[^/]+$") end
    assert.falsy(r.stdout:find("simdjson", 1, true), r.stdout)
    for _, lib in ipairs(libs) do
      assert.truthy(lib:find("^linux%-vdso") or lib:find("^ld%-linux") or lib:find("^libc%.so") or
        lib:find("^libm%.so") or lib:find("^libstdc%+%+%.so") or lib:find("^libgcc_s%.so"), "unexpected " .. lib)
    end
  end)

  it("decodes with the embedded copy, loaded from a memfd", function()
    local r = helpers.spawn(app, {}, {env = {EVO_LIBSIMDJSON = false}})
    assert.equal(r.code, 0, r.stderr)
    local f = fields(r.stdout)
    assert.equal(f.decoded, '{"ok":[1,2.5,"é"]}')
    assert.truthy(f.from:find("^/proc/self/fd/%d+$"), f.from)
    assert.equal(f.mapped, "/memfd:libsimdjson.so.14 (deleted)")  -- the memfd is named after the soname
  end)

  it("runs where the system's libsimdjson.so.14 is unusable; a plain evo there cannot decode", function()
    if not fs.exists(SYSTEM_LIB) then return pending("no " .. SYSTEM_LIB) end
    if not canUnshare() then return pending("unshare -m not permitted") end
    local r = withoutSystemLib({app}, {EVO_LIBSIMDJSON = false})
    assert.equal(r.code, 0, r.stderr)
    local f = fields(r.stdout)
    assert.equal(f.decoded, '{"ok":[1,2.5,"é"]}')
    assert.equal(f.mapped, "/memfd:libsimdjson.so.14 (deleted)")
    -- The same namespace does hide the library: the plain runtime fails.
    r = withoutSystemLib({EVO, dir .. "/app.lua"}, {EVO_LIBSIMDJSON = false})
    assert.equal(r.code, 0, r.stderr)
    assert.truthy(r.stdout:find("^error=LibraryUnavailable: libsimdjson.so.14 cannot be loaded: "), r.stdout)
    assert.truthy(r.stdout:find("apt install libsimdjson14", 1, true), r.stdout)
  end)

  it("EVO_LIBSIMDJSON applies in a built app too", function()
    local r = helpers.spawn(app, {}, {env = {EVO_LIBSIMDJSON = "/nonexistent/libsimdjson.so.14"}})
    assert.equal(r.code, 0, r.stderr)
    assert.truthy(r.stdout:find("^error=LibraryUnavailable: /nonexistent/libsimdjson.so.14 cannot be loaded"),
      r.stdout)
  end)

  it("an app built by an evo without the library says so and uses the system's", function()
    local other = dir .. "/app-without"
    local r = helpers.spawn(EVO, {"build", dir .. "/app.lua", "-o", other},
      {env = {EVO_LIBSIMDJSON = "/nonexistent/libsimdjson.so.14"}})
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    assert.truthy(r.stdout:find("0 libraries;", 1, true), r.stdout)
    assert.truthy(r.stderr:find("evo build: note: libsimdjson.so.14 not embedded (", 1, true), r.stderr)
    assert.truthy(r.stderr:find("the app will need it installed", 1, true), r.stderr)
    assert.truthy(fs.stat(other).size < fs.stat(app).size - 100000)
    if not uv.fs_stat(SYSTEM_LIB) then return end
    r = helpers.spawn(other, {}, {env = {EVO_LIBSIMDJSON = false}})
    assert.equal(r.code, 0, r.stderr)
    local f = fields(r.stdout)
    assert.equal(f.decoded, '{"ok":[1,2.5,"é"]}')
    assert.equal(f.from, SYSTEM_LIB)
  end)
end)
