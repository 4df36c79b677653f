-- http.router(): methods, :param captures, 404, 405 with Allow, HEAD as GET.
local K = require("httpkit")
local http = require("http")

local function describeReq(req) return req.method .. " " .. req.path end

local function app()
  local calls = {}
  local r = http.router()
  r:get("/items", function(req, res) res:send(200, "list") end)
  r:post("/items", function(req, res) res:send(201, "created " .. req:body()) end)
  r:get("/items/:id", function(req, res) res:send(200, "item " .. req.params.id) end)
  r:put("/items/:id", function(req, res) res:send(200, "put " .. req.params.id .. " " .. req:body()) end)
  r:patch("/items/:id", function(req, res) res:send(200, "patch " .. req.params.id) end)
  r:delete("/items/:id", function(req, res) res:send(204) end)
  r:get("/users/:name/posts/:post", function(req, res)
    calls[#calls + 1] = req.params
    res:send(200, req.params.name .. "|" .. req.params.post)
  end)
  r:get("/files/*", function(req, res) res:send(200, "file " .. req.params["*"]) end)
  r:get("/a.b", function(req, res) res:send(200, "dot") end)
  r:all("/any", function(req, res) res:send(200, "any " .. describeReq(req)) end)
  return r, calls
end

-- request(url, method, path [, body]) -> status, headers, body
local function request(url, method, path, body)
  local args = {"-i", "--raw", "-X", method}
  if method == "HEAD" then args = {"-I"} end
  if body then args[#args + 1] = "--data-binary"; args[#args + 1] = body end
  args[#args + 1] = url .. path
  local out, err, code = K.curl(unpack(args))
  assert(code == 0, err)
  local r = K.parse(out, {head = method == "HEAD"})[1]
  return r.status, r.headers, r.body
end

describe("http.router", function()
  afterEach(K.cleanup)
  local server, url, calls
  before(function()
    local r
    r, calls = app()
    server, url = K.serveShared({}, r)
  end)
  after(function() server:close() end)

  it("dispatches get, post, put, patch and delete", function()
    local s, _, b = request(url, "GET", "/items")
    assert.equal({s, b}, {200, "list"})
    s, _, b = request(url, "POST", "/items", "thing")
    assert.equal({s, b}, {201, "created thing"})
    s, _, b = request(url, "PUT", "/items/7", "new")
    assert.equal({s, b}, {200, "put 7 new"})
    s, _, b = request(url, "PATCH", "/items/8")
    assert.equal({s, b}, {200, "patch 8"})
    s, _, b = request(url, "DELETE", "/items/9")
    assert.equal({s, b}, {204, ""})
    s, _, b = request(url, "GET", "/items/abc")
    assert.equal({s, b}, {200, "item abc"})
  end, 15)

  it("captures :params, percent-decoded", function()
    local s, _, b = request(url, "GET", "/users/John%20Doe/posts/%C3%A9t%C3%A9")
    assert.equal(s, 200)
    assert.equal(b, "John Doe|\195\169t\195\169")
    assert.equal(calls[#calls], {name = "John Doe", post = "\195\169t\195\169"})
    s, _, b = request(url, "GET", "/users/a%2Fb/posts/1")
    assert.equal({s, b}, {200, "a/b|1"})
  end, 15)

  it("answers 404 for unknown paths, and a :param does not span a slash", function()
    local s, h, b = request(url, "GET", "/nowhere")
    assert.equal(s, 404)
    assert.match(b, "Not Found")
    assert.equal(h["content-length"], tostring(#b))
    assert.equal(request(url, "GET", "/items/1/extra"), 404)
    assert.equal(request(url, "GET", "/users/x/posts"), 404)
    assert.equal(request(url, "GET", "/axb"), 404, "the dot in /a.b is literal")
    assert.equal(select(3, request(url, "GET", "/a.b")), "dot")
  end, 15)

  it("answers 405 with Allow for a known path and another method", function()
    local s, h = request(url, "DELETE", "/items")
    assert.equal(s, 405)
    local allow = {}
    for m in (h.allow or ""):gmatch("[A-Z]+") do allow[m] = true end
    assert.truthy(allow.GET and allow.POST, "Allow lists GET and POST: " .. tostring(h.allow))
    assert.falsy(allow.DELETE)
    s, h = request(url, "POST", "/items/3")
    assert.equal(s, 405)
    for _, m in ipairs({"GET", "PUT", "PATCH", "DELETE"}) do assert.match(h.allow, m) end
  end, 15)

  it("answers HEAD with the GET route's headers and no body", function()
    local s, h, b = request(url, "HEAD", "/items/42")
    assert.equal(s, 200)
    assert.equal(h["content-length"], tostring(#"item 42"))
    assert.equal(b, "")
  end, 15)

  it("matches * and any method with all", function()
    assert.equal(select(3, request(url, "GET", "/files/a/b/c.txt")), "file a/b/c.txt")
    assert.equal(select(3, request(url, "POST", "/any", "x")), "any POST /any")
    assert.equal(select(3, request(url, "OPTIONS", "/any")), "any OPTIONS /any")
  end, 15)

  it("runs the otherwise handler instead of the 404", function()
    local r = http.router()
    r:get("/known", function(req, res) res:send(200, "known") end)
    r:otherwise(function(req, res) res:send(200, "fallback " .. req.path) end)
    local s2, url2 = K.serve({}, r)
    local out = K.curl(url2 .. "/known", url2 .. "/other")
    s2:close()
    assert.equal(out, "knownfallback /other")
  end, 15)
end)
