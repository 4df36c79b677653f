-- Serves a directory with Evo's http.static (ETag, Range, sendfile), for bench/http.sh.
--   evo bench/http/evo_static.lua DIR PORT
local http = require("http")

local dir = assert(arg and arg[1], "usage: evo_static.lua DIR PORT")
local port = tonumber(arg[2]) or 8080

local server = http.serve({host = "127.0.0.1", port = port}, http.static(dir))
print("listening on " .. server.port)
