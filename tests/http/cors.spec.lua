-- http.cors: Access-Control-* headers for simple requests and preflights
-- (OPTIONS + Access-Control-Request-Method), with origins as "*", a list or
-- a function, credentials, exposed headers and maxAge. (Headless Chromium
-- making a cross-origin fetch: tests/web/webapp.spec.lua.)
local K = require("httpkit")
local http = require("http")

local function req(url, method, headers)
  local r = assert(http.request({url = url, method = method or "GET", headers = headers}))
  return r.status, r.headers, r.body
end

local function app(opts)
  local r = http.router()
  r:use(http.cors(opts))
  r:get("/data", function(req_, res) res:send(200, "data") end)
  r:put("/data", function(req_, res) res:send(200, "put") end)
  return r
end

describe("http.cors", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  it("allows any origin with the defaults, and leaves requests without Origin alone", function()
    local _, url = K.serve({}, app())
    local s, h, b = req(url .. "/data", "GET", {origin = "https://a.example"})
    assert.equal({s, b, h["access-control-allow-origin"], h.vary}, {200, "data", "*", nil})
    s, h = req(url .. "/data")
    assert.equal({s, h["access-control-allow-origin"]}, {200, nil})
  end)

  it("answers a preflight with 204 and the allowed methods, headers and max age", function()
    local _, url = K.serve({}, app({methods = {"GET", "PUT"}, headers = {"Content-Type", "X-Token"}, maxAge = 600}))
    local s, h, b = req(url .. "/data", "OPTIONS", {origin = "https://a.example",
      ["access-control-request-method"] = "PUT", ["access-control-request-headers"] = "x-token"})
    assert.equal({s, b}, {204, ""})
    assert.equal(h["access-control-allow-origin"], "*")
    assert.equal(h["access-control-allow-methods"], "GET, PUT")
    assert.equal(h["access-control-allow-headers"], "Content-Type, X-Token")
    assert.equal(h["access-control-max-age"], "600")
  end)

  it("echoes the requested headers when none are configured", function()
    local _, url = K.serve({}, app())
    local _, h = req(url .. "/data", "OPTIONS", {origin = "https://a.example",
      ["access-control-request-method"] = "PUT", ["access-control-request-headers"] = "x-a, x-b"})
    assert.equal(h["access-control-allow-headers"], "x-a, x-b")
    assert.match(h.vary, "Access%-Control%-Request%-Headers")
  end)

  it("allows only listed origins, echoing them with Vary: Origin", function()
    local _, url = K.serve({}, app({origins = {"https://good.example", "http://localhost:3000"}}))
    local _, h = req(url .. "/data", "GET", {origin = "https://good.example"})
    assert.equal({h["access-control-allow-origin"], h.vary}, {"https://good.example", "Origin"})
    local s, h2, b = req(url .. "/data", "GET", {origin = "https://evil.example"})
    assert.equal({s, b, h2["access-control-allow-origin"]}, {200, "data", nil}, "served, but the browser will not show it")
    local s3, h3 = req(url .. "/data", "OPTIONS", {origin = "https://evil.example", ["access-control-request-method"] = "PUT"})
    assert.equal({s3, h3["access-control-allow-origin"], h3["access-control-allow-methods"]}, {204, nil, nil})
  end)

  it("asks a function, and sends credentials with the origin echoed (never *)", function()
    local asked = {}
    local _, url = K.serve({}, app({credentials = true, exposeHeaders = {"X-Total"}, origins = function(origin, r)
      asked[#asked + 1] = origin .. " " .. r.path
      return origin:match("%.trusted%.example$") ~= nil
    end}))
    local _, h = req(url .. "/data", "GET", {origin = "https://app.trusted.example"})
    assert.equal(h["access-control-allow-origin"], "https://app.trusted.example")
    assert.equal(h["access-control-allow-credentials"], "true")
    assert.equal(h["access-control-expose-headers"], "X-Total")
    local _, h2 = req(url .. "/data", "GET", {origin = "https://other.example"})
    assert.isNil(h2["access-control-allow-origin"])
    assert.equal(asked, {"https://app.trusted.example /data", "https://other.example /data"})
    local _, url2 = K.serve({}, app({credentials = true}))
    local _, h3 = req(url2 .. "/data", "GET", {origin = "https://x.example"})
    assert.equal({h3["access-control-allow-origin"], h3["access-control-allow-credentials"]}, {"https://x.example", "true"})
  end)

  it("raises bad argument for bad options", function()
    assert.throws(function() http.cors(1) end, "bad argument #1 to 'cors' %(table expected, got number%)")
    assert.throws(function() http.cors({origins = 5}) end, "bad argument #1 to 'cors' %(origins must be")
    assert.throws(function() http.cors({methods = 5}) end, "bad argument #1 to 'cors' %(methods must be")
  end)

end)
