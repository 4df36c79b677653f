-- JSON on the server: req:json() (400 on malformed or empty bodies, 415 on
-- other types with strict, 413 past maxBodyBytes, cached) and res:json()
-- (content type, status, headers, what json.encode refuses), with Python's
-- urllib and json as the peer.
local K = require("httpkit")
local http = require("http")
local json = require("json")

local function post(url, body, ctype)
  local r = assert(http.request({method = "POST", url = url, body = body,
    headers = {["content-type"] = ctype or "application/json"}}))
  return r.status, r.body, r.headers
end

describe("req:json and res:json", function()
  local server, url
  local seen = {}
  before(function()
    local app = http.router()
    app:post("/echo", function(req, res)
      local v = req:json()
      seen.again = req:json() == v
      res:json(200, {got = v})
    end)
    app:post("/strict", function(req, res) res:json(200, req:json({strict = true})) end)
    app:post("/caught", function(req, res)
      local ok, err = pcall(req.json, req)
      res:json(ok and 200 or err.status, {code = err.code, line = err.line, column = err.column})
    end)
    app:get("/kinds", function(req, res)
      res:json(201, {empty = json.array({}), obj = json.object({}), null = json.null, big = json.decode("12345678901234567890")},
        {["x-extra"] = "1"})
    end)
    app:get("/typed", function(req, res) res:json(200, {1}, {["Content-Type"] = "application/vnd.api+json"}) end)
    app:get("/bad", function(req, res) res:json(200, {f = print}) end)
    server, url = K.serveShared({maxBodyBytes = 1000}, app)
  end)
  after(function()
    http.closeIdle()
    server:close()
  end)

  it("decodes the body, once", function()
    local s, b, h = post(url .. "/echo", '{"a": [1, 2.5, "x\\u00e9"], "b": null, "c": {}}')
    assert.equal({s, h["content-type"]}, {200, "application/json"})
    assert.equal(json.encode(json.decode(b), {sortKeys = true}), '{"got":{"a":[1,2.5,"x\195\169"],"b":null,"c":{}}}')
    assert.truthy(seen.again, "a second req:json() gives the same value")
  end)

  it("answers 400 JsonSyntax for malformed and empty bodies, 413 past maxBodyBytes", function()
    local s, b = post(url .. "/echo", '{"a": tru}')
    assert.equal({s, b}, {400, "400 Bad Request\n"})
    assert.equal(post(url .. "/echo", ""), 400)
    assert.equal(post(url .. "/echo", "[" .. ("1,"):rep(600) .. "1]"), 413)
    local _, cb = post(url .. "/caught", '{\n  "a": 1,\n  oops\n}')
    assert.equal(json.decode(cb), {code = "JsonSyntax", line = 3, column = 3})
  end)

  it("checks the content type with strict: application/json or +json, else 415", function()
    assert.equal(post(url .. "/strict", "[1]", "application/json; charset=utf-8"), 200)
    assert.equal(post(url .. "/strict", "[1]", "application/problem+json"), 200)
    assert.equal(post(url .. "/strict", "[1]", "text/plain"), 415)
    assert.equal(post(url .. "/echo", "[1]", "text/plain"), 200, "not strict: any type")
  end)

  it("sends JSON with its status and headers, keeping arrays, objects, null and big integers", function()
    local r = assert(http.get(url .. "/kinds"))
    assert.equal({r.status, r.headers["content-type"], r.headers["x-extra"]}, {201, "application/json", "1"})
    local v = json.decode(r.body)
    assert.equal(json.encode(v.empty), "[]")
    assert.equal(json.encode(v.obj), "{}")
    assert.equal(v.null, json.null)
    assert.match(r.body, '"big":12345678901234567890')
    r = assert(http.get(url .. "/typed"))
    assert.equal({r.headers["content-type"], r.body}, {"application/vnd.api+json", "[1]"})
  end)

  it("fails with a 500 for a value json.encode refuses", function()
    local r = assert(http.get(url .. "/bad"))
    assert.equal(r.status, 500)
  end)

  it("talks to Python's urllib and json", function()
    local script = [[
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"name": "Zoë", "n": [1, 2, 3]}).encode(),
                             headers={"Content-Type": "application/json"}, method="POST")
with urllib.request.urlopen(req) as r:
    print(r.headers["Content-Type"], json.dumps(json.load(r), sort_keys=True, ensure_ascii=False))
]]
    local r = K.run(K.python, {"-c", script, url .. "/echo"})
    assert.equal(r.out, 'application/json {"got": {"n": [1, 2, 3], "name": "Zoë"}}\n', r.err)
  end)

  it("raises bad argument for bad arguments", function()
    local msgs = {}
    local _, u = K.serve({}, function(req, res)
      msgs[1] = select(2, pcall(req.json, req, "strict"))
      msgs[2] = select(2, pcall(res.json, res, "200", {}))
      msgs[3] = select(2, pcall(res.json, res, 200, {}, "h"))
      msgs[4] = select(2, pcall(res.json, 5, 200, {}))
      res:send(200)
    end)
    assert(http.get(u))
    assert.match(msgs[1], "bad argument #1 to 'json' %(table expected, got string%)")
    assert.match(msgs[2], "bad argument #1 to 'json' %(number expected, got string%)")
    assert.match(msgs[3], "bad argument #3 to 'json' %(table expected, got string%)")
    assert.match(msgs[4], "bad argument #1 to 'json' %(Response expected, got number%)")
  end)
end)
