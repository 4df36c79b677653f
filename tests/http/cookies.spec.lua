-- Cookies: req.cookies (tolerant parsing), res:cookie / res:clearCookie
-- (attributes, validation), signed cookies (HMAC-SHA256, checked against
-- Python's hmac), curl cookie jars (-c/-b) and Python's http.cookies.
local K = require("httpkit")
local http = require("http")
local fs = require("fs")

local function get(url, headers)
  local r = assert(http.request({url = url, headers = headers}))
  return r
end

-- The cookie lines of a curl jar (Netscape format): name -> {fields}
local function jar(path)
  local out = {}
  for line in (fs.readFile(path) or ""):gmatch("[^\n]+") do
    local httpOnly = line:match("^#HttpOnly_") ~= nil
    if httpOnly then line = line:gsub("^#HttpOnly_", "") end
    if line:sub(1, 1) ~= "#" then
      local f = {}
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
      out[f[6]] = {domain = f[1], path = f[3], secure = f[4], expires = tonumber(f[5]), value = f[7], httpOnly = httpOnly}
    end
  end
  return out
end

local function echoCookies(req, res)
  local names = {}
  for k, v in pairs(req.cookies) do names[#names + 1] = k .. "=" .. v end
  table.sort(names)
  res:send(200, table.concat(names, "&"))
end

describe("req.cookies", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  it("parses the Cookie header tolerantly, as browsers send it", function()
    local _, url = K.serve({}, echoCookies)
    local cases = {
      {"a=1; b=2", "a=1&b=2"},
      {"a=1;b=2;  c = 3 ", "a=1&b=2&c=3"},
      {'q="quoted value"', "q=quoted value"},
      {"pct=a%20b%3Bc; bad=%zz%4", "bad=%zz%4&pct=a b;c"},
      {"dup=first; dup=second", "dup=first"},
      {"novalue; =noname; empty=; x=1", "empty=&x=1"},
      {"eq=a=b==", "eq=a=b=="},
      {";;; ; a=1 ;", "a=1"},
      {"utf8=\u{e9}t\u{e9}", "utf8=\u{e9}t\u{e9}"},
    }
    for _, c in ipairs(cases) do
      assert.equal(get(url, {cookie = c[1]}).body, c[2], c[1])
    end
    assert.equal(get(url).body, "", "no Cookie header: an empty table")
  end)

  it("is parsed once, when first read", function()
    local seen = {}
    local _, url = K.serve({}, function(req, res)
      seen[1] = rawget(req, "cookies")
      local c = req.cookies
      seen[2] = rawget(req, "cookies") == c
      res:send(200, c.k or "")
    end)
    assert.equal(get(url, {cookie = "k=v"}).body, "v")
    assert.equal(seen, {nil, true})
  end)
end)

describe("res:cookie", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  it("writes the attributes asked for", function()
    local _, url = K.serve({}, function(req, res)
      res:cookie("sid", "abc123", {path = "/app", domain = "example.com", maxAge = 3600, secure = true,
        httpOnly = true, sameSite = "strict"})
      res:cookie("plain", "1")
      res:cookie("n", 42, {path = false, expires = 0, sameSite = "None", secure = true, partitioned = true})
      res:cookie("lax", "x", {sameSite = "Lax", expires = "Wed, 21 Oct 2037 07:28:00 GMT"})
      res:send(200, "ok")
    end)
    local r = get(url)
    local sc = r.headers["set-cookie"]
    assert.equal(#sc, 4)
    assert.match(sc[1], "^sid=abc123; Path=/app; Domain=example.com; Max%-Age=3600; Expires=%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT; HttpOnly; Secure; SameSite=Strict$")
    assert.equal(sc[2], "plain=1; Path=/")
    assert.equal(sc[3], "n=42; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; SameSite=None; Partitioned")
    assert.equal(sc[4], "lax=x; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; SameSite=Lax")
  end)

  it("raises bad argument for names and values that would break the header", function()
    local results = {}
    local _, url = K.serve({}, function(req, res)
      local function try(...)
        local ok, err = pcall(res.cookie, res, ...)
        results[#results + 1] = ok and "ok" or tostring(err)
      end
      try("a b", "v")
      try("a;b", "v")
      try("", "v")
      try("a\r\nSet-Cookie: x", "v")
      try("n", "x;y")
      try("n", "x\r\nSet-Cookie: evil=1")
      try("n", "a,b")
      try("n", "a b")
      try("n", "ok", {path = "/x; Domain=evil"})
      try("n", "ok", {sameSite = "sometimes"})
      try("n", "ok", {maxAge = "soon"})
      try("n", {})
      try(1, "v")
      try("n", "v", "opts")
      try("n", '"quoted"')
      res:send(200, "done")
    end)
    assert.equal(get(url).body, "done")
    for i = 1, 4 do assert.match(results[i], "bad argument #1 to 'cookie' %(invalid cookie name") end
    for i = 5, 8 do assert.match(results[i], "bad argument #2 to 'cookie' %(invalid cookie value") end
    assert.match(results[9], "bad argument #3 to 'cookie' %(path must not contain ';'")
    assert.match(results[10], "bad argument #3 to 'cookie' %(sameSite must be")
    assert.match(results[11], "bad argument #3 to 'cookie' %(maxAge must be a number")
    assert.match(results[12], "bad argument #2 to 'cookie' %(string expected, got table%)")
    assert.match(results[13], "bad argument #1 to 'cookie' %(string expected, got number%)")
    assert.match(results[14], "bad argument #3 to 'cookie' %(table expected, got string%)")
    assert.equal(results[15], "ok")
  end)

  it("round-trips through a curl cookie jar, and clearCookie removes it", function()
    local dir = K.tempDir()
    local app = http.router()
    app:get("/login", function(req, res)
      res:cookie("session", "s-42", {httpOnly = true, maxAge = 600})
      res:cookie("theme", "dark")
      res:cookie("scoped", "yes", {path = "/account"})
      res:send(200, "in")
    end)
    app:get("/logout", function(req, res)
      res:clearCookie("session")
      res:send(200, "out")
    end)
    app:get("/account/me", echoCookies)
    app:get("/me", echoCookies)
    local _, url = K.serve({}, app)
    local jarFile = dir .. "/jar.txt"
    local out, err, code = K.curl("-c", jarFile, url .. "/login")
    assert.equal({out, code}, {"in", 0}, err)
    local j = jar(jarFile)
    assert.equal(j.session.value, "s-42")
    assert.truthy(j.session.httpOnly)
    assert.near(j.session.expires, os.time() + 600, 5)
    assert.equal(j.theme.expires, 0, "a session cookie")
    assert.equal(j.scoped.path, "/account")
    assert.equal(K.curl("-b", jarFile, url .. "/me"), "session=s-42&theme=dark")
    assert.equal(K.curl("-b", jarFile, url .. "/account/me"), "scoped=yes&session=s-42&theme=dark")
    assert.equal(K.curl("-b", jarFile, "-c", jarFile, url .. "/logout"), "out")
    assert.isNil(jar(jarFile).session, "the jar dropped the cleared cookie")
    assert.equal(K.curl("-b", jarFile, url .. "/me"), "theme=dark")
  end, 20)

  it("is read by Python's http.cookies as written", function()
    local _, url = K.serve({}, function(req, res)
      res:cookie("sid", "v1", {path = "/p", domain = "example.org", maxAge = 99, httpOnly = true, secure = true,
        sameSite = "Lax"})
      res:send(200, "ok")
    end)
    local header = get(url).headers["set-cookie"][1]
    local script = [[
import sys
from http.cookies import SimpleCookie
c = SimpleCookie()
c.load(sys.stdin.read())
m = c["sid"]
print(m.value, m["path"], m["domain"], m["max-age"], bool(m["httponly"]), bool(m["secure"]), m["samesite"], sep="|")
]]
    local r = K.run(K.python, {"-c", script}, {input = header})
    assert.equal(r.out, "v1|/p|example.org|99|True|True|Lax\n", r.err)
  end)
end)

describe("signed cookies", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  local secret = "correct horse battery staple"

  local function app()
    local r = http.router()
    r:get("/set", function(req, res)
      res:cookie("user", "ann", {signed = true, httpOnly = true})
      res:cookie("plain", "p")
      res:send(200, "set")
    end)
    r:get("/read", function(req, res)
      local sc = req.signedCookies
      res:send(200, tostring(sc.user) .. "|" .. tostring(req:cookie("user", {signed = true})) .. "|"
        .. tostring(sc.plain) .. "|" .. tostring(req.cookies.plain))
    end)
    return r
  end

  it("signs with HMAC-SHA256 (as Python's hmac computes it) and checks the signature", function()
    local _, url = K.serve({cookieSecret = secret}, app())
    local r = get(url .. "/set")
    local value = r.headers["set-cookie"][1]:match("^user=([^;]*)")
    assert.match(value, "^s:ann%.")
    local script = [[
import hmac, hashlib, base64, sys
key, value = sys.argv[1], sys.argv[2]
mac = hmac.new(key.encode(), value.encode(), hashlib.sha256).digest()
print("s:" + value + "." + base64.urlsafe_b64encode(mac).decode().rstrip("="))
]]
    local py = K.run(K.python, {"-c", script, secret, "ann"})
    assert.equal(value, py.out:gsub("\n$", ""), py.err)

    assert.equal(get(url .. "/read", {cookie = "user=" .. value .. "; plain=p"}).body, "ann|ann|nil|p")
    local forged = value:gsub("^s:ann", "s:bob")
    assert.equal(get(url .. "/read", {cookie = "user=" .. forged}).body, "nil|nil|nil|nil", "another value")
    local badMac = value:sub(1, -2) .. (value:sub(-1) == "A" and "B" or "A")
    assert.equal(get(url .. "/read", {cookie = "user=" .. badMac}).body, "nil|nil|nil|nil", "a changed MAC")
    assert.equal(get(url .. "/read", {cookie = "user=s:ann"}).body, "nil|nil|nil|nil", "no MAC")
    assert.equal(get(url .. "/read", {cookie = "user=ann"}).body, "nil|nil|nil|nil", "unsigned")
  end)

  it("round-trips through a curl jar, with the secret on the router", function()
    local dir = K.tempDir()
    local root = http.router({cookieSecret = secret})
    root:use("/", app())
    local _, url = K.serve({}, root)
    local jarFile = dir .. "/jar.txt"
    assert.equal(K.curl("-c", jarFile, url .. "/set"), "set")
    assert.equal(K.curl("-b", jarFile, url .. "/read"), "ann|ann|nil|p")
  end)

  it("needs a secret: signing raises, reading finds nothing", function()
    local msg
    local _, url = K.serve({}, function(req, res)
      local ok, err = pcall(res.cookie, res, "u", "v", {signed = true})
      msg = err
      local ok2, err2 = pcall(req.cookie, req, "u", {signed = true})
      res:send(200, tostring(ok) .. " " .. tostring(ok2) .. " " .. tostring(next(req.signedCookies)))
      msg = msg .. "\n" .. err2
    end)
    assert.equal(get(url, {cookie = "u=s:v.abc"}).body, "false false nil")
    assert.match(msg, "signed cookies need a cookieSecret")
    assert.throws(function() http.serve({port = 0, cookieSecret = 5}, function() end) end,
      "bad argument #1 to 'serve' %(cookieSecret must be a non%-empty string%)")
  end)
end)
