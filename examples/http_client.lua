-- The HTTP client: a request, a POST, a redirect, a gzip body, a streamed
-- body, connection reuse and errors, against a small server in the same
-- script, which then stops.
--
--   evo examples/http_client.lua
--
-- See docs/http.md, "The client".
local http = require("http")
local task = require("task")

local gzipped = "\31\139\8\0\0\0\0\0\0\3\203\72\205\201\201\87\72\175\202\44\0\0\25\106\210\223\10\0\0\0"  -- `printf "hello gzip" | gzip -n`

local server = assert(http.serve({port = 0}, function(req, res)
  if req.path == "/echo" then
    res:send(200, req.method .. " " .. req:body(), {["x-port"] = req.remotePort})
  elseif req.path == "/old" then
    res:send(301, "", {location = "/echo"})
  elseif req.path == "/gzip" then
    res:send(200, gzipped, {["content-encoding"] = "gzip"})
  elseif req.path == "/count" then
    for i = 1, 3 do
      res:write(i .. "\n")            -- chunked: the client reads each as it comes
      task.sleep(0.05)
    end
  elseif req.path == "/slow" then
    task.sleep(0.5)
    res:send(200, "late")
  end
end))
local base = "http://127.0.0.1:" .. server.port

local r = assert(http.request({method = "POST", url = base .. "/echo", body = "some data",
  headers = {["content-type"] = "text/plain"}}))
print(r.status, r.reason, r.body)                        --> 200 OK POST some data

local again = assert(http.get(base .. "/echo"))
print("same connection:", again.headers["x-port"] == r.headers["x-port"])   --> true (pooled)

print(http.get(base .. "/old").status)                   --> 301: redirects are not followed by default
r = assert(http.get(base .. "/old", {follow = 5}))
print(r.status, r.body, r.url)                           --> 200 GET  http://127.0.0.1:.../echo

r = assert(http.get(base .. "/gzip"))
print(r.body, r.headers["content-encoding"])             --> hello gzip  gzip

r = assert(http.get(base .. "/count", {stream = true}))  -- returns once the headers are in
while true do
  local chunk = r:read()
  if not chunk then break end
  io.write("chunk: ", chunk)                             --> chunk: 1, chunk: 2, chunk: 3
end

local res, err = http.get(base .. "/slow", {timeout = 0.1})
print(res, err.code)                                     --> nil Timeout
res, err = http.get("http://127.0.0.1:1/")
print(res, err.code)                                     --> nil ECONNREFUSED

http.closeIdle()
server:close()
