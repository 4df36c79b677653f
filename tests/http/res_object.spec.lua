-- What a handler's res is: a table with Response's methods that names its
-- request by a number (the exchange's slot and generation), made in Lua for
-- each request, so that the requests of a pipelined read are handed out by
-- an FFI call inside the batch's compiled loop (lib/http.lua nextRequest,
-- src/bind/http.cpp fast::next_request). Its identity, its own fields, and
-- what a table that only looks like one can do.
local K = require("httpkit")
local task = require("task")

describe("a handler's res", function()
  afterEach(K.cleanup)

  it("is a table of its own per request, req.res is the same object, and it keeps fields a handler sets", function()
    local seen = {}
    local server = K.serve({}, function(req, res)
      res.locals = {path = req.path}  -- (as Express's res.locals)
      seen[#seen + 1] = {res = res, same = rawequal(req.res, res), kind = type(res),
        locals = req.res.locals.path}
      res:send(200, req.res.locals.path)
    end)
    local paths = {}
    for i = 1, 40 do paths[i] = "/p" .. i end
    local rep = K.raw(server.port, K.pipeline(paths), 10)
    server:close()
    local want = {}
    for i = 1, 40 do want[i] = "200 /p" .. i end
    assert.equal(K.answers(rep), want)
    assert.equal(#seen, 40)
    local distinct = {}
    for i, s in ipairs(seen) do
      assert.equal(s.kind, "table")
      assert.truthy(s.same)
      assert.equal(s.locals, "/p" .. i)
      assert.isNil(distinct[s.res], "a res given twice")
      distinct[s.res] = true
    end
  end, 20)

  it("cannot be forged: a table with Response's metatable names no live request", function()
    local seen = {}
    local server = K.serve({}, function(req, res)
      local meta = getmetatable(res)
      -- The number of this request's exchange's next generation: what the
      -- next request on the connection will get once this one is over.
      local nextGen = setmetatable({rawget(res, 1) + 1}, meta)
      seen.nextOk, seen.nextErr = pcall(nextGen.send, nextGen, 500, "forged")
      local notNumber = setmetatable({"x"}, meta)
      seen.badOk, seen.badErr = pcall(notNumber.send, notNumber, 500, "forged")
      seen.badStatus = pcall(notNumber.status, notNumber, 500)
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, K.pipeline({"/a", "/b", "/c"}), 10)
    server:close()
    assert.equal(K.answers(rep), {"200 /a", "200 /b", "200 /c"})
    assert.falsy(seen.nextOk)
    assert.match(tostring(seen.nextErr), "already")
    assert.falsy(seen.badOk)
    assert.match(tostring(seen.badErr), "bad argument #1 to 'send' %(Response expected, got table%)")
    assert.falsy(seen.badStatus)
  end, 20)

  it("still answers a request whose handler wrote over res[1], and the batch goes on", function()
    local server = K.serve({}, function(req, res)
      if req.path == "/over" then
        res[1] = "not a ref"  -- (the engine's slot: res:send now refuses this res)
        res:send(200, "never")
      elseif req.path == "/quiet" then
        res[1] = 0  -- and returns without answering
        return
      end
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, K.pipeline({"/a", "/over", "/b", "/quiet", "/c"}), 10)
    server:close()
    local got = K.answers(rep)
    assert.equal(#got, 5)
    assert.equal(got[1], "200 /a")
    assert.match(got[2], "^500 ")
    assert.equal(got[3], "200 /b")
    assert.match(got[4], "^200 ")  -- (a handler that returns without answering: 200, no body)
    assert.equal(got[5], "200 /c")
  end, 20)

  it("serves a pipelined read in order through a handler that raises and one that suspends", function()
    local server = K.serve({}, function(req, res)
      if req.path == "/raise" then error("boom") end
      if req.path == "/sleep" then task.sleep(0.05) end
      res:send(200, req.path)
    end)
    local paths = {"/1", "/2", "/raise", "/3", "/sleep", "/4", "/5", "/raise", "/6"}
    local rep = K.raw(server.port, K.pipeline(paths), 10)
    server:close()
    local got = K.answers(rep)
    assert.equal(#got, #paths)
    for i, p in ipairs(paths) do
      if p == "/raise" then
        assert.match(got[i], "^500 ")
      else
        assert.equal(got[i], "200 " .. p)
      end
    end
  end, 20)
end)
