-- Hello world the way a user writes it: a new header table per request
-- (issue 13's "natural handler"), for bench/http.sh.
--   evo bench/http/evo_natural.lua PORT
local http = require("http")

local port = tonumber(arg and arg[1]) or 8080

local server = http.serve({host = "127.0.0.1", port = port}, function(req, res)
  res:send(200, "Hello, World!", {["content-type"] = "text/plain"})
end)
print("listening on " .. server.port)
