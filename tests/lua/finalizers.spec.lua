-- Errors raised by __gc finalizers: LuaJIT runs finalizers inside any
-- allocation, Evo's own C++ calls into Lua included. Such an error is
-- reported ("error in __gc metamethod") and goes no further: no PANIC, no
-- crash, the server keeps serving.
local h = require("helpers")

local fixture = h.root .. "/tests/fixtures/finalizers/server.lua"

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

describe("finalizers that raise", function()
  it("are reported while http.serve answers 1000 requests and a Timer fires", function()
    local r = h.runEvo({fixture, "serve", "1000"}, {timeout = 60})
    assert.falsy(r.stderr:find("PANIC", 1, true))
    assert.equal(r.signal, 0)
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "good 1000\tfired yes\n")
    assert.truthy(count(r.stderr, "evo: error in __gc metamethod: [^\n]*boom from a finalizer") > 100)
  end)

  it("are reported while an HttpServer answers 1000 requests from its events", function()
    local r = h.runEvo({fixture, "events", "1000"}, {timeout = 60})
    assert.falsy(r.stderr:find("PANIC", 1, true))
    assert.equal(r.signal, 0)
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "good 1000\tfired yes\n")
    assert.truthy(count(r.stderr, "evo: error in __gc metamethod: [^\n]*boom from a finalizer") > 100)
  end)

  it("never interrupt the code whose allocation ran them", function()
    local path = h.tempFile("gc.lua", [[
      local n = 0
      for i = 1, 3000 do
        local p = newproxy(true)
        getmetatable(p).__gc = function() error("boom " .. i) end
        n = n + 1
      end
      collectgarbage()
      local ffi = require("ffi")
      ffi.gc(ffi.new("int[1]"), function() error("ffi boom") end)
      local mt = {__gc = function() error("debug boom") end}
      debug.setmetatable(newproxy(false), mt)
      collectgarbage()
      collectgarbage()
      print("done", n)
    ]])
    local r = h.runEvo({path})
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "done\t3000\n")
    assert.equal(count(r.stderr, "evo: error in __gc metamethod: [^\n]*boom %d+"), 3000)
    assert.equal(count(r.stderr, "evo: error in __gc metamethod: [^\n]*ffi boom"), 1)
    assert.equal(count(r.stderr, "evo: error in __gc metamethod: [^\n]*debug boom"), 1)
  end)
end)
