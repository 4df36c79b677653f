-- HTTP/2 in http.serve: the same handlers answer HTTP/1.1 and HTTP/2 (h2c by
-- prior knowledge, "Upgrade: h2c", h2 over TLS by ALPN). Peers: curl
-- (--http2-prior-knowledge, --http2, --http1.1), nghttp -nv (Debian's
-- nghttp2-client), openssl for a certificate made at test time.
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/../http/?.lua;" .. here .. "/../web/?.lua;" .. package.path
local K = require("httpkit")
local http = require("http")
local HttpServer = require("HttpServer")
local task = require("task")
local fs = require("fs")
local crypto = require("crypto")

local function have(program)
  return K.run("sh", {"-c", "command -v " .. program}).code == 0
end
local NGHTTP = have("nghttp")

-- curl(args...) -> status, headers (lower-case names), body, http version
local function curl(...)
  local base = os.tmpname()
  local _, err, code = K.curl("-D", base .. ".h", "-o", base .. ".b", ...)
  assert.equal(0, code, err)
  local head = assert(io.open(base .. ".h", "rb")):read("*a")
  local f = io.open(base .. ".b", "rb")
  local body = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(base)
  os.remove(base .. ".h")
  os.remove(base .. ".b")
  -- The last response of the dump (after a 101, the HTTP/2 one).
  local last = head:match(".*\r\n\r\n(HTTP/.-)$") or head
  local version, status = last:match("^HTTP/([%d%.]+) (%d+)")
  local headers = {}
  for name, value in last:gmatch("\n([^:\r\n]+): ?([^\r\n]*)") do headers[name:lower()] = value end
  return tonumber(status), headers, body, version
end

local BIG = K.bytes(1024 * 1024 + 17, 3)  -- larger than the 256 KiB stream window

local function app(req, res)
  if req.path == "/hello" then
    return res:send(200, "hello " .. req.method .. " " .. req.path .. "?" .. req.query .. "\n",
      {["x-test"] = "1", ["set-cookie"] = {"a=1", "b=2"}, ["content-type"] = "text/plain"})
  elseif req.path == "/version" then
    return res:send(200, req.httpVersion)
  elseif req.path == "/host" then
    return res:send(200, tostring(req.headers.host))
  elseif req.path == "/stream" then
    res:status(201)
    res:header("content-type", "application/octet-stream")
    for i = 0, 15 do res:write(BIG:sub(i * 65536 + 1, (i + 1) * 65536)) end
    return res:finish(BIG:sub(16 * 65536 + 1))
  elseif req.path == "/upload" then
    -- Reads slowly: the client is held by the window, not buffered here.
    local n, parts = 0, {}
    while true do
      local chunk = req:read()
      if not chunk then break end
      n = n + #chunk
      parts[#parts + 1] = chunk
      task.sleep(0.001)
    end
    return res:send(200, n .. " " .. crypto.hash("sha256", table.concat(parts), "hex"))
  elseif req.path == "/boom" then
    error("boom")
  elseif req.path == "/slow" then
    task.sleep(0.3)
    return res:send(200, "slow done")
  elseif req.path == "/head" then
    return res:send(200, "twelve bytes")
  end
  return res:send(404, "not found")
end

describe("http.serve over HTTP/2", function()
  after(K.cleanup)

  it("answers h2c by prior knowledge with the same handler as HTTP/1.1", function()
    local _, url = K.serve({http2 = true}, app)
    local s1, h1, b1, v1 = curl("--http1.1", url .. "/hello?x=1")
    local s2, h2, b2, v2 = curl("--http2-prior-knowledge", url .. "/hello?x=1")
    assert.equal("1.1", v1)
    assert.equal("2", v2)
    assert.equal(s1, s2)
    assert.equal(200, s2)
    assert.equal(b1, b2)
    assert.equal("hello GET /hello?x=1\n", b2)
    for _, name in ipairs({"x-test", "content-type", "content-length"}) do
      assert.equal(h1[name], h2[name], name)
    end
    assert.truthy(h2.date:match(K.datePattern))
    assert.equal("2.0", select(3, curl("--http2-prior-knowledge", url .. "/version")))
    assert.equal("1.1", select(3, curl("--http1.1", url .. "/version")))
    -- :authority becomes the Host header handlers read
    assert.equal("127.0.0.1:" .. url:match("(%d+)$"), select(3, curl("--http2-prior-knowledge", url .. "/host")))
  end)

  it("sends both set-cookie fields as separate HTTP/2 fields", function()
    local _, url = K.serve({http2 = true}, app)
    local out = K.curl("-i", "--http2-prior-knowledge", url .. "/hello")
    local n = 0
    for _ in out:gmatch("set%-cookie: [ab]=%d") do n = n + 1 end
    assert.equal(2, n)
  end)

  it("answers HEAD with the length and no body", function()
    local _, url = K.serve({http2 = true}, app)
    local out = K.curl("-sSI", "--http2-prior-knowledge", url .. "/head")
    assert.truthy(out:match("^HTTP/2 200"), out)
    assert.truthy(out:match("content%-length: 12\r\n"), out)
    assert.truthy(out:match("\r\n\r\n$"), "no body after the head")
  end)

  it("upgrades with Upgrade: h2c", function()
    local _, url = K.serve({http2 = true}, app)
    local out = K.curl("-i", "--http2", url .. "/hello?u")
    assert.truthy(out:match("^HTTP/1.1 101"), out)
    assert.truthy(out:match("\r\nHTTP/2 200"), out)
    assert.truthy(out:match("hello GET /hello%?u\n$"), out)
  end)

  it("stays HTTP/1.1 on cleartext unless http2 = true", function()
    local _, url = K.serve({}, app)
    local s, _, b, v = curl("--http2", url .. "/version")
    assert.equal(200, s)
    assert.equal("1.1", v)
    assert.equal("1.1", b)
    local _, err, code = K.curl("--http2-prior-knowledge", url .. "/version")
    assert.is_not.equal(0, code, err)  -- the preface is not an HTTP/1.1 request
  end)

  it("streams a response body larger than the peer's window", function()
    local _, url = K.serve({http2 = true}, app)
    local s, h, b = curl("--http2-prior-knowledge", url .. "/stream")
    assert.equal(201, s)
    assert.equal("application/octet-stream", h["content-type"])
    assert.is_nil(h["transfer-encoding"])
    assert.equal(#BIG, #b)
    assert.equal(BIG, b)
  end)

  it("reads an upload larger than the window with backpressure", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/big", BIG)
    local _, url = K.serve({http2 = true}, app)
    local want = #BIG .. " " .. crypto.hash("sha256", BIG, "hex")
    local s, _, b = curl("--http2-prior-knowledge", "--data-binary", "@" .. dir .. "/big", url .. "/upload")
    assert.equal(200, s)
    assert.equal(want, b)
    local s1, _, b1 = curl("--http1.1", "--data-binary", "@" .. dir .. "/big", url .. "/upload")
    assert.equal(200, s1)
    assert.equal(want, b1)
    K.rmrf(dir)
  end)

  it("answers 413 for an upload over maxBodyBytes", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/big", BIG)
    local _, url = K.serve({http2 = true, maxBodyBytes = 100000}, function(req, res)
      local body = req:body()
      res:send(200, #body)
    end)
    local s = curl("--http2-prior-knowledge", "--data-binary", "@" .. dir .. "/big", url .. "/")
    assert.equal(413, s)
    K.rmrf(dir)
  end)

  it("sends files (res:sendFile) over HTTP/2 and compresses with http.compress", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/big.bin", BIG)
    local text = ("compress me please "):rep(2000)
    K.writeFile(dir .. "/page.txt", text)
    local router = http.router()
    router:use(http.compress())
    router:use(http.static(dir))
    local _, url = K.serve({http2 = true}, router)
    local s, h, b = curl("--http2-prior-knowledge", url .. "/big.bin")
    assert.equal(200, s)
    assert.equal(tostring(#BIG), h["content-length"])
    assert.equal(BIG, b)
    local s2, h2, b2 = curl("--http2-prior-knowledge", "--compressed", url .. "/page.txt")
    assert.equal(200, s2)
    assert.truthy(h2["content-encoding"] == "gzip" or h2["content-encoding"] == "br", h2["content-encoding"])
    assert.equal(text, b2)
    local s3, _, b3 = curl("--http2-prior-knowledge", "-r", "5-9", url .. "/big.bin")
    assert.equal(206, s3)
    assert.equal(BIG:sub(6, 10), b3)
    K.rmrf(dir)
  end)

  it("answers a handler error with 500 on that stream only", function()
    if not NGHTTP then return pending("nghttp (nghttp2-client) is not installed") end
    local _, url = K.serve({http2 = true}, app)
    local r = K.run("nghttp", {"-nv", url .. "/boom", url .. "/hello", url .. "/slow"}, {timeout = 20})
    assert.equal(0, r.code, r.err .. r.out)
    local statuses = {}
    for s in r.out:gmatch(":status: (%d+)") do statuses[#statuses + 1] = s end
    table.sort(statuses)
    assert.same({"200", "200", "500"}, statuses)
    assert.truthy(r.out:match("GOAWAY") == nil or r.out:match("error_code=NO_ERROR"), r.out)
  end)

  it("serves many concurrent streams on one connection (nghttp -m 50)", function()
    if not NGHTTP then return pending("nghttp (nghttp2-client) is not installed") end
    local started, peak, running = 0, 0, 0
    local server, url = K.serve({http2 = true}, function(req, res)
      started = started + 1
      running = running + 1
      if running > peak then peak = running end
      task.sleep(0.05)
      running = running - 1
      res:send(200, "stream " .. req.path)
    end)
    local r = K.run("nghttp", {"-nv", "-m", "50", url .. "/x"}, {timeout = 20})
    assert.equal(0, r.code, r.err)
    local n = 0
    for _ in r.out:gmatch(":status: 200") do n = n + 1 end
    assert.equal(50, n)
    assert.equal(50, started)
    assert.truthy(peak > 10, "handlers ran concurrently (peak " .. peak .. ")")
    assert.truthy(server:connections() == nil or true)
  end)

  it("serves h2 over TLS by ALPN, HTTP/1.1 to clients without it", function()
    local W = require("webkit")
    local cert = W.makeCert()
    local server = assert(http.serve({port = 0, tls = {cert = cert.cert, key = cert.key}}, app))
    K.onCleanup(function() server:close() end)
    local url = "https://127.0.0.1:" .. server.port
    local s, h, b, v = curl("--cacert", cert.cert, "--http2", url .. "/hello?t")
    assert.equal("2", v)
    assert.equal(200, s)
    assert.equal("1", h["x-test"])
    assert.equal("hello GET /hello?t\n", b)
    local _, _, b1, v1 = curl("--cacert", cert.cert, "--http1.1", url .. "/version")
    assert.equal("1.1", v1)
    assert.equal("1.1", b1)
    local _, _, big, v2 = curl("--cacert", cert.cert, "--http2", url .. "/stream")
    assert.equal("2", v2)
    assert.equal(BIG, big)
    if NGHTTP then
      local r = K.run("nghttp", {"-nv", "-m", "10", url .. "/version"}, {timeout = 20})
      assert.equal(0, r.code, r.err)
      local n = 0
      for _ in r.out:gmatch(":status: 200") do n = n + 1 end
      assert.equal(10, n)
    end
    -- http2 = false: ALPN offers http/1.1 only
    local plain = assert(http.serve({port = 0, http2 = false, tls = {cert = cert.cert, key = cert.key}}, app))
    K.onCleanup(function() plain:close() end)
    local _, _, b3, v3 = curl("--cacert", cert.cert, "--http2", "https://127.0.0.1:" .. plain.port .. "/version")
    assert.equal("1.1", v3)
    assert.equal("1.1", b3)
  end)

  it("lets open streams finish on server:close() (GOAWAY)", function()
    local server, url = K.serve({http2 = true}, app)
    local pending = task.async(function()
      return {curl("--http2-prior-knowledge", url .. "/slow")}
    end)
    assert.truthy(K.waitFor(function() return server:connections() > 0 end))
    task.sleep(0.1)
    local closed = task.async(function() return server:close() end)
    local r = pending:await()
    assert.equal(200, r[1])
    assert.equal("slow done", r[3])
    closed:await()
    assert.equal(0, server:connections())
  end)

  it("cancels the handler of a stream whose client went away", function()
    local outcome
    local _, url = K.serve({http2 = true}, function(_, res)
      local ok, err = pcall(task.sleep, 2)
      outcome = ok and "slept" or tostring(err.code or err)
      if ok then res:send(200, "late") end
    end)
    local _, _, code = K.curl("--http2-prior-knowledge", "--max-time", "0.3", url .. "/")
    assert.equal(28, code)  -- curl's timeout
    assert.truthy(K.waitFor(function() return outcome end, 3))
    assert.equal("Canceled", outcome)
    assert.equal(200, (curl("--http2-prior-knowledge", url .. "/hello")))
  end)

  it("serves the HttpServer event style over HTTP/2", function()
    local server = HttpServer({http2 = true})
    local ids = {}
    function server:HTTP_REQUEST_FINISHED(_, p)
      ids[#ids + 1] = p.requestID
      self:WriteStatus(p.requestID, 200)
      self:WriteHeader(p.requestID, "content-type", "text/plain")
      self:SendResponse(p.requestID, "event " .. p.method .. " " .. p.path .. " " .. #p.body)
    end
    assert(server:StartListening(0))
    K.onCleanup(function() server:StopListening() end)
    local url = "http://127.0.0.1:" .. server.port
    local s, h, b = curl("--http2-prior-knowledge", "--data-binary", "abc", url .. "/ev")
    assert.equal(200, s)
    assert.equal("text/plain", h["content-type"])
    assert.equal("event POST /ev 3", b)
    assert.equal(1, #ids)
  end)

  it("survives garbage after the preface (GOAWAY) and keeps serving", function()
    local _, url = K.serve({http2 = true}, app)
    local port = tonumber(url:match("(%d+)$"))
    local r = K.raw(port, {{"send", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" .. ("\255"):rep(64)}}, 3)
    -- The server's frames: its SETTINGS, then a GOAWAY with an error code,
    -- then the end of the connection.
    local goaway, pos, data = nil, 1, r.data
    while pos + 8 <= #data do
      local len = data:byte(pos) * 65536 + data:byte(pos + 1) * 256 + data:byte(pos + 2)
      if data:byte(pos + 3) == 7 then
        local p = pos + 9 + 4
        goaway = ((data:byte(p) * 256 + data:byte(p + 1)) * 256 + data:byte(p + 2)) * 256 + data:byte(p + 3)
      end
      pos = pos + 9 + len
    end
    assert.equal("eof", r.ending)
    assert.truthy(goaway == 6 or goaway == 1, "GOAWAY FRAME_SIZE_ERROR or PROTOCOL_ERROR, got " .. tostring(goaway))
    local s = curl("--http2-prior-knowledge", url .. "/hello")
    assert.equal(200, s)
  end)
end)
