-- The HTTP/1.1 server's trailers and informational responses (issue 12):
-- res:trailer, req:trailers(), res:inform, and HttpServer's WriteTrailer,
-- WriteInformational and the trailers of HTTP_REQUEST_FINISHED. Peers: raw
-- sockets (peers/raw.py: the exact bytes), curl --raw, Python's http.client
-- sending chunked bodies with trailers. (http.serve needs the evented Io
-- mode; the client side is tests/http/clienttrailers.spec.lua.)
local K = require("httpkit")
local HttpServer = require("HttpServer")
local http = require("http")

-- The raw bytes of one exchange: the request, then what the server sent.
local function exchange(port, request)
  return K.raw(port, {{"send", request}, {"shut"}}, 5).data
end

-- Python's http.client sending a chunked body with trailers; returns the
-- status line's code and the body it got back.
local function pythonChunked(port, path, chunks, trailers)
  local code = [[
import http.client, sys
port, path = int(sys.argv[1]), sys.argv[2]
chunks = [c.encode() for c in sys.argv[3].split(",") if c]
trailers = [t.encode() for t in sys.argv[4].split(",") if t]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.putrequest("POST", path)
c.putheader("Transfer-Encoding", "chunked")
c.endheaders()
body = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in chunks)
c.send(body + b"0\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n")
r = c.getresponse()
sys.stdout.write("%d %s" % (r.status, r.read().decode()))
]]
  local r = K.run(K.python, {"-c", code, tostring(port), path, table.concat(chunks, ","), table.concat(trailers, ",")})
  assert.equal(r.code, 0, r.err)
  local status, body = r.out:match("^(%d+) (.*)$")
  return tonumber(status), body
end

-- True when s ends with the plain string tail.
local function endsWith(s, tail) return s:sub(-#tail) == tail end

local function sorted(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. v end
  table.sort(parts)
  return table.concat(parts, ";")
end

describe("response trailers over HTTP/1.1", function()
  afterEach(K.cleanup)

  it("res:trailer then res:send: chunked, declared in Trailer, sent after the last chunk", function()
    local server = K.serve({}, function(req, res)
      res:trailer("X-Checksum", "5eb63bbe")
      res:trailer("x-multi", {"a", "b"})
      res:send(200, "hello", {["content-type"] = "text/plain"})
    end)
    local data = exchange(server.port, K.req("GET", "/", {"Connection: close"}))
    local r = K.parse1(data)
    assert.equal(r.status, 200)
    assert.equal(r.headers["transfer-encoding"], "chunked")
    assert.isNil(r.headers["content-length"], "no Content-Length when trailers follow")
    assert.equal(r.headers.trailer, "X-Checksum, x-multi", "each name declared once")
    assert.equal(r.body, "hello")
    assert.truthy(endsWith(data, "\r\n0\r\nX-Checksum: 5eb63bbe\r\nx-multi: a\r\nx-multi: b\r\n\r\n"), data)
  end, 20)

  it("sends trailers set after the head (undeclared) at the end of a streamed body", function()
    local server = K.serve({}, function(req, res)
      res:write("one ")
      res:trailer("x-late", "yes")
      res:write("two")
      res:finish()
    end)
    local data = exchange(server.port, K.req("GET", "/", {"Connection: close"}))
    local r = K.parse1(data)
    assert.equal(r.body, "one two")
    assert.isNil(r.headers.trailer)
    assert.truthy(endsWith(data, "\r\n0\r\nx-late: yes\r\n\r\n"), data)
  end, 20)

  it("res:finish(chunk) with trailers is chunked too, and curl --raw shows them", function()
    local _, url = K.serve({}, function(req, res)
      res:trailer("x-sum", "42")
      res:finish("body")
    end)
    local out, err, code = K.curl("--raw", "-i", url .. "/")
    assert.equal(code, 0, err)
    assert.truthy(out:find("Trailer: x%-sum\r\n"), out)
    assert.truthy(endsWith(out, "4\r\nbody\r\n0\r\nx-sum: 42\r\n\r\n"), out)
  end, 20)

  it("keeps the connection alive after a response with trailers", function()
    local server = K.serve({}, function(req, res)
      res:trailer("x-n", req.path)
      res:send(200, req.path)
    end)
    local data = exchange(server.port, K.req("GET", "/a") .. K.req("GET", "/b", {"Connection: close"}))
    local list = K.parse(data)
    assert.equal(#list, 2)
    assert.equal(list[1].body .. list[2].body, "/a/b")
    assert.truthy(data:find("0\r\nx-n: /a\r\n\r\nHTTP/1.1 200", 1, true), data)
  end, 20)

  it("drops them where HTTP/1.1 cannot carry them: HTTP/1.0, a Content-Length of the handler's, HEAD, 204", function()
    local server = K.serve({}, function(req, res)
      res:trailer("x-t", "1")
      if req.path == "/length" then res:header("content-length", "2") end
      if req.path == "/204" then return res:send(204) end
      res:send(200, "ok")
    end)
    local r10 = exchange(server.port, "GET / HTTP/1.0\r\n\r\n")
    assert.falsy(r10:find("x-t", 1, true), r10)
    assert.equal(K.parse1(r10).body, "ok")
    local rl = exchange(server.port, K.req("GET", "/length", {"Connection: close"}))
    assert.falsy(rl:find("x-t", 1, true), rl)
    assert.equal(K.parse1(rl).headers["content-length"], "2")
    local rh = exchange(server.port, K.req("HEAD", "/", {"Connection: close"}))
    assert.falsy(rh:find("x-t: 1", 1, true), rh)
    assert.falsy(rh:find("\r\n0\r\n", 1, true), "no body for HEAD: " .. rh)
    local r204 = exchange(server.port, K.req("GET", "/204", {"Connection: close"}))
    assert.falsy(r204:find("x-t", 1, true), r204)
  end, 20)

  it("refuses invalid and forbidden trailer fields (RFC 9110 6.5.1), adding nothing", function()
    local errs = {}
    local server = K.serve({}, function(req, res)
      local function try(...)
        local ok, err = pcall(res.trailer, res, ...)
        errs[#errs + 1] = ok and "ok" or tostring(err)
      end
      try("content-length", "5")
      try("Transfer-Encoding", "chunked")
      try("host", "x")
      try("Trailer", "x")
      try("set-cookie", "a=1")
      try("x-bad", "a\r\nInjected: 1")
      try("bad name", "v")
      try("x-list", {"ok", "bad\nline"})
      try(nil, "v")
      try("x-ok", "fine")
      res:send(200, "ok")
      errs[#errs + 1] = select(2, pcall(res.trailer, res, "x-late", "v"))
    end)
    local data = exchange(server.port, K.req("GET", "/", {"Connection: close"}))
    local r = K.parse1(data)
    assert.equal(r.headers.trailer, "x-ok", "only the valid one: " .. data)
    assert.truthy(endsWith(data, "0\r\nx-ok: fine\r\n\r\n"), data)
    assert.match(errs[1], "'content%-length' is not allowed in trailers")
    assert.match(errs[2], "'Transfer%-Encoding' is not allowed in trailers")
    assert.match(errs[3], "'host' is not allowed")
    assert.match(errs[4], "'Trailer' is not allowed")
    assert.match(errs[5], "'set%-cookie' is not allowed")
    assert.match(errs[6], "invalid trailer value for 'x%-bad'")
    assert.match(errs[7], "invalid trailer name 'bad name'")
    assert.match(errs[8], "invalid trailer value for 'x%-list'")
    assert.match(errs[9], "bad argument #1 to 'trailer' %(string expected, got nil%)")
    assert.equal(errs[10], "ok")
    assert.match(errs[11], "trailer: the response was already finished")
  end, 20)

  it("answers a handler error with a plain 500, without the trailers set before it", function()
    local server = K.serve({}, function(req, res)
      res:trailer("x-t", "1")
      error("boom")
    end)
    local data = exchange(server.port, K.req("GET", "/", {"Connection: close"}))
    local r = K.parse1(data)
    assert.equal(r.status, 500)
    assert.truthy(r.headers["content-length"])
    assert.falsy(data:find("x-t", 1, true), data)
  end, 20)

  it("keeps trailers through http.compress", function()
    local app = http.router()
    app:use(http.compress({threshold = 10}))
    app:get("/", function(req, res)
      res:trailer("x-t", "kept")
      res:header("content-type", "text/plain")
      res:send(200, string.rep("compressible ", 200))
    end)
    local _, url = K.serve({}, app)
    local out, err, code = K.curl("--raw", "-i", "-H", "Accept-Encoding: gzip", url .. "/")
    assert.equal(code, 0, err)
    assert.truthy(out:lower():find("content%-encoding: gzip"), out:sub(1, 300))
    assert.truthy(endsWith(out, "\r\n0\r\nx-t: kept\r\n\r\n"), K.hex(out:sub(-30)))
  end, 20)
end)

describe("request trailers over HTTP/1.1", function()
  afterEach(K.cleanup)

  it("req:trailers() gives a chunked body's trailers once it is read, nil before (Python http.client)", function()
    local before
    local server = K.serve({}, function(req, res)
      before = req:trailers()
      local body = req:body()
      local t = assert(req:trailers())
      res:send(200, #body .. " " .. sorted(t) .. " " .. tostring(req.headers["x-sum"]))
    end)
    local status, body = pythonChunked(server.port, "/", {"hello", " world"}, {"X-Sum: 42", "X-Multi: a", "x-multi: b "})
    assert.equal(status, 200)
    assert.equal(body, "11 x-multi=a, b;x-sum=42 nil", "trailers apart from headers, joined like them")
    assert.isNil(before)
  end, 20)

  it("gives {} for a body without trailers and for no body; req:read() to the end works too", function()
    local seen = {}
    local server = K.serve({}, function(req, res)
      while req:read() do end
      seen[#seen + 1] = sorted(assert(req:trailers()))
      res:send(200, "ok")
    end)
    local status = pythonChunked(server.port, "/", {"abc"}, {})
    assert.equal(status, 200)
    local r = K.parse(exchange(server.port, K.req("GET", "/", {"Connection: close"})))
    assert.equal(r[1].status, 200)
    assert.same(seen, {"", ""})
  end, 20)

  it("a Content-Length or Host in the trailers frames nothing: the next request follows", function()
    local got = {}
    local server = K.serve({}, function(req, res)
      local body = req:body()
      got[#got + 1] = body .. "|" .. sorted(req:trailers()) .. "|" .. req.headers.host
      res:send(200, "ok")
    end)
    local data = exchange(server.port,
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" ..
      "Content-Length: 99\r\nHost: evil\r\n\r\n" .. K.req("GET", "/next", {"Connection: close"}))
    local list = K.parse(data)
    assert.equal(#list, 2, data)
    assert.same(got, {"abc|content-length=99;host=evil|a", "|" .. "" .. "|127.0.0.1"})
  end, 20)

  it("trailers over maxHeaderBytes fail the body with 431", function()
    local server = K.serve({maxHeaderBytes = 1024}, function(req, res)
      local ok, err = pcall(req.body, req)
      res:send(200, ok and "read" or (err.code .. " " .. err.status))
    end)
    local data = exchange(server.port,
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Big: " ..
      string.rep("v", 2000) .. "\r\n\r\n")
    local r = K.parse(data)[1]
    assert.equal(r.body, "BadRequest 431")
  end, 20)
end)

describe("informational responses over HTTP/1.1", function()
  afterEach(K.cleanup)

  it("res:inform(103, headers) sends Early Hints before the response", function()
    local server = K.serve({}, function(req, res)
      assert.equal(res:inform(103, {link = {"</a.css>; rel=preload", "</b.js>; rel=preload"}}), true)
      res:send(200, "final")
    end)
    local data = exchange(server.port, K.req("GET", "/", {"Connection: close"}))
    local early = "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\nlink: </b.js>; rel=preload\r\n\r\n"
    assert.equal(data:sub(1, #early + 12), early .. "HTTP/1.1 200")
    local list = K.parse(data, {interim = true})
    assert.equal(#list, 2)
    assert.equal(list[2].body, "final")
  end, 20)

  it("curl -v sees the 103 and then the 200", function()
    local _, url = K.serve({}, function(req, res)
      res:inform(103, {link = "</style.css>; rel=preload"})
      res:send(200, "ok")
    end)
    local out, err, code = K.curl("-v", url .. "/")
    assert.equal(code, 0, err)
    assert.equal(out, "ok")
    assert.truthy(err:find("< HTTP/1.1 103 Early Hints", 1, true), err)
    assert.truthy(err:find("< link: </style.css>; rel=preload", 1, true), err)
    assert.truthy(err:find("< HTTP/1.1 200 OK", 1, true), err)
  end, 20)

  it("sends no 1xx to an HTTP/1.0 client", function()
    local server = K.serve({}, function(req, res)
      assert.equal(res:inform(103, {link = "</x>"}), true)
      res:send(200, "ok")
    end)
    local data = exchange(server.port, "GET / HTTP/1.0\r\n\r\n")
    assert.equal(data:sub(1, 15), "HTTP/1.1 200 OK", data)
  end, 20)

  it("res:inform(100) answers Expect: 100-continue once (the body read sends no second one)", function()
    local server = K.serve({}, function(req, res)
      res:inform(100)
      res:send(200, req:body())
    end)
    local rep = K.raw(server.port, {
      {"send", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"},
      {"sleep", 0.3}, {"send", "abc"},
    }, 5)
    assert.equal(rep.data:sub(1, rep.marks[3]), "HTTP/1.1 100 Continue\r\n\r\n")
    local _, n = rep.data:gsub("100 Continue", "")
    assert.equal(n, 1, rep.data)
    assert.equal(K.parse(rep.data)[1].body, "abc")
  end, 20)

  it("Expect: 100-continue is still answered at the first read without res:inform", function()
    local _, url = K.serve({}, function(req, res) res:send(200, #req:body() .. "") end)
    local out, err, code = K.curl("-v", "-H", "Expect: 100-continue", "--data-binary", "payload", url .. "/")
    assert.equal(code, 0, err)
    assert.equal(out, "7")
    assert.truthy(err:find("< HTTP/1.1 100 Continue", 1, true), err)
  end, 20)

  it("refuses a status that is not 1xx, 101, after the head, and bad headers", function()
    local errs = {}
    local server = K.serve({}, function(req, res)
      for _, s in ipairs({101, 200, 99}) do errs[#errs + 1] = select(2, pcall(res.inform, res, s)) end
      errs[#errs + 1] = select(2, pcall(res.inform, res, 103, {["x-bad"] = "a\r\nb: c"}))
      errs[#errs + 1] = select(2, pcall(res.inform, res, "103"))
      res:write("x")
      errs[#errs + 1] = select(2, pcall(res.inform, res, 103))
      res:finish()
    end)
    local data = exchange(server.port, K.req("GET", "/", {"Connection: close"}))
    assert.equal(K.parse1(data).body, "x")
    assert.equal(data:sub(1, 15), "HTTP/1.1 200 OK", "nothing refused went out")
    for i = 1, 3 do assert.match(errs[i], "bad argument #1 to 'inform' %(status must be 1xx other than 101%)") end
    assert.match(errs[4], "invalid header value for 'x%-bad'")
    assert.match(errs[5], "bad argument #1 to 'inform' %(number expected, got string%)")
    assert.match(errs[6], "inform: the headers were already sent")
  end, 20)
end)

describe("HttpServer: trailers and 1xx", function()
  afterEach(K.cleanup)

  it("WriteInformational, WriteTrailer, and the request's trailers in HTTP_REQUEST_FINISHED", function()
    local s = HttpServer()
    local got
    function s:HTTP_REQUEST_FINISHED(event, p)
      got = p.trailers
      assert.equal(self:WriteInformational(p.requestID, 103, {link = "</x>"}), true)
      assert.equal(self:WriteTrailer(p.requestID, "x-echo", p.trailers and p.trailers["x-sum"] or "none"), true)
      local ok, err = pcall(self.WriteTrailer, self, p.requestID, "content-length", "1")
      assert.falsy(ok)
      assert.match(tostring(err), "not allowed in trailers")
      self:WriteResponse(p.requestID, "got " .. #p.body)
      self:SendResponse(p.requestID)
    end
    assert(s:StartListening(0))
    K.onCleanup(function() s:StopListening() end)
    -- (Python's http.client takes a 103 for the response: raw bytes here)
    local data = exchange(s.port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
      "2\r\nhi\r\n0\r\nX-Sum: 7\r\n\r\n")
    assert.equal(data:sub(1, 26), "HTTP/1.1 103 Early Hints\r\n", data)
    assert.truthy(endsWith(data, "0\r\nx-echo: 7\r\n\r\n"), data)
    -- a request without trailers has no trailers field
    exchange(s.port, K.req("GET", "/", {"Connection: close"}))
    assert.isNil(got)
  end, 20)
end)
