-- A small web application with the web-app kit: a JSON API for notes with
-- middleware (request ids, an access log, compression, CORS), cookie-based
-- sessions (a signed session id), file uploads (multipart, streamed to disk
-- and moved into place), JSON errors from one error handler, and static files.
--
--   evo examples/webapp.lua          -- runs a demo against itself and stops
--   evo examples/webapp.lua serve    -- serves on http://127.0.0.1:8080 until Ctrl-C
--
-- Try it with curl while it serves:
--   curl -c jar -d name=ann http://127.0.0.1:8080/api/login
--   curl -b jar -H 'content-type: application/json' -d '{"text":"hi"}' http://127.0.0.1:8080/api/notes
--   curl -b jar -F file=@README.md http://127.0.0.1:8080/api/files
--   curl -b jar --compressed http://127.0.0.1:8080/api/notes
--
-- See docs/webapp.md.
local http = require("http")
local json = require("json")
local crypto = require("crypto")
local fs = require("fs")

local serveForever = arg and arg[1] == "serve"
local dataDir = assert(fs.mkdtemp("/tmp/evo-webapp-"))
assert(fs.mkdir(dataDir .. "/files"))
assert(fs.writeFile(dataDir .. "/index.html", "<h1>notes</h1>\n"))

-- Sessions: a random id in a signed cookie, the data in memory.
local sessions = {}
local function session(req)
  local id = req:cookie("sid", {signed = true})
  return id and sessions[id]
end

-- An error raised with a status becomes a JSON answer (see onError below).
local function fail(status, code, message)
  error({status = status, code = code, message = message}, 0)
end

local function requireUser(req, res, next)
  local s = session(req)
  if not s then fail(401, "NotLoggedIn", "log in first: POST /api/login") end
  req.user = s.user
  next()
end

local notes, nextId = {}, 1

local api = http.router()
api:post("/login", function(req, res)
  local name = req:form().fields.name
  if type(name) ~= "string" or not name:match("^%w+$") then fail(400, "BadName", "name: letters and digits") end
  local id = crypto.randomBytes(16):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  sessions[id] = {user = name}
  res:cookie("sid", id, {signed = true, httpOnly = true, sameSite = "Lax", maxAge = 3600})
  res:json(200, {user = name})
end)
api:post("/logout", function(req, res)
  local id = req:cookie("sid", {signed = true})
  if id then sessions[id] = nil end
  res:clearCookie("sid")
  res:json(200, {ok = true})
end)
api:get("/notes", requireUser, function(req, res)
  local mine = json.array({})
  for _, n in ipairs(notes) do
    if n.user == req.user then mine[#mine + 1] = n end
  end
  res:json(200, mine)
end)
api:post("/notes", requireUser, function(req, res)
  local body = req:json({strict = true})
  if type(body) ~= "table" or type(body.text) ~= "string" then fail(422, "BadNote", 'expected {"text": "..."}') end
  local note = {id = nextId, user = req.user, text = body.text}
  nextId = nextId + 1
  notes[#notes + 1] = note
  res:json(201, note, {location = "/api/notes/" .. note.id})
end)
api:delete("/notes/:id", requireUser, function(req, res)
  for i, n in ipairs(notes) do
    if n.id == tonumber(req.params.id) and n.user == req.user then
      table.remove(notes, i)
      return res:send(204)
    end
  end
  fail(404, "NoSuchNote", "no note " .. req.params.id)
end)
api:post("/files", requireUser, function(req, res)
  local form = req:form({maxFileSize = 50 * 1024 * 1024, maxFiles = 5})
  local saved = json.array({})
  for _, f in pairs(form.files) do
    local list = f.filename and {f} or f
    for _, file in ipairs(list) do
      -- Never trust the client's file name as a path: keep a safe name.
      local name = file.filename:gsub("[^%w%.%-_]", "_"):sub(1, 100)
      assert(fs.rename(file.path, dataDir .. "/files/" .. req.user .. "-" .. name))
      saved[#saved + 1] = {name = name, size = file.size, type = file.contentType}
    end
  end
  res:json(201, {saved = saved})
end)
-- One place turns every error into JSON; bugs are logged with their traceback.
api:onError(function(err, req, res, trace)
  if type(err) ~= "table" then
    io.stderr:write(trace, "\n")
    err = {status = 500, code = "Internal", message = "internal error"}
  end
  res:json(err.status or 500, {error = err.code or "Error", message = err.message})
end)
api:notFound(function(req, res) res:json(404, {error = "NotFound", message = req.baseUrl .. req.path}) end)

local app = http.router({cookieSecret = crypto.randomBytes(32)})
local requests = 0
app:use(function(req, res, next)          -- a request id on every answer
  requests = requests + 1
  res:header("x-request-id", tostring(requests))
  next()
end)
app:use(http.compress())
app:use("/api", http.cors({origins = {"http://localhost:3000"}, credentials = true}))
app:use("/api", api)
app:use(http.static(dataDir))

local server = assert(http.serve({host = "127.0.0.1", port = serveForever and 8080 or 0,
  maxBodyBytes = 64 * 1024 * 1024, accessLog = serveForever or nil}, app))
local base = "http://127.0.0.1:" .. server.port

if serveForever then
  print("serving on " .. base .. " (data in " .. dataDir .. ")")
  return
end

-- The demo: a client with a cookie jar of one cookie.
local cookie
local function call(method, path, opts)
  opts = opts or {}
  opts.method, opts.url = method, base .. path
  opts.headers = opts.headers or {}
  if cookie then opts.headers.cookie = cookie end
  local res = assert(http.request(opts))
  local set = res.headers["set-cookie"]
  if set then cookie = set[1]:match("^([^;]*)") end
  local shown = #res.body > 100 and res.body:sub(1, 97) .. "..." or res.body
  io.write(method, " ", path, " -> ", res.status, "  ", shown, shown:sub(-1) == "\n" and "" or "\n")
  return res
end

call("GET", "/api/notes")                                               -- 401
call("POST", "/api/login", {body = "name=ann", headers = {["content-type"] = "application/x-www-form-urlencoded"}})
call("POST", "/api/notes", {json = {text = "buy milk"}})
call("POST", "/api/notes", {json = {text = ("long note "):rep(200)}})
call("POST", "/api/notes", {body = "{not json", headers = {["content-type"] = "application/json"}})  -- 400
call("GET", "/api/notes", {headers = {["accept-encoding"] = "gzip"}})      -- compressed on the wire
local boundary = "demo-boundary"
call("POST", "/api/files", {headers = {["content-type"] = "multipart/form-data; boundary=" .. boundary},
  body = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello world.txt\"\r\n"
    .. "Content-Type: text/plain\r\n\r\nhello from the demo\r\n--" .. boundary .. "--\r\n"})
call("DELETE", "/api/notes/1")
call("DELETE", "/api/notes/99")
call("GET", "/api/nothing")
call("GET", "/")
call("POST", "/api/logout")
call("GET", "/api/notes")

http.closeIdle()
server:close()
assert(fs.rm(dataDir, {recursive = true}))
