-- A chat room: WebSocketServer serves the page in public/ and relays every
-- message to everyone, tagged with its sender. It keeps a history (the last
-- 50 messages go to each new client), and scales out through Redis.
--
--   evo examples/chat/server.lua [port [host]]     (port 8080; 0: any free one)
--   then open the URL it prints in a few browser tabs.
--
-- Alone, it is one process: history in SQLite (CHAT_DB=file, default in
-- memory). With REDIS_URL=redis://host:port set, run as many as you like
-- (behind nginx: docs/deploy.md): each message is published on the Redis
-- channel "chat" and every instance relays what comes from the channel to
-- its own clients, so a message sent to one instance reaches the clients of
-- all; user ids and the count come from Redis too. DATABASE_URL=postgres://...
-- keeps the history in Postgres (store.lua) instead of each instance's SQLite.
-- CHAT_INSTANCE=name adds "server":"name" to the welcome (to see which
-- instance a client reached).
--
-- Clients connect to ws://host:port/chat and send plain text; the server
-- broadcasts JSON: {"type":"message","from":3,"text":"hi"}, and "join" /
-- "leave" notices {"type":"join","from":3,"count":2}. A new client first
-- gets {"type":"welcome","you":3,"count":2}, then the history as messages
-- marked "history":true.
local WebSocketServer = require("WebSocketServer")
local Signal = require("Signal")
local task = require("task")
local json = require("json")
local store = require("store").open()

local port = tonumber(arg and arg[1]) or 8080
local host = arg and arg[2] or "127.0.0.1"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local REDIS_URL, INSTANCE = os.getenv("REDIS_URL"), os.getenv("CHAT_INSTANCE")
local CHANNEL, HISTORY = "chat", 50

local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

-- {type, from, you, count, server, text, history} -> a JSON object, keys in
-- this fixed order (clients and tests compare the text)
local function encode(m)
  local parts = {}
  for _, k in ipairs({"type", "from", "you", "count", "server", "text", "history"}) do
    local v = m[k]
    if v ~= nil then parts[#parts + 1] = quote(k) .. ":" .. (type(v) == "string" and quote(v) or tostring(v)) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local chat = WebSocketServer({path = "/chat", static = here .. "/public", maxMessage = 4096})

-- What the instances share. Alone: counters of this process, and a publish
-- that delivers at once. With Redis: counters in Redis, and a channel.
local bus = {}
local users = {}  -- connectionID -> user id (ids are global when scaled out)
-- connectionID -> true once its welcome and history went out; before, a
-- list of the broadcasts that came meanwhile, sent right after the history
local listening = {}

-- Every message for everyone arrives here (from the channel when scaled
-- out). A store of this process only (SQLite) records the chat messages
-- here, so each instance's history holds every instance's messages.

local function deliver(text)
  -- Stored first: a client joining while a Send below waits reads it in its
  -- history (and skips it in its pending list).
  if not store.shared then
    local m = json.decode(text)
    if m and m.type == "message" then assert(store:add(m.from, m.text)) end
  end
  -- a copy: a Send may wait (backpressure) while clients come and go
  local ids = {}
  for connectionID in pairs(listening) do ids[#ids + 1] = connectionID end
  for _, connectionID in ipairs(ids) do
    local l = listening[connectionID]
    if l == true then
      chat:Send(connectionID, text)
    elseif l then
      l[#l + 1] = text
    end
  end
end

if REDIS_URL and REDIS_URL ~= "" then
  local redis = require("redis")
  -- Redis may be starting with us (systemd, a script): try for 10 s.
  local r, err
  for _ = 1, 40 do
    r, err = redis.connect(REDIS_URL)
    if r then break end
    task.sleep(0.25)
  end
  if not r then
    io.stderr:write("chat: cannot connect to ", REDIS_URL, ": ", tostring(err), "\n")
    os.exit(1)
  end
  local sub = assert(r:subscribe(CHANNEL))
  -- The subscriber reads in a task of its own, and connects and subscribes
  -- again by itself if Redis goes away for a while.
  function sub:MESSAGE_RECEIVED(_, m) deliver(m.message) end
  function sub:CONNECTION_LOST(_, p) io.stderr:write("chat: lost redis (", tostring(p.error), "), retrying\n") end
  function sub:CONNECTION_RESTORED() io.stderr:write("chat: redis is back\n") end
  sub:start()
  -- A command on a connection Redis dropped (a restart) fails once, and the
  -- client connects again for the next one: so try twice.
  local function call(command, ...)
    local v, cerr = r:call(command, ...)
    if v == nil and not r:isConnected() then v, cerr = r:call(command, ...) end
    if v == nil then io.stderr:write("chat: redis ", command, ": ", tostring(cerr), "\n") end
    return v, cerr
  end
  function bus.publish(text) return call("PUBLISH", CHANNEL, text) end
  function bus.newId() return call("INCR", "chat:ids") end
  function bus.online(delta) return call("INCRBY", "chat:online", delta) end
  function bus.close() sub:close(); r:close() end
  bus.name = "redis"
else
  local ids, online = 0, 0
  function bus.publish(text) deliver(text) end
  function bus.newId() ids = ids + 1; return ids end
  function bus.online(delta) online = online + delta; return online end
  function bus.close() end
  bus.name = "alone"
end

function chat:WEBSOCKET_CONNECTION_ESTABLISHED(_, p)
  -- From now on broadcasts wait in a list: they come after the welcome and
  -- the history. Listed before the first call that waits (Redis, the
  -- history query): one that came meanwhile would be lost for this client.
  local pending = {}
  listening[p.connectionID] = pending
  local id = assert(bus.newId())
  users[p.connectionID] = id
  local count = assert(bus.online(1))
  self:Send(p.connectionID, encode({type = "welcome", you = id, count = count, server = INSTANCE}))
  -- The chat messages listed before the query are in the history it reads
  -- (stored before they were relayed): they are not sent twice.
  local stored = #pending
  local history = assert(store:recent(HISTORY))
  for _, m in ipairs(history) do
    self:Send(p.connectionID, encode({type = "message", from = m.sender, text = m.text, history = true}))
  end
  local i = 1
  while pending[i] do  -- more may arrive while a Send waits
    if i > stored or not pending[i]:find('^{"type":"message"') then self:Send(p.connectionID, pending[i]) end
    i = i + 1
  end
  if listening[p.connectionID] == pending then listening[p.connectionID] = true end
  bus.publish(encode({type = "join", from = id, count = count}))
end

function chat:WEBSOCKET_MESSAGE_RECEIVED(_, p)
  if p.binary then return end  -- text only
  local id = users[p.connectionID]
  if store.shared then assert(store:add(id, p.data)) end  -- once, by the instance it came to
  bus.publish(encode({type = "message", from = id, text = p.data}))
end

function chat:WEBSOCKET_CONNECTION_CLOSED(_, p)
  local id = users[p.connectionID]
  listening[p.connectionID] = nil
  if not id then return end  -- counted off already (shutting down)
  users[p.connectionID] = nil
  local count = bus.online(-1)
  bus.publish(encode({type = "leave", from = id, count = count}))
end

local ok, err = chat:StartListening(port, host)
if not ok then
  io.stderr:write("chat: cannot listen on ", host, ":", port, ": ", tostring(err), "\n")
  os.exit(1)
end
print(("chat: http://%s:%d/"):format(host, chat.port))
io.stderr:write("chat: messages ", bus.name, ", history ", store.name, "\n")
io.stdout:flush()

-- SIGTERM (systemd, a test): stop accepting, take this instance's users
-- off the count, let go of Redis and of the database. In a task, since
-- Redis calls suspend; the process then ends with nothing left open.
local term = Signal()
function term:SIGNAL_RECEIVED()
  self:close()
  task.async(function()
    local n = 0
    for _ in pairs(users) do n = n + 1 end
    users, listening = {}, {}
    chat:StopListening()
    if n > 0 then bus.online(-n) end
    bus.close()
    store:close()
  end)
end
term:start("SIGTERM")
