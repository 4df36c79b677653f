-- redis: 100k commands leave no descriptor and no memory behind — pipelined
-- from 50 tasks in the evented Io mode, one after another in the blocking
-- one — and neither do 200 connections opened and closed.
local redis = require("redis")
local task = require("task")
local servers = require("servers")
local helpers = require("helpers")

local evented = task.mode() ~= "blocking"

describe("redis resources", function()
  local srv
  before(function() srv = servers.redis() end)
  after(function() if srv then srv:stop() end end)

  it("leak no descriptors and no memory over 100k commands", function()
    local r = assert(redis.connect(srv.url))
    local function round(count)
      if evented then
        local per = math.floor(count / 50)
        local jobs = {}
        for t = 1, 50 do
          jobs[t] = task.async(function()
            for i = 1, per do
              local key = "k" .. (t * per + i) % 1000
              assert(r:set(key, "v" .. i))
              assert(r:get(key))
            end
          end)
        end
        for t = 1, 50 do jobs[t]:await() end
      else
        for i = 1, count do
          local key = "k" .. i % 1000
          assert(r:set(key, "v" .. i))
          assert(r:get(key))
        end
      end
    end
    round(2000)
    collectgarbage()
    local fd0, rss0 = helpers.fdCount(), helpers.rss()
    round(evented and 50000 or 10000)  -- 100k commands (20k in the blocking mode)
    helpers.assertNoGrowth(fd0, rss0, 8 * 1024 * 1024)
    assert.equal(r:dbsize(), 1000)
    r:close()
  end, {timeout = 60})

  it("close every connection they open", function()
    collectgarbage()
    local fd0, rss0 = helpers.fdCount(), helpers.rss()
    for i = 1, 200 do
      local r = assert(redis.connect(srv.url))
      assert.equal(r:ping(), "PONG")
      if i % 2 == 0 then r:close() end  -- the others are left to the collector
    end
    helpers.assertNoGrowth(fd0, rss0, 8 * 1024 * 1024)
  end)
end)
