-- The task-style API: what a handler sees in req, what res can do, and a
-- graceful server:close().
local K = require("httpkit")
local task = require("task")

describe("req", function()
  afterEach(K.cleanup)
  it("has method, path, query, queryParams, lower-case headers, version and peer", function()
    local r
    local server, url = K.serve({}, function(req, res)
      r = {
        method = req.method, path = req.path, query = req.query, params = req:queryParams(),
        same = req:queryParams() == req:queryParams(),
        headers = req.headers, version = req.httpVersion, ip = req.remoteAddress, port = req.remotePort,
      }
      res:send(200, "ok")
    end)
    local _, err, code = K.curl("-X", "PATCH", "-H", "X-Custom-Thing: Value Kept", "-H", "accept: text/x-test",
      url .. "/some/where%20else?a=1&b=x%20y&a=2&plus=a+b&empty=&flag&enc%3Dkey=v%26w")
    server:close()
    assert.equal(code, 0, err)
    assert.equal(r.method, "PATCH")
    assert.equal(r.path, "/some/where%20else", "the path is as sent")
    assert.equal(r.query, "a=1&b=x%20y&a=2&plus=a+b&empty=&flag&enc%3Dkey=v%26w")
    assert.equal(r.params, {a = {"1", "2"}, b = "x y", plus = "a b", empty = "", flag = "", ["enc=key"] = "v&w"})
    assert.truthy(r.same, "queryParams is computed once")
    assert.equal(r.headers["x-custom-thing"], "Value Kept")
    assert.equal(r.headers.accept, "text/x-test")
    assert.isNil(r.headers["X-Custom-Thing"])
    for name in pairs(r.headers) do assert.equal(name, name:lower()) end
    assert.equal(r.version, "1.1")
    assert.equal(r.ip, "127.0.0.1")
    assert.type(r.port, "number")
    assert.truthy(r.port > 0 and r.port < 65536)
  end, 15)

  it("has an empty query and no params without a '?'", function()
    local r
    local server, url = K.serve({}, function(req, res)
      r = {query = req.query, params = req:queryParams(), body = req:body()}
      res:send(200)
    end)
    K.curl(url .. "/plain")
    server:close()
    assert.equal(r, {query = "", params = {}, body = ""})
  end, 15)

  it("reduces an absolute-form target to its path and query", function()
    local r
    local server = K.serve({}, function(req, res)
      r = {req.path, req.query}
      res:send(200)
    end)
    K.raw(server.port, "GET http://example.test/abs/path?x=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
    server:close()
    assert.equal(r, {"/abs/path", "x=1"})
  end, 15)

  it("takes the host of an absolute-form target over the Host header (RFC 9112 3.2.2) (issue 8 item 41)", function()
    local got = {}
    local server = K.serve({}, function(req, res)
      got[#got + 1] = {req.path, req.query, req.headers.host}
      res:send(200)
    end)
    local rep = K.raw(server.port,
      "GET http://uri.test:8080/p HTTP/1.1\r\nHost: header.test\r\n\r\n" ..
      "GET HTTPS://User@Uri.Test?q=1 HTTP/1.1\r\nHost: header.test\r\n\r\n" ..
      "GET http://only.test/x/y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
      "GET http:///empty HTTP/1.1\r\nHost: header.test\r\n\r\n")
    server:close()
    local list = K.parse(rep.data)
    assert.equal(got, {
      {"/p", "", "uri.test:8080"},
      {"/", "q=1", "Uri.Test"},
      {"/x/y", "", "only.test"},
    })
    assert.equal(#list, 4, rep.data)
    assert.equal(list[4].status, 400, "an http URI with an empty host is invalid (RFC 9110 4.2.1)")
  end, 15)

  it("returns the whole body from req:body(), the same on a second call", function()
    local first, second
    local server, url = K.serve({}, function(req, res)
      first = req:body()
      second = req:body()
      res:send(200, #first)
    end)
    local out = K.curl("--data-binary", "some body bytes", url .. "/")
    server:close()
    assert.equal(out, "15")
    assert.equal(first, "some body bytes")
    assert.equal(second, first)
  end, 15)

  it("streams the body with req:read() as it arrives, nil at its end", function()
    local chunks, ended, startedEarly = {}, false, nil
    local server = K.serve({}, function(req, res)
      startedEarly = true
      while true do
        local c, err = req:read()
        assert(err == nil, tostring(err))
        if c == nil then ended = true break end
        chunks[#chunks + 1] = c
      end
      assert(req:read() == nil, "read after the end is nil again")
      res:send(200, table.concat(chunks, "|"))
    end)
    local rep = K.raw(server.port, {
      {"send", K.req("POST", "/", {"Transfer-Encoding: chunked", "Connection: close"})},
      {"sleep", 0.1}, {"send", "5\r\nhello\r\n"},
      {"sleep", 0.1}, {"send", "6\r\n world\r\n"},
      {"sleep", 0.1}, {"send", "0\r\n\r\n"},
    })
    server:close()
    local r = K.parse1(rep.data)
    assert.equal(r.status, 200)
    assert.truthy(startedEarly and ended)
    assert.equal(table.concat(chunks), "hello world")
    assert.truthy(#chunks >= 2, "the body came in more than one read: " .. r.body)
    assert.equal(r.body, "hello| world")
  end, 15)

  it("reports a body cut short by the client as BadRequest from req:read()", function()
    local got
    local server = K.serve({}, function(req, res)
      local parts = {}
      while true do
        local c, err = req:read()
        if err then got = {table.concat(parts), err.code, err.status}; return res:send(err.status, "cut") end
        if not c then break end
        parts[#parts + 1] = c
      end
      got = {table.concat(parts)}
      res:send(200, "whole")
    end)
    local rep = K.raw(server.port, {{"send", K.req("POST", "/", {"Content-Length: 10"}) .. "abc"}, {"sleep", 0.1}, {"shut"}}, 5)
    assert.equal(got, {"abc", "BadRequest", 400})
    local r = K.parse1(rep.data)
    assert.equal(r.status, 400, "the half-closed client still gets the answer")
    assert.equal(rep.ending, "eof")
  end, 15)

  it("gives each request its own id", function()
    local ids = {}
    local server, url = K.serve({}, function(req, res)
      ids[#ids + 1] = req.id
      res:send(200)
    end)
    K.curl(url .. "/1", url .. "/2", url .. "/3")
    server:close()
    assert.equal(#ids, 3)
    assert.type(ids[1], "number")
    assert.truthy(ids[1] ~= ids[2] and ids[2] ~= ids[3] and ids[1] ~= ids[3])
  end, 15)
end)

describe("res", function()
  afterEach(K.cleanup)
  it("sends status, body and headers at once with res:send", function()
    local server, url = K.serve({}, function(req, res)
      res:send(409, "short and stout", {["content-type"] = "text/x-tea", ["x-multi"] = {"a", "b"}})
    end)
    local out = K.curl("-i", url .. "/")
    server:close()
    local r = K.parse1(out)
    assert.equal(r.status, 409)
    assert.equal(r.reason, "Conflict")
    assert.equal(r.headers["content-type"], "text/x-tea")
    assert.equal(r.headers["content-length"], "15")
    assert.equal(r.headers["x-multi"], {"a", "b"})
    assert.equal(r.body, "short and stout")
  end, 15)

  it("builds a response with status, header, write and finish, tracking its state", function()
    local states = {}
    local server, url = K.serve({}, function(req, res)
      states[#states + 1] = {res:headersSent(), res:isFinished()}
      res:status(202):header("x-step", "1")
      res:header("content-type", "text/plain")
      states[#states + 1] = {res:headersSent(), res:isFinished()}
      res:write("part one; ")
      states[#states + 1] = {res:headersSent(), res:isFinished()}
      assert(not pcall(res.header, res, "x-late", "1"), "headers cannot change once sent")
      res:finish("part two")
      states[#states + 1] = {res:headersSent(), res:isFinished()}
      assert(not pcall(res.write, res, "more"), "no writes after finish")
    end)
    local out = K.curl("-i", "--raw", url .. "/")
    server:close()
    local r = K.parse1(out)
    assert.equal(r.status, 202)
    assert.equal(r.headers["x-step"], "1")
    assert.isNil(r.headers["x-late"])
    assert.equal(r.body, "part one; part two")
    assert.equal(states, {{false, false}, {false, false}, {true, false}, {true, true}})
  end, 15)

  it("adds nothing from a header list or a send headers table with an invalid value (issue 8 item 41)", function()
    local errs = {}
    local server = K.serve({}, function(req, res)
      if req.path == "/header" then
        local ok, err = pcall(res.header, res, "x", {"ok", "b\r\nx-evil: 1"})
        errs[1] = {ok, tostring(err)}
        return res:send(200, "h")
      end
      local ok, err = pcall(res.send, res, 200, "s", {["x-a"] = "ok", ["x-b"] = {"fine", "bad\n"}, ["x-c"] = "ok"})
      errs[2] = {ok, tostring(err)}
      res:send(201, "s")
    end)
    local rep = K.raw(server.port, K.req("GET", "/header") .. K.req("GET", "/send", {"Connection: close"}))
    local list = K.parse(rep.data)
    assert.equal(#list, 2, rep.data)
    assert.equal(list[1].status, 200)
    assert.isNil(list[1].headers.x, "no x: ok line: " .. list[1].raw)
    assert.isNil(list[1].headers["x-evil"])
    assert.equal(list[2].status, 201)
    for _, name in ipairs({"x-a", "x-b", "x-c"}) do assert.isNil(list[2].headers[name], list[2].raw) end
    assert.equal(errs[1][1], false)
    assert.match(errs[1][2], "invalid header value for 'x'")
    assert.equal(errs[2][1], false)
    assert.match(errs[2][2], "invalid header value for 'x%-b'")
  end, 15)

  it("refuses a Content-Length of '' or beyond 2^64 - 1 (issue 8 item 41)", function()
    local errs = {}
    local server = K.serve({}, function(req, res)
      for _, v in ipairs({"", "18446744073709551616", "99999999999999999999999", " 5", "5 "}) do
        local ok, err = pcall(res.header, res, "Content-Length", v)
        errs[#errs + 1] = {v, ok, tostring(err)}
      end
      res:header("Content-Length", "2")  -- the largest values that fit are fine; this one frames the body
      res:finish("ok")
    end)
    local rep = K.raw(server.port, K.req("GET", "/", {"Connection: close"}))
    local r = K.parse1(rep.data)
    assert.equal(r.status, 200)
    assert.equal(r.headers["content-length"], "2")
    assert.equal(r.body, "ok")
    assert.equal(#errs, 5)
    for _, e in ipairs(errs) do
      assert.equal(e[2], false, "Content-Length '" .. e[1] .. "' was accepted")
      assert.match(e[3], "invalid Content%-Length")
    end
  end, 15)

  it("raises on a second res:send", function()
    local second
    local server, url = K.serve({}, function(req, res)
      res:send(200, "first")
      local ok, err = pcall(res.send, res, 200, "second")
      second = {ok, tostring(err)}
    end)
    local out = K.curl(url .. "/")
    server:close()
    assert.equal(out, "first")
    assert.equal(second[1], false)
    assert.match(second[2], "already")
  end, 15)

  it("finishes the response of a handler that returns without answering", function()
    local server, url = K.serve({}, function(req, res)
      if req.path == "/status" then res:status(201) end
    end)
    local out = K.curl("-i", url .. "/nothing", url .. "/status")
    server:close()
    local list = K.parse(out)
    assert.equal(#list, 2)
    assert.equal(list[1].status, 200)
    assert.equal(list[1].headers["content-length"], "0")
    assert.equal(list[2].status, 201)
  end, 15)

  it("sends no body and no Content-Length with 204 and 304", function()
    local server = K.serve({}, function(req, res)
      res:send(tonumber(req.path:sub(2)), "ignored body")
    end)
    local rep = K.raw(server.port, K.req("GET", "/204") .. K.req("GET", "/304") .. K.req("GET", "/200", {"Connection: close"}))
    server:close()
    local list = K.parse(rep.data)
    assert.equal(#list, 3)
    assert.equal(list[1].status, 204)
    assert.isNil(list[1].headers["content-length"])
    assert.isNil(list[1].headers["transfer-encoding"])
    assert.equal(list[2].status, 304)
    assert.isNil(list[2].headers["transfer-encoding"])
    assert.equal(list[3].body, "ignored body", "nothing of the 204/304 bodies leaked into the stream")
  end, 15)

  it("cancels a writing handler once its client has gone (res:write says Closed, or Canceled arrives)", function()
    local result
    local server, url = K.serve({}, function(req, res)
      local chunk = string.rep("x", 65536)
      local ok, err = pcall(function()
        for i = 1, 10000 do
          local ok, err = res:write(chunk)
          if not ok then result = {i, err and err.code}; return end
          task.sleep(0.005)
        end
        result = {"never failed"}
      end)
      if not ok then result = {0, type(err) == "table" and err.code or tostring(err)} end
    end)
    local _, _, code = K.curl("--max-time", "0.3", url .. "/endless")
    assert.equal(code, 28, "curl gave up")
    K.waitFor(function() return result end, 5)
    server:close()
    assert.type(result, "table")
    assert.type(result[1], "number")
    assert.truthy(result[2] == "Closed" or result[2] == "Canceled", tostring(result[2]))
  end, 15)

  it("reports a missing file from res:sendFile, and the handler can still answer", function()
    local got
    local server, url = K.serve({}, function(req, res)
      local ok, err = res:sendFile("/nonexistent/evo-http-spec")
      got = {ok, err and err.code}
      res:send(404, "missing")
    end)
    local out = K.curl("-i", url .. "/")
    server:close()
    assert.equal(got, {nil, "ENOENT"})
    local r = K.parse1(out)
    assert.equal(r.status, 404)
    assert.equal(r.body, "missing")
  end, 15)
end)

describe("server:close()", function()
  afterEach(K.cleanup)
  it("lets an in-flight slow request finish, then refuses new connections", function()
    local started = false
    local server, url = K.serve({}, function(req, res)
      started = true
      task.sleep(0.3)
      res:send(200, "slow but complete")
    end)
    local client = task.async(K.curl, "-i", url .. "/slow")
    while not started do task.sleep(0.01) end
    assert.equal(server:connections(), 1)
    local t0 = task.now()
    server:close()
    local waited = task.now() - t0
    local out, err, code = client:await()
    assert.equal(code, 0, err)
    local r = K.parse1(out)
    assert.equal(r.status, 200)
    assert.equal(r.body, "slow but complete")
    assert.equal(r.headers.connection, "close")
    assert.truthy(waited >= 0.15, "close() waited for the response (" .. waited .. " s)")
    assert.equal(server:connections(), 0)
    local _, _, refused = K.curl(url .. "/again")
    assert.equal(refused, 7, "curl: could not connect")
  end, 15)

  it("closes idle keep-alive connections at once", function()
    local server = K.serve({}, function(req, res) res:send(200, "x") end)
    local client = task.async(K.raw, server.port, K.req("GET", "/"), 8)
    while server:connections() == 0 do task.sleep(0.01) end
    task.sleep(0.2)
    local t0 = task.now()
    server:close()
    assert.truthy(task.now() - t0 < 1, "close() did not wait for the idle timeout")
    local rep = client:await()
    assert.equal(rep.ending, "eof")
    assert.equal(K.parse1(rep.data).status, 200)
    assert.truthy(rep.elapsed < 2)
  end, 15)
end)

describe("the http module", function()
  -- lib/http.lua loads lib/url.lua, the web kit, the router and the file
  -- server when first used: a server that uses none keeps their code out
  -- of its heap, which the collector goes through every cycle
  -- (docs/performance.md, "The heap's size"). Each is there, the same
  -- functions, once asked for.
  it("loads url, the web kit, the router and the file server only when first used", function()
    local evo = os.getenv("EVO") or "build/evo"
    local script = [[
      local http = require("http")
      local function loaded()
        local l = {}
        for i, m in ipairs({"url", "evo.webkit", "evo.router", "evo.static"}) do l[i] = tostring(package.loaded[m] ~= nil) end
        return table.concat(l, " ")
      end
      local before = loaded()
      local server = assert(http.serve({port = 0}, function(req, res) res:send(200, "x") end))
      local served = loaded()
      server:close()
      local q = http.parseQuery("a=1&a=2")
      local afterQuery = loaded()
      local cors = http.cors({origins = "*"})
      local afterCors = loaded()
      local router = http.router()
      local afterRouter = loaded()
      local mime = http.mimeType("a.css")
      print(before, served, afterQuery, #q.a, type(cors), afterCors, http.parseQuery == require("url").parseQuery,
        type(router.get), afterRouter, mime, loaded(), http.mimeTypes == require("evo.static").mimeTypes)
    ]]
    local r = K.run(evo, {"-e", script}, {timeout = 10})
    assert.equal(r.code, 0, r.err)
    assert.equal(r.out, table.concat({"false false false false", "false false false false", "true false false false",
      "2", "function", "true true false false", "true", "function", "true true true false",
      "text/css; charset=utf-8", "true true true true", "true"}, "\t") .. "\n")
  end, 15)
end)
