-- A chat room: WebSocketServer serves the page in public/ and relays every
-- message to everyone, tagged with its sender.
--
--   evo examples/chat/server.lua [port [host]]     (port 8080; 0: any free one)
--   then open the URL it prints in a few browser tabs.
--
-- Clients connect to ws://host:port/chat and send plain text; the server
-- broadcasts JSON: {"type":"message","from":3,"text":"hi"}, and "join" /
-- "leave" notices {"type":"join","from":3,"count":2}. A new client first
-- gets {"type":"welcome","you":3,"count":2}.
local WebSocketServer = require("WebSocketServer")

local port = tonumber(arg and arg[1]) or 8080
local host = arg and arg[2] or "127.0.0.1"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

-- {type, from, count, text, you} -> a JSON object (keys in a fixed order)
local function json(m)
  local parts = {}
  for _, k in ipairs({"type", "from", "you", "count", "text"}) do
    local v = m[k]
    if v ~= nil then parts[#parts + 1] = quote(k) .. ":" .. (type(v) == "string" and quote(v) or tostring(v)) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local chat = WebSocketServer({path = "/chat", static = here .. "/public", maxMessage = 4096})
local count = 0

function chat:WEBSOCKET_CONNECTION_ESTABLISHED(_, p)
  count = count + 1
  self:Send(p.connectionID, json({type = "welcome", you = p.connectionID, count = count}))
  self:Broadcast(json({type = "join", from = p.connectionID, count = count}))
end

function chat:WEBSOCKET_MESSAGE_RECEIVED(_, p)
  if p.binary then return end  -- text only
  self:Broadcast(json({type = "message", from = p.connectionID, text = p.data}))
end

function chat:WEBSOCKET_CONNECTION_CLOSED(_, p)
  count = count - 1
  self:Broadcast(json({type = "leave", from = p.connectionID, count = count}))
end

local ok, err = chat:StartListening(port, host)
if not ok then
  io.stderr:write("chat: cannot listen on ", host, ":", port, ": ", tostring(err), "\n")
  os.exit(1)
end
print(("chat: http://%s:%d/"):format(host, chat.port))
io.stdout:flush()
