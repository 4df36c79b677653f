-- Misuse raises `bad argument #n to 'name' (...)`, naming the function as the
-- user called it, with the argument numbered as the user counts it (issue 8
-- items 19 and 22).
local net = require("net")
local http = require("http")
local task = require("task")
local HttpServer = require("HttpServer")
local WebSocketServer = require("WebSocketServer")

-- raises(pattern, fn, ...): fn fails with a message containing `expected`
-- (plain text), and without any internal name.
local function raises(expected, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.falsy(ok, "expected an error: " .. expected)
  local msg = tostring(err)
  assert.truthy(msg:find(expected, 1, true), ("expected %q in %q"):format(expected, msg))
  assert.falsy(msg:find("'?'", 1, true), "names the function: " .. msg)
  assert.falsy(msg:find("[evo]", 1, true), "no internal chunk name: " .. msg)
  for _, internal in ipairs({"sread", "swrite", "native", "core"}) do
    assert.falsy(msg:find("'" .. internal .. "'", 1, true), "no internal name: " .. msg)
  end
  return msg
end

describe("port validation (issue 8 item 19)", function()
  local any = "port must be an integer from 0 to 65535"
  local remote = "port must be an integer from 1 to 65535"

  it("http.serve refuses ports outside 0-65535 and fractions", function()
    for _, p in ipairs({-1, 70000, 65536, 1.5}) do
      raises("bad argument #1 to 'serve' (" .. any .. ")", http.serve, {port = p}, function() end)
    end
  end)

  it("HttpServer:StartListening and WebSocketServer:StartListening refuse them", function()
    raises("bad argument #1 to 'StartListening' (" .. any .. ")", HttpServer().StartListening, HttpServer(), -1)
    local s = HttpServer()
    raises("bad argument #1 to 'StartListening' (" .. any .. ")", s.StartListening, s, 70000)
    local w = WebSocketServer()
    raises("bad argument #1 to 'StartListening' (" .. any .. ")", w.StartListening, w, 70000)
    raises("bad argument #1 to 'StartListening' (" .. any .. ")", w.StartListening, w, -1)
  end)

  it("net.listen and net.connect refuse them", function()
    raises("bad argument #1 to 'listen' (" .. any .. ")", net.listen, {port = 70000})
    raises("bad argument #1 to 'listen' (" .. any .. ")", net.listen, {port = -1})
    raises("bad argument #1 to 'connect' (" .. remote .. ")", net.connect, {host = "127.0.0.1", port = 0})
    raises("bad argument #1 to 'connect' (" .. remote .. ")", net.connect, {host = "127.0.0.1", port = 70000})
    raises("bad argument #1 to 'connect' (" .. remote .. ")", net.connect,
      {host = "127.0.0.1", port = 70000, tls = true})
  end)

  it("udp bind and send refuse them", function()
    local u = net.udp()
    raises("bad argument #1 to 'bind' (" .. any .. ")", u.bind, u, {port = 70000})
    raises("bad argument #1 to 'bind' (" .. any .. ")", u.bind, u, {port = -1})
    raises("bad argument #3 to 'send' (" .. remote .. ")", u.send, u, "x", "127.0.0.1", 70000)
    raises("bad argument #3 to 'send' (" .. remote .. ")", u.send, u, "x", "127.0.0.1", 0)
    u:close()
  end)
end)
