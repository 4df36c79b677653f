-- Request tasks run on pooled coroutines, and a request's Task is reused by
-- the next one when nothing saw its Future. These check that reuse never
-- shows: a Future a handler took stays that request's, and each request's
-- task is its own.
local K = require("httpkit")
local task = require("task")
local http = require("http")

describe("request tasks", function()
  afterEach(K.cleanup)

  it("keeps a Future a handler took as that request's, done, while later requests run", function()
    local futures = {}
    local server, url = K.serve({}, function(req, res)
      if req.path == "/take" then futures[#futures + 1] = task.current() end
      if req.path == "/slow" then task.sleep(0.2) end
      res:send(200, req.path)
    end)
    assert.equal(assert(http.get(url .. "/take")).body, "/take")
    local f = futures[1]
    assert.truthy(f:done(), "the first request's task is done")
    -- Later requests, some suspended while we look: the old Future does not move.
    local slow = task.async(function() return http.get(url .. "/slow") end)
    for i = 1, 20 do assert.equal(assert(http.get(url .. "/r" .. i)).body, "/r" .. i) end
    assert.truthy(f:done(), "still done: its Task was not reused")
    assert.equal(slow:await().body, "/slow")
    assert.equal(assert(http.get(url .. "/take")).body, "/take")
    assert.truthy(futures[2] ~= futures[1], "another request, another Future")
    http.closeIdle()
  end, 15)

  it("gives concurrent requests their own tasks, cancellation and all", function()
    local seen = {}
    local server, url = K.serve({}, function(req, res)
      local n = tonumber(req.query)
      task.sleep(0.05 * (5 - n))  -- later requests finish first
      seen[#seen + 1] = n
      res:send(200, tostring(n))
    end)
    local g = task.group()
    local results = {}
    for i = 1, 4 do
      g:concurrent(function() results[i] = assert(http.get(url .. "/?" .. i)).body end)
    end
    g:await()
    assert.equal(results, {"1", "2", "3", "4"})
    assert.equal(seen, {4, 3, 2, 1})
    http.closeIdle()
  end, 15)
end)
