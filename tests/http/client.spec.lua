-- Python's http.client as the peer: keep-alive over one HTTPConnection,
-- bodies, and how repeated request headers reach the handler.
local K = require("httpkit")

local function headerList(r, name)
  local out = {}
  for _, h in ipairs(r.headers) do
    if h[1]:lower() == name then out[#out + 1] = h[2] end
  end
  return out
end

describe("http with Python's http.client", function()
  afterEach(K.cleanup)
  it("serves several requests over one connection", function()
    local ports, paths = {}, {}
    local server = K.serve({}, function(req, res)
      ports[#ports + 1] = req.remotePort
      paths[#paths + 1] = req.path
      res:send(200, "reply " .. #ports, {["content-type"] = "text/plain"})
    end)
    local reqs = {}
    for i = 1, 5 do reqs[i] = {"GET", "/n" .. i} end
    local out = K.client(server.port, reqs)
    server:close()
    assert.equal(#out, 5)
    for i = 1, 5 do
      assert.equal(out[i].status, 200)
      assert.equal(out[i].version, 11)
      assert.equal(out[i].body, "reply " .. i)
      assert.equal(ports[i], ports[1], "request " .. i .. " on the first connection")
    end
    assert.equal(paths, {"/n1", "/n2", "/n3", "/n4", "/n5"})
  end, 15)

  it("receives a POST body, and keeps the connection for the next request", function()
    local got, ports = {}, {}
    local server = K.serve({}, function(req, res)
      ports[#ports + 1] = req.remotePort
      got[#got + 1] = {req.method, req.headers["content-length"], req:body()}
      res:send(201, "stored " .. #req:body())
    end)
    local body = K.bytes(20000, 9)
    local out = K.client(server.port, {{"POST", "/items", body = body}, {"PUT", "/items/1", body = "x"}, {"GET", "/items"}})
    server:close()
    assert.equal(out[1].status, 201)
    assert.equal(out[1].reason, "Created")
    assert.equal(out[1].body, "stored 20000")
    assert.equal(got[1][1], "POST")
    assert.equal(got[1][2], "20000")
    assert.truthy(got[1][3] == body, "the body arrived byte for byte")
    assert.equal(got[2], {"PUT", "1", "x"})
    assert.equal(got[3], {"GET", nil, ""})
    assert.equal(ports[1], ports[2])
    assert.equal(ports[2], ports[3])
  end, 15)

  it("joins repeated request headers with ', ', cookies with '; ', and lists Set-Cookie", function()
    local headers
    local server = K.serve({}, function(req, res)
      headers = req.headers
      res:send(200, "ok")
    end)
    K.client(server.port, {{"GET", "/h", headers = {
      {"X-A", "1"}, {"X-A", "2"}, {"X-MiXeD-Case", "v"}, {"Cookie", "a=1"}, {"Cookie", "b=2"},
      {"Set-Cookie", "s=1; Path=/"}, {"Set-Cookie", "t=2, u=3"}, {"X-Trailing", "  padded  "},
    }}})
    server:close()
    assert.equal(headers["x-a"], "1, 2")
    assert.equal(headers["x-mixed-case"], "v")
    assert.isNil(headers["X-MiXeD-Case"])
    assert.equal(headers.cookie, "a=1; b=2")
    assert.equal(headers["set-cookie"], {"s=1; Path=/", "t=2, u=3"})
    assert.equal(headers.host, "127.0.0.1:" .. server.port)
  end, 15)

  it("sends each value of a header list on its own line, and a custom reason", function()
    local server = K.serve({}, function(req, res)
      res:status(299, "Fine Indeed")
      res:header("set-cookie", {"a=1; HttpOnly", "b=2"})
      res:header("x-one", "1")
      res:finish("body")
    end)
    local out = K.client(server.port, {{"GET", "/"}})
    server:close()
    assert.equal(out[1].status, 299)
    assert.equal(out[1].reason, "Fine Indeed")
    assert.equal(headerList(out[1], "set-cookie"), {"a=1; HttpOnly", "b=2"})
    assert.equal(headerList(out[1], "x-one"), {"1"})
    assert.equal(headerList(out[1], "content-length"), {"4"})
    assert.equal(out[1].body, "body")
  end, 15)
end)
