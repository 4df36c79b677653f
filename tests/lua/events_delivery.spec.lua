-- Native event delivery's fast paths (src/lua/events.cpp, src/lua/twin.cpp):
-- a twin's native found by table address, names interned by address, the
-- default handler told by identity. What they must not change.
local Timer = require("Timer")
local Signal = require("Signal")
local events = require("events")
local task = require("task")

local function fired(t, n)
  local got = {}
  function t:TIMER_FIRED(event, payload)
    got[#got + 1] = {event, payload.count}
    if #got == n then self:close() end
  end
  return got
end

describe("native event delivery", function()
  it("delivers many events with fresh payloads", function()
    local t = Timer()
    local payloads = {}
    function t:TIMER_FIRED(event, payload)
      payloads[#payloads + 1] = payload
      if #payloads == 50 then self:close() else self:start(0) end
    end
    t:start(0)
    task.sleep(0.5)
    assert.equal(#payloads, 50)
    assert.truthy(payloads[1] ~= payloads[2], "a table per event")
    assert.equal(payloads[50].count, 1, "count restarts with start")
  end)

  it("finds the handler on the object, its class or a parent, and stays silent without one", function()
    local Base = events.class("BaseTimer", {"OTHER"}, Timer)
    local hits = 0
    function Base:TIMER_FIRED() hits = hits + 1; self:close() end
    local Sub = Base:extend("SubTimer")
    local s = Sub()
    s:start(0)
    local quiet = Timer()  -- the default handler: no call, no error
    quiet:start(0)
    task.sleep(0.2)
    quiet:close()
    assert.equal(hits, 1)
  end)

  it("keeps a closed timer closed and a timer method off other natives", function()
    local t = Timer()
    local got = fired(t, 1)
    t:start(0)
    task.sleep(0.2)
    assert.equal(got, {{"TIMER_FIRED", 1}})
    assert.throws(function() t:start(0) end, "Timer is closed")
    local s = Signal()
    assert.throws(function() t.start(s, 1) end, "Timer expected")
    s:close()
    -- A copy of a live timer's fields acts on the timer (as before); after
    -- the timer closes, it says so.
    local live = Timer()
    local copy = {}
    for k, v in pairs(live) do copy[k] = v end
    setmetatable(copy, Timer)
    assert.equal(copy:isActive(), false)
    live:start(10)
    assert.equal(copy:isActive(), true)
    live:close()
    assert.throws(function() copy:isActive() end, "Timer is closed")
  end)
end)
