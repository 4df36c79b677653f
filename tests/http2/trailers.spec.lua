-- Trailers and informational (1xx) responses over HTTP/2 (issue 12): Evo's
-- server (tests/http/fixtures/trailers_server.lua, h2c and h2 over TLS with
-- a certificate made at test time) against Python's h2 state machine
-- (h2trailers.py: not nghttp2), nghttp (--trailer) and curl; http.request
-- against the same server over TLS (ALPN); HttpServer's WriteTrailer and
-- WriteInformational over h2c. Runs in both Io modes (the in-process
-- HttpServer case only in the evented one).
local http = require("http")
local task = require("task")

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."
if here:sub(1, 1) ~= "/" then here = require("uv").cwd() .. "/" .. here end
package.path = here .. "/../web/?.lua;" .. here .. "/../lua/?.lua;" .. package.path
local W = require("webkit")

local SERVER = here .. "/../http/fixtures/trailers_server.lua"
local PEER = here .. "/h2trailers.py"
local evented = task.mode() == "evented"

-- h2trailers.py's report of one request: {blocks = {{kind, fields}...}, body, reset}
local function h2py(port, method, path, body, ...)
  local argv = {PEER, tostring(port), method, path}
  if body then argv[#argv + 1] = body end
  for _, t in ipairs({...}) do argv[#argv + 1] = t end
  local r = W.run("/usr/bin/python3", argv, {timeout = 20})
  assert(r.code == 0, "h2trailers.py failed: " .. r.err .. r.out)
  return assert(loadstring("return " .. r.out))()
end

-- The blocks of a report as "kind status name=value ..." lines (pseudo
-- headers but :status, and date, left out).
local function blocks(rep)
  local out = {}
  for _, b in ipairs(rep.blocks) do
    local parts = {b.kind}
    for _, f in ipairs(b.fields) do
      if f[1] == ":status" then
        parts[#parts + 1] = f[2]
      elseif f[1] ~= "date" then
        parts[#parts + 1] = f[1] .. "=" .. f[2]
      end
    end
    out[#out + 1] = table.concat(parts, " ")
  end
  return out
end

describe("HTTP/2 trailers and 1xx", function()
  local cert, clear, tls
  before(function()
    cert = W.makeCert()
    clear = W.startPeer(W.evo, {SERVER})
    tls = W.startPeer(W.evo, {SERVER, cert.cert, cert.key})
  end)
  after(function()
    http.closeIdle()
    if clear then clear.stop() end
    if tls then tls.stop() end
    if cert then W.rmTree(cert.dir) end
  end)

  describe("Python's h2 as the client", function()
    it("sees res:trailer with res:send as a trailing HEADERS after the DATA", function()
      local rep = h2py(clear.port, "GET", "/send")
      assert.same(blocks(rep), {"response 200 content-length=5", "trailers x-checksum=5eb63bbe"})
      assert.equal(rep.body, "hello")
    end)

    it("sees 103 before the response, and trailers set before and after the head", function()
      local rep = h2py(clear.port, "GET", "/stream")
      assert.same(blocks(rep), {"informational 103 link=</style.css>; rel=preload", "response 200",
        "trailers x-a=1 x-b=2 x-b=3"})
      assert.equal(rep.body, "part1 part2")
    end)

    it("sees 100, 102 and 103, in order, before the response", function()
      local rep = h2py(clear.port, "GET", "/early")
      assert.same(blocks(rep), {"informational 100", "informational 102",
        "informational 103 link=</a.css>; rel=preload link=</b.js>; rel=preload", "response 200 content-length=5"})
    end)

    it("gets trailers after a body whose Content-Length the handler set (HTTP/2 can carry them)", function()
      local rep = h2py(clear.port, "GET", "/fixed")
      assert.same(blocks(rep), {"response 200 content-length=5", "trailers x-dropped=1"})
    end)

    it("sends request trailers that req:trailers() gives the handler", function()
      local rep = h2py(clear.port, "POST", "/echo", "hello", "x-sum: 9", "x-other: z")
      local echoed = assert(loadstring("return " .. rep.body))()
      assert.same(echoed, {size = 5, trailers = {["x-sum"] = "9", ["x-other"] = "z"}, version = "2.0"})
      assert.equal(blocks(rep)[2], "trailers x-other=z x-sum=9")
      -- no trailers: {} (and no trailing HEADERS back)
      rep = h2py(clear.port, "POST", "/echo", "hello")
      assert.same(assert(loadstring("return " .. rep.body))().trailers, {})
      assert.equal(#rep.blocks, 1)
    end)

    it("resets a stream whose request trailers pass maxHeaderListSize (32 KiB), the connection serving on", function()
      local rep = h2py(clear.port, "POST", "/echo", "hello", "x-big: " .. string.rep("v", 40000))
      assert.equal(rep.reset, 11, "ENHANCE_YOUR_CALM")  -- (the session's own limit)
      assert.equal(h2py(clear.port, "GET", "/send").body, "hello")
    end)
  end)

  describe("nghttp and curl as the client", function()
    it("nghttp -v shows the 103, the response and its trailers", function()
      local r = W.run("nghttp", {"-v", "http://127.0.0.1:" .. clear.port .. "/stream"}, {timeout = 20})
      assert(r.code == 0, r.err .. r.out)
      local i103 = r.out:find("recv (stream_id=13) :status: 103", 1, true)
      local i200 = r.out:find("recv (stream_id=13) :status: 200", 1, true)
      local itr = r.out:find("recv (stream_id=13) x-b: 3", 1, true)
      assert.truthy(i103 and i200 and itr, r.out)
      assert.truthy(i103 < i200 and i200 < itr, "103, then the response, then the trailers")
    end)

    it("nghttp --trailer sends request trailers over TLS", function()
      local dir = W.tempDir()
      local f = assert(io.open(dir .. "/body", "wb"))
      f:write("0123456789")
      f:close()
      local r = W.run("nghttp", {"-v", "-d", dir .. "/body", "--trailer", "x-sum: 45",
        "https://127.0.0.1:" .. tls.port .. "/echo"}, {timeout = 20})
      W.rmTree(dir)
      assert(r.code == 0, r.err .. r.out)
      assert.truthy(r.out:find("{size = 10, trailers = {[\"x-sum\"] = \"45\"}, version = '2.0'}", 1, true), r.out)
      assert.truthy(r.out:find("recv (stream_id=13) x-sum: 45", 1, true), "echoed as a response trailer: " .. r.out)
    end)

    it("curl --http2-prior-knowledge and --http2 (ALPN) show the 103 and the trailers", function()
      for _, argv in ipairs({{"--http2-prior-knowledge", "http://127.0.0.1:" .. clear.port .. "/stream"},
                             {"--http2", "-k", "https://127.0.0.1:" .. tls.port .. "/stream"}}) do
        local out, err, code = W.curl("-v", unpack(argv))
        assert.equal(code, 0, err)
        assert.equal(out, "part1 part2")
        assert.truthy(err:find("< HTTP/2 103", 1, true), err)
        assert.truthy(err:find("< HTTP/2 200", 1, true), err)
        assert.truthy(err:find("< x-a: 1", 1, true) and err:find("< x-b: 3", 1, true), err)
      end
    end)
  end)

  describe("http.request over h2 (TLS, ALPN)", function()
    local function get(path, opts)
      opts = opts or {}
      opts.url, opts.ca = "https://localhost:" .. tls.port .. path, cert.cert
      local r = assert(http.request(opts))
      assert.equal(r.version, "2.0")
      return r
    end

    it("gives res.trailers at the body's end and skips the 1xx", function()
      assert.equal(get("/send").trailers["x-checksum"], "5eb63bbe")
      local r = get("/stream", {stream = true})
      assert.same(r.trailers, {})
      assert.equal(r:readAll(), "part1 part2")
      assert.same(r.trailers, {["x-a"] = "1", ["x-b"] = "2, 3"})
      r = get("/early")
      assert.equal(r.status, 200)
      assert.equal(r.body, "final")
      assert.same(r.trailers, {})
    end)
  end)
end)

describe("HttpServer over h2c: WriteTrailer, WriteInformational, request trailers", function()
  it("answers with a 103 and trailers, and passes the request's trailers in HTTP_REQUEST_FINISHED", function()
    if not evented then return pending("HttpServer in this process needs the evented Io mode here") end
    local HttpServer = require("HttpServer")
    local s = HttpServer({http2 = true})
    local got
    function s:HTTP_REQUEST_FINISHED(event, p)
      got = p.trailers
      self:WriteInformational(p.requestID, 103, {link = "</x>"})
      self:WriteTrailer(p.requestID, "x-echo", p.trailers and p.trailers["x-sum"] or "none")
      self:SendResponse(p.requestID, "got " .. #p.body)
    end
    assert(s:StartListening(0))
    local ok, err = pcall(function()
      local rep = h2py(s.port, "POST", "/", "abcd", "x-sum: 9")
      assert.same(blocks(rep), {"informational 103 link=</x>", "response 200 content-length=5", "trailers x-echo=9"})
      assert.equal(rep.body, "got 4")
      assert.same(got, {["x-sum"] = "9"})
    end)
    s:StopListening()
    assert(ok, err)
  end)
end)
