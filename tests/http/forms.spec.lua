-- req:form(): application/x-www-form-urlencoded and multipart/form-data
-- (RFC 7578) from curl (-d, -F), files streamed to a temporary directory
-- (removed after the request unless moved) or to opts.onFile, limits
-- (413), malformed bodies (400), other types (415), and a 200 MB upload
-- that never sits in memory.
local K = require("httpkit")
local http = require("http")
local fs = require("fs")

-- A handler that answers with what req:form() gave (files' contents read
-- back from their paths), as Lua source.
local function formEcho(opts)
  return function(req, res)
    local form = req:form(opts)
    local files = {}
    for name, f in pairs(form.files) do
      local list = f.filename and {f} or f
      files[name] = {}
      for i, x in ipairs(list) do
        files[name][i] = {filename = x.filename, contentType = x.contentType, size = x.size,
          data = fs.readFile(x.path), inTmp = x.path:match("^/tmp/evo%-upload%-") ~= nil}
      end
    end
    res:send(200, require("pretty").format({fields = form.fields, files = files}))
  end
end

local function load(s)
  local fn = loadstring("return " .. s)
  assert(fn, "not a Lua value: " .. s)
  return fn()
end

describe("req:form", function()
  afterEach(function()
    http.closeIdle()
    K.cleanup()
  end)

  it("reads urlencoded forms (curl -d)", function()
    local _, url = K.serve({}, formEcho())
    local out, err, code = K.curl("-d", "name=J%C3%B6rg+M&tag=a&tag=b&empty=&flag", url .. "/")
    assert.equal(code, 0, err)
    assert.equal(load(out), {fields = {name = "J\195\182rg M", tag = {"a", "b"}, empty = "", flag = ""}, files = {}})
  end)

  it("reads multipart fields and files (curl -F), byte for byte", function()
    local dir = K.tempDir()
    -- Every byte value, CRLFs and things that look like boundaries.
    local binary = K.bytes(70000) .. "\r\n--\r\n--------------------------x\r\n" .. K.bytes(3000, 3)
    K.writeFile(dir .. "/photo.bin", binary)
    K.writeFile(dir .. "/notes.txt", "line 1\r\nline 2\n")
    K.writeFile(dir .. "/empty.txt", "")
    local _, url = K.serve({}, formEcho())
    local out, err, code = K.curl(
      "-F", "title=Holiday \u{2600}",
      "-F", "multi=one", "-F", "multi=two",
      "-F", "photo=@" .. dir .. "/photo.bin;type=image/x-test",
      "-F", "docs=@" .. dir .. "/notes.txt",
      "-F", "docs=@" .. dir .. "/empty.txt;filename=renamed.txt",
      url .. "/")
    assert.equal(code, 0, err)
    local got = load(out)
    assert.equal(got.fields, {title = "Holiday \u{2600}", multi = {"one", "two"}})
    local photo = got.files.photo[1]
    assert.equal(photo.filename, "photo.bin")
    assert.equal(photo.contentType, "image/x-test")
    assert.equal(photo.size, #binary)
    assert.truthy(photo.data == binary, "the file arrived byte for byte")
    assert.truthy(photo.inTmp)
    assert.equal(#got.files.docs, 2)
    assert.equal(got.files.docs[1].data, "line 1\r\nline 2\n")
    assert.equal(got.files.docs[1].contentType, "text/plain")
    assert.equal({got.files.docs[2].filename, got.files.docs[2].size, got.files.docs[2].data}, {"renamed.txt", 0, ""})
  end, 20)

  it("removes the temporary files when the request ends, but not those moved away", function()
    local dir = K.tempDir()
    local paths = {}
    local _, url = K.serve({}, function(req, res)
      local form = req:form()
      paths.kept, paths.left = form.files.keep.path, form.files.drop.path
      assert(fs.rename(paths.kept, dir .. "/kept.txt"))
      res:send(200, "ok")
    end)
    assert.equal(K.curl("-F", "keep=@/etc/hostname", "-F", "drop=@/etc/hostname", url), "ok")
    assert.truthy(K.waitFor(function() return not fs.exists(paths.left) end), "the upload left behind is removed")
    assert.falsy(fs.exists(paths.left:match("^(.*)/")), "and its directory")
    assert.equal(fs.readFile(dir .. "/kept.txt"), fs.readFile("/etc/hostname"))
  end)

  it("streams files to opts.onFile instead of the disk", function()
    local seen = {}
    local data = K.bytes(500000, 11)
    local _, url = K.serve({}, function(req, res)
      local form = req:form({onFile = function(part)
        local chunks = {}
        while true do
          local chunk = part.read()
          if not chunk then break end
          chunks[#chunks + 1] = chunk
        end
        local all = table.concat(chunks)
        seen[#seen + 1] = {part.name, part.filename, part.contentType, #all, #chunks > 1, all == data}
      end})
      res:send(200, form.fields.note .. " " .. tostring(next(form.files)) .. " " .. tostring(rawget(req, "_uploadDir")))
    end)
    local dir = K.tempDir()
    K.writeFile(dir .. "/big.bin", data)
    assert.equal(K.curl("-F", "note=hi", "-F", "up=@" .. dir .. "/big.bin", url), "hi nil nil")
    assert.equal(seen, {{"up", "big.bin", "application/octet-stream", 500000, true, true}})
  end)

  it("answers 413 past its limits, and gives FormTooLarge to a handler that catches it", function()
    local caught = {}
    local app = http.router()
    app:post("/file", formEcho({maxFileSize = 1000}))
    app:post("/files", formEcho({maxFiles = 2}))
    app:post("/fields", formEcho({maxFields = 3}))
    app:post("/fieldsize", formEcho({maxFieldSize = 10}))
    app:post("/url", formEcho({maxFields = 2}))
    app:post("/caught", function(req, res)
      local ok, err = pcall(req.form, req, {maxFileSize = 10})
      caught = {ok, err.code, err.status, err.message}
      res:send(200, "caught")
    end)
    local _, url = K.serve({}, app)
    local dir = K.tempDir()
    K.writeFile(dir .. "/big", ("x"):rep(1001))
    K.writeFile(dir .. "/small", "x")
    local function status(path, ...)
      local out, err, code = K.curl("-o", "/dev/null", "-w", "%{http_code}", url .. path, ...)
      assert.equal(code, 0, err)
      return tonumber(out)
    end
    assert.equal(status("/file", "-F", "f=@" .. dir .. "/big"), 413)
    assert.equal(status("/file", "-F", "f=@" .. dir .. "/small"), 200)
    assert.equal(status("/files", "-F", "a=@" .. dir .. "/small", "-F", "b=@" .. dir .. "/small",
      "-F", "c=@" .. dir .. "/small"), 413)
    assert.equal(status("/fields", "-F", "a=1", "-F", "b=2", "-F", "c=3", "-F", "d=4"), 413)
    assert.equal(status("/fieldsize", "-F", "a=12345678901"), 413)
    assert.equal(status("/fieldsize", "-F", "a=1234567890"), 200)
    assert.equal(status("/url", "-d", "a=1&b=2&c=3"), 413)
    assert.equal(K.curl(url .. "/caught", "-F", "f=@" .. dir .. "/big"), "caught")
    assert.equal(caught, {false, "FormTooLarge", 413, "file 'f' is larger than 10 bytes"})
  end, 20)

  it("answers 400 for malformed bodies and 415 for other types", function()
    local errs = {}
    local _, url = K.serve({}, function(req, res)
      local ok, err = pcall(req.form, req)
      errs[#errs + 1] = err.code
      res:send(err.status, err.message)
    end)
    local function post(ctype, body)
      local r = assert(http.request({method = "POST", url = url, body = body, headers = {["content-type"] = ctype}}))
      return r.status, r.body
    end
    assert.equal(post("multipart/form-data", "x"), 400)
    assert.equal(post("multipart/form-data; boundary=" .. ("b"):rep(71), "x"), 400)
    local s, b = post("multipart/form-data; boundary=XX", '--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nunfinished')
    assert.equal(s, 400)
    assert.match(b, "the body ended before the closing boundary")
    s, b = post("multipart/form-data; boundary=XX", "--XX\r\nno colon here\r\n\r\nx\r\n--XX--")
    assert.equal({s, b}, {400, "malformed multipart body: a malformed header line in a part"})
    s, b = post("multipart/form-data; boundary=XX", "--XX\r\n" .. ("X-Long: " .. ("y"):rep(100) .. "\r\n"):rep(200) .. "\r\nx\r\n--XX--")
    assert.equal({s, b}, {400, "malformed multipart body: a part's headers are too large"})
    s = post("application/json", "{}")
    assert.equal(s, 415)
    assert.equal(errs, {"BadForm", "BadForm", "BadForm", "BadForm", "BadForm", "UnsupportedMediaType"})
  end)

  it("accepts quoted boundaries, a preamble, padding and parts without a content type", function()
    local _, url = K.serve({}, formEcho())
    local body = "this is a preamble\r\n--a'b(c)\t \r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n"
      .. "--a'b(c)\r\ncontent-disposition: form-data; name=\"f\"; filename=\"C:\\\\dir\\\\\\\"q\\\".txt\"; filename*=UTF-8''%E2%82%AC.txt\r\n\r\nF\r\n"
      .. "--a'b(c)--\r\nepilogue"
    local r = assert(http.request({method = "POST", url = url, body = body,
      headers = {["content-type"] = "multipart/form-data; boundary=\"a'b(c)\""}}))
    assert.equal(r.status, 200, r.body)
    local got = load(r.body)
    assert.equal(got.fields, {x = "1"})
    assert.equal(got.files.f[1].filename, "\226\130\172.txt", "filename* wins")
    assert.equal(got.files.f[1].contentType, "application/octet-stream")
  end)

  it("never holds a 200 MB upload in memory", function()
    local dir = K.tempDir()
    local big = dir .. "/big.bin"
    local r = K.run("dd", {"if=/dev/urandom", "of=" .. big, "bs=1M", "count=200", "status=none"}, {timeout = 60})
    assert.equal(r.code, 0, r.err)
    local script = [[
      local http, fs = require("http"), require("fs")
      local dest = arg[1]
      local function rss(field) return tonumber(fs.readFile("/proc/self/status"):match(field .. ":%s*(%d+)")) / 1024 end
      local server
      server = assert(http.serve({port = 0, maxBodyBytes = 400 * 1024 * 1024}, function(req, res)
        local form = req:form()
        assert(fs.rename(form.files.big.path, dest))
        res:send(200, string.format("%d %.1f", form.files.big.size, rss("VmHWM")))
        server:close()
      end))
      print(server.port, string.format("%.1f", rss("VmHWM")))
      io.stdout:flush()
    ]]
    local process, task = require("process"), require("task")
    K.writeFile(dir .. "/server.lua", script)
    local child = assert(process.spawn(K.evo, {dir .. "/server.lua", dir .. "/received.bin"}, {}))
    local line = child.stdout:readLine()
    local port, before = line:match("^(%d+)%s+([%d.]+)$")
    assert.truthy(port, line)
    local out, err, code = K.curl("--max-time", "120", "-F", "big=@" .. big, "http://127.0.0.1:" .. port .. "/")
    child:wait()
    assert.equal(code, 0, err)
    local size, peak = out:match("^(%d+) ([%d.]+)$")
    assert.equal(tonumber(size), 200 * 1024 * 1024, out)
    K.assertGrowth(tonumber(peak) - tonumber(before), 40, "peak RSS during a 200 MB upload")
    assert.equal(K.run("cmp", {big, dir .. "/received.bin"}).code, 0, "the file arrived intact")
  end, 120)

  it("raises bad argument for bad options", function()
    local msgs = {}
    local _, url = K.serve({}, function(req, res)
      msgs[1] = select(2, pcall(req.form, req, 5))
      msgs[2] = select(2, pcall(req.form, req, {maxFiles = "many"}))
      msgs[3] = select(2, pcall(req.form, req, {onFile = true}))
      res:send(200, "ok")
    end)
    K.curl("-d", "a=1", url)
    assert.match(msgs[1], "bad argument #1 to 'form' %(table expected, got number%)")
    assert.match(msgs[2], "bad argument #1 to 'form' %(maxFiles must be a number >= 0%)")
    assert.match(msgs[3], "bad argument #1 to 'form' %(onFile must be a function%)")
  end)
end)
