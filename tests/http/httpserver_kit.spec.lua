-- The web-app kit in the event style: HttpServer's ReadCookies,
-- ReadSignedCookies, WriteCookie, ClearCookie, ReadForm, ReadJSON and
-- SendJSON, against curl (-b/-c jars, -F) and Evo's client.
local K = require("httpkit")
local HttpServer = require("HttpServer")
local http = require("http")

local function start(handler, opts)
  local server = HttpServer(opts)
  server.HTTP_REQUEST_FINISHED = handler
  assert(server:StartListening(0, "127.0.0.1"))
  K.onCleanup(function() server:StopListening() end)
  return server, "http://127.0.0.1:" .. server.port
end

describe("HttpServer's web-app kit", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  it("reads and writes cookies, plain and signed, through a curl jar", function()
    local server, url = start(function(self, event, p)
      if p.path == "/set" then
        assert(self:WriteCookie(p.requestID, "theme", "dark", {httpOnly = true}))
        assert(self:WriteCookie(p.requestID, "user", "ann", {signed = true}))
        return self:SendResponse(p.requestID, "set")
      elseif p.path == "/clear" then
        assert(self:ClearCookie(p.requestID, "theme"))
        return self:SendResponse(p.requestID, "cleared")
      end
      local c, sc = self:ReadCookies(p), self:ReadSignedCookies(p)
      self:SendResponse(p.requestID, tostring(c.theme) .. "|" .. tostring(sc.user) .. "|" .. tostring(sc.theme))
    end, {cookieSecret = "s3cret"})
    local jar = K.tempDir() .. "/jar"
    assert.equal(K.curl("-c", jar, url .. "/set"), "set")
    assert.equal(K.curl("-b", jar, url .. "/read"), "dark|ann|nil")
    assert.equal(K.curl("-b", jar, "-H", "Cookie: user=s:bob.forged", url .. "/read"), "dark|ann|nil")
    assert.equal(K.curl("-b", jar, "-c", jar, url .. "/clear"), "cleared")
    assert.equal(K.curl("-b", jar, url .. "/read"), "nil|ann|nil")
    assert.truthy(server)
  end)

  it("raises bad argument for a bad cookie, numbered as the caller counts", function()
    local msgs = {}
    local _, url = start(function(self, event, p)
      msgs[1] = select(2, pcall(self.WriteCookie, self, p.requestID, "bad name", "v"))
      msgs[2] = select(2, pcall(self.WriteCookie, self, p.requestID, "n", "v;w"))
      msgs[3] = select(2, pcall(self.WriteCookie, self, p.requestID, "n", "v", {sameSite = 1}))
      msgs[4] = select(2, pcall(self.WriteCookie, self, p.requestID, "n", "v", {signed = true}))
      msgs[5] = select(2, pcall(self.ClearCookie, self, p.requestID, "n", 5))
      self:SendResponse(p.requestID, "ok")
    end)
    assert.equal(K.curl(url), "ok")
    assert.match(msgs[1], "bad argument #2 to 'WriteCookie' %(invalid cookie name")
    assert.match(msgs[2], "bad argument #3 to 'WriteCookie' %(invalid cookie value")
    assert.match(msgs[3], "bad argument #4 to 'WriteCookie' %(sameSite must be")
    assert.match(msgs[4], "WriteCookie: signed cookies need a cookieSecret")
    assert.match(msgs[5], "bad argument #3 to 'ClearCookie' %(table expected, got number%)")
  end)

  it("reads forms from the whole body: curl -F and -d", function()
    local got = {}
    local _, url = start(function(self, event, p)
      local form, err = self:ReadForm(p, {maxFiles = 1})
      if not form then return self:SendResponse(p.requestID, err.code .. " " .. err.status) end
      got[#got + 1] = form
      self:SendResponse(p.requestID, "ok")
    end)
    local dir = K.tempDir()
    local data = K.bytes(20000)
    K.writeFile(dir .. "/f.bin", data)
    assert.equal(K.curl("-F", "a=1", "-F", "f=@" .. dir .. "/f.bin;type=x/y", url), "ok")
    assert.equal(got[1].fields, {a = "1"})
    local f = got[1].files.f
    assert.equal({f.filename, f.contentType, f.size, f.data == data}, {"f.bin", "x/y", 20000, true})
    assert.equal(K.curl("-d", "x=1&x=2", url), "ok")
    assert.equal(got[2].fields, {x = {"1", "2"}})
    assert.equal(K.curl("-F", "a=@" .. dir .. "/f.bin", "-F", "b=@" .. dir .. "/f.bin", url), "FormTooLarge 413")
    assert.equal(K.curl("-H", "content-type: text/plain", "-d", "x", url), "UnsupportedMediaType 415")
  end)

  it("sends and reads JSON", function()
    local _, url = start(function(self, event, p)
      local v, err = self:ReadJSON(p)
      if not v then return self:SendJSON(p.requestID, 400, {error = err.code}) end
      self:SendJSON(p.requestID, 201, {got = v}, {["x-kind"] = "echo"})
    end)
    local r = assert(http.request({method = "POST", url = url, json = {1, "two", {three = 3}}}))
    assert.equal({r.status, r.headers["content-type"], r.headers["x-kind"]}, {201, "application/json", "echo"})
    assert.equal(r:json(), {got = {1, "two", {three = 3}}})
    r = assert(http.request({method = "POST", url = url, body = "{oops"}))
    assert.equal({r.status, r.body}, {400, '{"error":"JsonSyntax"}'})
  end)
end)
