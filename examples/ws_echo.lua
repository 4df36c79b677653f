-- A WebSocket echo server (task style: http.serve + ws.accept) and a client
-- talking to it. The script sends a few messages, prints the echoes and stops.
--
--   evo examples/ws_echo.lua
--
-- See docs/websockets.md.
local http = require("http")
local ws = require("ws")

local server = assert(http.serve({port = 0}, function(req, res)
  if req.path ~= "/echo" then return res:send(404, "try /echo\n") end
  local conn, err = ws.accept(req, res, {protocols = {"echo"}})
  if not conn then return end              -- not a WebSocket handshake: it was answered with 400
  while true do
    local data, kind = conn:receive()      -- kind: "text" or "binary"
    if not data then                       -- closed: kind is the error
      print("server: closed with " .. kind.closeCode .. " " .. kind.reason)
      return
    end
    conn:send(data, kind)
  end
end))

local conn = assert(ws.connect("ws://127.0.0.1:" .. server.port .. "/echo", {protocols = {"echo"}, deflate = true}))
print("client: protocol " .. conn.protocol)
for _, text in ipairs({"hello", "colourless", ("long "):rep(20)}) do
  conn:send(text)
  local data, kind = conn:receive()
  print(kind .. ": " .. data)
end
conn:send("\0\1\2", "binary")
local data, kind = conn:receive()
print(kind .. ": " .. #data .. " bytes")
conn:close(1000, "done")                  -- the closing handshake, then the TCP close
server:close()
