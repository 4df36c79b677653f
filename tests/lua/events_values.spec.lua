-- TIMER_FIRED delivered through a Lua deliver function (events::emit_values,
-- lib/Timer.lua): the handler looked up and the payload made in compiled
-- Lua. Each case runs twice, once on that path and once on events::emit's
-- (a timer opened without a deliver function), and both must print the same.
local h = require("helpers")
local Timer = require("Timer")
local native = require("evo.timer")

-- Runs `body` in a fresh evo with `make` bound to a function making a timer
-- on the path asked for; returns the process's result.
local function run(path, body, evoArgs)
  local open = path == "values" and "t:init()" or "require('evo.timer').open(t)"
  local prelude = ([[
    local Timer = require("Timer")
    local function make(mt) local t = setmetatable({}, mt or Timer); %s; return t end
  ]]):format(open)
  local argv = {}
  for _, a in ipairs(evoArgs or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = "-e"
  argv[#argv + 1] = prelude .. body
  return h.runEvo(argv)
end

-- Both paths, with addresses (which differ between runs) blanked out.
local function both(body, evoArgs)
  local a, b = run("values", body, evoArgs), run("emit", body, evoArgs)
  local function clean(s) return (s:gsub("0x%x+", "0x?")) end
  assert.equal(a.code, b.code)
  assert.equal(a.stdout, b.stdout)
  assert.equal(clean(a.stderr), clean(b.stderr))
  return a
end

describe("TIMER_FIRED through deliver", function()
  it("calls the handler as timer:TIMER_FIRED(event, payload) with a fresh payload", function()
    local r = both([[
      local t = make()
      local seen = {}
      function t:TIMER_FIRED(event, payload, extra)
        seen[#seen + 1] = payload
        print(self == t, event, payload.count, extra, select("#", event, payload, extra))
        if payload.count == 3 then self:close(); print(seen[1] ~= seen[2], seen[2] ~= seen[3]) end
      end
      t:start(0.001, 0.001)
    ]])
    assert.equal(r.stdout, "true\tTIMER_FIRED\t1\tnil\t3\ntrue\tTIMER_FIRED\t2\tnil\t3\n"
      .. "true\tTIMER_FIRED\t3\tnil\t3\ntrue\ttrue\n")
  end)

  it("reports a handler's error with the same message and traceback, and goes on", function()
    local r = both([[
      local t = make()
      function t:TIMER_FIRED(event, p)
        if p.count < 3 then error("tick " .. p.count .. " failed") end
        print("still running at", p.count)
        self:close()
      end
      t:start(0.001, 0.001)
    ]])
    assert.equal(r.stdout, "still running at\t3\n")
    assert.match(r.stderr, "^evo: error in Timer:TIMER_FIRED handler: %(command line%):%d+: tick 1 failed\n"
      .. "stack traceback:\n\t%[C%]: in function 'error'\n")
  end)

  it("calls a handler that is not a function as emit does", function()
    local r = both([[
      local t = make()
      t.TIMER_FIRED = 42
      t:start(0.001)
      local u = make()
      u.TIMER_FIRED = setmetatable({}, {__call = function(tbl, self, event, payload)
        print("called", self == u, event, payload.count)
        return u, u, u  -- three results are not taken for anything
      end})
      u:start(0.001)
      local v = make()
      v.TIMER_FIRED = function() return 1, 2, 3 end
      v:start(0.001)
      local w = make()
      w:start(0.02)
      function w:TIMER_FIRED() t:close(); u:close(); v:close(); w:close(); print("done") end
    ]])
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "called\ttrue\tTIMER_FIRED\t1\ndone\n")
    assert.match(r.stderr, "error in Timer:TIMER_FIRED handler: attempt to call a number value")
  end)

  it("finds handlers through __index functions and reports their errors", function()
    local r = both([[
      local broken = make({__index = function(_, key)
        if key == "TIMER_FIRED" then error("no such handler") end
        return Timer[key]
      end})
      broken:start(0.001)
      local viaFn = make({__index = function(_, key)
        if key == "TIMER_FIRED" then return function(self, ev, p) print("via __index", ev, p.count) end end
        return Timer[key]
      end})
      viaFn:start(0.001)
      local quiet = make()  -- the class's default: nothing printed
      quiet:start(0.001)
      local w = make()
      w:start(0.02)
      function w:TIMER_FIRED() broken:close(); viaFn:close(); quiet:close(); w:close(); print("done") end
    ]])
    assert.equal(r.stdout, "via __index\tTIMER_FIRED\t1\ndone\n")
    assert.match(r.stderr, "error in object:TIMER_FIRED handler: [^\n]*no such handler")
  end)

  it("follows a handler replaced or removed between events", function()
    local r = both([[
      local t = make()
      local function second(self, ev, p) print("second", p.count); self.TIMER_FIRED = nil end
      function t:TIMER_FIRED(ev, p) print("first", p.count); self.TIMER_FIRED = second end
      t:start(0.001, 0.001)
      local w = make()
      w:start(0.03)
      function w:TIMER_FIRED() t:close(); w:close(); print("done") end
    ]])
    assert.equal(r.stdout, "first\t1\nsecond\t2\ndone\n")
    assert.equal(r.stderr, "")
  end)

  it("prints the default handler's line when debugging", function()
    local r = both([[
      local t = make()
      t:start(0.001)
    ]], {"--debug"})
    assert.equal(r.stderr, "[Timer] TIMER_FIRED {count = 1}\n")
  end)

  it("lets a closed timer and its handler be collected", function()
    local weak = setmetatable({}, {__mode = "k"})
    do
      local t = Timer()
      function t:TIMER_FIRED() self:close() end
      weak[t] = true
      t:start(0)
    end
    h.sleep(0.05)
    collectgarbage()
    collectgarbage()
    assert.equal(next(weak), nil)
  end)

  it("leaves a timer opened without deliver on emit's path", function()
    local t = setmetatable({}, Timer)
    native.open(t)
    local got
    function t:TIMER_FIRED(ev, p) got = p.count; self:close() end
    t:start(0)
    h.sleep(0.05)
    assert.equal(got, 1)
  end)
end)
