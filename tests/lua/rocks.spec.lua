-- LuaRocks: require's lua_modules search (walking up from the script's
-- directory, after the script's own files and before LUA_PATH and the
-- system's), and `evo rocks` with Debian's luarocks, offline: the pure-Lua
-- rock of tests/fixtures/rocks installed with `evo rocks make`, the C rock
-- packed into a .src.rock and installed from that file, compiled against
-- LuaJIT's headers with no Lua library linked, and both required under evo
-- from a script in a subdirectory; the wrapper luarocks writes for a rock's
-- script runs evo; `evo build` of a script using both gives one file that
-- runs with the tree moved away. Docs: docs/rocks.md.
local h = require("helpers")
local uv = require("uv")

local FIXTURES = h.root .. "/tests/fixtures/rocks"

local function mkdirs(path)
  local sofar = ""
  for part in path:gmatch("[^/]+") do
    sofar = sofar .. "/" .. part
    uv.fs_mkdir(sofar, 493)
  end
  return path
end

local function exists(path)
  return uv.fs_stat(path) ~= nil
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

-- Plain-text and pattern checks that print what they looked in (and keep
-- clear of assert.match's argument order, which busted has the other way).
local function contains(s, text)
  assert.truthy(s:find(text, 1, true), ("%q not found in:\n%s"):format(text, s))
end

local function matches(s, pattern)
  assert.truthy(s:find(pattern), ("no match for %q in:\n%s"):format(pattern, s))
end

-- sh(cmd, cwd) -> stdout, asserting the shell command exited 0.
local function sh(cmd, cwd)
  local r = h.spawn("/bin/sh", {"-c", cmd}, {cwd = cwd, timeout = 60})
  assert.equal(r.code, 0, cmd .. ": " .. r.stderr .. r.stdout)
  return r.stdout
end

-- rocks(args, cwd) -> result of `evo rocks args...` run in cwd.
local function rocks(args, cwd, env)
  local argv = {"rocks"}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return h.runEvo(argv, {cwd = cwd, env = env, timeout = 120})
end

-- A file under a tree's Lua directory.
local function treeModule(tree, name, text)
  local path = tree .. "/share/lua/5.1/" .. name:gsub("%.", "/") .. ".lua"
  mkdirs(path:match("^(.*)/[^/]*$"))
  return h.writeFile(path, text)
end

describe("require and lua_modules", function()
  local project
  before(function()
    project = h.tempDir("evo-rocks-path-")
    mkdirs(project .. "/app/sub")
    treeModule(project .. "/lua_modules", "lm_outer", "return 'outer tree'")
    treeModule(project .. "/lua_modules", "lm_which", "return 'outer'")
    treeModule(project .. "/lua_modules", "lm_pkg.init", "return 'pkg init'")
    treeModule(project .. "/app/lua_modules", "lm_which", "return 'inner'")
  end)

  it("finds modules in the lua_modules trees above the script, nearest first", function()
    local main = h.writeFile(project .. "/app/sub/main.lua",
      "print(require('lm_outer'), require('lm_which'), require('lm_pkg'))")
    local r = h.runEvo({main}, {cwd = "/"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "outer tree\tinner\tpkg init\n")
  end)

  it("puts the script's directory and ./ first, then the trees, then LUA_PATH and the system's", function()
    local dir = project .. "/app/sub"
    h.writeFile(dir .. "/lm_shadow.lua", "return 'script dir'")
    treeModule(project .. "/lua_modules", "lm_shadow", "return 'tree'")
    -- Debian's lua-penlight has pl/List.lua in /usr/share/lua/5.1; LUA_PATH
    -- has its own copy too: the tree's wins over both.
    treeModule(project .. "/lua_modules", "pl.List", "return 'tree List'")
    local envDir = h.tempDir()
    mkdirs(envDir .. "/pl")
    h.writeFile(envDir .. "/pl/List.lua", "return 'LUA_PATH List'")
    h.writeFile(envDir .. "/lm_envonly.lua", "return 'LUA_PATH only'")
    local main = h.writeFile(dir .. "/prec.lua", [[
      print(require('lm_shadow'), require('pl.List'), require('lm_envonly'))
      local function at(s, entry) return (assert(s:find(entry, 1, true), entry)) end
      local tree = ]] .. string.format("%q", project) .. [[ .. "/lua_modules/"
      assert(at(package.path, "./?.lua") < at(package.path, tree .. "share/lua/5.1/?.lua"))
      assert(at(package.path, tree .. "share/lua/5.1/?/init.lua") < at(package.path, "/usr/share/lua/5.1/?.lua"))
      assert(at(package.cpath, "./?.so") < at(package.cpath, tree .. "lib/lua/5.1/?.so"))
      assert(at(package.cpath, tree .. "lib/lua/5.1/?.so") < at(package.cpath, "/usr/lib/"))
      print("order ok")
    ]])
    local r = h.runEvo({main}, {cwd = "/", env = {LUA_PATH = envDir .. "/?.lua;;"}})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "script dir\ttree List\tLUA_PATH only\norder ok\n")
  end)

  it("lets built-in modules win over a rock of the same name", function()
    treeModule(project .. "/lua_modules", "json", "return 'rock json'")
    local r = h.runEvo({"-e", "print(type(require('json').encode))"}, {cwd = project .. "/app/sub"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "function\n")
  end)

  it("walks up from the current directory for -e and stdin", function()
    local r = h.runEvo({"-e", "print(require('lm_which'))"}, {cwd = project .. "/app/sub"})
    assert.equal(r.stdout, "inner\n", r.stderr)
    r = h.runEvo({"-"}, {cwd = project, stdin = "print(require('lm_which'))"})
    assert.equal(r.stdout, "outer\n", r.stderr)
  end)

  it("adds no tree when there is none, and ignores a lua_modules that is not a directory", function()
    local dir = h.tempDir()
    h.writeFile(dir .. "/lua_modules", "not a directory")
    local r = h.runEvo({"-e", "print((package.path .. package.cpath):find('lua_modules', 1, true))"}, {cwd = dir})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "nil\n")
  end)

  it("names the trees in a failed require's search list", function()
    local r = h.runEvo({"-e", "require('lm_nowhere')"}, {cwd = project .. "/app/sub"})
    assert.equal(r.code, 1)
    contains(r.stderr, project .. "/app/lua_modules/share/lua/5.1/lm_nowhere.lua")
    contains(r.stderr, project .. "/lua_modules/lib/lua/5.1/lm_nowhere.so")
  end)

  it("evo test searches the trees above each spec's directory", function()
    mkdirs(project .. "/app/spec")
    local spec = h.writeFile(project .. "/app/spec/tree.spec.lua", [[
      describe("tree", function()
        it("requires rocks", function()
          assert.equal(require("lm_which"), "inner")
          assert.equal(require("lm_outer"), "outer tree")
        end)
      end)
    ]])
    local r = h.runEvo({"test", spec}, {cwd = "/"})
    assert.equal(r.code, 0, r.stdout .. r.stderr)
    matches(r.stdout, "1 passed, 0 failed")
  end)
end)

describe("evo rocks", function()
  local project, app
  before(function()
    project = h.tempDir("evo-rocks-")
    app = mkdirs(project .. "/app/sub")
    mkdirs(project .. "/lua_modules")
    mkdirs(project .. "/vendor")
  end)

  it("needs Debian's luarocks (scripts/install-deps test)", function()
    local r = h.spawn("/bin/sh", {"-c", "command -v luarocks"})
    assert.equal(r.code, 0, "luarocks is not installed: apt-get install luarocks")
  end)

  it("installs the pure-Lua rock with make, into the nearest lua_modules above", function()
    sh("cp -r '" .. FIXTURES .. "/purerock' '" .. project .. "/vendor/'")
    local r = rocks({"make", "purerock-1.0-1.rockspec"}, project .. "/vendor/purerock")
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    contains(r.stdout, "purerock 1.0-1 is now installed in " .. project .. "/lua_modules")
    assert.truthy(exists(project .. "/lua_modules/share/lua/5.1/purerock/init.lua"))
    assert.truthy(exists(project .. "/lua_modules/share/lua/5.1/purerock/words.lua"))
    assert.falsy(exists(project .. "/vendor/purerock/lua_modules"))
  end, {timeout = 60})

  it("packs the C rock into a .src.rock and installs it from that file, against LuaJIT's headers", function()
    local src = project .. "/vendor/crock"
    sh("cp -r '" .. FIXTURES .. "/crock' '" .. project .. "/vendor/'")
    sh("tar czf crock-1.0.tar.gz --transform 's,^,crock-1.0/,' crock.c", src)
    -- pack fetches the source from a temporary directory: the URL must be absolute.
    local spec = read(src .. "/crock-1.0-1.rockspec")
    h.writeFile(src .. "/crock-1.0-1.rockspec", (spec:gsub("file://crock", "file://" .. src .. "/crock")))
    local r = rocks({"pack", "crock-1.0-1.rockspec"}, src)
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    assert.truthy(exists(src .. "/crock-1.0-1.src.rock"))
    -- Install from the .src.rock alone: the sources it was packed from are gone.
    sh("mv crock-1.0-1.src.rock '" .. project .. "/' && rm -rf '" .. src .. "'", src)
    r = rocks({"install", "crock-1.0-1.src.rock"}, project)
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    contains(r.stdout, "-I/usr/include/luajit-2.1 ")
    assert.falsy(r.stdout:find("-llua", 1, true), r.stdout)
    local so = project .. "/lua_modules/lib/lua/5.1/crock.so"
    assert.truthy(exists(so))
    -- No Lua library among its dependencies: the Lua C API is evo's own.
    local needed = sh("readelf -d '" .. so .. "'")
    assert.falsy(needed:find("liblua", 1, true), needed)
    assert.falsy(needed:find("libluajit", 1, true), needed)
  end, {timeout = 90})

  it("lists both rocks in the project's tree", function()
    local r = rocks({"list"}, app)
    assert.equal(r.code, 0, r.stderr)
    contains(r.stdout, "Rocks installed for Lua 5.1 in " .. project .. "/lua_modules")
    matches(r.stdout, "purerock")
    matches(r.stdout, "crock")
  end, {timeout = 30})

  it("requires both rocks under evo from a script in a subdirectory", function()
    local main = h.writeFile(app .. "/main.lua", [[
      local purerock, crock = require("purerock"), require("crock")
      print(purerock.greet("evo"))
      print(crock.add(40, 2), crock.join("-", "a", "b", "c"), crock.luaVersion)
      print(crock.call(function(a, b) return a * b, "back in Lua" end, 6, 7))
      print(pcall(crock.add, "x", 1))
      print(package.searchpath("crock", package.cpath))
    ]])
    for _, mode in ipairs({"--io=evented", "--io=blocking"}) do
      local r = h.runEvo({mode, main}, {cwd = "/"})
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, "hello, evo (2 words)\n42\ta-b-c\tLua 5.1\n42\tback in Lua\n" ..
        "false\tbad argument #1 to '?' (number expected, got string)\n" ..
        project .. "/lua_modules/lib/lua/5.1/crock.so\n")
    end
  end)

  it("writes wrappers for a rock's scripts that run evo", function()
    local wrapper = project .. "/lua_modules/bin/purerock"
    local text = read(wrapper)
    contains(text, "exec '" .. h.evo .. "' -e")
    local r = h.spawn(wrapper, {"rocks"}, {cwd = "/"})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "hello, rocks (2 words)\ninterpreter: evo\n")
  end)

  it("uses ./lua_modules when there is no tree above, and an explicit --tree", function()
    local dir = h.tempDir()
    sh("cp -r '" .. FIXTURES .. "/purerock/.' '" .. dir .. "/'")
    local r = rocks({"make", "purerock-1.0-1.rockspec"}, dir)
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    assert.truthy(exists(dir .. "/lua_modules/share/lua/5.1/purerock/init.lua"))
    r = rocks({"list", "--tree", project .. "/lua_modules"}, dir)
    assert.equal(r.code, 0, r.stderr)
    contains(r.stdout, "in " .. project .. "/lua_modules")
    matches(r.stdout, "crock")
  end, {timeout = 60})

  it("evo build embeds both rocks: the one file runs with the tree moved away", function()
    local out = h.tempDir()
    local main = h.writeFile(app .. "/both.lua", [[
      local purerock, crock = require("purerock"), require("crock")
      print(purerock.greet("built"), crock.add(1, 2), crock.join("+", "x", "y"))
      print(crock.call(function(a) return a .. "!" end, "from C"))
    ]])
    local r = h.runEvo({"build", main, "-o", out .. "/both"}, {cwd = "/", timeout = 60})
    assert.equal(r.code, 0, r.stderr .. r.stdout)
    contains(r.stdout, "1 C modules")
    -- The only copy on disk is out of reach while the built file runs.
    assert(os.rename(project .. "/lua_modules", project .. "/lua_modules.away"))
    r = h.spawn("/usr/bin/env", {"-i", out .. "/both"}, {cwd = out})
    assert(os.rename(project .. "/lua_modules.away", project .. "/lua_modules"))
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "hello, built (2 words)\t3\tx+y\nfrom C!\n")
  end, {timeout = 60})

  it("says which Debian package to install when luarocks is missing", function()
    local r = rocks({"list"}, project, {PATH = "/nonexistent"})
    assert.equal(r.code, 127)
    contains(r.stderr, "luarocks was not found in PATH")
    contains(r.stderr, "apt-get install luarocks")
  end)

  it("passes luarocks' exit status through", function()
    local r = rocks({"install", project .. "/no-such-1.0-1.src.rock"}, project)
    assert.truthy(r.code ~= 0)
    matches(r.stderr, "no%-such")
  end, {timeout = 30})
end)
