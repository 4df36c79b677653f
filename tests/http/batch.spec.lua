-- Pipelined requests that arrive in one read run one after the other on one
-- pooled coroutine (lib/http.lua's runBatch, native.next): these try to make
-- state leak from one request of a batch to the next, and check that the
-- answers still go out in order when a handler raises, suspends, or reads a
-- body in the middle of a batch. The requests are sent with one send(2) by
-- Python's raw sockets (peers/raw.py), so the server reads them together.
local K = require("httpkit")
local task = require("task")

local pipeline, bodies = K.pipeline, K.answers

describe("a batch of pipelined requests", function()
  afterEach(K.cleanup)

  it("runs on one coroutine, each request with its own req and res, answered in order", function()
    local seen = {}
    local server = K.serve({}, function(req, res)
      seen[#seen + 1] = {co = coroutine.running(), req = req, res = res}
      res:send(200, req.path .. "?" .. req.query, {["content-type"] = "text/plain"})
    end)
    local rep = K.raw(server.port, pipeline({"/1?a=1", "/2", "/3?b", "/4", "/5", "/6", "/7", "/8"}))
    assert.equal(bodies(rep), {"200 /1?a=1", "200 /2?", "200 /3?b", "200 /4?", "200 /5?", "200 /6?", "200 /7?", "200 /8?"})
    assert.equal(#seen, 8)
    for i = 2, 8 do
      assert.equal(seen[i].co, seen[1].co)  -- one batch: the same coroutine
      for j = 1, i - 1 do
        assert.falsy(rawequal(seen[i].req, seen[j].req))
        assert.falsy(rawequal(seen[i].res, seen[j].res))
      end
    end
  end)

  it("never lets a kept req or res reach a later request of the batch", function()
    local kept, seen = {}, {}
    local server = K.serve({}, function(req, res)
      if req.path == "/keep" then
        kept.req, kept.res, kept.agent = req, res, req.method
        req.mine = "keep's"
        res:send(200, "kept")
        return
      end
      local ok, err = pcall(kept.res.send, kept.res, 500, "leaked")
      seen[#seen + 1] = {
        send = {ok, tostring(err):match("already sent") ~= nil},
        header = pcall(kept.res.header, kept.res, "x-leak", "1"),
        finished = kept.res:isFinished(),
        headers = select(2, pcall(function() return kept.req.headers end)),
        path = kept.req.path, mine = rawget(req, "mine"), keptMine = kept.req.mine,
        agent = kept.agent,
      }
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, K.req("GET", "/keep", {"User-Agent: first/1"})
      .. K.req("GET", "/b", {"User-Agent: second/2"}) .. K.req("GET", "/c", {"Connection: close"}))
    local list = K.parse(rep.data)
    assert.equal(bodies(rep), {"200 kept", "200 /b", "200 /c"})
    assert.isNil(list[2].headers["x-leak"])
    assert.equal(#seen, 2)
    for _, s in ipairs(seen) do
      assert.equal(s.send, {false, true})
      assert.falsy(s.header)
      assert.truthy(s.finished)
      assert.match(tostring(s.headers), "the request is over")
      assert.equal(s.path, "/keep")  -- what its handler had is kept
      assert.equal(s.keptMine, "keep's")
      assert.isNil(s.mine)  -- a field set on one req is on no other
      assert.equal(s.agent, "GET")
    end
  end)

  it("answers 500 for a handler that raises mid-batch and goes on with the next request", function()
    local cos, errors = {}, {}
    local server = K.serve({}, function(req, res)
      cos[#cos + 1] = coroutine.running()
      if req.path == "/boom" then error("boom in the middle") end
      if req.path == "/boom-after-send" then
        res:send(200, "sent first")
        error("after the answer")
      end
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, pipeline({"/1", "/boom", "/3", "/boom-after-send", "/5", "/boom"}))
    local list = K.parse(rep.data)
    assert.equal(#list, 6)
    assert.equal({list[1].status, list[1].body}, {200, "/1"})
    assert.equal(list[2].status, 500)
    assert.isNil(list[2].headers.connection)  -- a 500 keeps the connection
    assert.equal({list[3].status, list[3].body}, {200, "/3"})
    assert.equal({list[4].status, list[4].body}, {200, "sent first"})
    assert.equal({list[5].status, list[5].body}, {200, "/5"})
    assert.equal(list[6].status, 500)
    for i = 2, 6 do assert.equal(cos[i], cos[1]) end  -- the batch went on
    local _ = errors
  end)

  it("does not hold the rest of the batch behind a handler that suspends", function()
    local events = {}
    local function note(what) events[#events + 1] = what end
    local server = K.serve({}, function(req, res)
      note("start " .. req.path)
      if req.path == "/slow" then
        task.sleep(0.15)
        note("answer /slow")
      elseif req.path == "/answered-then-sleeps" then
        res:send(200, "early")
        note("answer /answered-then-sleeps")
        task.sleep(0.3)
        note("end /answered-then-sleeps")
        return
      end
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, pipeline({"/1", "/slow", "/3", "/answered-then-sleeps", "/5", "/6"}))
    assert.equal(bodies(rep), {"200 /1", "200 /slow", "200 /3", "200 early", "200 /5", "200 /6"})
    K.waitFor(function() return events[#events] == "end /answered-then-sleeps" end, 5)
    local at = {}
    for i, e in ipairs(events) do at[e] = i end
    -- One request at a time: /3 starts once /slow has answered...
    assert.truthy(at["start /3"] > at["answer /slow"])
    -- ...and a handler still running after its answer holds nobody up.
    assert.truthy(at["start /5"] > at["answer /answered-then-sleeps"])
    assert.truthy(at["start /6"] < at["end /answered-then-sleeps"])
  end)

  it("answers 500 to the request that raised after suspending while other batches came and went", function()
    -- A batch's runner reuses the error-tracking table of the last batch that
    -- ended (lib/http.lua runBatch): a batch that suspended must keep its own.
    local server = K.serve({}, function(req, res)
      if req.path == "/sleep-then-raise" then
        task.sleep(0.3)
        error("raised after sleeping")
      end
      res:send(200, req.path)
    end)
    local slow = task.concurrent(function() return K.raw(server.port, pipeline({"/sleep-then-raise", "/after"})) end)
    local others = {}
    for i = 1, 4 do
      others[i] = task.concurrent(function() return K.raw(server.port, pipeline({"/a" .. i, "/b" .. i})) end)
    end
    for i = 1, 4 do assert.equal(bodies(others[i]:await()), {"200 /a" .. i, "200 /b" .. i}) end
    local list = K.parse(slow:await().data)
    assert.equal(#list, 2)
    assert.equal(list[1].status, 500)
    assert.equal({list[2].status, list[2].body}, {200, "/after"})
  end)

  it("reads the body of a request in the middle of a batch, and skips one nobody read", function()
    local server = K.serve({}, function(req, res)
      if req.path == "/echo" then
        res:send(200, "got " .. req:body())
      else
        res:send(200, req.method .. " " .. req.path)  -- a body not read is dropped
      end
    end)
    local rep = K.raw(server.port, K.req("GET", "/1") .. K.req("POST", "/echo", nil, "hello body")
      .. K.req("POST", "/ignored", nil, ("x"):rep(3000)) .. K.req("POST", "/echo", nil, "second")
      .. K.req("GET", "/last", {"Connection: close"}))
    assert.equal(bodies(rep), {"200 GET /1", "200 got hello body", "200 POST /ignored", "200 got second", "200 GET /last"})
  end)

  it("moves on to another task when a handler took its task's Future", function()
    local futures = {}
    local server = K.serve({}, function(req, res)
      if req.path ~= "/1" then futures[req.path] = task.current() end
      res:send(200, req.path)
    end)
    local rep = K.raw(server.port, pipeline({"/1", "/2", "/3"}))
    assert.equal(bodies(rep), {"200 /1", "200 /2", "200 /3"})
    -- A Future someone saw is its request's alone, and completes with it.
    assert.truthy(futures["/2"] and futures["/3"])
    assert.falsy(rawequal(futures["/2"], futures["/3"]))
    assert.equal({futures["/2"]:await()}, {})
  end)

  it("cleans up the uploads of a handler that raised after req:form()", function()
    local dirs = {}
    local server = K.serve({}, function(req, res)
      if req.path == "/upload" then
        local form = req:form()
        dirs[#dirs + 1] = rawget(req, "_uploadDir")
        assert(form.files.up, "the file was saved")
        error("raised after the upload")
      end
      res:send(200, req.path)
    end)
    local body = "--XX\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.txt\"\r\n"
      .. "Content-Type: text/plain\r\n\r\nfile data\r\n--XX--\r\n"
    local rep = K.raw(server.port, K.req("GET", "/1")
      .. K.req("POST", "/upload", {"Content-Type: multipart/form-data; boundary=XX"}, body)
      .. K.req("GET", "/3", {"Connection: close"}))
    local list = K.parse(rep.data)
    assert.equal({list[1].status, list[2].status, list[3].status}, {200, 500, 200})
    assert.equal(#dirs, 1)
    assert.truthy(dirs[1])
    assert.falsy(require("fs").stat(dirs[1]))  -- removed with the request
  end)

  -- The answers of a read are corked until the loop turn's callbacks are
  -- done (Connection::flush_soon). A client that half-closes right after
  -- exactly one read buffer's worth (64 KiB) of requests is read to its end
  -- in the same callback as them; with a handler still running that end
  -- closes the connection (the client left), and the answers before it,
  -- still corked, must go out first, as they did when they were written at
  -- once. The loop is held up while the client sends, so the whole of it
  -- and the end wait together in the socket.
  it("still sends the answers before a handler the client's end cancels, when the end comes in the same read", function()
    local cancelled = false
    local server = K.serve({}, function(req, res)
      if req.path == "/slow" then
        local ok = pcall(task.sleep, 2)
        cancelled = not ok
        return
      end
      res:send(200, req.path)
    end)
    local pad = string.rep("p", 15000)
    local fast = {}
    for i = 1, 4 do
      fast[i] = "GET /" .. i .. " HTTP/1.1\r\nHost: x\r\nX-Pad: " .. pad .. "\r\n\r\n"
    end
    local head = table.concat(fast)
    local slowStart, slowEnd = "GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
    local slow = slowStart .. string.rep("q", 65536 - #head - #slowStart - #slowEnd) .. slowEnd
    assert.equal(#head + #slow, 65536)
    local client = task.concurrent(K.raw, server.port, {{"send", head .. slow}, {"shut"}}, 5)
    task.sleep(0.01)  -- the client's process starts
    local stop = os.clock() + 1.5
    while os.clock() < stop do end  -- the loop held: the client connects, sends and ends meanwhile
    local rep = client:await()
    assert.equal(bodies(rep), {"200 /1", "200 /2", "200 /3", "200 /4"})
    assert.equal(rep.ending, "eof")
    task.sleep(0.05)
    assert.truthy(cancelled, "the slow handler was cancelled")
  end)
end)
