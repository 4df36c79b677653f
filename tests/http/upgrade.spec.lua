-- Upgrade and CONNECT requests that no handler takes over (issue 8, item 31):
-- the server answers them and goes on with HTTP (Upgrade) or closes (CONNECT);
-- the bytes after them never make it re-run the handler. The servers run in
-- a child process, so one that spins cannot hang the test run.
local K = require("httpkit")
package.path = K.dir .. "/../web/?.lua;" .. package.path
local W = require("webkit")  -- its certificate maker
local process = require("process")
local task = require("task")

local UPGRADE = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
local CONNECT = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"

local child, ports, certs
local function startServers()
  certs = W.makeCert()
  child = assert(process.spawn(K.evo, {K.fixtures .. "/upgrade_servers.lua", certs.cert, certs.key},
    {stdin = "ignore", stderr = "inherit"}))
  ports = {}
  while true do
    local line = assert(child.stdout:readLine(), "the fixture ended before it was ready")
    if line == "ready" then break end
    local name, port = line:match("^(%S+) (%d+)$")
    ports[name] = tonumber(port)
  end
end
local function stopServers()
  if child then
    child:kill("KILL")
    child:wait()
    child.stdout:close()
  end
  W.rmTree(certs and certs.dir)
end

-- The server still answers a fresh connection at once (it is not spinning).
local function stillServing(port, tls)
  local rep = K.raw(port, K.req("GET", "/alive", {"Connection: close"}), 3, tls)
  local list = K.parse(rep.data)
  assert.equal(#list, 1, "a fresh connection is answered: " .. rep.data:sub(1, 200))
  assert.truthy(list[1].status < 500, "status " .. tostring(list[1].status))
end

describe("an Upgrade nobody takes, followed by more bytes", function()
  before(startServers)
  after(stopServers)

  for _, name in ipairs({"serve", "tls", "accept", "events", "wsserver"}) do
    it("is answered once by " .. name .. ", and the server keeps serving", function()
      local tls = name == "tls"
      local rep = K.raw(ports[name], {{"send", UPGRADE .. "X"}, {"sleep", 0.5}}, 2, tls)
      local list = K.parse(rep.data)
      -- One answer to the upgrade request, then "X" is the start of the next
      -- request: not a method, so 400 and the connection closes.
      assert.equal(#list, 2, "two answers: " .. rep.data:sub(1, 600))
      assert.truthy(list[1].status < 500, "status " .. tostring(list[1].status))
      assert.equal(list[2].status, 400)
      assert.equal(rep.ending, "eof")
      stillServing(ports[name], tls)
    end, 15)
  end

  it("treats a request pipelined after the Upgrade as the next request", function()
    local rep = K.raw(ports.serve, UPGRADE .. K.req("GET", "/next", {"Connection: close"}), 3)
    local list = K.parse(rep.data)
    assert.equal(#list, 2, rep.data:sub(1, 400))
    assert.equal(list[1].body, "plain /")
    assert.equal(list[2].body, "plain /next")
    assert.equal(rep.ending, "eof")
  end, 15)

  it("answers a CONNECT and closes: what follows it is not HTTP", function()
    local rep = K.raw(ports.serve, CONNECT .. "\22\3\1 tunnel bytes", 3)
    local list = K.parse(rep.data)
    assert.equal(#list, 1, rep.data:sub(1, 300))
    assert.equal(rep.ending, "eof")
    stillServing(ports.serve)
  end, 15)
end)

describe("a WebSocket upgrade pipelined behind a plain request", function()
  afterEach(K.cleanup)
  it("answers both: the 200, then the 101 (issue 8 item 1: no lost wake-up)", function()
    local ws = require("ws")
    local server = K.serve({}, function(req, res)
      if req.path ~= "/ws" then return res:send(200, "plain") end
      local conn = assert(ws.accept(req, res))
      conn:send("hello")
      conn:close()
    end)
    local upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" ..
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    local rep = K.raw(server.port, {{"send", K.req("GET", "/a") .. upgrade}, {"sleep", 0.5}}, 2)
    assert.match(rep.data, "^HTTP/1%.1 200 OK\r\n")
    local second = rep.data:find("HTTP/1.1 101 Switching Protocols\r\n", 1, true)
    assert.truthy(second, "the 101 came: " .. rep.data:sub(1, 400))
    assert.truthy(rep.data:find("hello", second, true), "and the WebSocket's first message")
  end, 15)
end)
