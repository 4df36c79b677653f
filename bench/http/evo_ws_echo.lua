-- WebSocket echo over Evo's http.serve + ws.accept, for bench/http.sh.
--   evo bench/http/evo_ws_echo.lua PORT
local http = require("http")
local ws = require("ws")

local port = tonumber(arg and arg[1]) or 8080

local server = http.serve({host = "127.0.0.1", port = port}, function(req, res)
  local conn = ws.accept(req, res)
  while true do
    local data, kind = conn:receive()
    if not data then break end
    conn:send(data, kind)
  end
end)
print("listening on " .. server.port)
