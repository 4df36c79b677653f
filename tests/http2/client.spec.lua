-- http.request over HTTP/2 (issue 12, client): against nghttpd (Debian's
-- nghttp2-server 1.52, TLS and cleartext) and Evo's own h2 server
-- (tests/http2/fixtures/server.lua, TLS and cleartext), with a certificate
-- made at test time. Runs in both Io modes: in the blocking mode concurrent
-- requests run one after another, over the same single connection.
local http = require("http")
local task = require("task")
local fs = require("fs")
local process = require("process")
local net = require("net")

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."
if here:sub(1, 1) ~= "/" then here = require("uv").cwd() .. "/" .. here end
package.path = here .. "/../web/?.lua;" .. here .. "/../lua/?.lua;" .. package.path
local W = require("webkit")
local servers = require("servers")

local NGHTTPD = "/usr/sbin/nghttpd"
local EVO_SERVER = here .. "/fixtures/server.lua"
local UPGRADE_SERVER = here .. "/fixtures/h2c_upgrade_server.py"
local BIG = 300000                  -- /big on every server
local HUGE = 5 * 1024 * 1024 + 123  -- /huge on nghttpd: five times the client's stream window
local evented = task.mode() == "evented"

local listening = servers.listening  -- (5 s)

local function pattern(n)
  return (string.rep("0123456789abcdef", math.floor(n / 16) + 1)):sub(1, n)
end

-- nghttpd -v, its log in dir/nghttpd.log (one "[id=N]" per connection).
-- extra: more options (e.g. "-m 2": SETTINGS_MAX_CONCURRENT_STREAMS).
local function startNghttpd(dir, tls, cert, extra)
  local port = servers.freePort()
  local docs = dir .. "/htdocs"
  assert(fs.mkdir(docs))
  assert(fs.writeFile(docs .. "/index.html", "hello\n"))
  assert(fs.writeFile(docs .. "/big", pattern(BIG)))
  assert(fs.writeFile(docs .. "/huge", pattern(HUGE)))
  local cmd = "exec " .. NGHTTPD .. " -v -d " .. docs .. " " .. (extra or "")
  if tls then
    cmd = cmd .. " " .. port .. " " .. cert.key .. " " .. cert.cert
  else
    cmd = cmd .. " --no-tls --echo-upload " .. port
  end
  local log = dir .. "/nghttpd.log"
  local child = assert(process.spawn("/bin/sh", {"-c", cmd .. " > " .. log .. " 2>&1"},
    {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
  assert(listening(port), "nghttpd did not start")
  return {child = child, port = port, log = log}
end

-- The connections nghttpd logged, not counting the probes of listening().
local function nghttpdConnections(s)
  local ids = {}
  for id, rest in assert(fs.readFile(s.log)):gmatch("%[id=(%d+)%]([^\n]*)") do
    if rest:find("recv HEADERS") then ids[id] = true end
  end
  local n = 0
  for _ in pairs(ids) do n = n + 1 end
  return n
end

local stop = servers.stopChild

-- n requests at once (one after another in the blocking mode) -> their results
local function concurrently(n, fn)
  local g, out = task.group(), {}
  for i = 1, n do g:async(function() out[i] = fn(i) end) end
  g:await()
  return out
end

local haveNghttpd = W.exists(NGHTTPD)
local haveH2 = W.run(W.python, {"-c", "import h2"}).code == 0

-- Evo's fixture server as a child, with environment settings (MAX_STREAMS,
-- SLOW) and an optional fixed port (to restart it where it was).
local function startEvoServer(env, port)
  local argv = {}
  for k, v in pairs(env or {}) do argv[#argv + 1] = k .. "=" .. v end
  argv[#argv + 1] = W.evo
  argv[#argv + 1] = EVO_SERVER
  argv[#argv + 1] = tostring(port or 0)
  return W.startPeer("/usr/bin/env", argv)
end

local function distinct(list)
  local seen, n = {}, 0
  for _, v in ipairs(list) do
    if not seen[v] then seen[v], n = true, n + 1 end
  end
  return n
end

describe("http.request over HTTP/2", function()
  local dir, cert, nghttpdTls, nghttpdClear, evoTls, evoClear
  before(function()
    dir = W.tempDir()
    cert = W.makeCert()
    if haveNghttpd then
      assert(fs.mkdir(dir .. "/tls"))
      assert(fs.mkdir(dir .. "/clear"))
      nghttpdTls = startNghttpd(dir .. "/tls", true, cert)
      nghttpdClear = startNghttpd(dir .. "/clear", false)
    end
    evoTls = W.startPeer(W.evo, {EVO_SERVER, "0", cert.cert, cert.key})
    evoClear = W.startPeer(W.evo, {EVO_SERVER, "0"})
  end)
  after(function()
    http.closeIdle()
    if nghttpdTls then stop(nghttpdTls.child) end
    if nghttpdClear then stop(nghttpdClear.child) end
    if evoTls then evoTls.stop() end
    if evoClear then evoClear.stop() end
    W.rmTree(dir)
    if cert then W.rmTree(cert.dir) end
  end)

  local function evoUrl(path) return "https://localhost:" .. evoTls.port .. path end

  describe("against nghttpd", function()
    local function url(path) return "https://localhost:" .. nghttpdTls.port .. path end

    it("negotiates h2 by ALPN, the certificate verified", function()
      if not haveNghttpd then return pending("nghttp2-server is not installed") end
      local res = assert(http.request({url = url("/"), ca = cert.cert}))
      assert.equal(200, res.status)
      assert.equal("2.0", res.version)
      assert.equal("hello\n", res.body)
    end)

    it("sends 50 concurrent requests over one connection (nghttpd's log)", function()
      if not haveNghttpd then return pending("nghttp2-server is not installed") end
      http.closeIdle()
      local before = nghttpdConnections(nghttpdTls)
      local bodies = concurrently(50, function()
        local res = assert(http.request({url = url("/big"), ca = cert.cert}))
        assert.equal("2.0", res.version)
        return res.body
      end)
      for i = 1, 50 do assert.equal(BIG, #bodies[i]) end
      assert.equal(pattern(BIG), bodies[50])
      assert.equal(before + 1, nghttpdConnections(nghttpdTls))
    end, 60)

    it("streams a download five times the stream window, read as the caller goes", function()
      if not haveNghttpd then return pending("nghttp2-server is not installed") end
      local res = assert(http.request({url = url("/huge"), ca = cert.cert, stream = true}))
      assert.equal(200, res.status)
      assert.is_nil(res.body)
      local parts, pieces = {}, 0
      while true do
        local chunk, err = res:read()
        assert.is_nil(err)
        if not chunk then break end
        pieces = pieces + 1
        parts[#parts + 1] = chunk
        if pieces == 1 then task.sleep(0.2) end  -- the server waits on our window meanwhile
      end
      assert.truthy(pieces > 1)
      assert.equal(pattern(HUGE), table.concat(parts))
    end, 60)

    it("speaks h2c by prior knowledge; an upload larger than the window echoes back", function()
      if not haveNghttpd then return pending("nghttp2-server is not installed") end
      local body = pattern(3 * 1000 * 1000)
      local res = assert(http.request({url = "http://127.0.0.1:" .. nghttpdClear.port .. "/", method = "POST",
        body = body, http2 = "prior-knowledge"}))
      assert.equal(200, res.status)
      assert.equal("2.0", res.version)
      assert.equal(#body, #res.body)
      assert.truthy(res.body == body)
    end, 60)
  end)

  describe("against Evo's h2 server", function()
    it("negotiates h2 by ALPN, and http2 = false gives HTTP/1.1", function()
      local res = assert(http.request({url = evoUrl("/"), ca = cert.cert}))
      assert.equal("2.0", res.version)
      assert.equal("hello\n", res.body)
      res = assert(http.request({url = evoUrl("/"), ca = cert.cert, http2 = false}))
      assert.equal("1.1", res.version)
      assert.equal("hello\n", res.body)
    end)

    it("sends 50 concurrent requests over one connection (one client port seen)", function()
      http.closeIdle()
      local ports = concurrently(50, function()
        return assert(http.request({url = evoUrl("/port"), ca = cert.cert})).body
      end)
      for i = 2, 50 do assert.equal(ports[1], ports[i]) end
      local big = concurrently(10, function()
        return assert(http.request({url = evoUrl("/big"), ca = cert.cert})).body
      end)
      for i = 1, 10 do assert.equal(BIG, #big[i]) end
    end, 60)

    it("uploads more than the server's window, as a string and streamed", function()
      local res = assert(http.request({url = evoUrl("/echo"), ca = cert.cert, method = "POST",
        body = pattern(2 * 1000 * 1000)}))
      assert.equal("2000000\n", res.body)
      local left = 40
      res = assert(http.request({url = evoUrl("/slow"), ca = cert.cert, method = "POST", body = function()
        if left == 0 then return nil end
        left = left - 1
        return pattern(32 * 1024)
      end}))
      assert.equal(200, res.status)
      assert.equal("2.0", res.version)
      assert.equal(tostring(40 * 32 * 1024) .. "\n", res.body)
    end, 60)

    it("speaks h2c by prior knowledge", function()
      local res = assert(http.request({url = "http://127.0.0.1:" .. evoClear.port .. "/big",
        http2 = "prior-knowledge"}))
      assert.equal("2.0", res.version)
      assert.equal(pattern(BIG), res.body)
      res = assert(http.request({url = "http://127.0.0.1:" .. evoClear.port .. "/"}))
      assert.equal("1.1", res.version)  -- cleartext without prior knowledge: HTTP/1.1
    end)
  end)

  describe("a new connection when the server's stream limit is reached", function()
    it("20 slow requests to Evo's server with maxConcurrentStreams = 2: several connections, two rounds", function()
      if not evented then return pending("concurrent requests need the evented mode") end
      local srv = startEvoServer({MAX_STREAMS = "2", SLOW = "0.5"})
      local ok, err = pcall(function()
        local u = "http://127.0.0.1:" .. srv.port .. "/sleep"
        local t0 = task.now()
        local ports = concurrently(20, function()
          local res = assert(http.request({url = u, http2 = "prior-knowledge"}))
          assert.equal("2.0", res.version)
          return res.body
        end)
        local elapsed = task.now() - t0
        local conns = distinct(ports)
        -- one connection would take ten rounds of 0.5 s; 8 connections of 2 streams take two
        assert.equal(8, conns)  -- h2.maxConnectionsPerOrigin
        assert.truthy(elapsed < 3, "took " .. elapsed .. " s")
        assert.truthy(elapsed >= 0.9, "two rounds at least: " .. elapsed .. " s")
        -- the pool keeps them: 16 more now fit in one round
        t0 = task.now()
        ports = concurrently(16, function()
          return assert(http.request({url = u, http2 = "prior-knowledge"})).body
        end)
        assert.truthy(task.now() - t0 < 0.95, "one round: " .. (task.now() - t0) .. " s")
        assert.equal(8, distinct(ports))
      end)
      http.closeIdle()
      srv.stop()
      if not ok then error(err, 0) end
    end, 60)

    it("one request at a time still uses one connection (both Io modes)", function()
      local srv = startEvoServer({MAX_STREAMS = "2", SLOW = "0"})
      local ok, err = pcall(function()
        http.closeIdle()
        local ports = {}
        for i = 1, 5 do
          ports[i] = assert(http.request({url = "http://127.0.0.1:" .. srv.port .. "/sleep",
            http2 = "prior-knowledge"})).body
        end
        assert.equal(1, distinct(ports))
      end)
      http.closeIdle()
      srv.stop()
      if not ok then error(err, 0) end
    end, 30)

    it("nghttpd -m 2: 20 concurrent downloads spread over more than one connection", function()
      if not haveNghttpd then return pending("nghttp2-server is not installed") end
      if not evented then return pending("concurrent requests need the evented mode") end
      local sub = dir .. "/limit"
      assert(fs.mkdir(sub))
      local ng = startNghttpd(sub, false, nil, "-m 2")
      local ok, err = pcall(function()
        local bodies = concurrently(20, function(i)
          local res = assert(http.request({url = "http://127.0.0.1:" .. ng.port .. "/huge?i=" .. i,
            http2 = "prior-knowledge"}))
          assert.equal("2.0", res.version)
          return res.body
        end)
        for i = 1, 20 do assert.equal(HUGE, #bodies[i]) end
        local n = nghttpdConnections(ng)
        assert.truthy(n > 1 and n <= 8, n .. " connections")
      end)
      http.closeIdle()
      stop(ng.child)
      if not ok then error(err, 0) end
    end, 90)
  end)

  describe("Upgrade: h2c (http2 = \"upgrade\")", function()
    it("upgrades against Evo's server; the next requests share the upgraded connection", function()
      http.closeIdle()
      local u = "http://127.0.0.1:" .. evoClear.port
      local res = assert(http.request({url = u .. "/port", http2 = "upgrade"}))
      assert.equal("2.0", res.version)
      local port = res.body
      local ports = concurrently(10, function()
        local r = assert(http.request({url = u .. "/port", http2 = "upgrade"}))
        assert.equal("2.0", r.version)
        return r.body
      end)
      for i = 1, 10 do assert.equal(port, ports[i]) end
      res = assert(http.request({url = u .. "/big", http2 = "upgrade", method = "HEAD"}))
      assert.equal(200, res.status)
      assert.equal("", res.body)
      -- after an upgrade, a body goes over h2 too
      res = assert(http.request({url = u .. "/echo", http2 = "upgrade", method = "POST", body = pattern(100000)}))
      assert.equal("2.0", res.version)
      assert.equal("100000\n", res.body)
      http.closeIdle()
    end, 30)

    it("upgrades against Python's h2 (a server taking Upgrade: h2c)", function()
      if not haveH2 then return pending("python3-h2 is not installed") end
      local py = W.startPeer(W.python, {UPGRADE_SERVER})
      local ok, err = pcall(function()
        http.closeIdle()
        local u = "http://127.0.0.1:" .. py.port
        -- a request with a body cannot carry the upgrade: HTTP/1.1
        local res = assert(http.request({url = u .. "/first", http2 = "upgrade", method = "POST", body = "x"}))
        assert.equal("http/1.1 1 /first", res.body)
        res = assert(http.request({url = u .. "/a", http2 = "upgrade"}))
        assert.equal("2.0", res.version)
        assert.equal("h2 2 /a", res.body)  -- stream 1: the upgrade request's answer
        local bodies = concurrently(10, function(i)
          return assert(http.request({url = u .. "/b" .. i, http2 = "upgrade"})).body
        end)
        for i = 1, 10 do assert.equal("h2 2 /b" .. i, bodies[i]) end
      end)
      http.closeIdle()
      py.stop()
      if not ok then error(err, 0) end
    end, 30)

    it("a server that does not upgrade answers over HTTP/1.1 (Python's http.server)", function()
      local docs = W.tempDir()
      assert(fs.writeFile(docs .. "/index.html", "plain\n"))
      local py = W.startPeer(W.python, {"-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", docs},
        "port (%d+)")
      local ok, err = pcall(function()
        http.closeIdle()
        local u = "http://127.0.0.1:" .. py.port .. "/index.html"
        local res = assert(http.request({url = u, http2 = "upgrade"}))
        assert.equal(200, res.status)
        assert.equal("plain\n", res.body)
        assert.truthy(res.version == "1.0" or res.version == "1.1", res.version)
        res = assert(http.request({url = u, http2 = "upgrade"}))  -- remembered: no upgrade asked again
        assert.equal("plain\n", res.body)
      end)
      http.closeIdle()
      py.stop()
      W.rmTree(docs)
      if not ok then error(err, 0) end
    end, 30)

    it("nghttpd 1.52 does not take the upgrade (answers with frames): nil, err, as curl --http2 fails", function()
      if not haveNghttpd then return pending("nghttp2-server is not installed") end
      http.closeIdle()
      local res, err = http.request({url = "http://127.0.0.1:" .. nghttpdClear.port .. "/", http2 = "upgrade"})
      assert.is_nil(res)
      assert.equal("BadResponse", err.code)
      local out = W.curl("--http2", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:" .. nghttpdClear.port .. "/")
      assert.equal("000", out)
    end, 30)
  end)

  describe("a pooled connection the server closed", function()
    -- The server is killed (no GOAWAY) and started again on the same port:
    -- the pooled connection is dead, which only the next request finds out.
    local function restart(srv)
      srv.child:kill("KILL")
      srv.child:wait()
      srv.child.stdout:close()
      return startEvoServer(nil, srv.port)
    end

    it("an idempotent request is retried on a new connection; a POST fails", function()
      local srv = startEvoServer()
      local ok, err = pcall(function()
        http.closeIdle()
        local u = "http://127.0.0.1:" .. srv.port .. "/port"
        local first = assert(http.request({url = u, http2 = "prior-knowledge"})).body
        srv = restart(srv)
        local res = assert(http.request({url = u, http2 = "prior-knowledge"}))
        assert.equal(200, res.status)
        assert.equal("2.0", res.version)
        assert.truthy(res.body ~= first, "a new connection")
        -- PUT and DELETE are idempotent too, a string body is sent again
        srv = restart(srv)
        res = assert(http.request({url = "http://127.0.0.1:" .. srv.port .. "/echo", method = "PUT",
          body = "abc", http2 = "prior-knowledge"}))
        assert.equal("3\n", res.body)
        -- POST is not: the caller decides
        srv = restart(srv)
        local res2, err2 = http.request({url = "http://127.0.0.1:" .. srv.port .. "/echo", method = "POST",
          body = "abc", http2 = "prior-knowledge"})
        assert.is_nil(res2)
        assert.truthy(err2.code == "EOF" or err2.code == "ECONNRESET" or err2.code == "EPIPE", err2.code)
        -- and the next request has a new connection
        assert.equal("3\n", assert(http.request({url = "http://127.0.0.1:" .. srv.port .. "/echo",
          method = "POST", body = "abc", http2 = "prior-knowledge"})).body)
      end)
      http.closeIdle()
      srv.stop()
      if not ok then error(err, 0) end
    end, 60)

    it("over TLS too (h2 by ALPN)", function()
      local srv = W.startPeer(W.evo, {EVO_SERVER, "0", cert.cert, cert.key})
      local ok, err = pcall(function()
        http.closeIdle()
        local u = "https://localhost:" .. srv.port .. "/"
        assert.equal("2.0", assert(http.request({url = u, ca = cert.cert})).version)
        srv.child:kill("KILL")
        srv.child:wait()
        srv.child.stdout:close()
        srv = W.startPeer(W.evo, {EVO_SERVER, tostring(srv.port), cert.cert, cert.key})
        local res = assert(http.request({url = u, ca = cert.cert}))
        assert.equal("hello\n", res.body)
        assert.equal("2.0", res.version)
      end)
      http.closeIdle()
      srv.stop()
      if not ok then error(err, 0) end
    end, 60)
  end)

  describe("GOAWAY", function()
    it("finishes the stream in flight, then new requests need a new connection", function()
      if not evented then return pending("needs a server in this process (evented mode)") end
      local server = assert(http.serve({port = 0, host = "127.0.0.1", http2 = true}, function(req, res)
        if req.path == "/slow" then task.sleep(0.3) end
        res:send(200, "done " .. req.httpVersion)
      end))
      local u = "http://127.0.0.1:" .. server.port
      assert.equal("done 2.0", assert(http.request({url = u .. "/", http2 = "prior-knowledge"})).body)
      local slow = task.async(http.request, {url = u .. "/slow", http2 = "prior-knowledge"})
      task.sleep(0.1)
      local closing = task.async(function() server:close() end)
      local res, err = slow:await()
      assert.is_nil(err)
      assert.equal("done 2.0", res.body)
      closing:await()
      -- the connection that went away is not used again: a new one is refused
      local res2, err2 = http.request({url = u .. "/", http2 = "prior-knowledge"})
      assert.is_nil(res2)
      assert.equal("ECONNREFUSED", err2.code)
    end, 20)
  end)

  describe("errors", function()
    it("connection refused is nil, err", function()
      local port = servers.freePort()
      local res, err = http.request({url = "https://127.0.0.1:" .. port .. "/"})
      assert.is_nil(res)
      assert.equal("ECONNREFUSED", err.code)
      res, err = http.request({url = "http://127.0.0.1:" .. port .. "/", http2 = "prior-knowledge"})
      assert.is_nil(res)
      assert.equal("ECONNREFUSED", err.code)
    end)

    it("a certificate that does not verify is nil, err", function()
      local res, err = http.request({url = evoUrl("/")})
      assert.is_nil(res)
      assert.truthy(err and err.message, "an error object")
    end)

    it("prior knowledge against an HTTP/1.1-only server is nil, err", function()
      local server = servers.freePort()
      local peer = net.listen({host = "127.0.0.1", port = server})
      local t = evented and task.async(function()
        local s = peer:accept()
        s:read()
        s:write("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        s:close()
      end)
      if not t then return pending("needs a peer task (evented mode)") end
      local res, err = http.request({url = "http://127.0.0.1:" .. server .. "/", http2 = "prior-knowledge"})
      assert.is_nil(res)
      assert.truthy(err.code)
      t:await()
      peer:close()
    end)

    it("rejects a bad http2 option", function()
      local ok, msg = pcall(http.request, {url = "http://x/", http2 = "yes"})
      assert.is_false(ok)
      assert.truthy(msg:find("bad argument #1 to 'request'", 1, true))
    end)
  end)
end)
