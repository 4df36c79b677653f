-- A real browser and the web-app kit: headless Chromium posts a form (a
-- page whose script puts a file into a file input with DataTransfer and
-- submits it as multipart/form-data: req:form() must see the fields and the
-- file as the browser sent them, and the cookie set with the page must come
-- back), and makes a cross-origin fetch that needs a CORS preflight.
-- Skipped when /usr/bin/chromium is not installed.
local W = require("webkit")
local http = require("http")
local fs = require("fs")

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>form</title></head><body>
<form id="f" method="post" action="/upload" enctype="multipart/form-data">
  <input name="title" value="From Chromium ✓">
  <textarea name="notes">line 1
line 2</textarea>
  <input type="file" name="doc" id="doc">
  <input type="file" name="none">
</form>
<script>
const bytes = new Uint8Array(300000);
for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
const dt = new DataTransfer();
dt.items.add(new File([bytes], "résumé.bin", {type: "application/x-evo"}));
document.getElementById("doc").files = dt.files;
document.getElementById("f").submit();
</script></body></html>
]]

local have = W.exists(W.chromiumPath)
local suite = have and describe or describe.skip

-- serve(handler) -> base URL; the server is closed after the test.
local servers = {}
local function serve(handler)
  local server = assert(http.serve({port = 0}, handler))
  servers[#servers + 1] = server
  return "http://127.0.0.1:" .. server.port
end

suite("the web-app kit in Chromium" .. (have and "" or " (skipped: no " .. W.chromiumPath .. ")"), function()
  afterEach(function()
    for _, s in ipairs(servers) do s:close() end
    servers = {}
  end)

  it("uploads fields and a file that req:form() reads as sent", function()
    local got
    local app = http.router()
    app:get("/", function(req, res)
      res:cookie("visited", "yes", {httpOnly = true, sameSite = "Lax"})
      res:send(200, PAGE, {["content-type"] = "text/html; charset=utf-8"})
    end)
    app:post("/upload", function(req, res)
      local form = req:form()
      local f = form.files.doc
      got = {fields = form.fields, filename = f.filename, contentType = f.contentType, size = f.size,
        data = fs.readFile(f.path), cookie = req.cookies.visited, none = form.files.none}
      res:send(200, "<!doctype html><p id='done'>received " .. f.size .. "</p>",
        {["content-type"] = "text/html; charset=utf-8"})
    end)
    local server = assert(http.serve({port = 0}, app))
    local dom, run = W.chromium("http://127.0.0.1:" .. server.port .. "/", 20000)
    server:close()
    assert.match(dom, "received 300000", "the browser showed the answer: " .. run.err:sub(1, 500))
    assert.equal(got.fields, {title = "From Chromium \u{2713}", notes = "line 1\r\nline 2"})
    assert.equal({got.filename, got.contentType, got.size}, {"r\u{e9}sum\u{e9}.bin", "application/x-evo", 300000})
    local expect = {}
    for i = 0, 299999 do expect[#expect + 1] = string.char((i * 7) % 256) end
    assert.truthy(got.data == table.concat(expect), "the file arrived byte for byte")
    assert.equal(got.cookie, "yes", "the cookie set with the page came back")
    assert.isNil(got.none, "an empty file input gives no file")
  end, 90)

  it("lets headless Chromium make a cross-origin PUT after a preflight", function()
    local seen = {}
    local api = http.router()
    api:use(function(r, res, nxt)
      seen[#seen + 1] = r.method .. " " .. (r.headers.origin or "-")
      nxt()
    end)
    api:use(http.cors({origins = function(o) return o:match("^http://127%.0%.0%.1:") ~= nil end,
      headers = {"Content-Type", "X-Token"}, methods = {"GET", "PUT"}}))
    api:put("/thing", function(r, res) res:send(200, "stored " .. r:body(), {["content-type"] = "text/plain"}) end)
    local apiUrl = serve(api)
    local page = [[<!doctype html><meta charset="utf-8"><p id="out">waiting</p><script>
fetch("API/thing", {method: "PUT", headers: {"Content-Type": "application/json", "X-Token": "t"}, body: '{"a":1}'})
  .then(r => r.text()).then(t => { document.getElementById("out").textContent = "ok:" + t; })
  .catch(e => { document.getElementById("out").textContent = "failed:" + e; });
</script>]]
    local siteUrl = serve(function(r, res)
      res:send(200, (page:gsub("API", apiUrl)), {["content-type"] = "text/html; charset=utf-8"})
    end)
    local dom = W.chromium(siteUrl .. "/", 10000)
    assert.match(dom, 'ok:stored {"a":1}')
    assert.equal(seen[1], "OPTIONS " .. siteUrl, "a preflight came first")
    assert.equal(seen[2], "PUT " .. siteUrl)
  end, 90)
end)
