-- Hello world over Evo's http.serve, for bench/http.sh.
--   evo bench/http/evo_hello.lua PORT
local http = require("http")

local port = tonumber(arg and arg[1]) or 8080
local headers = {["content-type"] = "text/plain"}

local server = http.serve({host = "127.0.0.1", port = port}, function(req, res)
  res:send(200, "Hello, World!", headers)
end)
print("listening on " .. server.port)
