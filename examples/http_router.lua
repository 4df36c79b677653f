-- A router: routes with :params and *, a JSON-ish API, static files as the
-- fallback. The script starts the server, makes a few requests to itself,
-- prints the answers and stops.
--
--   evo examples/http_router.lua
--
-- See docs/http.md.
local http = require("http")
local fs = require("fs")

-- A directory of static files, made for the demo.
local root = assert(fs.mkdtemp("/tmp/evo-router-"))
assert(fs.writeFile(root .. "/index.html", "<h1>home</h1>\n"))

local notes, nextId = {}, 1
local json = {["content-type"] = "application/json"}

local app = http.router()
app:get("/notes", function(req, res)
  local items = {}
  for id, text in pairs(notes) do items[#items + 1] = ('{"id":%d,"text":%q}'):format(id, text) end
  res:send(200, "[" .. table.concat(items, ",") .. "]\n", json)
end)
app:post("/notes", function(req, res)
  local id = nextId
  nextId = nextId + 1
  notes[id] = req:body()
  res:send(201, ('{"id":%d}\n'):format(id), {["content-type"] = "application/json", location = "/notes/" .. id})
end)
app:get("/notes/:id", function(req, res)
  local text = notes[tonumber(req.params.id)]
  if not text then return res:send(404, "no such note\n") end
  res:send(200, text .. "\n", {["content-type"] = "text/plain; charset=utf-8"})
end)
app:delete("/notes/:id", function(req, res)
  notes[tonumber(req.params.id)] = nil
  res:send(204)
end)
app:get("/hello/*", function(req, res) res:send(200, "hello " .. req.params["*"] .. "\n") end)
app:otherwise(http.static(root))

local server = assert(http.serve({port = 0}, app))
local base = "http://127.0.0.1:" .. server.port

local function show(method, path, body)
  local res = assert(http.request({method = method, url = base .. path, body = body}))
  local extra = res.headers.allow and (" (Allow: " .. res.headers.allow .. ")") or ""
  io.write(method, " ", path, " -> ", res.status, extra, "  ", res.body, res.body:sub(-1) == "\n" and "" or "\n")
end

show("POST", "/notes", "buy milk")
show("POST", "/notes", "write docs")
show("GET", "/notes/1")
show("DELETE", "/notes/1")
show("GET", "/notes")
show("GET", "/notes/1")
show("PUT", "/notes/2")            -- the path exists, the method does not: 405
show("GET", "/hello/a/b")
show("GET", "/")                   -- the static fallback: index.html
show("GET", "/missing.txt")

http.closeIdle()
server:close()
assert(fs.rm(root, {recursive = true}))
