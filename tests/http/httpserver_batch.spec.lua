-- HttpServer's batch: the whole requests parsed from one read run their
-- STARTED and FINISHED handlers one after the other on one pooled coroutine
-- (lib/HttpServer.lua runBatch, native.nextEvent), as http.serve's runner
-- does (tests/http/batch.spec.lua). These send pipelined requests in one
-- send(2) (Python's raw sockets, peers/raw.py) so that a batch forms, and
-- check that errors, suspensions, bodies and trailers in the middle of it
-- change nothing a handler can see.
local K = require("httpkit")
local task = require("task")
local HttpServer = require("HttpServer")

local function serve(s)
  assert.equal(s:StartListening(0), s)
  K.onCleanup(function() if s.native then s:StopListening() end end)
  return s.port
end

local pipeline, answers = K.pipeline, K.answers

local function startsAndEnds(paths)
  local want = {}
  for _, p in ipairs(paths) do
    want[#want + 1] = "S " .. p
    want[#want + 1] = "F " .. p
  end
  return want
end

describe("HttpServer batch of pipelined requests", function()
  afterEach(K.cleanup)

  it("runs STARTED then FINISHED of each request in order, on one coroutine, answered in order", function()
    local s, seen, cos = HttpServer(), {}, {}
    function s:HTTP_REQUEST_STARTED(event, p)
      seen[#seen + 1] = "S " .. p.path
      cos[#cos + 1] = coroutine.running()
    end
    function s:HTTP_REQUEST_FINISHED(event, p)
      seen[#seen + 1] = "F " .. p.path
      cos[#cos + 1] = coroutine.running()
      self:WriteStatus(p.requestID, 200)
      self:SendResponse(p.requestID, p.path .. "?" .. p.query)
    end
    local port = serve(s)
    local rep = K.raw(port, pipeline({"/1?a=1", "/2", "/3?b", "/4", "/5", "/6"}))
    assert.equal(answers(rep), {"200 /1?a=1", "200 /2?", "200 /3?b", "200 /4?", "200 /5?", "200 /6?"})
    assert.equal(seen, startsAndEnds({"/1", "/2", "/3", "/4", "/5", "/6"}))
    assert.equal(#cos, 12)
    -- (A pooled task reuses its coroutine too: this shows nothing of the
    -- batch but that no request ran elsewhere.)
    for i = 2, #cos do assert.equal(cos[i], cos[1]) end
  end)

  it("keeps every payload whole after its answer, each its own table", function()
    local s, kept = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      kept[#kept + 1] = p
      p.mine = p.path
      self:SendResponse(p.requestID, "ok")
      -- What the handler holds outlives the answer (and the next requests).
      if #kept > 1 then
        local before = kept[#kept - 1]
        p.before = {before.path, before.headers["x-n"], before.body, before.mine}
      end
    end
    local port = serve(s)
    local req = K.req("GET", "/a", {"X-N: 1"}) .. K.req("POST", "/b", {"X-N: 2"}, "body of b")
      .. K.req("GET", "/c?q=3", {"X-N: 3", "Connection: close"})
    assert.equal(answers(K.raw(port, req)), {"200 ok", "200 ok", "200 ok"})
    assert.equal(#kept, 3)
    local ids = {}
    for i, p in ipairs(kept) do
      assert.equal(p.headers["x-n"], tostring(i))
      assert.falsy(ids[p.requestID])
      ids[p.requestID] = true
      for j = 1, i - 1 do assert.falsy(rawequal(p, kept[j]) or rawequal(p.headers, kept[j].headers)) end
    end
    assert.equal({kept[1].method, kept[1].path, kept[1].query, kept[1].body, kept[1].mine}, {"GET", "/a", "", "", "/a"})
    assert.equal({kept[2].method, kept[2].path, kept[2].body}, {"POST", "/b", "body of b"})
    assert.equal({kept[3].path, kept[3].query}, {"/c", "q=3"})
    assert.equal(kept[2].before, {"/a", "1", "", "/a"})
    assert.equal(kept[3].before, {"/b", "2", "body of b", "/b"})
    assert.equal({kept[2].mine, kept[3].mine}, {"/b", "/c"})  -- a field set on one payload is on no other
  end)

  it("answers 500 for a handler that raises mid-batch, reports it and goes on with the next request", function()
    -- In a child process: the errors are reported on its stderr.
    local dir = K.tempDir()
    local script = dir .. "/raising.lua"
    K.writeFile(script, [=[
local HttpServer = require("HttpServer")
local s, seen, cos, same = HttpServer(), {}, {}, true
local function note(what)
  seen[#seen + 1] = what
  cos[#cos + 1] = coroutine.running()
  same = same and cos[#cos] == cos[1]
end
function s:HTTP_REQUEST_STARTED(_, p)
  if p.path == "/seen" then return end
  note("S " .. p.path)
  if p.path == "/boom-started" then error("boom in STARTED") end
  if p.path == "/answered-then-boom" then
    self:SendResponse(p.requestID, "answered in STARTED")
    error("boom after the answer")
  end
end
function s:HTTP_REQUEST_FINISHED(_, p)
  if p.path == "/seen" then return self:SendResponse(p.requestID, table.concat(seen, ",") .. " " .. tostring(same)) end
  note("F " .. p.path)
  if p.path == "/boom" then error({code = "Mine"}) end
  self:SendResponse(p.requestID, p.path)
end
assert(s:StartListening(0))
io.stdout:write(s.port, "\n")
io.stdout:flush()
]=])
    local child = assert(require("process").spawn(K.evo, {script}, {stdin = "ignore"}))
    local stderr = task.async(function() return child.stderr:readAll() end)
    local port = tonumber((assert(child.stdout:readLine(), "the child did not start")))
    K.onCleanup(function() child:kill("KILL") child:wait() end)
    local rep = K.raw(port, pipeline({"/1", "/boom", "/3", "/boom-started", "/5", "/answered-then-boom", "/7", "/boom"}))
    local list = K.parse(rep.data)
    local e500 = "500 500 Internal Server Error\n"
    assert.equal(answers(rep), {"200 /1", e500, "200 /3", e500, "200 /5", "200 answered in STARTED", "200 /7", e500})
    assert.isNil(list[2].headers.connection)  -- a 500 keeps the connection
    local seen = K.parse(K.raw(port, pipeline({"/seen"})).data)[1].body
    -- A STARTED handler that raised answered its request: no FINISHED for it;
    -- and the batch went on, on one coroutine.
    assert.equal(seen, "S /1,F /1,S /boom,F /boom,S /3,F /3,S /boom-started,S /5,F /5,S /answered-then-boom,"
      .. "S /7,F /7,S /boom,F /boom true")
    child:kill("KILL")
    local err = stderr:await() or ""
    child.stdout:close()
    child.stderr:close()
    assert.match(err, "error in HttpServer:HTTP_REQUEST_STARTED handler: [^\n]-boom in STARTED")
    assert.match(err, "error in HttpServer:HTTP_REQUEST_STARTED handler: [^\n]-boom after the answer")
    assert.match(err, 'error in HttpServer:HTTP_REQUEST_FINISHED handler: {code = "Mine"}')
    local _, count = err:gsub("error in HttpServer:", "")
    assert.equal(count, 4)
  end, 30)

  it("does not hold the rest of the batch behind a handler that suspends", function()
    local s, notes = HttpServer(), {}
    local function note(what) notes[#notes + 1] = what end
    function s:HTTP_REQUEST_STARTED(_, p) note("S " .. p.path) end
    function s:HTTP_REQUEST_FINISHED(_, p)
      note("F " .. p.path)
      if p.path == "/slow" then
        task.sleep(0.15)
        note("answer /slow")
      elseif p.path == "/answered-then-sleeps" then
        self:SendResponse(p.requestID, "early")
        note("answer /answered-then-sleeps")
        task.sleep(0.3)
        note("end /answered-then-sleeps")
        return
      end
      self:SendResponse(p.requestID, p.path)
    end
    local port = serve(s)
    local rep = K.raw(port, pipeline({"/1", "/slow", "/3", "/answered-then-sleeps", "/5", "/6"}))
    assert.equal(answers(rep), {"200 /1", "200 /slow", "200 /3", "200 early", "200 /5", "200 /6"})
    K.waitFor(function() return notes[#notes] == "end /answered-then-sleeps" end, 5)
    local at = {}
    for i, e in ipairs(notes) do at[e] = at[e] or i end
    assert.truthy(at["S /3"] > at["answer /slow"])  -- one request at a time, in order
    assert.truthy(at["F /3"] > at["S /3"])
    assert.truthy(at["S /5"] > at["answer /answered-then-sleeps"])
    assert.truthy(at["F /6"] < at["end /answered-then-sleeps"])  -- an answered handler holds nobody up
  end)

  it("serves bodies, a request whose body comes later and one with trailers in the middle of a batch", function()
    local s, seen = HttpServer(), {}
    function s:HTTP_REQUEST_STARTED(_, p) seen[#seen + 1] = "S " .. p.path end
    function s:HTTP_REQUEST_FINISHED(_, p)
      seen[#seen + 1] = "F " .. p.path
      local t = p.trailers and p.trailers["x-check"] or "-"
      self:SendResponse(p.requestID, p.method .. " " .. p.path .. " " .. p.body .. " " .. t)
    end
    local port = serve(s)
    local chunked = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "3\r\nabc\r\n0\r\nX-Check: yes\r\n\r\n"
    local late = "POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234"
    local rep = K.raw(port, {
      {"send", K.req("GET", "/1") .. K.req("POST", "/body", nil, "hello") .. chunked .. K.req("GET", "/4") .. late},
      {"sleep", "0.1"},
      {"send", "56789" .. K.req("GET", "/last", {"Connection: close"})},
    })
    assert.equal(answers(rep), {"200 GET /1  -", "200 POST /body hello -", "200 POST /chunked abc yes",
      "200 GET /4  -", "200 POST /late 0123456789 -", "200 GET /last  -"})
    assert.equal(seen, startsAndEnds({"/1", "/body", "/chunked", "/4", "/late", "/last"}))
  end)

  -- (The FFI pull, fast::next_event, leaves every parse other than a whole
  -- request to the classic nextEvent: a bad request in the middle of a
  -- batch is the classic path's 400 after the answers before it.)
  it("answers 400 to a malformed request after the good ones of its batch, then closes", function()
    local s, seen = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      seen[#seen + 1] = p.method .. " " .. p.path .. " " .. p.headers["x-n"] .. " " .. p.body
      self:SendResponse(p.requestID, p.path)
    end
    local port = serve(s)
    local rep = K.raw(port, {{"send", K.req("GET", "/1", {"X-N: 1"}) .. K.req("POST", "/2", {"X-N: 2"}, "b2")
      .. "GET /bad HTTP/1.1\r\nHost x\r\n\r\n" .. K.req("GET", "/never", {"X-N: 3"})}})
    local got = answers(rep)
    assert.equal(got[1], "200 /1")
    assert.equal(got[2], "200 /2")
    assert.equal(#got, 3)
    assert.truthy(got[3]:match("^400"))
    assert.equal(seen, {"GET /1 1 ", "POST /2 2 b2"})
  end)

  it("answers a request left unanswered by its handler later, then goes on", function()
    local s, order = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      order[#order + 1] = p.path
      if p.path == "/later" then
        local id = p.requestID
        require("timer").after(0.05, function() self:SendResponse(id, "later") end)
        return
      end
      self:SendResponse(p.requestID, p.path)
    end
    local port = serve(s)
    local rep = K.raw(port, pipeline({"/1", "/later", "/3", "/4"}))
    assert.equal(answers(rep), {"200 /1", "200 later", "200 /3", "200 /4"})
    assert.equal(order, {"/1", "/later", "/3", "/4"})
  end)
end)
