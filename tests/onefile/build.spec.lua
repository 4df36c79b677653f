-- evo build: one-file executables (docs/build.md). The chat example built
-- into one file runs from an empty directory in a fresh mount namespace with
-- the source tree (and the evo under test) hidden under a tmpfs and the
-- environment empty, serving its page (curl) and a WebSocket round trip
-- (Python's websockets). A fixture app proves the rest: requires followed
-- (nested, dynamic ones through --include), fs.readFile/stat/readdir,
-- io.open/io.lines and http.static reading embedded files, embedded first
-- then the disk, arg and ..., --version, --strip, a C module loaded from the
-- binary, and clear errors for bad input.
local process = require("process")
local task = require("task")
local fs = require("fs")
local json = require("json")
local uv = require("uv")

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."
local ROOT = fs.realpath(here .. "/../..")
package.path = ROOT .. "/tests/lua/?.lua;" .. package.path
local helpers = require("helpers")
local EVO = helpers.evo

local function run(program, argv, opts)
  local r = helpers.spawn(program, argv, opts)
  return r
end

local function build(argv, opts)
  local r = run(EVO, {"build", unpack(argv)}, opts)
  return r
end

local function write(path, text)
  assert(fs.mkdir(path:match("^(.*)/[^/]*$"), {recursive = true}))
  assert(fs.writeFile(path, text))
end

local function canUnshare()
  local r = run("/usr/bin/unshare", {"-m", "/bin/true"})
  return r.code == 0
end

describe("evo build: the chat example in one file", function()
  local dir, app
  before(function()
    dir = helpers.tempDir("evo-build-chat-")
    app = dir .. "/chat"
    local r = build({ROOT .. "/examples/chat/server.lua", "-o", app, "--include", ROOT .. "/examples/chat/public",
      "--app-version", "1.0.0"})
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    assert.truthy(r.stdout:find("wrote " .. app, 1, true))
  end)

  it("serves its page and a WebSocket round trip with the source tree, PATH and LUA_PATH out of reach", function()
    local isolated = canUnshare()
    -- Inside: the repository (and the evo under test, in it) under an empty
    -- tmpfs, /usr/share/lua and /usr/lib/.../lua too, the environment empty.
    local hide = {ROOT}
    for _, d in ipairs({"/usr/share/lua", "/usr/local/share/lua", "/usr/lib/x86_64-linux-gnu/lua"}) do
      if fs.stat(d) then hide[#hide + 1] = d end
    end
    local script = "set -e; for d in \"$@\"; do /bin/mount -t tmpfs tmpfs \"$d\"; done; " ..
      "test ! -e " .. ROOT .. "/lib/fs.lua; cd " .. dir .. "; exec /usr/bin/env -i ./chat 0"
    local program, argv
    if isolated then
      program, argv = "/usr/bin/unshare", {"-m", "/bin/sh", "-c", script, "sh", unpack(hide)}
    else  -- without the right to unshare: at least an empty environment and another directory
      program, argv = "/usr/bin/env", {"-i", app, "0"}
    end
    local child = assert(process.spawn(program, argv, {cwd = dir, stdin = "ignore", stderr = "pipe"}))
    local line = task.timeout(15, function() return child.stdout:readLine() end)
    local port = tonumber((line or ""):match("^chat: http://127%.0%.0%.1:(%d+)/$"))
    if not port then
      child:kill("KILL")
      child:wait()
      error("the built chat did not start: " .. tostring(line) .. " " .. tostring(child.stderr:readAll()))
    end
    local ok, err = pcall(function()
      local page = run("/usr/bin/curl", {"-s", "-f", "http://127.0.0.1:" .. port .. "/"})
      assert.equal(page.code, 0, page.stderr)
      assert.equal(page.stdout, assert(fs.readFile(ROOT .. "/examples/chat/public/index.html")))
      local py = helpers.python([==[
import asyncio, json, sys, websockets
async def main(url):
    async with websockets.connect(url) as ws:
        welcome = json.loads(await ws.recv())
        await ws.send("hello from python")
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if m.get("type") == "message":
                print(json.dumps([welcome["type"], m["text"], m["from"] == welcome["you"]]))
                return
asyncio.run(main(sys.argv[1]))
]==], nil, {"ws://127.0.0.1:" .. port .. "/chat"})
      assert.same(json.decode(py), {"welcome", "hello from python", true})
    end)
    child:kill("TERM")
    task.timeout(5, function() return child:wait() end)
    assert(ok, err)
    if not isolated then print("  (unshare -m not permitted: ran with an empty environment only)") end
  end)

  it("prints the app's and Evo's versions", function()
    local r = run(app, {"--version"})
    assert.equal(r.code, 0)
    assert.truthy(r.stdout:match("^chat 1%.0%.0\nEvo %d+%.%d+%.%d+\n"), r.stdout)
    assert.truthy(r.stdout:find("LuaJIT", 1, true))
  end)
end)

local MAIN = [[
local util = require("lib.util")
local deep = require "deep"
local fs = require("fs")
local out = {}
local function put(k, v) out[#out + 1] = k .. "=" .. tostring(v) end
put("util", util.name)
put("deep", deep.chain)
put("arg0", arg[0])
put("args", table.concat({...}, ","))
put("arg1", arg[1])
put("read", fs.readFile("assets/hello.txt"))
local st = fs.stat("assets/hello.txt")
put("stat", st.type .. ":" .. st.size)
put("exists", fs.exists("assets/sub/deep.txt"))
put("dir", table.concat(fs.readdir("assets"), ","))
local entries = fs.readdir("assets", {types = true})
put("dirtypes", entries[#entries].name .. ":" .. entries[#entries].type)
put("dirstat", fs.stat("assets/sub").type)
local f = assert(io.open("assets/hello.txt"))
put("io.open", f:read("*a"))
f:close()
local lines = {}
for l in io.lines("./assets/sub/../lines.txt") do lines[#lines + 1] = l end
put("io.lines", table.concat(lines, "+"))
put("disk", fs.readFile("ondisk.txt"))
put("missing", select(2, fs.readFile("nowhere.txt")).code)
local plugin = "plugins." .. "p1"
put("plugin", require(plugin).id)
put("worker", require("task").work(function() return require("deeper") end))
put("cmod", pcall(require, "cmod") and require("cmod").twice(21) or "none")
-- http.static from the archive, read back with Evo's client
local http = require("http")
local server = http.serve({port = 0, host = "127.0.0.1"}, http.static("assets"))
local res = assert(http.get("http://127.0.0.1:" .. server.port .. "/hello.txt"))
put("static", res.status .. ":" .. res.body .. ":" .. res.headers["content-type"])
local res2 = assert(http.get("http://127.0.0.1:" .. server.port .. "/sub/deep.txt", {headers = {range = "bytes=1-3"}}))
put("range", res2.status .. ":" .. res2.body)
server:close()
print(table.concat(out, "\n"))
]]

describe("evo build: a fixture app", function()
  local src, out, app, stripped, plain
  local haveCC = uv.fs_stat("/usr/bin/cc") ~= nil

  before(function()
    src = helpers.tempDir("evo-build-src-")
    out = helpers.tempDir("evo-build-out-")
    write(src .. "/main.lua", MAIN)
    write(src .. "/lib/util.lua", "return {name = 'util'}\n")
    write(src .. "/deep.lua", "local d = require('deeper')\nreturn {chain = 'deep>' .. d}\n")
    write(src .. "/deeper.lua", "return 'deeper'\n")
    write(src .. "/plugins/p1.lua", "return {id = 'p1'}\n")
    write(src .. "/assets/hello.txt", "embedded hello")
    write(src .. "/assets/lines.txt", "one\ntwo\n")
    write(src .. "/assets/sub/deep.txt", "0123456789")
    if haveCC then
      write(src .. "/cmod.c", [[
#include <lua.h>
#include <lauxlib.h>
static int twice(lua_State *L) { lua_pushnumber(L, 2 * luaL_checknumber(L, 1)); return 1; }
int luaopen_cmod(lua_State *L) { lua_newtable(L); lua_pushcfunction(L, twice); lua_setfield(L, -2, "twice"); return 1; }
]])
      local cc = run("/usr/bin/cc", {"-shared", "-fPIC", "-I/usr/include/luajit-2.1", "-o", src .. "/cmod.so",
        src .. "/cmod.c"})
      assert.equal(cc.code, 0, cc.stderr)
      -- the fixture requires it by a string literal so the build follows it
      local m = assert(fs.readFile(src .. "/main.lua"))
      assert(fs.writeFile(src .. "/main.lua", "local _ = require('cmod')\n" .. m))
    end
    app, stripped = out .. "/app", out .. "/app-stripped"
    local r = build({src .. "/main.lua", "-o", app, "--include", src .. "/assets", "--include", src .. "/plugins",
      "--app-version", "2.0.1", "--name", "fixture"})
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    r = build({src .. "/main.lua", "-o", stripped, "--include", src .. "/assets", "--include", src .. "/plugins",
      "--strip"})
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    -- The sources move away: what runs comes from the binary. The working
    -- directory has its own assets/hello.txt (the embedded one wins) and a
    -- file only the disk has.
    assert(fs.rename(src, src .. "-gone"))
    write(out .. "/ondisk.txt", "from the disk")
    write(out .. "/assets/hello.txt", "the disk's hello")
    local p = run(app, {"a b", "c"}, {cwd = out, env = {LUA_PATH = false, LUA_CPATH = false, PATH = false}})
    assert.equal(p.code, 0, p.stderr .. p.stdout)
    plain = {}
    for k, v in p.stdout:gmatch("([^=\n]+)=([^\n]*)") do plain[k] = v end
    assert(fs.rename(src .. "-gone", src))
  end)

  it("follows string-literal requires, nested, and runs the modules from the binary", function()
    assert.equal(plain.util, "util")
    assert.equal(plain.deep, "deep>deeper")
  end)

  it("embeds the .lua files under --include as modules, for requires built at run time", function()
    assert.equal(plain.plugin, "p1")
  end)

  it("finds embedded modules in a task.work state too", function()
    assert.equal(plain.worker, "deeper")
  end)

  it("gives the app arg and ... as a script gets them", function()
    assert.equal(plain.arg0, app)
    assert.equal(plain.arg1, "a b")
    assert.equal(plain.args, "a b,c")
  end)

  it("reads embedded files with fs.readFile, fs.stat, fs.exists and fs.readdir, embedded first", function()
    assert.equal(plain.read, "embedded hello")  -- not the disk's assets/hello.txt
    assert.equal(plain.stat, "file:14")
    assert.equal(plain.exists, "true")
    assert.equal(plain.dir, "hello.txt,lines.txt,sub")
    assert.equal(plain.dirtypes, "sub:directory")
    assert.equal(plain.dirstat, "directory")
  end)

  it("falls back to the disk for what the archive does not hold", function()
    assert.equal(plain.disk, "from the disk")
    assert.equal(plain.missing, "ENOENT")
  end)

  it("reads embedded files with io.open and io.lines (paths normalized)", function()
    assert.equal(plain["io.open"], "embedded hello")
    assert.equal(plain["io.lines"], "one+two")
  end)

  it("serves embedded files with http.static, ranges included", function()
    assert.equal(plain.static, "200:embedded hello:text/plain; charset=utf-8")
    assert.equal(plain.range, "206:123")
  end)

  it("loads a C module from the binary (memfd + dlopen)", function()
    if not haveCC then return pending("no C compiler") end
    assert.equal(plain.cmod, "42")
  end)

  it("--version shows the app's name and version, then Evo's", function()
    local r = run(app, {"--version"})
    assert.truthy(r.stdout:match("^fixture 2%.0%.1\nEvo "), r.stdout)
    r = run(stripped, {"--version"})
    assert.truthy(r.stdout:match("^app%-stripped 0%.0%.0\nEvo "), r.stdout)
  end)

  it("--strip makes a smaller binary that runs the same", function()
    local a, b = fs.stat(app).size, fs.stat(stripped).size
    assert.truthy(b < a, ("stripped %d, plain %d"):format(b, a))
    -- no symbol table and no debug info left in the runtime copy; the
    -- dynamic symbols C modules link against stay
    if uv.fs_stat("/usr/bin/readelf") then
      local sections = run("/usr/bin/readelf", {"-S", "-W", stripped}).stdout
      assert.falsy(sections:find(".debug_info", 1, true))
      assert.falsy(sections:find(".symtab", 1, true))
      assert.truthy(sections:find(".dynsym", 1, true))
      assert.truthy(run("/usr/bin/readelf", {"-S", "-W", app}).stdout:find(".debug_info", 1, true))
    end
    local p = run(stripped, {"x"}, {cwd = out})
    assert.equal(p.code, 0, p.stderr)
    assert.truthy(p.stdout:find("read=embedded hello", 1, true))
    assert.truthy(p.stdout:find("deep=deep>deeper", 1, true))
  end)

  it("a built app takes `build` as its own argument; a lone script builds and runs", function()
    local r = run(app, {"build"}, {cwd = out})
    assert.equal(r.code, 0)
    assert.truthy(r.stdout:find("args=build", 1, true))
    local again = out .. "/again"
    write(out .. "/hello.lua", "print('hi from ' .. arg[0])\n")
    r = build({out .. "/hello.lua", "-o", again})
    assert.equal(r.code, 0, r.stderr)
    r = run(again, {})
    assert.equal(r.stdout, "hi from " .. again .. "\n")
  end)
end)

describe("evo build: bad input", function()
  local dir
  before(function() dir = helpers.tempDir("evo-build-bad-") end)

  it("a missing entry script", function()
    local r = build({dir .. "/nope.lua", "-o", dir .. "/x"})
    assert.equal(r.code, 1)
    assert.truthy(r.stderr:find("evo build: cannot read the entry script " .. dir .. "/nope.lua", 1, true), r.stderr)
    assert.falsy(fs.exists(dir .. "/x"))
  end)

  it("an output that cannot be written", function()
    write(dir .. "/ok.lua", "print(1)\n")
    local r = build({dir .. "/ok.lua", "-o", dir .. "/no/such/dir/app"})
    assert.equal(r.code, 1)
    assert.truthy(r.stderr:find("cannot write '" .. dir .. "/no/such/dir/app'", 1, true), r.stderr)
  end)

  it("a syntax error in a required module names the file and line", function()
    write(dir .. "/main.lua", "require('broken')\n")
    write(dir .. "/broken.lua", "local x = \nreturn (\n")
    local r = build({dir .. "/main.lua", "-o", dir .. "/app"})
    assert.equal(r.code, 1)
    assert.truthy(r.stderr:find("evo build: " .. dir .. "/broken.lua:2: unexpected symbol near 'return'", 1, true),
      r.stderr)
    assert.falsy(fs.exists(dir .. "/app"))
  end)

  it("no output, an unknown option, a missing --include", function()
    write(dir .. "/ok.lua", "print(1)\n")
    local r = build({dir .. "/ok.lua"})
    assert.equal(r.code, 1)
    assert.truthy(r.stderr:find("no output file", 1, true))
    r = build({dir .. "/ok.lua", "-o", dir .. "/a", "--frobnicate"})
    assert.truthy(r.stderr:find("unknown option '--frobnicate'", 1, true))
    r = build({dir .. "/ok.lua", "-o", dir .. "/a", "--include", dir .. "/none"})
    assert.equal(r.code, 1)
    assert.truthy(r.stderr:find("--include " .. dir .. "/none: no such file or directory", 1, true))
  end)

  it("a require not found at build time is a note, not a failure", function()
    write(dir .. "/main.lua", "local ok = pcall(function() return require('not_there') end)\nprint(ok)\n")
    local r = build({dir .. "/main.lua", "-o", dir .. "/app"})
    assert.equal(r.code, 0, r.stderr)
    assert.truthy(r.stderr:find("require 'not_there' not found at build time", 1, true))
    r = run(dir .. "/app", {})
    assert.equal(r.stdout, "false\n")
  end)
end)
