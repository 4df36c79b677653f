-- `uv` is luv on Evo's loop: scripts written for luv behave as under luajit
-- with Debian's lua-luv. Each fixture runs under both and must print the same.
local h = require("helpers")
local uv = require("uv")

local fixtures = {"timers", "tcp_echo", "fs", "spawn", "work"}

local function haveLuajitWithLuv()
  return uv.fs_stat("/usr/bin/luajit") ~= nil
    and uv.fs_stat("/usr/lib/x86_64-linux-gnu/lua/5.1/luv.so") ~= nil
end

describe("luv scripts", function()
  for _, name in ipairs(fixtures) do
    it(name .. ".lua prints the same under evo as under luajit + lua-luv", function()
      local path = h.root .. "/tests/fixtures/luv/" .. name .. ".lua"
      local ours = h.runEvo({path})
      assert.equal(ours.code, 0, ours.stderr)
      assert.equal(ours.stderr, "")
      assert.truthy(#ours.stdout > 0)
      assert.truthy(haveLuajitWithLuv(), "scripts/install-deps test installs luajit2 and lua-luv")
      local theirs = h.spawn("/usr/bin/luajit", {path})
      assert.equal(theirs.code, 0, theirs.stderr)
      assert.equal(ours.stdout, theirs.stdout)
    end)
  end
end)

describe("uv module", function()
  it("is reachable as uv and luv, one table", function()
    assert.truthy(rawequal(require("uv"), require("luv")))
  end)

  it("shares the loop with Evo's native objects", function()
    local Timer = require("Timer")
    local order = {}
    local co = coroutine.running()
    local native = Timer()
    function native:TIMER_FIRED() order[#order + 1] = "evo"; self:close() end
    native:start(0.02)
    local t = uv.new_timer()
    t:start(5, 0, function() order[#order + 1] = "luv"; t:close() end)
    local done = uv.new_timer()
    done:start(60, 0, function() done:close(); coroutine.resume(co) end)
    coroutine.yield()
    assert.equal(order, {"luv", "evo"})
  end)

  it("keeps Evo's own handles out of uv.walk", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local Timer = require("Timer")
      local t = Timer(); t:start(10)   -- an Evo handle on the same loop
      local l = uv.new_timer()          -- a luv handle
      local seen = {}
      uv.walk(function(handle) seen[#seen + 1] = tostring(handle):match("^uv_(%a+)_t") end)
      print(table.concat(seen, ","))
      uv.walk(function(handle) if not handle:is_closing() then handle:close() end end)
      t:close()
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "timer\n")
  end)

  it("hands uv.walk callbacks live handles even when the callback runs the loop", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      for _ = 1, 3 do uv.new_timer() end
      local seen = {}
      uv.walk(function(handle)
        seen[#seen + 1] = type(handle) == "userdata" and handle:get_type() or tostring(handle)
        if not handle:is_closing() then handle:close() end
        uv.run("nowait")
      end)
      print(table.concat(seen, ","))
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "timer,timer,timer\n")
  end)

  it("gives threads require('uv') as well as require('luv')", function()
    local r = h.runEvo({"-e", [[
      local uv = require("uv")
      local async
      async = uv.new_async(function(same, hasEvents)
        print(same, hasEvents)
        async:close()
      end)
      uv.new_thread(function(a)
        local ok, ev = pcall(require, "pretty")
        a:send(rawequal(require("uv"), require("luv")), ok and type(ev.format) == "function")
      end, async):join()
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "true\ttrue\n")
  end)
end)
