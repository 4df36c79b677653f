-- The server of tests/load/connections.spec.lua: hello world, a long idle
-- timeout (connections stay open) and a short header timeout (slow clients
-- are cut). Prints its port, then serves until killed.
local http = require("http")
local server = assert(http.serve({port = 0, idleTimeout = 120, headerTimeout = tonumber(arg[1]) or 1},
  function(req, res) res:send(200, "hello", {["content-type"] = "text/plain"}) end))
io.stdout:write(server.port, "\n")
io.stdout:flush()
