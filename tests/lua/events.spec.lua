-- Evo's event convention: CAPITALISED events, handler methods, default
-- handlers that print only when debugging, native emitters.
local h = require("helpers")
local events = require("events")
local uv = require("uv")

describe("events.class and emit", function()
  it("calls the handler method as object:NAME(NAME, payload)", function()
    local Door = events.class("Door", {"DOOR_OPENED"})
    local door = Door()
    local got
    function door:DOOR_OPENED(event, payload) got = {self = self, event = event, by = payload.by} end
    door:emit("DOOR_OPENED", {by = "alice"})
    assert.truthy(got.self == door)
    assert.equal(got.event, "DOOR_OPENED")
    assert.equal(got.by, "alice")
  end)

  it("gives every declared event the shared default handler", function()
    local Door = events.class("Door", {"DOOR_OPENED", "DOOR_CLOSED"})
    assert.truthy(Door.DOOR_OPENED == events.defaultHandler)
    assert.truthy(Door.DOOR_CLOSED == events.defaultHandler)
    assert.equal(Door.events, {"DOOR_OPENED", "DOOR_CLOSED"})
    Door():emit("DOOR_CLOSED")  -- silent, no error
  end)

  it("passes an empty payload table when none is given", function()
    local Bell = events.class("Bell", {"RUNG"})
    local b = Bell()
    local payload
    function b:RUNG(_, p) payload = p end
    b:emit("RUNG")
    assert.equal(payload, {})
  end)

  it("lets a class method handle events for all its objects, and objects override it", function()
    local Counter = events.class("Counter", {"COUNTED"})
    local seen = {}
    function Counter:COUNTED(_, p) seen[#seen + 1] = "class " .. p.n end
    local a, b = Counter(), Counter()
    function b:COUNTED(_, p) seen[#seen + 1] = "object " .. p.n end
    a:emit("COUNTED", {n = 1})
    b:emit("COUNTED", {n = 2})
    assert.equal(seen, {"class 1", "object 2"})
  end)

  it("supports subclasses that add events and an init method", function()
    local Base = events.class("Base", {"BASE_EVENT"})
    local Child = Base:extend("Child", {"CHILD_EVENT"})
    function Child:init(name) self.name = name end
    local c = Child("kid")
    assert.equal(c.name, "kid")
    assert.equal(Child.events, {"BASE_EVENT", "CHILD_EVENT"})
    assert.truthy(events.isInstance(c, Child))
    assert.truthy(events.isInstance(c, Base))
    assert.falsy(events.isInstance({}, Base))
  end)

  it("refuses event names that are not CAPITALISED", function()
    assert.throws(function() events.class("Bad", {"lowercase"}) end, "must be CAPITALISED")
    local Ok = events.class("Ok", {})
    assert.throws(function() Ok():emit("Mixed_Case") end, "must be CAPITALISED")
    assert.throws(function() Ok():emit(nil) end, "bad argument #1 to 'emit' (string expected, got nil)")
    assert.throws(function() Ok():emit("FINE", "text") end, "bad argument #2 to 'emit' (table expected, got string)")
  end)

  it("checks its own arguments with the standard message", function()
    assert.throws(function() events.class(nil) end, "bad argument #1 to 'class' (string expected, got nil)")
    assert.throws(function() events.class("X", 5) end, "bad argument #2 to 'class' (table expected, got number)")
  end)
end)

describe("handler errors", function()
  it("are reported once with a traceback and do not reach the emitter", function()
    local r = h.runEvo({"-e", [[
      local events = require("events")
      local Door = events.class("Door", {"DOOR_OPENED"})
      local d = Door()
      function d:DOOR_OPENED() error("handler broke") end
      d:emit("DOOR_OPENED")
      print("emitter carried on")
    ]]})
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "emitter carried on\n")
    local _, count = r.stderr:gsub("handler broke", "")
    assert.equal(count, 1, "reported exactly once")
    assert.match(r.stderr, "^evo: error in Door:DOOR_OPENED handler: %(command line%):4: handler broke\n")
    assert.match(r.stderr, "stack traceback:")
  end)

  it("in a native emitter's handler do not stop the loop", function()
    local r = h.runEvo({"-e", [[
      local Timer = require("Timer")
      local t = Timer()
      function t:TIMER_FIRED(event, p)
        if p.count < 3 then error("tick " .. p.count .. " failed") end
        print("still running at", p.count)
        self:close()
      end
      t:start(0.005, 0.005)
    ]]})
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "still running at\t3\n")
    assert.match(r.stderr, "error in Timer:TIMER_FIRED handler: %(command line%):4: tick 1 failed")
    assert.match(r.stderr, "tick 2 failed")
  end)
end)

describe("debug output of default handlers", function()
  local script = [[
    local events = require("events")
    local Door = events.class("Door", {"DOOR_OPENED"})
    Door():emit("DOOR_OPENED", {by = "bob", times = 2})
    local Timer = require("Timer")
    local t = Timer()
    t:start(0.001)
  ]]

  it("is silent by default", function()
    local r = h.runEvo({"-e", script})
    assert.equal(r.stderr, "")
  end)

  it("prints [Class] NAME payload with --debug", function()
    local r = h.runEvo({"--debug", "-e", script})
    assert.equal(r.stderr, '[Door] DOOR_OPENED {by = "bob", times = 2}\n[Timer] TIMER_FIRED {count = 1}\n')
  end)

  it("prints with EVO_DEBUG=1", function()
    local r = h.runEvo({"-e", script}, {env = {EVO_DEBUG = "1"}})
    assert.match(r.stderr, "%[Timer%] TIMER_FIRED {count = 1}")
  end)
end)

describe("Timer (native emitter)", function()
  it("emits TIMER_FIRED from its libuv callback, counting firings", function()
    local Timer = require("Timer")
    local t = Timer()
    local counts = {}
    local co = coroutine.running()
    function t:TIMER_FIRED(event, payload)
      assert.equal(event, "TIMER_FIRED")
      counts[#counts + 1] = payload.count
      if payload.count == 3 then
        self:close()
        coroutine.resume(co)
      end
    end
    t:start(0.002, 0.002)
    assert.truthy(t:isActive())
    coroutine.yield()
    assert.equal(counts, {1, 2, 3})
  end)

  it("can be stopped and restarted, and closed twice harmlessly", function()
    local Timer = require("Timer")
    local t = Timer()
    local fired = 0
    function t:TIMER_FIRED() fired = fired + 1 end
    t:start(0.001)
    t:stop()
    assert.falsy(t:isActive())
    h.sleep(0.02)
    assert.equal(fired, 0)
    t:start(0.001)
    h.sleep(0.02)
    assert.equal(fired, 1)
    t:close()
    t:close()
    assert.throws(function() t:start(1) end, "Timer is closed")
  end)

  it("refuses a second init on the same object", function()
    local Timer = require("Timer")
    local t = Timer()
    assert.throws(function() t:init() end, "already has a native handle")
    t:close()
  end)

  it("reports an error raised while looking up a handler, and the loop goes on", function()
    local r = h.runEvo({"-e", [[
      local Timer = require("Timer")
      local t = Timer()
      setmetatable(t, {__index = function(_, key)
        if key == "TIMER_FIRED" then error("no such handler") end
        return Timer[key]
      end})
      t:start(0.001)
      local uv = require("uv")
      local u = uv.new_timer()
      u:start(20, 0, function() u:close(); t:close(); print("loop went on") end)
    ]]})
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "loop went on\n")
    assert.match(r.stderr, "error in object:TIMER_FIRED handler: [^\n]*no such handler")
  end)

  it("rejects bad arguments clearly", function()
    local Timer = require("Timer")
    local t = Timer()
    -- called as a method, Lua counts arguments after self (as string methods do)
    assert.throws(function() t:start("soon") end, "bad argument #1 to 'start' (number expected, got string)")
    -- called through the method as a value, too: self is not counted (issue 8 item 22)
    assert.throws(function() t.start(t, -1) end, "bad argument #1 to 'start' (seconds must be a finite number >= 0)")
    assert.throws(function() t.start(t, 1, 0 / 0) end, "bad argument #2 to 'start' (seconds must be a finite number >= 0)")
    assert.throws(function() t.start({}, 1) end, "bad argument #1 to 'start' (Timer expected, got table)")
    local Signal = require("Signal")
    assert.throws(function() t.start(Signal(), 1) end, "Timer expected")
    t:close()
  end)
end)

describe("Signal (native emitter)", function()
  it("emits SIGNAL_RECEIVED with the signal's name and number", function()
    local Signal = require("Signal")
    local s = Signal()
    local got
    local co = coroutine.running()
    function s:SIGNAL_RECEIVED(event, payload)
      got = payload
      self:close()
      coroutine.resume(co)
    end
    s:start("sigusr1")
    uv.kill(uv.os_getpid(), "sigusr1")
    coroutine.yield()
    assert.equal(got, {signal = "SIGUSR1", signum = 10})
  end)

  it("names signals and rejects unknown ones", function()
    local Signal = require("Signal")
    assert.equal(Signal.name(2), "SIGINT")
    assert.equal(Signal.name("term"), "SIGTERM")
    local s = Signal()
    assert.throws(function() s:start("SIGNOPE") end, "unknown signal 'SIGNOPE'")
    s:close()
  end)
end)
