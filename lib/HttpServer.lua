-- HttpServer: the HTTP server in Evo's event style, on the same native
-- engine as http.serve.
--
--   local HttpServer = require("HttpServer")
--   local server = HttpServer()
--   function server:HTTP_REQUEST_FINISHED(event, payload)
--     self:WriteStatus(payload.requestID, "200 OK")
--     self:WriteHeader(payload.requestID, "content-type", "text/plain")
--     self:SendResponse(payload.requestID, "hello " .. payload.path)
--   end
--   server:StartListening(8080, "127.0.0.1")
--
-- Events, straight from the engine's callbacks:
--   SERVER_STARTED_LISTENING {port, host}
--   HTTP_REQUEST_STARTED     {requestID, method, path, query}        headers in
--   HTTP_REQUEST_FINISHED    {requestID, method, path, query, headers, body}
--   HTTP_CONNECTION_ABORTED  {requestID}   the client left before the response ended
--   SERVER_STOPPED_LISTENING {port, host}
-- A response may be written at any time after HTTP_REQUEST_STARTED, from any
-- handler or task: WriteStatus, WriteHeader, then WriteResponse (streamed,
-- chunked) and/or SendResponse (the body, or its last part, and the end).
local events = require("events")
local native = require("evo.http")
local args = require("evo.args")

local HttpServer = events.class("HttpServer", {
  "SERVER_STARTED_LISTENING", "HTTP_REQUEST_STARTED", "HTTP_REQUEST_FINISHED",
  "HTTP_CONNECTION_ABORTED", "SERVER_STOPPED_LISTENING",
})

-- HttpServer([opts]): the limits and timeouts of http.serve (maxHeaderBytes,
-- maxBodyBytes, headerTimeout, idleTimeout...).
function HttpServer:init(opts)
  if opts ~= nil then args.check(1, "HttpServer", opts, "table", 3) end
  self.options = opts or {}
end

-- StartListening(port [, host]) -> self | nil, err
function HttpServer:StartListening(port, host)
  args.port(1, "StartListening", port, 0)
  if host ~= nil then args.check(2, "StartListening", host, "string") end
  if self.native then error("StartListening: the server is already listening", 2) end
  local opts = {}
  for k, v in pairs(self.options) do opts[k] = v end
  opts.port, opts.host = port, host or "127.0.0.1"
  local terr
  opts, terr = require("evo.httptls")(opts)
  if not opts then return nil, terr end
  local core, err = native.serve(self, opts)
  if not core then return nil, err end
  self.native = core
  self.port = native.port(core)
  self.host = opts.host
  self:emit("SERVER_STARTED_LISTENING", {port = self.port, host = self.host})
  return self
end

-- StopListening(): no new connections; requests in flight may still be
-- answered, then their connections close. SERVER_STOPPED_LISTENING follows.
function HttpServer:StopListening()
  if not self.native then return end
  native.close(self.native, false)
end

local function core(self, fname)
  local c = self.native
  if not c then error(fname .. ": the server is not listening", 3) end
  return c
end

-- The methods check self and their arguments first (evo.args.method).
local function isServer(s) return events.isInstance(s, HttpServer) end
local function method(name, fn, ...) return args.method(name, fn, isServer, "HttpServer", ...) end

-- WriteStatus(id, "404 Not Found" | 404) -> true | nil, err (the connection is gone)
HttpServer.WriteStatus = method("WriteStatus", function(self, id, status)
  return native.writeStatus(core(self, "WriteStatus"), id, status)
end, "number", "number|string")
-- WriteHeader(id, name, value) -> true | nil, err
HttpServer.WriteHeader = method("WriteHeader", function(self, id, name, value)
  return native.writeHeader(core(self, "WriteHeader"), id, name, value)
end, "number", "string", "string|number|table")
-- WriteResponse(id, chunk) -> true | nil, err: streams a part of the body
HttpServer.WriteResponse = method("WriteResponse", function(self, id, chunk)
  return native.writeResponse(core(self, "WriteResponse"), id, chunk)
end, "number", "string|number")
-- SendResponse(id [, body]) -> true | nil, err: the body (or its last part)
-- and the end. err.code: "AlreadySent" (this request was answered; the
-- last 4096 answered ids are remembered), "Closed" (the client left, or no
-- such request).
local errors = require("evo.errors")
local MAX_REMEMBERED = 4096  -- answered ids remembered, to tell AlreadySent from Closed

HttpServer.SendResponse = method("SendResponse", function(self, id, body)
  local c = core(self, "SendResponse")
  local sent = self.sentIDs
  if sent and sent[id] then
    return nil, errors.new("AlreadySent", ("the response to request %s was already sent"):format(tostring(id)))
  end
  local ok, err = native.sendResponse(c, id, body)
  if ok then
    if not sent or self.sentCount >= MAX_REMEMBERED then
      sent = {}
      self.sentIDs, self.sentCount = sent, 0
    end
    sent[id] = true
    self.sentCount = self.sentCount + 1
    return ok
  end
  return nil, err
end, "number", "string|number?")
HttpServer.StartListening = method("StartListening", HttpServer.StartListening)
HttpServer.StopListening = method("StopListening", HttpServer.StopListening)

return HttpServer
