-- Request parsers are pooled per server (src/http/server.cpp,
-- Server::take_parser / pool_parser): a connection holds one only while a
-- request is on its way or more of its input waits, and gives it back once
-- its input is answered, for whichever connection reads next. These try to
-- make one connection's request leak into another's: headers, a body,
-- trailers, a half-received head, the counts behind the smuggling checks,
-- and another server's limits.
local K = require("httpkit")
local net = require("net")
local task = require("task")

-- One response read from the stream: status, headers (lower-case) and body.
local function response(c)
  local status = tonumber(c:readLine():match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  while true do
    local line = c:readLine()
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.*)$")
    headers[name:lower()] = value
  end
  local len = tonumber(headers["content-length"])
  return status, len and len > 0 and c:read(len) or "", headers
end

local function connect(server)
  return assert(net.connect({host = "127.0.0.1", port = server.port}))
end

-- The request as the handler saw it, one line: path, the headers it was
-- sent (x-*, sorted), the header count, the body, the trailers.
local function describeRequest(req)
  local names = {}
  local count = 0
  for name, value in pairs(req.headers) do
    count = count + 1
    if name:sub(1, 2) == "x-" then names[#names + 1] = name .. "=" .. value end
  end
  table.sort(names)
  local body = req:body()  -- (the trailers come after it)
  local trailers = {}
  for name, value in pairs(req:trailers() or {}) do trailers[#trailers + 1] = name .. "=" .. value end
  table.sort(trailers)
  return table.concat({req.path, table.concat(names, ","), count, body, table.concat(trailers, ",")}, "|")
end

local function echoServer(opts)
  return K.serve(opts or {}, function(req, res) res:send(200, describeRequest(req)) end)
end

describe("pooled request parsers", function()
  afterEach(K.cleanup)

  it("keep a half-received head with its connection while others are served", function()
    local server = echoServer()
    local a, b = connect(server), connect(server)
    assert(a:write("GET /a HTTP/1.1\r\nHost: x\r\nX-Who: a\r\nX-Pa"))
    task.sleep(0.05)  -- the server has parsed it so far
    for i = 1, 5 do
      assert(b:write(K.req("GET", "/b" .. i, {"X-Other: " .. i})))
      local status, body = response(b)
      assert.equal(status, 200)
      assert.equal(body, "/b" .. i .. "|x-other=" .. i .. "|2||")
    end
    assert(a:write("rt: 2\r\n\r\n"))
    local status, body = response(a)
    assert.equal(status, 200)
    assert.equal(body, "/a|x-part=2,x-who=a|3||")
    a:close()
    b:close()
  end)

  it("give the next connection nothing of the last request: headers, body, trailers", function()
    local server = echoServer()
    local a = connect(server)
    assert(a:write(K.req("POST", "/a", {"X-Secret: s1", "X-Two: 2"}, "the body")))
    local status, body = response(a)
    assert.equal(status, 200)
    assert.equal(body, "/a|x-secret=s1,x-two=2|4|the body|")
    assert(a:write("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"))
    status, body = response(a)
    assert.equal(status, 200)
    assert.equal(body, "/t||2|abc|x-trailer=t")
    for i = 1, 3 do
      local b = connect(server)
      assert(b:write(K.req("GET", "/b" .. i)))
      status, body = response(b)
      assert.equal(status, 200)
      assert.equal(body, "/b" .. i .. "||1||")
      b:close()
    end
    a:close()
  end)

  it("count each request's Host and Content-Length headers afresh", function()
    local server = echoServer()
    for i = 1, 3 do
      local bad = connect(server)
      assert(bad:write("GET /bad HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"))
      assert.equal(response(bad), 400)
      bad:close()
      local bad2 = connect(server)
      assert(bad2:write("POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz"))
      assert.equal(response(bad2), 400)
      bad2:close()
      local good = connect(server)
      assert(good:write(K.req("POST", "/good" .. i, {}, "z")))
      local status, body = response(good)
      assert.equal(status, 200)
      assert.equal(body, "/good" .. i .. "||2|z|")
      good:close()
    end
  end)

  it("keep each server's own limits", function()
    local small = echoServer({maxHeaderBytes = 1024})
    local large = echoServer()
    local big = {"X-Big: " .. string.rep("b", 4000)}
    for _ = 1, 3 do
      local s = connect(small)
      assert(s:write(K.req("GET", "/s", big)))
      assert.equal(response(s), 431)
      s:close()
      local l = connect(large)
      assert(l:write(K.req("GET", "/l", big)))
      local status, body = response(l)
      assert.equal(status, 200)
      assert.equal(body, "/l|x-big=" .. string.rep("b", 4000) .. "|2||")
      l:close()
    end
  end)

  it("serve pipelined requests split across reads on many connections in order", function()
    local server = echoServer()
    local conns, rest = {}, {}
    for i = 1, 20 do conns[i] = connect(server) end
    -- Each connection sends two and a half requests, then the rest: the
    -- half stays in its parser while the others' parsers come and go.
    for i, c in ipairs(conns) do
      local three = K.req("GET", "/" .. i .. "/1", {"X-N: " .. i}) .. K.req("GET", "/" .. i .. "/2")
        .. K.req("GET", "/" .. i .. "/3", {"X-Last: " .. i})
      local cut = #three - 12
      assert(c:write(three:sub(1, cut)))
      rest[i] = three:sub(cut + 1)
    end
    task.sleep(0.05)
    for i, c in ipairs(conns) do
      assert(c:write(rest[i]))
      local _, b1 = response(c)
      local _, b2 = response(c)
      local _, b3 = response(c)
      assert.equal(b1, "/" .. i .. "/1|x-n=" .. i .. "|2||")
      assert.equal(b2, "/" .. i .. "/2||1||")
      assert.equal(b3, "/" .. i .. "/3|x-last=" .. i .. "|2||")
      c:close()
    end
  end)
end)
