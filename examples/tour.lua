-- A tour of Evo: `make run` runs this script. It shows the runtime end to end
-- (events, native emitters, luv on the shared loop, worker threads, child
-- processes) and exits when nothing is left to do.
local uv = require("uv")
local events = require("events")
local Timer = require("Timer")
local pretty = require("pretty")
local core = require("evo.core")

local function section(title) print(("\n== %s"):format(title)) end

section("1. The runtime")
local v = core.versions()
print(("Evo %s on %s, libuv %s (luv %s), llhttp %s, %s"):format(
  v.evo, v.luajit, v.libuv, v.luv, v.llhttp, v.openssl))
print("the main chunk runs as a coroutine:", coroutine.running() ~= nil)

section("2. Events: CAPITALISED names, handler methods, (event, payload)")
local Kettle = events.class("Kettle", {"WATER_BOILED"})
function Kettle:init(name) self.name = name end
function Kettle:boil()
  self:emit("WATER_BOILED", {kettle = self.name, celsius = 100})
end
local kettle = Kettle("blue kettle")
function kettle:WATER_BOILED(event, payload)
  print(event, pretty.format(payload))
end
kettle:boil()
Kettle("silent kettle"):boil()   -- default handler: prints only with --debug

section("3. A native emitter: Timer reports TIMER_FIRED from its libuv callback")
local ticker = Timer()
function ticker:TIMER_FIRED(event, payload)
  print(event, "count = " .. payload.count)
  if payload.count == 3 then self:close() end
end
ticker:start(0.01, 0.01)

section("4. luv shares the loop: a TCP echo server and client in one script")
local server = uv.new_tcp()
server:bind("127.0.0.1", 0)
server:listen(16, function()
  local conn = uv.new_tcp()
  server:accept(conn)
  conn:read_start(function(_, chunk)
    if chunk then conn:write(chunk:upper()) else conn:close(); server:close() end
  end)
end)
local client = uv.new_tcp()
client:connect("127.0.0.1", server:getsockname().port, function()
  client:read_start(function(_, chunk)
    if chunk then print("echo server replied:", chunk); client:close() end
  end)
  client:write("hello from evo")
end)

section("5. CPU work on another thread (uv.new_work), a child process (uv.spawn)")
local work = uv.new_work(function(n)
  local sum = 0
  for i = 1, n do sum = sum + i end
  return sum
end, function(sum) print("sum of 1..1e6 computed on a worker thread:", sum) end)
work:queue(1000000)

local stdout = uv.new_pipe(false)
local child
child = uv.spawn("echo", {args = {"hello from a child process"}, stdio = {nil, stdout, nil}}, function(code)
  print("child exited with", code)
  child:close()
end)
stdout:read_start(function(_, data)
  if data then io.write("child says: ", data) else stdout:close() end
end)

section("6. Colourless concurrency: straight-line code, tasks, cancellation")
local task, fs, net = require("task"), require("fs"), require("net")
local dir = assert(fs.mkdtemp("/tmp/evo-tour-"))
local a = task.async(fs.writeFile, dir .. "/a.txt", "file A")   -- may run concurrently
local b = task.async(fs.writeFile, dir .. "/b.txt", "file B")
a:await(); b:await()
print("wrote and read back:", fs.readFile(dir .. "/a.txt"), fs.readFile(dir .. "/b.txt"))
fs.rm(dir, {recursive = true})
local echo = assert(net.listen({port = 0}, function(conn)         -- a task per connection
  conn:write("echo: ", conn:readLine(), "\n")
end))
local conn = assert(net.connect({host = "127.0.0.1", port = echo.port}))
conn:write("hi from a task\n")
print(conn:readLine())
conn:close(); echo:close()
local sleeper = task.concurrent(function() task.sleep(60) end)
print("cancelled a 60 s sleep:", select(2, sleeper:cancel()).code)
print("computed on the thread pool:", task.work(function(n) local s = 0 for i = 1, n do s = s + i end return s end, 1000))

section("7. HTTP and WebSockets: a native server engine, tasks per request, events")
local http, ws = require("http"), require("ws")
local router = http.router()
router:get("/hello/:name", function(req, res)
  res:send(200, "hello " .. req.params.name .. "\n", {["content-type"] = "text/plain"})
end)
router:get("/chat", function(req, res)
  local c = assert(ws.accept(req, res))
  local msg = c:receive()
  c:send("echo: " .. msg)
  c:close()
end)
local web = assert(http.serve({port = 0}, router))
local base = "http://127.0.0.1:" .. web.port
local r = assert(http.get(base .. "/hello/evo"))
io.write("GET /hello/evo -> ", r.status, " ", r.body)
print("GET /nope ->", http.get(base .. "/nope").status)
local sock = assert(ws.connect("ws://127.0.0.1:" .. web.port .. "/chat"))
sock:send("over a WebSocket")
print("WebSocket:", (sock:receive()))
sock:close()
local HttpServer = require("HttpServer")
local evented = HttpServer()
function evented:HTTP_REQUEST_FINISHED(event, p)                    -- Evo's event style
  self:WriteStatus(p.requestID, "200 OK")
  self:SendResponse(p.requestID, event .. " " .. p.method .. " " .. p.path)
end
evented:StartListening(0)
print("HttpServer answered:", http.get("http://127.0.0.1:" .. evented.port .. "/events").body)
evented:StopListening()
http.closeIdle()
web:close()

section("8. Batteries: json, crypto, uuid, path, url, zlib, and a JSON API with middleware")
local json, crypto, uuid = require("json"), require("crypto"), require("uuid")
local path, url, zlib = require("path"), require("url"), require("zlib")
print(json.encode({ok = true, list = json.array({}), big = json.decode("12345678901234567890")}, {sortKeys = true}))
print("sha256('abc') =", crypto.hash("sha256", "abc"):sub(1, 16) .. "...", " uuid v7:", uuid.v7())
print(path.join("/srv", "www", "../app", "index.html"), url.parse("https://[::1]:8443/a b?x=1#f").path)
local packed = zlib.gzip(("evo "):rep(1000))
print(("gzip: 4000 bytes -> %d, and back: %d"):format(#packed, #zlib.gunzip(packed)))
local api = http.router()
api:use(function(req, res, nextLayer)                                 -- middleware runs in order
  res:header("x-served-by", "evo")
  nextLayer()
end)
api:post("/echo", function(req, res) res:json(200, {youSent = req:json()}) end)
local app = assert(http.serve({port = 0}, api))
local reply = assert(http.request({method = "POST", url = "http://127.0.0.1:" .. app.port .. "/echo",
                                   json = {hello = "world"}}))
print("POST /echo ->", reply.status, reply.headers["x-served-by"], reply.body)
http.closeIdle()
app:close()

section("9. Luvit-style, the main chunk waits while all of the above runs on one loop")
local co = coroutine.running()
local wait = uv.new_timer()
wait:start(50, 0, function() wait:close(); coroutine.resume(co) end)
coroutine.yield()
print("\nresumed after 50 ms; the loop exits once every handle is closed. Bye!")
