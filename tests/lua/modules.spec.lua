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

describe("C modules", function()
  -- A module that wraps every C function call (LUAJIT_MODE_WRAPCFUNC, as C++
  -- bindings do to turn exceptions into errors) and owns a userdata whose
  -- finalizer is its own code: both must still be there when lua_close runs
  -- the finalizers at exit.
  local source = [[
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <luajit.h>
static int wrap(lua_State *L, lua_CFunction f) { return f(L); }
static int finalize(lua_State *L) { (void)L; printf("finalized\n"); fflush(stdout); return 0; }
int luaopen_wrapmod(lua_State *L) {
  lua_pushlightuserdata(L, (void *)wrap);
  luaJIT_setmode(L, -1, LUAJIT_MODE_WRAPCFUNC | LUAJIT_MODE_ON);
  lua_pop(L, 1);
  lua_newuserdata(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, finalize);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  return 1;
}
]]

  it("survives a module that turns on LUAJIT_MODE_WRAPCFUNC (no crash at exit)", function()
    assert.truthy(require("uv").fs_stat("/usr/bin/cc"), "a C compiler is needed")
    local src, dir = h.tempFile("wrapmod.c", source)
    local cc = h.spawn("/usr/bin/cc", {"-shared", "-fPIC", "-I/usr/include/luajit-2.1", "-o", dir .. "/wrapmod.so", src})
    assert.equal(cc.code, 0, cc.stderr)
    local chunk = "package.cpath = '" .. dir .. "/?.so;' .. package.cpath; held = require('wrapmod'); print('loaded')"
    local r = h.runEvo({"-e", chunk})
    assert.equal(r.signal, 0, "evo crashed: signal " .. tostring(r.signal))
    assert.equal(r.code, 0, r.stderr)
    local lj = h.spawn("/usr/bin/luajit", {"-e", chunk})
    assert.equal(lj.stdout, "loaded\nfinalized\n")
    assert.equal(r.stdout, lj.stdout)
  end)
end)
