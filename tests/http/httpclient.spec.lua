-- The HTTP client (http.request / http.get) against Evo's server and against
-- servers misbehaving on purpose: pooling, redirects, bodies, errors.
local K = require("httpkit")
local http = require("http")
local net = require("net")
local task = require("task")
local zlib = require("zlib")

local gzip = zlib.gzip


-- A raw server: each connection's request head is recorded in `heads`, then
-- `reply` (bytes, or a function(stream)) answers it. Closed after the test.
local function rawServer(reply)
  local heads, conns = {}, {count = 0}
  local server = assert(net.listen({port = 0}, function(s)
    conns.count = conns.count + 1
    local head = s:readUntil("\r\n\r\n")
    heads[#heads + 1] = head
    if type(reply) == "function" then
      reply(s, head)
    else
      s:write(reply)
      s:flush()
      task.sleep(1.5)  -- the connection stays open: a client must not wait for its end
    end
    s:close()
  end))
  K.onCleanup(function() server:close() end)
  return "http://127.0.0.1:" .. server.port, heads, conns
end

-- The number of open descriptors of this process.
local function openFds()
  local uv = require("uv")
  local dir = assert(uv.fs_scandir("/proc/self/fd"))
  local n = 0
  while uv.fs_scandir_next(dir) do n = n + 1 end
  return n
end

describe("http client", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  it("reuses a pooled keep-alive connection for the next request to the same host", function()
    local ports = {}
    local server, url = K.serve({}, function(req, res)
      ports[#ports + 1] = req.remotePort
      res:send(200, "n" .. #ports)
    end)
    for i = 1, 5 do assert.equal(assert(http.get(url .. "/")).body, "n" .. i) end
    for i = 2, 5 do assert.equal(ports[i], ports[1], "request " .. i .. " used the first connection") end
  end, 15)

  it("sends method, headers and body, and reads status, reason and headers", function()
    local seen
    local server, url = K.serve({}, function(req, res)
      seen = {method = req.method, path = req.path, query = req.query, body = req:body(),
        ua = req.headers["user-agent"], custom = req.headers["x-custom"], host = req.headers.host}
      res:status(201, "Made It")
      res:header("set-cookie", {"a=1", "b=2"})
      res:header("x-reply", "yes")
      res:finish("created")
    end)
    local r = assert(http.request({method = "put", url = url .. "/things?id=7", body = "payload",
      headers = {["X-Custom"] = "42"}}))
    assert.equal(seen, {method = "PUT", path = "/things", query = "id=7", body = "payload", ua = "evo",
      custom = "42", host = "127.0.0.1:" .. server.port})
    assert.equal(r.status, 201)
    assert.equal(r.reason, "Made It")
    assert.equal(r.body, "created")
    assert.equal(r.headers["x-reply"], "yes")
    assert.equal(r.headers["set-cookie"], {"a=1", "b=2"})
  end, 15)

  it("follows redirects only when asked, up to follow = n", function()
    local server, url = K.serve({}, function(req, res)
      local n = tonumber(req.path:match("^/hop/(%d+)$"))
      if n and n > 0 then return res:send(302, "", {location = "/hop/" .. (n - 1)}) end
      if req.path == "/see-other" then return res:send(303, "", {location = "/landed"}) end
      res:send(200, req.method .. " " .. req.path .. " " .. req:body())
    end)
    local r = assert(http.get(url .. "/hop/2"))
    assert.equal(r.status, 302, "no redirect followed by default")
    r = assert(http.get(url .. "/hop/2", {follow = 2}))
    assert.equal(r.status, 200)
    assert.equal(r.body, "GET /hop/0 ")
    local nothing, err = http.get(url .. "/hop/3", {follow = 2})
    assert.isNil(nothing)
    assert.equal(err.code, "TooManyRedirects")
    r = assert(http.request({method = "POST", url = url .. "/see-other", body = "x", follow = 1}))
    assert.equal(r.body, "GET /landed ", "303 turns a POST into a GET without its body")
  end, 15)

  it("decodes gzip bodies and reads chunked ones", function()
    local text = string.rep("compressible text ", 500)
    local server, url = K.serve({}, function(req, res)
      if req.path == "/gz" then
        return res:send(200, gzip(text), {["content-encoding"] = "gzip"})
      end
      res:write("one,")
      res:write("two,")
      res:finish("three")
    end)
    local r = assert(http.get(url .. "/gz"))
    assert.equal(r.body, text)
    r = assert(http.get(url .. "/gz", {decompress = false}))
    assert.equal(r.body, gzip(text))
    r = assert(http.get(url .. "/chunked"))
    assert.equal(r.headers["transfer-encoding"], "chunked")
    assert.equal(r.body, "one,two,three")
  end, 15)

  it("streams a body with res:read() when stream = true", function()
    local server, url = K.serve({}, function(req, res)
      for i = 1, 3 do
        res:write("part" .. i .. ";")
        task.sleep(0.02)
      end
      res:finish()
    end)
    local whole = assert(http.get(url .. "/"))
    assert.equal(whole:read(), "part1;part2;part3;", "read() gives a body read whole once")
    assert.isNil(whole:read())
    local r = assert(http.request({url = url .. "/", stream = true}))
    assert.isNil(r.body)
    local parts = {}
    while true do
      local chunk, err = r:read()
      assert.isNil(err)
      if not chunk then break end
      parts[#parts + 1] = chunk
    end
    assert.truthy(#parts >= 2, "more than one chunk arrived")
    assert.equal(table.concat(parts), "part1;part2;part3;")
  end, 15)

  it("answers nil, err with a code for refused, unknown and silent hosts", function()
    local closed = assert(net.listen({port = 0}))
    local port = closed.port
    closed:close()
    local r, err = http.get("http://127.0.0.1:" .. port .. "/")
    assert.isNil(r)
    assert.equal(err.code, "ECONNREFUSED")
    r, err = http.get("http://no-such-host.invalid/")
    assert.isNil(r)
    assert.truthy(err.code:match("^EAI_"), "a DNS error code: " .. tostring(err.code))
    local silent = assert(net.listen({port = 0}, function(s) task.sleep(1) end))
    local started = task.now()
    r, err = http.get("http://127.0.0.1:" .. silent.port .. "/", {timeout = 0.3})
    assert.isNil(r)
    assert.equal(err.code, "Timeout")
    assert.truthy(task.now() - started < 0.9, "gave up at the timeout")
    silent:close()
    r, err = http.get("ftp://example.com/")
    assert.isNil(r)
    assert.equal(err.code, "BadUrl")
  end, 15)

  it("refuses a body larger than maxBodyBytes, even compressed small", function()
    local big = string.rep("z", 200000)
    local server, url = K.serve({}, function(req, res)
      if req.path == "/gz" then return res:send(200, gzip(big), {["content-encoding"] = "gzip"}) end
      res:send(200, big)
    end)
    local r, err = http.get(url .. "/", {maxBodyBytes = 100000})
    assert.isNil(r)
    assert.equal(err.code, "BodyTooLarge")
    r, err = http.get(url .. "/gz", {maxBodyBytes = 100000})
    assert.isNil(r)
    assert.equal(err.code, "BodyTooLarge", "the limit counts decoded bytes")
    assert.equal(#assert(http.get(url .. "/")).body, 200000)
  end, 15)

  it("retries once on a fresh connection when a pooled one was closed by the server", function()
    local server, url = K.serve({idleTimeout = 0.2}, function(req, res) res:send(200, "ok") end)
    assert.equal(assert(http.get(url .. "/")).body, "ok")
    task.sleep(0.5)  -- the server closes the idle connection meanwhile
    assert.equal(assert(http.get(url .. "/")).body, "ok")
  end, 15)


  -- issue 8 item 39: responses parsed strictly (llhttp), limits enforced as bytes arrive
  it("answers BadResponse for a chunk size that overflows (2^72)", function()
    local url = rawServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000000\r\nabc")
    local ok, r, err = pcall(http.get, url .. "/", {timeout = 3})
    assert.truthy(ok, "http.get did not raise: " .. tostring(r))
    assert.isNil(r)
    assert.equal(err.code, "BadResponse")
  end, 15)

  it("enforces maxBodyBytes while a huge advertised chunk arrives", function()
    local sent = 0
    local url = rawServer(function(s)
      s:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n")
      local piece = string.rep("x", 64 * 1024)
      for _ = 1, 64 do  -- 4 MiB of a 1 GiB chunk, then silence
        if not s:write(piece) then return end
        sent = sent + #piece
      end
      task.sleep(5)
    end)
    local started = task.now()
    local r, err = http.get(url .. "/", {maxBodyBytes = 1024 * 1024, timeout = 3})
    assert.isNil(r)
    assert.equal(err and err.code, "BodyTooLarge")
    assert.truthy(task.now() - started < 2, "refused as the bytes arrived, not at the chunk's end")
    url = rawServer("HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\nfirst bytes")
    started = task.now()
    r, err = http.get(url .. "/", {maxBodyBytes = 1024 * 1024, timeout = 3})
    assert.isNil(r)
    assert.equal(err and err.code, "BodyTooLarge")
    assert.truthy(task.now() - started < 1, "a Content-Length over the limit is refused at once")
  end, 15)

  it("answers BadResponse for a Content-Length that is not decimal digits", function()
    for _, cl in ipairs({"0x3", "2.5", "-1", "3 3", "+3"}) do
      local url = rawServer("HTTP/1.1 200 OK\r\nContent-Length: " .. cl .. "\r\n\r\nabc")
      local started = task.now()
      local r, err = http.get(url .. "/", {timeout = 3})
      assert.isNil(r, "Content-Length: " .. cl .. " accepted")
      assert.equal(err.code, "BadResponse", "Content-Length: " .. cl)
      assert.truthy(task.now() - started < 1, "Content-Length: " .. cl .. ": refused at once")
    end
  end, 30)

  it("answers BadResponse for a bare CR, a NUL or a folded line in a header value", function()
    for _, h in ipairs({"X-A: a\rb", "X-A: a\0b", "X-A: a\r\n b", "X A: b", "X-A: a\nX-B: b"}) do
      local url = rawServer("HTTP/1.1 200 OK\r\n" .. h .. "\r\nContent-Length: 2\r\n\r\nok")
      local r, err = http.get(url .. "/", {timeout = 3})
      assert.isNil(r, string.format("%q accepted", h))
      assert.equal(err.code, "BadResponse", string.format("%q", h))
    end
  end, 30)

  it("answers BadResponse for a malformed status line and for too large a header block", function()
    local url = rawServer("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n")
    local r, err = http.get(url .. "/", {timeout = 3})
    assert.isNil(r)
    assert.equal(err.code, "BadResponse")
    url = rawServer("HTTP/1.1 200 OK\r\nX-Big: " .. string.rep("b", 200 * 1024) .. "\r\nContent-Length: 0\r\n\r\n")
    r, err = http.get(url .. "/", {timeout = 3})
    assert.isNil(r)
    assert.equal(err.code, "BadResponse")
  end, 15)

  it("reads interim responses, HEAD answers, until-EOF bodies and bodies after the head in one read", function()
    local url = rawServer(function(s, head)
      if head:match("^HEAD") then
        s:write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        s:flush()
        s:readUntil("\r\n\r\n")  -- the connection is reused for the next request
        s:write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" ..
          "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nhello")
        s:flush()
        s:readUntil("\r\n\r\n")
        s:write("HTTP/1.0 200 OK\r\n\r\nuntil the end")
      end
    end)
    local r = assert(http.request({method = "HEAD", url = url .. "/"}))
    assert.equal(r.status, 200)
    assert.equal(r.body, "")
    assert.equal(r.headers["content-length"], "1000")
    r = assert(http.get(url .. "/"))
    assert.equal({r.status, r.reason, r.body, r.headers["x-final"], r.headers.link}, {200, "OK", "hello", "yes", nil})
    r = assert(http.get(url .. "/"))
    assert.equal({r.status, r.version, r.body}, {200, "1.0", "until the end"})
  end, 15)

  -- issue 8 item 9: nothing the caller passes can inject into the request head
  it("refuses URLs, methods and headers that would inject into the request head", function()
    local url, heads, conns = rawServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    local bad = {
      {{url = url .. "/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /y"}, "BadUrl"},
      {{url = url .. "/x\ny"}, "BadUrl"},
      {{url = url .. "/x\0y"}, "BadUrl"},
      {{url = "http://127.0.0.1\r\nX-Injected: 1/"}, "BadUrl"},
      {{url = "http://exa mple.com/"}, "BadUrl"},
      {{url = "http://127.0.0.1:99999/"}, "BadUrl"},
      {{url = "http://127.0.0.1:0/"}, "BadUrl"},
      {{url = url .. "/", method = "GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET"}, "BadMethod"},
      {{url = url .. "/", method = "G ET"}, "BadMethod"},
      {{url = url .. "/", method = ""}, "BadMethod"},
      {{url = url .. "/", headers = {["X-A"] = "v\r\nX-Injected: 1"}}, "BadHeader"},
      {{url = url .. "/", headers = {["X-A\r\nX-Injected"] = "1"}}, "BadHeader"},
      {{url = url .. "/", headers = {["X-A"] = "v\0"}}, "BadHeader"},
      {{url = url .. "/", headers = {["X A"] = "v"}}, "BadHeader"},
    }
    for i, case in ipairs(bad) do
      local ok, r, err = pcall(http.request, case[1])
      assert.truthy(ok, "case " .. i .. " raised: " .. tostring(r))
      assert.isNil(r, "case " .. i .. " was sent")
      assert.equal(err.code, case[2], "case " .. i)
    end
    task.sleep(0.05)
    assert.equal(conns.count, 0, "nothing reached the server")
    local r = assert(http.get(url .. "/a b?q=x y"))
    assert.equal(r.body, "ok")
    assert.equal(heads[1]:match("^[^\r\n]*"), "GET /a%20b?q=x%20y HTTP/1.1", "spaces are percent-encoded")
  end, 15)

  -- issue 8 item 10: a cancelled request closes its connection at once
  it("closes the connection of a cancelled request at once", function()
    local server, url = K.serve({}, function(req, res)
      task.sleep(0.3)
      res:send(200, "late")
    end)
    local before = openFds()
    for _ = 1, 10 do
      local r, err = task.timeout(0.05, http.get, url .. "/")
      assert.isNil(r)
      assert.equal(err.code, "Timeout")
    end
    task.sleep(0.4)  -- the last handlers finish; the server closes its side then
    local after = openFds()  -- (fewer when descriptors of earlier tests closed meanwhile)
    assert.truthy(after <= before, ("no descriptor left open by the cancelled requests: %d before, %d after")
      :format(before, after))
    local url2 = rawServer(function(s)  -- a streamed body that stalls
      s:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
      s:read()  -- until the client closes
    end)
    local res = assert(http.request({url = url2 .. "/", stream = true}))
    assert.equal(res:read(), "first")
    local r, err = task.timeout(0.05, res.read, res)
    assert.equal(err.code, "Timeout")
    task.sleep(0.05)
    assert.truthy(openFds() <= before, "a cancelled res:read() closes the connection too")
    local f = task.concurrent(http.get, url .. "/")
    task.sleep(0.05)
    f:cancel()
    task.sleep(0.4)  -- the handlers have answered meanwhile
    local started = task.now()
    server:close()
    assert.truthy(task.now() - started < 0.2, "server:close() did not wait for the cancelled clients")
    assert.truthy(openFds() <= before - 1, "the server's listener is closed too, and nothing else is open")
  end, 15)

  -- issue 8 item 42
  it("exposes only what docs/http.md documents in the http module", function()
    local f = assert(io.open(K.dir .. "/../../docs/http.md"))
    local doc = f:read("*a")
    f:close()
    -- (url's functions and the file server's table are put in http when
    -- first read: read them first.)
    local _ = http.decode, http.encode, http.parseQuery, http.mimeTypes
    for name in pairs(http) do
      assert.truthy(doc:find("http." .. name, 1, true), "http." .. name .. " is not documented")
    end
  end)

  it("does not keep the process alive with idle pooled connections", function()
    local evo = os.getenv("EVO") or "build/evo"
    local server, url = K.serve({idleTimeout = 30}, function(req, res) res:send(200, "ok") end)
    local r = K.run(evo, {"-e", "local http = require('http'); print(assert(http.get('" .. url .. "/')).body)"},
      {timeout = 10})
    assert.falsy(r.timedOut, "the child exited on its own")
    assert.equal(r.code, 0, r.err)
    assert.equal(r.out, "ok\n")
  end, 15)
end)
