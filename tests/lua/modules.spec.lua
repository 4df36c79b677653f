-- Module loading: built-ins, the search path, Debian's Lua modules.
local h = require("helpers")
local uv = require("uv")

describe("require", function()
  it("finds modules next to the main script", function()
    local _, dir = h.tempFile("helper_mod.lua", "return {answer = 42}")
    local main = h.writeFile(dir .. "/main.lua", "print(require('helper_mod').answer)")
    local r = h.runEvo({main}, {cwd = "/"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "42\n")
  end)

  it("finds modules in ./ and in packages (?/init.lua)", function()
    local _, dir = h.tempFile("cwd_mod.lua", "return 'from cwd'")
    assert(uv.fs_mkdir(dir .. "/pkg", 493))
    h.writeFile(dir .. "/pkg/init.lua", "return 'from pkg'")
    local r = h.runEvo({"-e", "print(require('cwd_mod'), require('pkg'))"}, {cwd = dir})
    assert.equal(r.stdout, "from cwd\tfrom pkg\n")
  end)

  it("searches LUA_PATH and LUA_CPATH", function()
    local _, dir = h.tempFile("from_env.lua", "return 'env path'")
    local r = h.runEvo({"-e", "print(require('from_env')); print(package.cpath:find('/nowhere/?.so', 1, true) ~= nil)"},
      {env = {LUA_PATH = dir .. "/?.lua;;", LUA_CPATH = "/nowhere/?.so;;"}})
    assert.equal(r.stdout, "env path\ntrue\n")
  end)

  it("lets built-ins win over files of the same name", function()
    local _, dir = h.tempFile("events.lua", "return 'shadow'")
    local r = h.runEvo({"-e", "print(type(require('events')), type(require('uv')))"}, {cwd = dir})
    assert.equal(r.stdout, "table\ttable\n")
  end)

  it("explains where it looked for a missing module", function()
    local r = h.runEvo({"-e", "require('no_such_module_xyz')"})
    assert.equal(r.code, 1)
    assert.match(r.stderr, "module 'no_such_module_xyz' not found")
    assert.match(r.stderr, "no built%-in module 'no_such_module_xyz'")
    assert.match(r.stderr, "/usr/share/lua/5%.1/no_such_module_xyz%.lua")
  end)

  it("loads Debian's lua-penlight (pure Lua)", function()
    local r = h.runEvo({"-e", "local List = require('pl.List'); print(List({3, 1, 2}):sort():concat(','))"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "1,2,3\n")
  end)

  it("loads Debian's lua-lpeg (a C module using the Lua API exported by evo)", function()
    local r = h.runEvo({"-e", "local lpeg = require('lpeg'); print(lpeg.match(lpeg.C(lpeg.R('09')^1), '2026abc'))"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "2026\n")
  end)

  it("loads Debian's lua-cjson", function()
    local r = h.runEvo({"-e", "local cjson = require('cjson'); local t = cjson.decode('{\"a\":[1,2]}'); print(t.a[2], cjson.encode({x = true}))"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "2\t{\"x\":true}\n")
  end)

  it("does not patch Lua's standard library", function()
    local r = h.runEvo({"-e", [[
      local names = {}
      for k in pairs(_G) do names[#names + 1] = k end
      table.sort(names)
      print(table.concat(names, " "))
      print(tostring(print):match("builtin#") ~= nil, debug.getinfo(require, "S").what == "C")
    ]]})
    local expected = "_G _VERSION arg assert bit collectgarbage coroutine debug dofile error gcinfo getfenv " ..
      "getmetatable io ipairs jit load loadfile loadstring math module newproxy next os package pairs pcall " ..
      "print rawequal rawget rawset require select setfenv setmetatable string table tonumber tostring type " ..
      "unpack xpcall"
    assert.equal(h.lines(r.stdout)[1], expected)
    assert.equal(h.lines(r.stdout)[2], "true\ttrue", "print and require are LuaJIT's own")
  end)
end)
