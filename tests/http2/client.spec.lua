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
local BIG = 300000                  -- /big on every server
local HUGE = 5 * 1024 * 1024 + 123  -- /huge on nghttpd: five times the client's stream window
local evented = task.mode() == "evented"

local listening = servers.listening  -- (5 s)

local function pattern(n)
  return (string.rep("0123456789abcdef", math.floor(n / 16) + 1)):sub(1, n)
end

-- nghttpd -v, its log in dir/nghttpd.log (one "[id=N]" per connection).
local function startNghttpd(dir, tls, cert)
  local port = servers.freePort()
  local docs = dir .. "/htdocs"
  assert(fs.mkdir(docs))
  assert(fs.writeFile(docs .. "/index.html", "hello\n"))
  assert(fs.writeFile(docs .. "/big", pattern(BIG)))
  assert(fs.writeFile(docs .. "/huge", pattern(HUGE)))
  local cmd = "exec " .. NGHTTPD .. " -v -d " .. docs
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
