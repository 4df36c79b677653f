-- Hello world over Evo's event-style HttpServer, for bench/http.sh.
--   evo bench/http/evo_events_hello.lua PORT
local HttpServer = require("HttpServer")

local port = tonumber(arg and arg[1]) or 8080
local server = HttpServer()

function server:HTTP_REQUEST_FINISHED(event, payload)
  self:WriteStatus(payload.requestID, "200 OK")
  self:WriteHeader(payload.requestID, "content-type", "text/plain")
  self:SendResponse(payload.requestID, "Hello, World!")
end

server:StartListening(port, "127.0.0.1")
print("listening on " .. port)
