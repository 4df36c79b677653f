-- Native events delivered through a Lua deliver function (events::emit_values,
-- events.deliverer): the handler looked up and the payload made in compiled
-- Lua. Each case runs twice, once on that path and once on events::emit's
-- (the object opened without a deliver function), and both must print the
-- same: Timer, Signal, FileWatcher and net's Server.
local h = require("helpers")
local events = require("events")
local Timer = require("Timer")
local native = require("evo.timer")

-- Runs `body` in a fresh evo on the path asked for, with, bound in it:
-- VALUES (true on the deliver path), make(mt) (a Timer), makeOf(Class,
-- "evo.native", mt) (any twin class's object) and net.listen going through
-- the path asked for. Returns the process's result.
local function run(path, body, evoArgs)
  local prelude = ([[
    local VALUES = %s
    local Timer = require("Timer")
    local function makeOf(class, nativeName, mt)
      local o = setmetatable({}, mt or class)
      if VALUES then class.init(o) else require(nativeName).open(o) end
      return o
    end
    local function make(mt) return makeOf(Timer, "evo.timer", mt) end
    if not VALUES then  -- net.listen without its deliver function
      local n = require("evo.net")
      local listen = n.listen
      n.listen = function(server, handler, opts) return listen(server, handler, opts) end
    end
  ]]):format(tostring(path == "values"))
  local argv = {}
  for _, a in ipairs(evoArgs or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = "-e"
  argv[#argv + 1] = prelude .. body
  return h.runEvo(argv)
end

-- Both paths, with addresses and ports (which differ between runs) blanked out.
local function both(body, evoArgs)
  local a, b = run("values", body, evoArgs), run("emit", body, evoArgs)
  local function clean(s) return (s:gsub("0x%x+", "0x?"):gsub("remotePort = %d+", "remotePort = ?")) end
  assert.equal(a.code, b.code)
  assert.equal(clean(a.stdout), clean(b.stdout))
  assert.equal(clean(a.stderr), clean(b.stderr))
  return a
end

-- A payload as text, its keys sorted.
local SHOW = [[
    local function show(p)
      local keys = {}
      for k in pairs(p) do keys[#keys + 1] = k end
      table.sort(keys)
      for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(p[k]) .. ":" .. type(p[k]) end
      return table.concat(keys, " ")
    end
]]

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

describe("deeper class chains", function()
  it("find a handler three classes up on both paths", function()
    local r = both([[
      local A = Timer:extend("A", {})
      local B = A:extend("B", {})
      local C = B:extend("C", {})
      function A:TIMER_FIRED(ev, p) print("A's handler", getmetatable(self).__name, ev, p.count); self:close() end
      make(C):start(0.001)
      local D = C:extend("D", {})  -- five classes: beyond rawHandler, on emit's path
      make(D):start(0.002)
    ]])
    assert.equal(r.stdout, "A's handler\tC\tTIMER_FIRED\t1\nA's handler\tD\tTIMER_FIRED\t1\n")
  end)

  it("are read by events.rawHandler up to three ancestors of the class", function()
    local A = Timer:extend("A", {})
    local B = A:extend("B", {})
    local C = B:extend("C", {})
    local D = C:extend("D", {})
    local function mine() end
    local c, d = setmetatable({}, C), setmetatable({}, D)
    assert.equal(events.rawHandler(c, "TIMER_FIRED"), events.defaultHandler)  -- Timer's, C's third ancestor
    assert.equal(events.rawHandler(d, "TIMER_FIRED"), nil)                    -- one too many
    B.TIMER_FIRED = mine
    assert.equal(events.rawHandler(d, "TIMER_FIRED"), mine)
    d.TIMER_FIRED = false
    assert.equal(events.rawHandler(d, "TIMER_FIRED"), false)
    local viaFn = setmetatable({}, {__index = function() return mine end})
    assert.equal(events.rawHandler(viaFn, "TIMER_FIRED"), nil)
    assert.equal(events.rawHandler(setmetatable({}, {}), "TIMER_FIRED"), nil)
  end)
end)

describe("events.deliverer", function()
  it("makes one shared deliver function per event and field list", function()
    local a = events.deliverer("THING_HAPPENED", "what", "when")
    assert.equal(type(a), "function")
    assert.equal(events.deliverer("THING_HAPPENED", "what", "when"), a)
    assert.not_equal(events.deliverer("THING_HAPPENED", "what"), a)
    assert.not_equal(events.deliverer("OTHER_THING", "what", "when"), a)
  end)

  it("calls the handler with the payload, stays silent for the default, hands back the rest", function()
    local Thing = events.class("Thing", {"THING_HAPPENED"})
    local deliver = events.deliverer("THING_HAPPENED", "what", "when")
    local t = Thing()
    assert.equal(deliver(t, false, "x", 1), nil)  -- the silent default
    local got = {}
    function t:THING_HAPPENED(ev, p) got = {self, ev, p.what, p.when}; return "result" end
    assert.equal(deliver(t, false, "x", nil), "result")
    assert.same(got, {t, "THING_HAPPENED", "x", nil})
    t.THING_HAPPENED = 42
    assert.equal(deliver(t, false), deliver)
    local odd = setmetatable({}, {__index = function() return print end})
    assert.equal(deliver(odd, false), deliver)
  end)

  it("rejects bad names", function()
    local function fails(pattern, ...)
      local ok, err = pcall(events.deliverer, ...)
      assert.is_false(ok)
      assert.match(tostring(err), pattern)
    end
    fails("bad argument #1 to 'events.deliverer' %(string expected, got nil%)")
    fails("bad argument #1 to 'events.deliverer' %(event name 'lower' must be CAPITALISED", "lower")
    fails("bad argument #3 to 'events.deliverer' %(string expected, got number%)", "EV", "a", 3)
    fails("bad argument #2 to 'events.deliverer' %(field name 'a b' is not an identifier%)", "EV", "a b")
    fails("bad argument #2 to 'events.deliverer' %(a field name is a Lua keyword%)", "EV", "end")
    fails("bad argument #8 to 'events.deliverer' %(at most 6 fields%)", "EV", "a", "b", "c", "d", "e", "f", "g")
  end)
end)

describe("SIGNAL_RECEIVED through deliver", function()
  local SEND = [[
    local Signal = require("Signal")
    local uv = require("uv")
    local function send(name) uv.kill(uv.os_getpid(), name) end
  ]]

  it("delivers the same payload, errors and replaced handlers", function()
    local r = both(SHOW .. SEND .. [[
      local s = makeOf(Signal, "evo.signal")
      local n = 0
      function s:SIGNAL_RECEIVED(ev, p, extra)
        n = n + 1
        print(self == s, ev, show(p), extra)
        if n == 1 then error("first signal failed") end
        if n == 2 then self.SIGNAL_RECEIVED = function(_, _, q) print("replaced", q.signal); s:close() end end
      end
      s:start("SIGUSR1")
      local t = make()
      function t:TIMER_FIRED(_, p)
        send("sigusr1")
        if p.count == 3 then self:close() end
      end
      t:start(0.01, 0.01)
    ]])
    assert.equal(r.code, 0)
    assert.equal(r.stdout, "true\tSIGNAL_RECEIVED\tsignal=SIGUSR1:string signum=10:number\tnil\n"
      .. "true\tSIGNAL_RECEIVED\tsignal=SIGUSR1:string signum=10:number\tnil\nreplaced\tSIGUSR1\n")
    assert.match(r.stderr, "^evo: error in Signal:SIGNAL_RECEIVED handler: %(command line%):%d+: first signal failed\n"
      .. "stack traceback:\n")
  end)

  it("prints the default handler's line when debugging, and a subclass's handler runs", function()
    local r = both(SEND .. [[
      local s = makeOf(Signal, "evo.signal")
      s:start("SIGUSR2")
      local Loud = Signal:extend("Loud", {})
      local Louder = Loud:extend("Louder", {})
      function Loud:SIGNAL_RECEIVED(ev, p) print("Loud", ev, p.signal, p.signum); self:close() end
      local l = makeOf(Louder, "evo.signal")
      l:start("SIGUSR2")
      local t = make()
      function t:TIMER_FIRED(_, p)
        if p.count == 1 then send("sigusr2") else s:close(); t:close() end
      end
      t:start(0.01, 0.05)
    ]], {"--debug"})
    assert.equal(r.stdout, "Loud\tSIGNAL_RECEIVED\tSIGUSR2\t12\n")
    assert.match(r.stderr, '%[Signal%] SIGNAL_RECEIVED {signal = "SIGUSR2", signum = 12}\n')
  end)
end)

describe("FILE_CHANGED through deliver", function()
  it("delivers the same payload (no error field) and the debug line", function()
    local dir = h.tempDir("evo-evvalues-")
    local body = SHOW .. ([[
      local FileWatcher = require("FileWatcher")
      local w = makeOf(FileWatcher, "evo.fswatch")
      assert(w:start(%q))
      local q = makeOf(FileWatcher, "evo.fswatch")  -- the silent default: --debug prints it
      assert(q:start(%q))
      function w:FILE_CHANGED(ev, p)
        print(self == w, ev, show(p))
        self:close()
      end
      local t = make()
      function t:TIMER_FIRED(_, p)
        if p.count == 1 then assert(io.open(%q, "w")):close() return end
        q:close(); t:close()
      end
      t:start(0.02, 0.1)
    ]]):format(dir, dir, dir .. "/new.txt")
    local function once(evoArgs)
      local a = run("values", body, evoArgs)
      os.remove(dir .. "/new.txt")
      local b = run("emit", body, evoArgs)
      os.remove(dir .. "/new.txt")
      assert.equal(a.code, 0)
      assert.equal(a.stdout, b.stdout)
      assert.equal(a.stderr, b.stderr)
      return a
    end
    local r = once()
    assert.equal(r.stdout, ("true\tFILE_CHANGED\tchange=rename:string filename=new.txt:string path=%s:string\n")
      :format(dir))
    r = once({"--debug"})
    assert.match(r.stderr, '%[FileWatcher%] FILE_CHANGED {change = "rename", filename = "new.txt", path = "'
      .. dir:gsub("%p", "%%%0") .. '"}')
  end)
end)

describe("CONNECTION_ACCEPTED through deliver", function()
  it("delivers the peer's address on a TCP and a Unix listener, with accept() and a handler", function()
    local dir = h.tempDir("evo-evvalues-")
    local body = SHOW .. ([[
      local net = require("net")
      local task = require("task")
      local sock = %q
      os.remove(sock)
      task.async(function()
        local byHandler = assert(net.listen({port = 0}, function(stream) end))
        function byHandler:CONNECTION_ACCEPTED(ev, p)
          print("handler", ev, (show(p):gsub("remotePort=%%d+", "remotePort=?")))
        end
        local c1 = assert(net.connect({host = "127.0.0.1", port = byHandler.port}))
        local byAccept = assert(net.listen({path = sock}))
        function byAccept:CONNECTION_ACCEPTED(ev, p) print("accept", ev, show(p)); error("boom") end
        local c2 = assert(net.connect({path = sock}))
        local s = assert(byAccept:accept())
        local quiet = assert(net.listen({port = 0}))   -- the default: --debug prints it
        local c3 = assert(net.connect({host = "127.0.0.1", port = quiet.port}))
        assert(quiet:accept()):close()
        task.sleep(0.05)
        c1:close(); c2:close(); c3:close(); s:close()
        byHandler:close(); byAccept:close(); quiet:close()
      end)
    ]]):format(dir .. "/s.sock")
    local r = both(body, {"--debug"})
    assert.equal(r.stdout, "handler\tCONNECTION_ACCEPTED\tremoteAddress=127.0.0.1:string remotePort=?:number\n"
      .. "accept\tCONNECTION_ACCEPTED\tremoteAddress=:string remotePort=0:number\n")
    assert.match(r.stderr, "error in Server:CONNECTION_ACCEPTED handler: %(command line%):%d+: boom\nstack traceback:")
    assert.match(r.stderr, '%[Server%] CONNECTION_ACCEPTED {remoteAddress = "127.0.0.1", remotePort = %d+}')
  end)

  it("delivers it from accept() in the blocking Io mode", function()
    local r = both(SHOW .. [[
      local net = require("net")
      local server = assert(net.listen({port = 0}))
      function server:CONNECTION_ACCEPTED(ev, p) print(ev, (show(p):gsub("remotePort=%d+", "remotePort=?"))) end
      local c = assert(net.connect({host = "127.0.0.1", port = server.port}))
      assert(server:accept()):close()
      c:close(); server:close()
    ]], {"--io=blocking"})
    assert.equal(r.stdout, "CONNECTION_ACCEPTED\tremoteAddress=127.0.0.1:string remotePort=?:number\n")
  end)
end)
