-- WebSocketServer: WebSockets in Evo's event style.
--
--   local WebSocketServer = require("WebSocketServer")
--   local server = WebSocketServer({static = "public"})   -- other requests: files from public/
--   function server:WEBSOCKET_MESSAGE_RECEIVED(event, p)
--     self:Broadcast(p.data)                              -- to every open connection
--   end
--   server:StartListening(8080, "127.0.0.1")
--
-- Events:
--   SERVER_STARTED_LISTENING          {port, host}
--   WEBSOCKET_CONNECTION_ESTABLISHED  {connectionID, path, headers, protocol, remoteAddress}
--   WEBSOCKET_MESSAGE_RECEIVED        {connectionID, data, binary}
--   WEBSOCKET_CONNECTION_CLOSED       {connectionID, code, reason}
--   SERVER_STOPPED_LISTENING          {port, host}
-- Each connection is read by its own task, which delivers every message as
-- it arrives; handlers may Send, Close and Broadcast at once.
local events = require("events")
local http = require("http")
local ws = require("ws")
local args = require("evo.args")
local errors = require("evo.errors")

local WebSocketServer = events.class("WebSocketServer", {
  "SERVER_STARTED_LISTENING", "WEBSOCKET_CONNECTION_ESTABLISHED", "WEBSOCKET_MESSAGE_RECEIVED",
  "WEBSOCKET_CONNECTION_CLOSED", "SERVER_STOPPED_LISTENING",
})

-- WebSocketServer([opts]): path (only upgrades to this path; default any),
-- protocols, deflate (default true), maxMessage, static (a directory served
-- to plain HTTP requests), tls = {cert, key}, and http.serve's limits.
function WebSocketServer:init(opts)
  if opts ~= nil then args.check(1, "WebSocketServer", opts, "table", 3) end
  self.options = opts or {}
  self.connections = {}
  self.lastID = 0
end

local function serveConnection(self, conn, req)
  self.lastID = self.lastID + 1
  local id = self.lastID
  self.connections[id] = conn
  self:emit("WEBSOCKET_CONNECTION_ESTABLISHED", {connectionID = id, path = req.path, headers = req.headers,
    protocol = conn.protocol, remoteAddress = req.remoteAddress})
  while true do
    local data, kind = conn:receive()
    if not data then
      self.connections[id] = nil
      self:emit("WEBSOCKET_CONNECTION_CLOSED", {connectionID = id, code = kind.closeCode, reason = kind.reason})
      return
    end
    self:emit("WEBSOCKET_MESSAGE_RECEIVED", {connectionID = id, data = data, binary = kind == "binary"})
  end
end

-- StartListening(port [, host]) -> self | nil, err
function WebSocketServer:StartListening(port, host)
  args.port(1, "StartListening", port, 0)
  if self.server then error("StartListening: the server is already listening", 2) end
  local o = self.options
  local static = o.static and http.static(o.static)
  local opts = {}
  for k, v in pairs(o) do opts[k] = v end
  opts.port, opts.host = port, host or "127.0.0.1"
  local server, err = http.serve(opts, function(req, res)
    local upgrade = req.headers.upgrade
    if upgrade and (o.path == nil or o.path == req.path) then
      local conn = ws.accept(req, res, o)
      if conn then serveConnection(self, conn, req) end
      return
    end
    if static then return static(req, res) end
    res:send(404, "404 Not Found\n", {["content-type"] = "text/plain; charset=utf-8"})
  end)
  if not server then return nil, err end
  self.server = server
  self.port, self.host = server.port, server.host
  self:emit("SERVER_STARTED_LISTENING", {port = self.port, host = self.host})
  return self
end

-- StopListening(): closes every connection (code 1001, going away) and
-- stops accepting; SERVER_STOPPED_LISTENING follows.
function WebSocketServer:StopListening()
  local server = self.server
  if not server then return end
  self.server = nil
  for _, conn in pairs(self.connections) do conn:close(1001, "server shutting down") end
  server:close()
  self:emit("SERVER_STOPPED_LISTENING", {port = self.port, host = self.host})
end

-- Send(id, data [, "text" | "binary"]) -> true | nil, err
local function noConnection(id)
  return nil, errors.new("Closed", "no open connection " .. tostring(id))
end

function WebSocketServer:Send(id, data, kind)
  local conn = self.connections[id]
  if not conn then return noConnection(id) end
  return conn:send(data, kind)
end

-- Close(id [, code, reason]) -> true | nil, err
function WebSocketServer:Close(id, code, reason)
  local conn = self.connections[id]
  if not conn then return noConnection(id) end
  return conn:close(code, reason)
end

-- Broadcast(data [, kind]) -> how many connections it was sent to
function WebSocketServer:Broadcast(data, kind)
  local n = 0
  for _, conn in pairs(self.connections) do
    if conn:send(data, kind) then n = n + 1 end
  end
  return n
end

-- The methods check self and their arguments first (evo.args.method).
do
  local function isServer(s) return events.isInstance(s, WebSocketServer) end
  local function method(name, ...)
    WebSocketServer[name] = args.method(name, WebSocketServer[name], isServer, "WebSocketServer", ...)
  end
  method("Send", "number", "string", "string?")
  method("Close", "number", "number?", "string?")
  method("Broadcast", "string", "string?")
  method("StartListening")
  method("StopListening")
end

return WebSocketServer
