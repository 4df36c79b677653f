-- http.static(dir): types, validators, conditional requests, ranges,
-- directories, and nothing served from outside dir.
local K = require("httpkit")
local http = require("http")
local fs = require("fs")

local SECRET = "TOP-SECRET-CONTENT-42"

local files = {
  ["index.html"] = "<h1>home</h1>\n",
  ["style.css"] = "body { color: red }\n",
  ["app.js"] = "console.log(1)\n",
  ["data.json"] = '{"a": 1}\n',
  ["pic.png"] = "\137PNG\r\n\26\n" .. K.bytes(500, 11),
  ["notes.txt"] = "0123456789abcdefghijklmnopqrstuvwxyz",
  ["blob.xyz"] = "unknown type",
  ["Upper.TXT"] = "upper-case extension",
  ["sub/index.html"] = "<p>sub index</p>",
  ["sub/page.html"] = "<p>sub page</p>",
  ["sub/deeper/x.txt"] = "deep",
  ["noindex/file.txt"] = "no index here",
  ["with space.txt"] = "spaced name",
}

local base, root, server, url

-- get(path [, curl args...]) -> the response parsed (curl --path-as-is, so
-- "../" reaches the server as written)
local function get(path, ...)
  local args = {"-i", "--raw", "--path-as-is", ...}
  args[#args + 1] = url .. path
  local out, err, code = K.curl(unpack(args))
  assert(code == 0, err)
  local list = K.parse(out)
  return list[#list], out
end

-- raw(path) -> the response to a request line with this exact target
local function raw(target, method)
  local rep = K.raw(server.port, (method or "GET") .. " " .. target .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  return K.parse1(rep.data, {head = method == "HEAD"}), rep.data
end

describe("http.static", function()
  afterEach(K.cleanup)
  before(function()
    base = K.tempDirShared()
    root = base .. "/public"
    assert(fs.mkdir(root .. "/sub/deeper", {recursive = true}))
    assert(fs.mkdir(root .. "/noindex"))
    for name, data in pairs(files) do K.writeFile(root .. "/" .. name, data) end
    K.writeFile(base .. "/secret.txt", SECRET)
    K.writeFile(base .. "/public-secret.txt", SECRET)  -- shares the root's name as a prefix
    assert(fs.symlink(base .. "/secret.txt", root .. "/link-out.txt"))
    assert(fs.symlink(base, root .. "/dir-out"))
    assert(fs.symlink(root .. "/notes.txt", root .. "/link-in.txt"))
    server, url = K.serveShared({}, http.static(root))
  end)
  after(function()
    if server then server:close() end
    K.rmrf(base)
  end)

  it("serves files with their Content-Type by extension, byte for byte", function()
    local types = {
      ["index.html"] = "text/html; charset=utf-8", ["style.css"] = "text/css; charset=utf-8",
      ["app.js"] = "text/javascript; charset=utf-8", ["data.json"] = "application/json",
      ["pic.png"] = "image/png", ["notes.txt"] = "text/plain; charset=utf-8",
      ["blob.xyz"] = "application/octet-stream", ["Upper.TXT"] = "text/plain; charset=utf-8",
    }
    for name, ctype in pairs(types) do
      local r = get("/" .. name)
      assert.equal(r.status, 200, name)
      assert.equal(r.headers["content-type"], ctype, name)
      assert.equal(r.headers["content-length"], tostring(#files[name]), name)
      assert.truthy(r.body == files[name], name .. " byte for byte")
    end
    local r = get("/with%20space.txt")
    assert.equal(r.body, "spaced name")
  end, 20)

  it("sends ETag and Last-Modified, and 304 for If-None-Match and If-Modified-Since", function()
    local r = get("/notes.txt")
    local etag, lm = r.headers.etag, r.headers["last-modified"]
    assert.type(etag, "string")
    assert.match(etag, '^W?/?"[^"]+"$')
    assert.match(lm, K.datePattern)
    local st = fs.stat(root .. "/notes.txt")
    assert.equal(lm, os.date("!%a, %d %b %Y %H:%M:%S GMT", st.mtime.sec))
    local nm = get("/notes.txt", "-H", "If-None-Match: " .. etag)
    assert.equal(nm.status, 304)
    assert.equal(nm.body, "")
    assert.equal(nm.headers.etag, etag)
    assert.equal(get("/notes.txt", "-H", "If-None-Match: \"other\", " .. etag).status, 304)
    assert.equal(get("/notes.txt", "-H", "If-None-Match: *").status, 304)
    assert.equal(get("/notes.txt", "-H", "If-None-Match: \"nope\"").status, 200)
    assert.equal(get("/notes.txt", "-H", "If-Modified-Since: " .. lm).status, 304)
    assert.equal(get("/style.css", "-H", "If-None-Match: " .. etag).status, 200, "another file's ETag")
  end, 20)

  it("compares If-None-Match weakly, through a list of tags (RFC 9110 13.1.2) (issue 8 item 41)", function()
    local etag = get("/notes.txt").headers.etag
    local opaque = etag:gsub("^W/", "")
    assert.equal(get("/notes.txt", "-H", "If-None-Match: " .. opaque).status, 304, "the strong form of the weak tag")
    assert.equal(get("/notes.txt", "-H", "If-None-Match: W/\"a,b\", " .. opaque .. " ,W/\"z\"").status, 304,
      "in a list, after a tag with a comma inside")
    assert.equal(get("/notes.txt", "-H", "If-None-Match: \"x\",\t" .. etag).status, 304, "a tab after the comma")
    local inner = opaque:sub(2, -2)
    -- no substring matches: only a whole tag counts
    assert.equal(get("/notes.txt", "-H", "If-None-Match: \"" .. inner .. "0\"").status, 200, "a longer tag")
    assert.equal(get("/notes.txt", "-H", "If-None-Match: \"x" .. inner .. "\"").status, 200, "a tag ending like ours")
    assert.equal(get("/notes.txt", "-H", "If-None-Match: " .. inner).status, 200, "an unquoted tag is no tag")
  end, 20)

  it("changes the ETag when the file changes", function()
    K.writeFile(root .. "/changing.txt", "version one")
    local before = get("/changing.txt").headers.etag
    K.writeFile(root .. "/changing.txt", "version two, longer")
    local after = get("/changing.txt")
    assert.notEqual(after.headers.etag, before)
    assert.equal(after.body, "version two, longer")
    assert.equal(get("/changing.txt", "-H", "If-None-Match: " .. before).status, 200)
  end, 15)

  it("answers byte ranges with 206 and the exact bytes", function()
    local data = files["notes.txt"]
    local cases = {
      {"bytes=2-5", 2, 5}, {"bytes=-5", #data - 5, #data - 1}, {"bytes=30-", 30, #data - 1},
      {"bytes=0-0", 0, 0}, {"bytes=10-1000", 10, #data - 1}, {"bytes=-1000", 0, #data - 1},
    }
    for _, c in ipairs(cases) do
      local r = get("/notes.txt", "-H", "Range: " .. c[1])
      assert.equal(r.status, 206, c[1])
      assert.equal(r.headers["content-range"], ("bytes %d-%d/%d"):format(c[2], c[3], #data), c[1])
      assert.equal(r.headers["content-length"], tostring(c[3] - c[2] + 1), c[1])
      assert.equal(r.body, data:sub(c[2] + 1, c[3] + 1), c[1])
    end
    assert.equal(get("/notes.txt").headers["accept-ranges"], "bytes")
  end, 20)

  it("answers 416 with Content-Range for unsatisfiable ranges", function()
    local size = #files["notes.txt"]
    for _, range in ipairs({"bytes=" .. size .. "-", "bytes=1000-2000", "bytes=-0", "bytes=9-3"}) do
      local r = get("/notes.txt", "-H", "Range: " .. range)
      assert.equal(r.status, 416, range)
      assert.equal(r.headers["content-range"], "bytes */" .. size, range)
    end
  end, 15)

  it("serves a range of a large file exactly", function()
    local big = K.bytes(1024 * 1024, 12)
    K.writeFile(root .. "/big.bin", big)
    local r = get("/big.bin", "-H", "Range: bytes=100000-699999")
    assert.equal(r.status, 206)
    assert.truthy(r.body == big:sub(100001, 700000), "600000 bytes from 100000")
    r = get("/big.bin")
    assert.truthy(r.body == big, "the whole MiB")
  end, 15)

  it("serves index.html for directories and redirects a directory without its slash", function()
    local r = get("/")
    assert.equal(r.status, 200)
    assert.equal(r.body, files["index.html"])
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8")
    assert.equal(get("/sub/").body, files["sub/index.html"])
    r = get("/sub")
    assert.equal(r.status, 301)
    assert.equal(r.headers.location, "/sub/")
    r = get("/sub/deeper")
    assert.equal(r.status, 301)
    assert.equal(r.headers.location, "/sub/deeper/")
    assert.equal(get("/sub/deeper/").status, 404, "a directory without index.html")
    assert.equal(get("/noindex/").status, 404)
    assert.equal(get("/noindex/file.txt").body, "no index here")
  end, 15)

  it("never redirects a directory to another host (//host/.. paths)", function()
    for _, t in ipairs({"//evil.example/%2e%2e/sub", "//evil.example/../sub", "///evil.example/%2e%2e/sub"}) do
      local r = raw(t)
      if r.status == 301 or r.status == 302 or r.status == 308 then
        local loc = r.headers.location or ""
        assert.falsy(loc:find("^//") or loc:find("^/\\") or loc:find("://"),
          t .. " redirects off-site: Location: " .. loc)
      else
        assert.equal(r.status, 404, t)
      end
    end
  end, 15)

  it("gives the whole file for several ranges, or an If-Range that no longer matches", function()
    local data = files["notes.txt"]
    local r = get("/notes.txt", "-H", "Range: bytes=0-1,5-6")
    assert.equal(r.status, 200)
    assert.equal(r.body, data)
    local etag = r.headers.etag
    r = get("/notes.txt", "-H", "Range: bytes=0-1", "-H", "If-Range: " .. etag)
    assert.equal(r.status, 206)
    assert.equal(r.body, "01")
    r = get("/notes.txt", "-H", "Range: bytes=0-1", "-H", 'If-Range: W/"0-0"')
    assert.equal(r.status, 200)
    assert.equal(r.body, data)
  end, 15)

  it("honours the index and maxAge options", function()
    local s2, url2 = K.serve({}, http.static(root, {index = false, maxAge = 60}))
    local out = K.curl("-i", url2 .. "/notes.txt")
    assert.equal(K.parse1(out).headers["cache-control"], "max-age=60")
    out = K.curl("-i", url2 .. "/sub/")
    assert.equal(K.parse1(out).status, 404, "no index file with index = false")
    s2:close()
    local s3, url3 = K.serve({}, http.static(root, {index = "page.html"}))
    assert.equal(K.curl(url3 .. "/sub/"), "<p>sub page</p>")
    s3:close()
  end, 15)

  it("answers 404 for a missing file", function()
    local r = get("/missing.txt")
    assert.equal(r.status, 404)
    assert.equal(get("/sub/missing/").status, 404)
  end, 15)

  it("answers 404 for a file named with a trailing slash, as if it were a directory (issue 8 item 41)", function()
    assert.equal(get("/notes.txt").status, 200)
    local r = get("/notes.txt/")
    assert.equal(r.status, 404)
    assert.falsy(r.body:find("0123456789", 1, true))
    assert.equal(get("/sub/page.html/").status, 404)
  end, 15)

  it("serves nothing outside dir through .. and encoded dots (404)", function()
    local targets = {
      "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
      "/%2e%2e%2fsecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/..%5csecret.txt",
      "/%2e%2e%5csecret.txt", "/../public-secret.txt", "/./../secret.txt", "/sub/..%2f..%2fsecret.txt",
      "/notes.txt%00.html", "//../secret.txt",
    }
    for _, t in ipairs(targets) do
      local r, bytes = raw(t)
      assert.equal(r.status, 404, t)
      assert.falsy(bytes:find(SECRET, 1, true), t .. " leaked the secret")
      local c, out = get(t)
      assert.equal(c.status, 404, "curl " .. t)
      assert.falsy(out:find(SECRET, 1, true))
    end
  end, 30)

  it("stays inside dir when .. is resolved within it", function()
    local r = raw("/sub/../notes.txt")
    assert.truthy(r.status == 200 or r.status == 404)
    if r.status == 200 then assert.equal(r.body, files["notes.txt"]) end
  end, 15)

  it("answers 404 for symlinks pointing outside dir, serves one pointing inside", function()
    local r, bytes = raw("/link-out.txt")
    assert.equal(r.status, 404)
    assert.falsy(bytes:find(SECRET, 1, true))
    r, bytes = raw("/dir-out/secret.txt")
    assert.equal(r.status, 404)
    assert.falsy(bytes:find(SECRET, 1, true))
    r = raw("/link-in.txt")
    assert.equal(r.status, 200)
    assert.equal(r.body, files["notes.txt"])
  end, 15)

  it("answers 405 with Allow: GET, HEAD for other methods", function()
    for _, m in ipairs({"POST", "PUT", "DELETE"}) do
      local r = get("/notes.txt", "-X", m)
      assert.equal(r.status, 405, m)
      assert.equal(r.headers.allow, "GET, HEAD")
    end
  end, 15)

  it("answers HEAD with the headers of GET and no body", function()
    local r, bytes = raw("/notes.txt", "HEAD")
    assert.equal(r.status, 200)
    assert.equal(r.headers["content-length"], tostring(#files["notes.txt"]))
    assert.equal(r.headers["content-type"], "text/plain; charset=utf-8")
    assert.equal(bytes:sub(-4), "\r\n\r\n", "nothing after the head")
  end, 15)
end)
