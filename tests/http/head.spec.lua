-- A response head's exact bytes, for the statuses, lengths and header sets
-- the one-pass head writer (write_head in src/http/server.cpp) treats apart:
-- the usual "200 OK" line made once a second, other statuses and reasons,
-- Content-Length of every width, bodies kept out (HEAD, 204, 304), the
-- Connection lines, chunked bodies with trailers, and heads too long for the
-- writer's stack buffer. The Date value is the only part not compared.
local K = require("httpkit")
local task = require("task")

local long = string.rep("v", 300)  -- one header line longer than 256 bytes
local many = {}                    -- a head longer than 512 bytes
for i = 1, 12 do many["x-many-" .. i] = string.rep(string.char(96 + i), 40) end

-- Each path answers one way; a server of both styles would go further than
-- this spec needs: http.serve's res:send (the FFI path for plain arguments)
-- and its classic natives.
local function handler(req, res)
  local p = req.path
  if p == "/natural" then
    res:send(200, "Hello, World!", {["content-type"] = "text/plain"})
  elseif p:match("^/len/") then
    res:send(200, string.rep("b", tonumber(p:match("%d+"))))
  elseif p == "/404" then
    res:send(404)
  elseif p == "/reason" then
    res:status(299, "Fine Indeed")
    res:header("x-a", "1")
    res:finish("ok")
  elseif p == "/999" then
    res:send(999, "odd")
  elseif p == "/204" then
    res:send(204, "", {["x-b"] = "2"})
  elseif p == "/304" then
    res:send(304)
  elseif p == "/close" then
    res:send(200, "bye", {connection = "close"})
  elseif p == "/own-length" then
    res:send(200, "12345", {["content-length"] = "5"})
  elseif p == "/long" then
    res:send(200, "L", {["x-long"] = long})
  elseif p == "/many" then
    res:send(200, "M", many)
  elseif p == "/chunked" then
    res:trailer("x-sum", "7")
    res:write("abc")
    res:finish()
  elseif p:match("^/declared/") then
    res:header("content-length", p:match("%d+"))
    res:write("x")  -- (short of its length: the connection closes after it)
  elseif p:match("^/headers/") then
    local headers = {}
    for i = 1, tonumber(p:match("%d+")) do headers["x-h" .. i] = tostring(i) end
    res:send(200, "h", headers)
  elseif p == "/number" then
    res:send(200, "n", {["x-n"] = 5, ["x-s"] = "s"})  -- (a number: the classic native)
  elseif p == "/later" then
    task.sleep(0.01)  -- (answered after the handler suspended: the classic natives)
    res:send(201, "made", {["x-c"] = "3"})
  else
    res:send(500)
  end
end

-- The bytes the server sent, with each Date value replaced by "D".
local function exchange(bytes)
  local server = K.serve({}, handler)
  local rep = K.raw(server.port, bytes, 5)
  server:close()
  local dates = 0
  local data = rep.data:gsub("\r\nDate: (%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT)\r\n", function()
    dates = dates + 1
    return "\r\nDate: D\r\n"
  end)
  return data, dates
end

local function head(status, lines)
  return status .. "\r\nDate: D\r\n" .. table.concat(lines) .. "\r\n"
end

describe("a response head's bytes", function()
  afterEach(K.cleanup)

  it("are exact for the usual response, every Content-Length width and odd statuses", function()
    local paths = {"/natural", "/len/0", "/len/9", "/len/10", "/len/99", "/len/100", "/len/12345",
      "/404", "/reason", "/999", "/204", "/304", "/own-length", "/later"}
    local reqs = {}
    for i, p in ipairs(paths) do reqs[i] = K.req("GET", p) end
    reqs[#reqs + 1] = K.req("GET", "/close")
    local data, dates = exchange(table.concat(reqs))
    local expected = {
      head("HTTP/1.1 200 OK", {"Content-Length: 13\r\n", "content-type: text/plain\r\n"}) .. "Hello, World!",
      head("HTTP/1.1 200 OK", {"Content-Length: 0\r\n"}),
      head("HTTP/1.1 200 OK", {"Content-Length: 9\r\n"}) .. string.rep("b", 9),
      head("HTTP/1.1 200 OK", {"Content-Length: 10\r\n"}) .. string.rep("b", 10),
      head("HTTP/1.1 200 OK", {"Content-Length: 99\r\n"}) .. string.rep("b", 99),
      head("HTTP/1.1 200 OK", {"Content-Length: 100\r\n"}) .. string.rep("b", 100),
      head("HTTP/1.1 200 OK", {"Content-Length: 12345\r\n"}) .. string.rep("b", 12345),
      head("HTTP/1.1 404 Not Found", {"Content-Length: 0\r\n"}),
      head("HTTP/1.1 299 Fine Indeed", {"Content-Length: 2\r\n", "x-a: 1\r\n"}) .. "ok",
      head("HTTP/1.1 999 Unknown", {"Content-Length: 3\r\n"}) .. "odd",
      head("HTTP/1.1 204 No Content", {"x-b: 2\r\n"}),
      head("HTTP/1.1 304 Not Modified", {}),
      head("HTTP/1.1 200 OK", {"Content-Length: 5\r\n"}) .. "12345",
      head("HTTP/1.1 201 Created", {"Content-Length: 4\r\n", "x-c: 3\r\n"}) .. "made",
      head("HTTP/1.1 200 OK", {"Content-Length: 3\r\n", "Connection: close\r\n"}) .. "bye",
    }
    assert.equal(dates, #expected)
    assert.equal(data, table.concat(expected))
  end, 20)

  it("are exact for HEAD, HTTP/1.0, chunked bodies with trailers and long heads", function()
    local manyLines = {}
    for i = 1, 12 do manyLines[i] = "x-many-" .. i .. ": " .. many["x-many-" .. i] .. "\r\n" end
    local data = exchange(K.req("HEAD", "/natural") .. K.req("GET", "/chunked") .. K.req("GET", "/long")
      .. K.req("GET", "/many") .. "GET /natural HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      .. "GET /natural HTTP/1.0\r\n\r\n")
    local starts, parts = {}, {}
    for at in data:gmatch("()HTTP/1%.1 ") do starts[#starts + 1] = at end
    starts[#starts + 1] = #data + 1
    for i = 1, #starts - 1 do parts[i] = data:sub(starts[i], starts[i + 1] - 1) end
    assert.equal(#parts, 6, data:sub(1, 400))
    assert.equal(parts[1], head("HTTP/1.1 200 OK", {"Content-Length: 13\r\n", "content-type: text/plain\r\n"}))
    assert.equal(parts[2], head("HTTP/1.1 200 OK", {"Transfer-Encoding: chunked\r\n", "Trailer: x-sum\r\n"})
      .. "3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n")
    assert.equal(parts[3], head("HTTP/1.1 200 OK", {"Content-Length: 1\r\n", "x-long: " .. long .. "\r\n"}) .. "L")
    -- (the header table's order is pairs' order: compare the lines as a set)
    local manyHead = parts[4]
    assert.equal(#manyHead, #head("HTTP/1.1 200 OK", {"Content-Length: 1\r\n"}) + #table.concat(manyLines) + 1)
    assert.equal(manyHead:sub(1, #"HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 1\r\n"),
      "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 1\r\n")
    for _, line in ipairs(manyLines) do assert.truthy(manyHead:find(line, 1, true), line) end
    assert.equal(manyHead:sub(-3), "\r\nM")
    assert.equal(parts[5] .. parts[6], head("HTTP/1.1 200 OK", {"Content-Length: 13\r\n", "Connection: keep-alive\r\n",
        "content-type: text/plain\r\n"}) .. "Hello, World!"
      .. head("HTTP/1.1 200 OK", {"Content-Length: 13\r\n", "Connection: close\r\n",
        "content-type: text/plain\r\n"}) .. "Hello, World!")
  end, 20)

  it("write a declared Content-Length of up to 20 digits", function()
    for _, n in ipairs({"9999999999999999999", "10000000000000000000", "18446744073709551615"}) do
      local data = exchange(K.req("GET", "/declared/" .. n))
      assert.equal(data, head("HTTP/1.1 200 OK", {"Content-Length: " .. n .. "\r\n"}) .. "x")
    end
  end, 20)

  it("carry every header of res:send's table, however many", function()
    local reqs = {}
    for n = 0, 6 do reqs[#reqs + 1] = K.req("GET", "/headers/" .. n) end
    reqs[#reqs + 1] = K.req("GET", "/number", {"Connection: close"})
    local data = exchange(table.concat(reqs))
    local starts, parts = {}, {}
    for at in data:gmatch("()HTTP/1%.1 ") do starts[#starts + 1] = at end
    starts[#starts + 1] = #data + 1
    for i = 1, #starts - 1 do parts[i] = data:sub(starts[i], starts[i + 1] - 1) end
    assert.equal(#parts, 8, data:sub(1, 400))
    for n = 0, 6 do
      local lines = {}
      for i = 1, n do lines[i] = "x-h" .. i .. ": " .. i .. "\r\n" end
      local part = parts[n + 1]
      local fixed = "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 1\r\n"
      assert.equal(part:sub(1, #fixed), fixed)
      assert.equal(#part, #fixed + #table.concat(lines) + 3, part)
      for _, line in ipairs(lines) do assert.truthy(part:find(line, 1, true), line) end
      assert.equal(part:sub(-3), "\r\nh")
    end
    local part = parts[8]
    assert.truthy(part:find("\r\nx-n: 5\r\n", 1, true), part)
    assert.truthy(part:find("\r\nx-s: s\r\n", 1, true), part)
    assert.equal(#part, #head("HTTP/1.1 200 OK", {"Content-Length: 1\r\n", "Connection: close\r\n",
      "x-n: 5\r\n", "x-s: s\r\n"}) + 1)
  end, 20)
end)
