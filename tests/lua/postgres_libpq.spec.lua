-- postgres: libpq loaded on first use (src/bind/libpq.*). The evo binary
-- does not link libpq (ldd lists none of libpq, krb5, LDAP, GnuTLS);
-- require("postgres") maps no libpq, the first connection does; and when
-- libpq cannot be loaded (EVO_LIBPQ naming a missing file, or a library that
-- is not libpq) connecting, a pool's query and libpqVersion() return
-- nil, err (LibraryUnavailable, naming Debian's libpq5), in both Io modes;
-- an app made by `evo build` loads libpq the same way.
-- Needs no PostgreSQL server: connections go to a closed port.
local helpers = require("helpers")
local postgres = require("postgres")

-- A child evo running `code`; its stdout lines, with EVO_LIBPQ = lib (false: unset).
local function child(code, lib, ioMode)
  local path = helpers.tempFile("libpq.lua", code)
  local argv = {path}
  if ioMode then argv = {"--io=" .. ioMode, path} end
  local r = helpers.runEvo(argv, {env = {EVO_LIBPQ = lib}})
  assert.equal(r.code, 0, r.stderr)
  return r.stdout
end

-- Whether this process has a libpq mapped, then the errors of every entry point.
local probe = [[
local function mapped()
  local f = assert(io.open("/proc/self/maps"))
  local maps = f:read("*a")
  f:close()
  return maps:find("libpq%.so") ~= nil
end
local postgres = require("postgres")
print("after require", mapped())
local db, err = postgres.connect({host = "127.0.0.1", port = 1, user = "x", database = "x", connectTimeout = 2})
print("connect", db, err and err.code, err and err.message)
print("after connect", mapped())
local _, again = postgres.connect("postgres://x@127.0.0.1:1/x")
print("again", again and again.code)
local pool = postgres.pool({url = "postgres://x@127.0.0.1:1/x", max = 1})
local _, perr = pool:query("SELECT 1")
print("pool", perr and perr.code)
pool:close()
local v, verr = postgres.libpqVersion()
print("version", v, verr and verr.code)
]]

local function field(out, name)
  return out:match("\n?" .. name .. "\t([^\n]*)")
end

describe("postgres: libpq loaded on first use", function()
  it("evo does not link libpq nor what libpq pulls in", function()
    local r = helpers.spawn("/usr/bin/ldd", {helpers.evo})
    assert.equal(r.code, 0, r.stderr)
    for _, lib in ipairs({"libpq", "libkrb5", "libgssapi", "libldap", "libgnutls", "libsasl2"}) do
      assert.falsy(r.stdout:find(lib, 1, true), lib .. " is linked:\n" .. r.stdout)
    end
  end)

  it("maps libpq at the first connection, not at require", function()
    local out = child(probe, false)
    assert.equal(field(out, "after require"), "false")
    assert.equal(field(out, "after connect"), "true")
    -- libpq itself refuses: port 1 is closed.
    assert.match(field(out, "connect"), "^nil\tECONNREFUSED\t")
    assert.equal(field(out, "again"), "ECONNREFUSED")
  end)

  it("gives libpqVersion() as a number (libpq 14 or later: pipeline mode)", function()
    local v = assert(postgres.libpqVersion())
    assert.equal(type(v), "number")
    assert.truthy(v >= 140000, tostring(v))
  end)

  for _, ioMode in ipairs({"evented", "blocking"}) do
    it("returns LibraryUnavailable naming libpq5 when the library is missing (" .. ioMode .. ")", function()
      local out = child(probe, "/nonexistent/libpq.so.5", ioMode)
      assert.equal(field(out, "after connect"), "false")
      local line = field(out, "connect")
      assert.match(line, "^nil\tLibraryUnavailable\t")
      assert.truthy(line:find("/nonexistent/libpq.so.5 cannot be loaded", 1, true), line)
      assert.truthy(line:find("No such file", 1, true), line)
      assert.truthy(line:find("Debian's libpq5 package (apt install libpq5)", 1, true), line)
      assert.equal(field(out, "again"), "LibraryUnavailable")
      assert.equal(field(out, "pool"), "LibraryUnavailable")
      assert.equal(field(out, "version"), "nil\tLibraryUnavailable")
    end)
  end

  it("loads libpq from an app made by evo build", function()
    local src, dir = helpers.tempFile("pgapp.lua", probe)
    local app = dir .. "/pgapp"
    local b = helpers.runEvo({"build", src, "-o", app}, {timeout = 30})
    assert.equal(b.code, 0, b.stderr)
    local r = helpers.spawn(app, {}, {env = {EVO_LIBPQ = false}})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(field(r.stdout, "after require"), "false")
    assert.equal(field(r.stdout, "after connect"), "true")
    assert.match(field(r.stdout, "version"), "^%d+\tnil$")
    r = helpers.spawn(app, {}, {env = {EVO_LIBPQ = "/nonexistent/libpq.so.5"}})
    assert.equal(field(r.stdout, "pool"), "LibraryUnavailable")
  end)

  it("names the missing function when the library is not libpq", function()
    local out = child(probe, "libc.so.6")
    local line = field(out, "connect")
    assert.match(line, "^nil\tLibraryUnavailable\t")
    assert.truthy(line:find("libc.so.6 has no PQlibVersion (libpq 14 or later is needed)", 1, true), line)
    assert.truthy(line:find("libpq5", 1, true), line)
  end)
end)
