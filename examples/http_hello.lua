-- The smallest HTTP server: each request runs the handler as a task.
-- This script asks itself for two pages, prints the answers and stops.
--
--   evo examples/http_hello.lua
--
-- See docs/http.md.
local http = require("http")

local server = assert(http.serve({host = "127.0.0.1", port = 0}, function(req, res)
  local name = req:queryParams().name or "world"
  res:send(200, "hello, " .. name .. "\n", {["content-type"] = "text/plain; charset=utf-8"})
end))
print("listening on http://127.0.0.1:" .. server.port .. "/")

local base = "http://127.0.0.1:" .. server.port
for _, path in ipairs({"/", "/?name=Evo"}) do
  local res = assert(http.get(base .. path))
  io.write(res.status, " ", res.headers["content-type"], ": ", res.body)
end

http.closeIdle()   -- the client's kept-alive connection, so close() need not wait for it
server:close()     -- stops listening; returns once every connection is closed
