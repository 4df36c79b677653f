-- A res (or req) kept after its handler returned names nothing any more: it
-- cannot write into a later response on the same connection, and the server
-- goes on serving. (res objects refer to their exchange by slot and
-- generation, without a finalizer; slots are reused by later requests.)
local K = require("httpkit")
local task = require("task")

describe("a res kept after its handler", function()
  afterEach(K.cleanup)

  it("cannot answer a later request on the same connection, and says why", function()
    local kept, keptReq, seen = nil, nil, {}
    local server = K.serve({}, function(req, res)
      if req.path == "/1" then
        kept, keptReq = res, req
        res:send(200, "one")
        return
      end
      local ok, err = pcall(kept.send, kept, 500, "leaked")
      seen.sendOk, seen.sendErr = ok, tostring(err)
      seen.status = pcall(kept.status, kept, 500)
      seen.header = pcall(kept.header, kept, "x-leak", "1")
      seen.finished, seen.headersSent = kept:isFinished(), kept:headersSent()
      ok, err = pcall(function() return keptReq.headers end)
      seen.headersOk, seen.headersErr = ok, tostring(err)
      seen.same = rawequal(kept, res)
      res:send(200, "two")
    end)
    local r = K.client(server.port, {{"GET", "/1"}, {"GET", "/2"}, {"GET", "/2"}})
    server:close()
    assert.equal(#r, 3)
    assert.equal({r[1].status, r[1].body}, {200, "one"})
    assert.equal({r[2].status, r[2].body}, {200, "two"})
    assert.equal({r[3].status, r[3].body}, {200, "two"})
    assert.isNil(r[2].headers["x-leak"])
    assert.falsy(seen.sendOk)
    assert.match(seen.sendErr, "already")
    assert.falsy(seen.status)
    assert.falsy(seen.header)
    assert.truthy(seen.finished)
    assert.truthy(seen.headersSent)
    assert.falsy(seen.headersOk)
    assert.match(seen.headersErr, "req.headers: the request is over")
    assert.falsy(seen.same)
  end, 20)

  it("keeps what its handler read, and a task it started cannot write into the next response", function()
    local late = {}
    local server = K.serve({}, function(req, res)
      if req.path == "/slow" then
        local agent = req.headers["user-agent"]  -- read while the handler runs: kept in req
        task.concurrent(function()
          task.sleep(0.2)
          late.write = {pcall(res.write, res, "late")}
          late.agent = req.headers["user-agent"] == agent
        end)
        res:send(200, "first")
        return
      end
      task.sleep(0.4)  -- the spawned task wakes while this response is open
      res:send(200, "second")
    end)
    local r = K.client(server.port, {{"GET", "/slow", headers = {{"User-Agent", "kept/1"}}}, {"GET", "/next"}})
    server:close()
    assert.equal({r[1].status, r[1].body}, {200, "first"})
    assert.equal({r[2].status, r[2].body}, {200, "second"})
    assert.falsy(late.write[1])
    assert.match(tostring(late.write[2]), "already finished")
    assert.truthy(late.agent)
  end, 20)

  it("keeps the request line its handler read; one first read after the handler raises", function()
    local late = {}
    local server = K.serve({}, function(req, res)
      if req.path == "/first" then
        local early = req  -- req.path was read above, while the handler ran
        task.concurrent(function()
          task.sleep(0.1)
          late.path = early.path  -- read before: kept in req
          late.methodOk, late.methodErr = pcall(function() return req.method end)
          late.queryOk, late.queryErr = pcall(function() return req.query end)
        end)
        res:send(200, "first")
        return
      end
      task.sleep(0.3)
      res:send(200, "second " .. req.method .. " " .. req.path .. "?" .. req.query)
    end)
    local r = K.client(server.port, {{"GET", "/first?a=1"}, {"POST", "/next?b=2"}})
    server:close()
    assert.equal({r[1].status, r[1].body}, {200, "first"})
    assert.equal({r[2].status, r[2].body}, {200, "second POST /next?b=2"})
    assert.equal(late.path, "/first")
    assert.falsy(late.methodOk)
    assert.match(tostring(late.methodErr), "req.method: the request is over")
    assert.falsy(late.queryOk)
    assert.match(tostring(late.queryErr), "req.query: the request is over")
  end, 20)

  it("serves many connections whose handlers keep their res, each answer its own", function()
    local keptAll = {}
    local server = K.serve({}, function(req, res)
      keptAll[#keptAll + 1] = res
      for _, old in ipairs(keptAll) do
        if old ~= res then assert(not pcall(old.send, old, 500, "leak")) end
      end
      res:send(200, req.path)
    end)
    local reqs = {}
    for i = 1, 40 do reqs[i] = {"GET", "/r" .. i} end
    local r = K.client(server.port, reqs)
    server:close()
    assert.equal(#r, 40)
    for i = 1, 40 do assert.equal({r[i].status, r[i].body}, {200, "/r" .. i}) end
  end, 30)

  -- A connection recycles its finished exchange for its next request
  -- (Connection::new_exchange): nothing of the first request or response
  -- may show in the second — headers, status, reason, trailers both ways,
  -- body, body state, framing.
  it("a recycled exchange starts clean: request and response state", function()
    local seen = {}
    local server = K.serve({}, function(req, res)
      local n = #seen + 1
      local body = req:read()
      seen[n] = {path = req.path, method = req.method, query = req.query, headers = req.headers,
        trailers = req:trailers(), body = body}
      if n == 1 then
        res:status(404)
        res:header("x-first", "1")
        res:trailer("x-first-trailer", "t")
        res:write("chunk-one")
        res:finish()
      else
        res:send(200, "two")
      end
    end)
    local first = "POST /one?a=1 HTTP/1.1\r\nHost: h1\r\nX-Only-First: yes\r\n" ..
      "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Req-Trailer: rt\r\n\r\n"
    local second = "GET /two HTTP/1.1\r\nHost: h2\r\n\r\n"
    local data = K.raw(server.port, {{"send", first .. second}, {"shut"}}, 5).data
    local r = K.parse(data)
    server:close()
    assert.equal(#r, 2)
    assert.equal({r[1].status, r[1].body, r[1].chunked}, {404, "chunk-one", true})
    assert.equal(r[1].headers["x-first"], "1")
    assert.equal({r[2].status, r[2].reason, r[2].body}, {200, "OK", "two"})
    assert.isNil(r[2].headers["x-first"])
    assert.isNil(r[2].headers["transfer-encoding"])
    assert.isNil(r[2].headers.trailer)
    assert.equal(r[2].headers["content-length"], "3")
    assert.isNil(r[2].raw:find("x-first", 1, true))
    assert.equal({seen[1].method, seen[1].path, seen[1].query, seen[1].body}, {"POST", "/one", "a=1", "hello"})
    assert.equal(seen[1].headers["x-only-first"], "yes")
    assert.equal(seen[1].trailers["x-req-trailer"], "rt")
    assert.equal({seen[2].method, seen[2].path, seen[2].query, seen[2].body}, {"GET", "/two", "", nil})
    assert.isNil(seen[2].body)  -- (read() at the end of a body: nil)
    assert.equal(seen[2].headers.host, "h2")
    assert.isNil(seen[2].headers["x-only-first"])
    assert.isNil(seen[2].headers["transfer-encoding"])
    assert.isNil(next(seen[2].trailers))
  end, 20)

  it("pipelined on one read (a recycled exchange each time): a kept res, the head and header checks", function()
    -- Every request after the first reuses the same exchange (slot, head
    -- buffer) through res:send's FFI path: nothing may carry over.
    local kept, seen, peers = nil, {}, {}
    local server = K.serve({}, function(req, res)
      local p = req.path
      peers[#peers + 1] = req.remoteAddress .. ":" .. req.remotePort
      if p == "/a" then
        kept = res
        res:send(200, "a", {["x-a"] = "1", ["x-b"] = "2", ["content-type"] = "text/plain"})
      elseif p == "/b" then
        seen.keptSend = {pcall(kept.send, kept, 500, "leaked", {["x-leak"] = "1"})}
        seen.keptHeader = pcall(kept.header, kept, "x-leak", "1")
        seen.same = rawequal(kept, res)
        res:send(200, "b", {["x-c"] = "3"})
      elseif p == "/c" then
        res:send(200, "c", {["Content-Length"] = "1"})
      elseif p == "/d" then
        seen.overflow = {pcall(res.send, res, 200, "d", {["content-length"] = "99999999999999999999999"})}
        seen.badName = {pcall(res.send, res, 200, "d", {["bad name"] = "x"})}
        seen.badValue = {pcall(res.send, res, 200, "d", {["x-v"] = "a\r\nx-injected: 1"})}
        res:send(201, "d", {["x-d"] = "4", connection = "close"})
      end
    end)
    local reqs = ""
    for _, p in ipairs({"/a", "/b", "/c", "/d"}) do reqs = reqs .. "GET " .. p .. " HTTP/1.1\r\nHost: h\r\n\r\n" end
    local r = K.parse(K.raw(server.port, {{"send", reqs}}, 5).data)
    server:close()
    assert.equal(#r, 4)
    assert.equal(#peers, 4)
    assert.match(peers[1], "^127%.0%.0%.1:%d+$")
    for i = 2, 4 do assert.equal(peers[i], peers[1]) end  -- (kept by the recycled exchange)
    assert.equal({r[1].status, r[1].body, r[1].headers["x-a"], r[1].headers["x-b"]}, {200, "a", "1", "2"})
    assert.equal({r[2].status, r[2].body, r[2].headers["x-c"]}, {200, "b", "3"})
    for i = 2, 4 do
      assert.isNil(r[i].headers["x-a"])
      assert.isNil(r[i].headers["x-leak"])
      assert.isNil(r[i].raw:find("content-type", 1, true))
    end
    assert.isNil(r[3].headers["x-c"])
    assert.equal({r[3].status, r[3].body, r[3].headers["content-length"]}, {200, "c", "1"})
    assert.equal({r[4].status, r[4].body, r[4].headers["x-d"], r[4].headers.connection}, {201, "d", "4", "close"})
    assert.isNil(r[4].raw:find("injected", 1, true))
    assert.falsy(seen.keptSend[1])
    assert.match(tostring(seen.keptSend[2]), "already")
    assert.falsy(seen.keptHeader)
    assert.falsy(seen.same)
    assert.falsy(seen.overflow[1])
    assert.match(tostring(seen.overflow[2]), "invalid Content%-Length")
    assert.falsy(seen.badName[1])
    assert.match(tostring(seen.badName[2]), "invalid header name")
    assert.falsy(seen.badValue[1])
    assert.match(tostring(seen.badValue[2]), "invalid header value")
  end, 20)
end)
