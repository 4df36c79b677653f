-- Hello world over h2c (prior knowledge) with Evo's http.serve, for bench/http2.sh.
--   evo bench/http2/evo_hello.lua PORT
local http = require("http")

local port = tonumber(arg and arg[1]) or 8080
local headers = {["content-type"] = "text/plain"}

local server = assert(http.serve({host = "127.0.0.1", port = port, http2 = true}, function(req, res)
  res:send(200, "Hello, World!", headers)
end))
print("listening on " .. server.port)
