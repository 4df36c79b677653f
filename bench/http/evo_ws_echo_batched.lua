-- An experiment for bench/ws.sh (the "evo-batched" row), not an example to follow:
-- Evo's WebSocket echo on the engine's internal natives (evo.ws), writing the
-- echoes of all the messages one read brought with one stream:write, as the C++
-- ceiling (bench/loadgen/ws_echo_server.cpp) does. It showed what coalescing
-- conn:send()'s writes would give; stream writes are now corked (one system
-- call per loop turn), so the plain evo row should be close to this one.
--   evo bench/http/evo_ws_echo_batched.lua PORT
local http = require("http")
local ws = require("ws")
local native = require("evo.ws")
local feed, nextEvent, nsend = native.feed, native.next, native.send
local concat = table.concat
local port = tonumber(arg and arg[1]) or 8080
http.serve({host = "127.0.0.1", port = port}, function(req, res)
  local conn = ws.accept(req, res)
  local session, stream = conn.session, conn.stream
  local out, n = {}, 0
  while true do
    local kind, data, extra = nextEvent(session)
    if kind == "message" then
      n = n + 1
      out[n] = nsend(session, data, extra)
    elseif kind == nil then
      if n > 0 then stream:write(concat(out, "", 1, n)); n = 0 end
      local bytes = stream:read()
      if not bytes then break end
      local ok, o = feed(session, bytes)
      if o then stream:write(o) end
      if not ok then break end
    elseif kind == "close" then break end
  end
  stream:close()
end)
