-- How evo is linked for C modules (CMakeLists.txt, docs/build.md): it exports
-- LuaJIT's and luv's C API and nothing of its own (tools/evo-exports.list), and
-- carries libgcc's unwinder itself, which LuaJIT's errors use to unwind through
-- a C module's frames.
local h = require("helpers")

local function run(program, args)
  local r = h.spawn(program, args)
  assert.equal(r.code, 0, r.stderr)
  return r.stdout
end

local function exported()
  local set = {}
  for line in run("nm", {"-D", "--defined-only", h.evo}):gmatch("[^\n]+") do
    local name = line:match("%S+$")
    set[name:gsub("@.*", "")] = true
  end
  return set
end

describe("evo's exported symbols", function()
  it("include the Lua C API, LuaJIT's and luv's", function()
    local set = exported()
    for _, name in ipairs({"lua_pushstring", "lua_pcall", "luaL_checklstring", "luaL_register", "luaopen_base",
      "luaopen_jit", "luaJIT_setmode", "luv_loop", "luv_set_loop", "luv_state"}) do
      assert.truthy(set[name], name .. " is not exported")
    end
  end)

  it("leave out evo's own code and the libraries linked into it", function()
    -- (A sanitized evo exports the sanitizer runtime's interceptors, the
    -- unwinder's among them, and links libgcc_s: see CMakeLists.txt.)
    local sanitized = os.getenv("EVO_SANITIZED") == "1"
    for name in pairs(exported()) do
      -- copy-relocated libc data (stdout, environ...) and the start symbols the linker adds are fine
      assert.falsy(name:match("^_ZN3evo") or name:match("^llhttp") or name:match("^uv_") or name:match("^SSL_")
        or name:match("^_ZNSt") or (not sanitized and name:match("^_Unwind")), name .. " is exported")
    end
  end)

  it("are what Debian's C modules bind to (lpeg, cjson)", function()
    local r = h.runEvo({"-e", [[
      local lpeg, cjson = require("lpeg"), require("cjson")
      print(lpeg.match(lpeg.C(lpeg.R("az") ^ 1), "abc1"), cjson.encode({1, 2}))]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "abc\t[1,2]\n")
  end)
end)

describe("errors through C frames", function()
  it("unwind through a C module's frames to the pcall that catches them", function()
    -- The error is raised in Lua called back from lpeg's C matcher, so LuaJIT
    -- unwinds lpeg.so's frames with evo's own unwinder.
    local r = h.runEvo({"-e", [[
      local lpeg = require("lpeg")
      local p = lpeg.Cmt(lpeg.P(1), function() error({code = "Boom"}) end)
      for _ = 1, 3 do
        local ok, err = pcall(lpeg.match, p, "x")
        io.write(tostring(ok), " ", err.code, ";")
      end
      print(select(2, pcall(require("cjson").decode, "{bad")))]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "false Boom;false Boom;false Boom;Expected object key string but found invalid token at character 2\n")
  end)

  it("need no libgcc_s.so: the unwinder is linked in", function()
    if os.getenv("EVO_SANITIZED") == "1" then return end  -- the sanitizers' runtime brings its own libraries
    local needed = run("readelf", {"-d", h.evo})
    assert.falsy(needed:find("libgcc_s", 1, true), needed)
    assert.truthy(needed:find("libc.so.6", 1, true), needed)
  end)
end)
