-- HttpServer, the event style on the same engine: listening events,
-- request payloads, answering by request id (at once, streamed, or later
-- from a Timer or a task), aborted connections, stopping.
local K = require("httpkit")
local HttpServer = require("HttpServer")
local Timer = require("Timer")
local task = require("task")
local process = require("process")

-- A started server whose events are recorded in server.log ({name, payload}).
local function start(opts)
  local s = HttpServer(opts)
  s.log = {}
  for _, e in ipairs({"SERVER_STARTED_LISTENING", "HTTP_REQUEST_STARTED", "HTTP_REQUEST_FINISHED",
                      "HTTP_CONNECTION_ABORTED", "SERVER_STOPPED_LISTENING"}) do
    s[e] = function(self, event, payload)
      self.log[#self.log + 1] = {event, payload}
      local h = self.on and self.on[event]
      if h then h(self, payload) end
    end
  end
  s.on = {}
  -- After the test: answer what is still pending (a stopping server waits
  -- for its answers), then stop listening.
  K.onCleanup(function()
    for _, e in ipairs(s.log) do
      if e[1] == "HTTP_REQUEST_STARTED" and s.native then pcall(s.SendResponse, s, e[2].requestID, "") end
    end
    if s.native then s:StopListening() end
  end)
  return s
end

local function listen(s)
  assert.equal(s:StartListening(0), s)
  assert.type(s.port, "number")
  assert.truthy(s.port > 0)
  return "http://127.0.0.1:" .. s.port
end

local function events(s, name)
  local out = {}
  for _, e in ipairs(s.log) do if e[1] == name then out[#out + 1] = e[2] end end
  return out
end

local function stop(s)
  s:StopListening()
  K.waitFor(function() return #events(s, "SERVER_STOPPED_LISTENING") > 0 end, 3)
end

describe("HttpServer", function()
  afterEach(K.cleanup)
  it("listens on port 0 and reports SERVER_STARTED_LISTENING", function()
    local s = start()
    listen(s)
    assert.equal(s.log[1][1], "SERVER_STARTED_LISTENING")
    assert.equal(s.log[1][2], {port = s.port, host = "127.0.0.1"})
    stop(s)
  end)

  it("reports HTTP_REQUEST_STARTED and HTTP_REQUEST_FINISHED with the request", function()
    local s = start()
    s.on.HTTP_REQUEST_FINISHED = function(self, p)
      assert(self:WriteStatus(p.requestID, "201 Created"))
      assert(self:WriteHeader(p.requestID, "content-type", "text/plain"))
      assert(self:WriteHeader(p.requestID, "x-request-id", tostring(p.requestID)))
      assert(self:SendResponse(p.requestID, "you sent " .. #p.body .. " bytes"))
    end
    local url = listen(s)
    local body = K.bytes(100000, 21)
    local dir = K.tempDir()
    K.writeFile(dir .. "/b", body)
    local out, err, code = K.curl("-i", "-H", "X-Test: yes", "-H", "Expect:", "--data-binary", "@" .. dir .. "/b",
      url .. "/submit/form?x=1&y=two")
    K.rmrf(dir)
    assert.equal(code, 0, err)
    local r = K.parse1(out)
    assert.equal(r.status, 201)
    assert.equal(r.reason, "Created")
    assert.equal(r.headers["content-type"], "text/plain")
    assert.equal(r.body, "you sent 100000 bytes")
    local started, finished = events(s, "HTTP_REQUEST_STARTED"), events(s, "HTTP_REQUEST_FINISHED")
    assert.equal(#started, 1)
    assert.equal(#finished, 1)
    assert.equal(started[1], {requestID = started[1].requestID, method = "POST", path = "/submit/form", query = "x=1&y=two"})
    assert.type(started[1].requestID, "number")
    local f = finished[1]
    assert.equal(f.requestID, started[1].requestID)
    assert.equal(r.headers["x-request-id"], tostring(f.requestID))
    assert.equal({f.method, f.path, f.query}, {"POST", "/submit/form", "x=1&y=two"})
    assert.equal(f.headers["x-test"], "yes")
    assert.equal(f.headers["content-length"], "100000")
    assert.truthy(f.body == body, "the whole body in the payload")
    stop(s)
  end, 15)

  it("gives GET requests an empty body and distinct ids", function()
    local s = start()
    s.on.HTTP_REQUEST_FINISHED = function(self, p)
      self:WriteStatus(p.requestID, 404)
      self:SendResponse(p.requestID, "nothing at " .. p.path)
    end
    local url = listen(s)
    local out = K.curl(url .. "/a", url .. "/b")
    assert.equal(out, "nothing at /anothing at /b")
    local f = events(s, "HTTP_REQUEST_FINISHED")
    assert.equal(#f, 2)
    assert.equal(f[1].body, "")
    assert.equal(f[1].query, "")
    assert.notEqual(f[1].requestID, f[2].requestID)
    stop(s)
  end, 15)

  it("answers a second SendResponse for one request with nil and AlreadySent", function()
    local s = start()
    local results = {}
    s.on.HTTP_REQUEST_FINISHED = function(self, p)
      results.first = {self:SendResponse(p.requestID, "once")}
      results.second = {self:SendResponse(p.requestID, "twice")}
      results.unknown = {self:SendResponse(p.requestID + 1000, "nobody")}
    end
    local url = listen(s)
    local out = K.curl("-s", url .. "/")
    assert.equal(out, "once")
    assert.equal(results.first, {true})
    assert.isNil(results.second[1])
    assert.equal(results.second[2].code, "AlreadySent")
    assert.isNil(results.unknown[1])
    assert.equal(results.unknown[2].code, "Closed", "an id never seen is not AlreadySent")
    stop(s)
  end, 15)

  it("streams a response with WriteResponse, chunked, ended by SendResponse", function()
    local s = start()
    s.on.HTTP_REQUEST_FINISHED = function(self, p)
      self:WriteStatus(p.requestID, "200 OK")
      assert(self:WriteResponse(p.requestID, "first,"))
      assert(self:WriteResponse(p.requestID, "second,"))
      assert(self:SendResponse(p.requestID, "last"))
    end
    local url = listen(s)
    local out, err, code = K.curl("-i", "--raw", url .. "/stream")
    assert.equal(code, 0, err)
    local r = K.parse1(out)
    assert.equal(r.headers["transfer-encoding"], "chunked")
    assert.equal(r.body, "first,second,last")
    assert.match(out, "\r\n6\r\nfirst,\r\n7\r\nsecond,\r\n4\r\nlast\r\n0\r\n\r\n$")
    stop(s)
  end, 15)

  it("answers later, from a Timer and from a task", function()
    local s = start()
    local timers = {}
    s.on.HTTP_REQUEST_FINISHED = function(self, p)
      if p.path == "/timer" then
        local t = Timer()
        timers[#timers + 1] = t
        function t.TIMER_FIRED()
          t:close()
          self:WriteHeader(p.requestID, "x-from", "timer")
          self:SendResponse(p.requestID, "timer answer")
        end
        t:start(0.2)
      else
        task.async(function()
          task.sleep(0.2)
          self:WriteResponse(p.requestID, "task ")
          task.sleep(0.05)
          self:SendResponse(p.requestID, "answer")
        end)
      end
    end
    local url = listen(s)
    local t0 = task.now()
    local a = task.async(K.curl, "-i", url .. "/timer")
    local b = task.async(K.curl, "-i", "--raw", url .. "/task")
    local ra, rb = K.parse1((a:await())), K.parse1((b:await()))
    assert.truthy(task.now() - t0 >= 0.2)
    assert.equal(ra.status, 200)
    assert.equal(ra.headers["x-from"], "timer")
    assert.equal(ra.body, "timer answer")
    assert.equal(rb.body, "task answer")
    stop(s)
  end, 15)

  it("answers pipelined requests in order, though the app answers each one later", function()
    local s = start()
    local delays = {["/1"] = 0.3, ["/2"] = 0.1, ["/3"] = 0.01}
    s.on.HTTP_REQUEST_FINISHED = function(self, p)
      local t = Timer()
      function t.TIMER_FIRED()
        t:close()
        self:SendResponse(p.requestID, "answer " .. p.path)
      end
      t:start(delays[p.path])
    end
    listen(s)
    local rep = K.raw(s.port, K.req("GET", "/1") .. K.req("GET", "/2") .. K.req("GET", "/3", {"Connection: close"}), 5)
    local list = K.parse(rep.data)
    assert.equal(#list, 3)
    assert.equal({list[1].body, list[2].body, list[3].body}, {"answer /1", "answer /2", "answer /3"})
    stop(s)
  end, 15)

  it("takes the limits of http.serve as options", function()
    local s = start({maxBodyBytes = 10})
    s.on.HTTP_REQUEST_FINISHED = function(self, p) self:SendResponse(p.requestID, "ok " .. p.body) end
    local url = listen(s)
    local rep = K.raw(s.port, K.req("POST", "/", {}, "small") .. K.req("POST", "/", {}, "far too large a body"), 5)
    local list = K.parse(rep.data)
    assert.equal(#list, 2)
    assert.equal(list[1].body, "ok small")
    assert.equal(list[2].status, 413)
    assert.equal(rep.ending, "eof")
    stop(s)
  end, 15)

  it("reports HTTP_CONNECTION_ABORTED when the client resets before the response", function()
    local s = start()
    local url = listen(s)
    local rep = K.raw(s.port, {{"send", K.req("GET", "/never")}, {"sleep", 0.2}, {"reset"}})
    assert.equal(rep.data, "")
    local aborted = K.waitFor(function() return events(s, "HTTP_CONNECTION_ABORTED")[1] end, 3)
    assert.truthy(aborted, "HTTP_CONNECTION_ABORTED was reported")
    local started = events(s, "HTTP_REQUEST_STARTED")[1]
    assert.equal(aborted, {requestID = started.requestID})
    local ok, err = s:SendResponse(started.requestID, "too late")
    assert.isNil(ok)
    assert.equal(err.code, "Closed")
    stop(s)
  end, 15)

  it("reports HTTP_CONNECTION_ABORTED when the client closes before the response", function()
    local s = start()
    local url = listen(s)
    local out, err, code = K.curl("--max-time", "0.3", url .. "/never")
    assert.equal(code, 28, "curl gave up: " .. err)
    local aborted = K.waitFor(function() return events(s, "HTTP_CONNECTION_ABORTED")[1] end, 2)
    local started = events(s, "HTTP_REQUEST_STARTED")[1]
    stop(s)
    assert.truthy(aborted, "HTTP_CONNECTION_ABORTED was reported after the client closed its connection")
    assert.equal(aborted, {requestID = started.requestID})
  end, 15)

  it("stops with StopListening: SERVER_STOPPED_LISTENING, then no connections", function()
    local s = start()
    s.on.HTTP_REQUEST_FINISHED = function(self, p) self:SendResponse(p.requestID, "up") end
    local url = listen(s)
    assert.equal(K.curl(url .. "/"), "up")
    s:StopListening()
    local stopped = K.waitFor(function() return events(s, "SERVER_STOPPED_LISTENING")[1] end, 3)
    assert.equal(stopped, {port = s.port, host = "127.0.0.1"})
    local _, _, code = K.curl(url .. "/")
    assert.equal(code, 7, "connection refused")
  end, 15)

  it("serves in the blocking Io mode too (a child evo --io=blocking)", function()
    local child = assert(process.spawn(K.evo, {"--io=blocking", K.fixtures .. "/event_server.lua"}, {stdin = "ignore"}))
    K.onCleanup(function() child:kill("KILL"); child:wait() end)
    local port = tonumber(child.stdout:readLine())
    assert(port, "the child reported its port")
    local out, err, code = K.curl("-i", "--data-binary", "abc", "http://127.0.0.1:" .. port .. "/blocking",
      "http://127.0.0.1:" .. port .. "/again")
    assert.equal(code, 0, err)
    local list = K.parse(out)
    assert.equal(#list, 2)
    assert.equal(list[1].headers["x-io-mode"], "blocking")
    assert.equal(list[1].body, "POST /blocking abc")
    assert.equal(list[2].body, "POST /again abc")
  end, 15)

  it("lets an in-flight request be answered after StopListening", function()
    local s = start()
    local pending
    s.on.HTTP_REQUEST_FINISHED = function(self, p) pending = p.requestID end
    local url = listen(s)
    local client = task.async(K.curl, "-i", url .. "/slow")
    K.waitFor(function() return pending end, 3)
    s:StopListening()
    task.sleep(0.1)
    assert(s:SendResponse(pending, "answered after stop"))
    local r = K.parse1((client:await()))
    assert.equal(r.body, "answered after stop")
    assert.equal(r.headers.connection, "close")
    K.waitFor(function() return #events(s, "SERVER_STOPPED_LISTENING") > 0 end, 3)
    assert.equal(#events(s, "SERVER_STOPPED_LISTENING"), 1)
  end, 15)
end)
