-- HttpServer's request table and payloads after issue 13's second step:
-- requests waiting for their answer are found by id in an open-addressing
-- table whose slots are reused (src/http/pending.h), and
-- HTTP_REQUEST_FINISHED's payload.headers is unpacked from one string when
-- first read (lib/HttpServer.lua). Stale ids must keep their errors, and a
-- payload its headers, whatever the engine has recycled since.
local K = require("httpkit")
local HttpServer = require("HttpServer")
local task = require("task")
local http = require("http")

local function serve(s)
  assert.equal(s:StartListening(0), s)
  K.onCleanup(function() if s.native then s:StopListening() end end)
  return s.port
end

-- n pipelined GETs of /1../n, each with its own x-n header; the last closes.
local function numbered(n)
  local parts = {}
  for i = 1, n do
    parts[i] = K.req("GET", "/" .. i, {"X-N: " .. i, i == n and "Connection: close" or nil})
  end
  return table.concat(parts)
end

local function sortedKeys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return table.concat(keys, ",")
end

describe("HttpServer payload.headers, unpacked when read", function()
  afterEach(K.cleanup)

  it("gives each stored payload its own headers after later requests reused the exchange", function()
    local s, kept = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      kept[#kept + 1] = p  -- not read now: unpacked only later
      self:SendResponse(p.requestID, p.path)
    end
    serve(s)
    local list = K.parse(K.raw(s.port, numbered(60), 10).data)
    assert.equal(#list, 60)
    assert.equal(#kept, 60)
    for i, p in ipairs(kept) do
      assert.equal(p.headers["x-n"], tostring(i))
      assert.equal(p.headers.host, "127.0.0.1")
      assert.equal(p.path, "/" .. i)
    end
  end, 20)

  it("leaves the payload a plain table with exactly the documented fields once read", function()
    local s, r = HttpServer(), {}
    function s:HTTP_REQUEST_FINISHED(_, p)
      local h = p.headers
      r.same = rawequal(h, p.headers)
      r.keys = sortedKeys(p)
      r.meta = getmetatable(p)
      r.raw = rawget(p, "headers") == h
      local names = {}
      for name, value in pairs(h) do names[#names + 1] = name .. "=" .. value end
      table.sort(names)
      r.pairs = table.concat(names, " ")
      r.missing = p.nothing
      self:SendResponse(p.requestID, "ok")
    end
    serve(s)
    K.parse1(K.raw(s.port, K.req("GET", "/q?a=1", {"X-A: 1", "Connection: close"}), 5).data)
    assert.equal(r.same, true)
    assert.equal(r.keys, "body,headers,method,path,query,requestID")
    assert.equal(r.meta, nil)
    assert.equal(r.raw, true)
    assert.equal(r.pairs, "connection=close host=127.0.0.1 x-a=1")
    assert.equal(r.missing, nil)
  end, 15)

  it("joins repeated headers as http.serve's req.headers does", function()
    local head = K.req("GET", "/", {"Cookie: a=1", "Accept: x", "cookie: b=2", "Accept: y",
      "Set-Cookie: s=1", "Set-Cookie: t=2", "X-Empty: ", "Connection: close"})
    local s, got = HttpServer(), nil
    function s:HTTP_REQUEST_FINISHED(_, p)
      got = p.headers
      self:SendResponse(p.requestID, "ok")
    end
    serve(s)
    K.parse1(K.raw(s.port, head, 5).data)
    local want
    local server = K.serve({}, function(req, res)
      want = req.headers
      res:send(200, "ok")
    end)
    K.parse1(K.raw(server.port, head, 5).data)
    assert.equal(got, want)
    assert.equal(got.cookie, "a=1; b=2")
    assert.equal(got.accept, "x, y")
    assert.equal(got["set-cookie"], {"s=1", "t=2"})
  end, 15)

  it("gives a request with no header at all an empty table", function()
    local s, got = HttpServer(), nil
    function s:HTTP_REQUEST_FINISHED(_, p)
      got = p.headers
      self:SendResponse(p.requestID, "ok")
    end
    serve(s)
    K.parse1(K.raw(s.port, "GET / HTTP/1.0\r\n\r\n", 5).data)
    assert.equal(got, {})
  end, 15)

  it("keeps a value the handler set in place of the headers", function()
    local s, got = HttpServer(), nil
    function s:HTTP_REQUEST_FINISHED(_, p)
      p.headers = "mine"
      got = p.headers
      self:SendResponse(p.requestID, "ok")
    end
    serve(s)
    K.parse1(K.raw(s.port, K.req("GET", "/", {"Connection: close"}), 5).data)
    assert.equal(got, "mine")
  end, 15)

  it("shows the headers in the debugging default handler's print", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/s.lua", [[
      local HttpServer = require("HttpServer")
      local http = require("http")
      local task = require("task")
      local s = HttpServer()
      -- FINISHED has only the default handler: it prints its payload.
      function s:HTTP_REQUEST_STARTED(_, p)
        task.concurrent(function()
          task.sleep(0.05)
          self:SendResponse(p.requestID, "x")
        end)
      end
      s:StartListening(0)
      local res = assert(http.get("http://127.0.0.1:" .. s.port .. "/dbg", {headers = {["x-dbg"] = "seen"}}))
      print(res.body)
      s:StopListening()
    ]])
    local r = K.run(K.evo, {"--debug", dir .. "/s.lua"})
    K.rmrf(dir)
    assert.equal(r.out, "x\n", r.err)
    assert.match(r.err, "%[HttpServer%] HTTP_REQUEST_FINISHED")
    assert.match(r.err, "HTTP_REQUEST_FINISHED {body = \"\", headers = {")
    assert.falsy(r.err:find("_packedHeaders", 1, true), r.err)
  end, 15)

  it("unpacks them the same in the blocking Io mode (a child evo --io=blocking)", function()
    local dir = K.tempDir()
    K.writeFile(dir .. "/s.lua", [[
      local HttpServer = require("HttpServer")
      local server, kept = HttpServer(), {}
      function server:HTTP_REQUEST_FINISHED(_, p)
        kept[#kept + 1] = p
        local seen = {}
        for i, q in ipairs(kept) do seen[i] = q.headers["x-h"] end
        self:SendResponse(p.requestID, require("task").mode() .. " " .. table.concat(seen, ","))
      end
      assert(server:StartListening(0))
      io.write(server.port, "\n")
      io.stdout:flush()
    ]])
    local child = assert(require("process").spawn(K.evo, {"--io=blocking", dir .. "/s.lua"}, {stdin = "ignore"}))
    K.onCleanup(function() child:kill("KILL"); child:wait(); K.rmrf(dir) end)
    local port = tonumber(child.stdout:readLine())
    assert(port, "the child reported its port")
    local list = K.parse(K.raw(port, K.req("GET", "/", {"X-H: a"}) .. K.req("GET", "/", {"X-H: b"}) ..
      K.req("GET", "/", {"X-H: c", "Connection: close"}), 5).data)
    assert.equal(#list, 3)
    assert.equal({list[1].body, list[2].body, list[3].body}, {"blocking a", "blocking a,b", "blocking a,b,c"})
  end, 15)

  it("refuses to unpack a string that is not packed headers, without crashing", function()
    local native = require("evo.http")
    assert.equal(native.unpackHeaders(""), {})
    assert.throws(function() native.unpackHeaders("abc") end,
      "bad argument #1 to 'unpackHeaders' %(not packed headers%)")
    assert.throws(function() native.unpackHeaders(("\255"):rep(8) .. "x") end, "not packed headers")
    assert.throws(function() native.unpackHeaders(nil) end, "bad argument #1 to 'unpackHeaders'")
    -- Random bytes and truncated or corrupted packings: a table or that error, nothing else.
    local good = "\4\0\0\0\1\0\0\0hostx"  -- (little-endian lengths, as x86 packs them)
    assert.equal(native.unpackHeaders(good), {host = "x"})
    math.randomseed(13)
    for i = 1, 3000 do
      local s
      if i % 3 == 0 then
        s = good:sub(1, math.random(0, #good))
      elseif i % 3 == 1 then
        local b = {}
        for j = 1, math.random(0, 40) do b[j] = string.char(math.random(0, 255)) end
        s = table.concat(b)
      else
        local at = math.random(1, #good)
        s = good:sub(1, at - 1) .. string.char(math.random(0, 255)) .. good:sub(at + 1)
      end
      local ok, v = pcall(native.unpackHeaders, s)
      assert(ok and type(v) == "table" or tostring(v):find("not packed headers", 1, true), tostring(v))
    end
  end)
end)

describe("HttpServer ids once their slot is reused", function()
  afterEach(K.cleanup)

  it("answers stale ids AlreadySent or Closed while a long request keeps its own", function()
    local s, ids, held, r = HttpServer(), {}, nil, {}
    local burstDone = false
    function s:HTTP_REQUEST_FINISHED(_, p)
      if p.path == "/held" then
        held = p.requestID
        task.concurrent(function()
          K.waitFor(function() return burstDone end, 10)
          -- Ids on the held one's slot whatever the table's size, and the
          -- burst's answered ones: none may reach another request.
          r.sameSlot = {self:WriteStatus(held + 1024, 200)}
          r.stale = {self:SendResponse(ids[1], "late")}
          r.staleStatus = {self:WriteStatus(ids[#ids], 200)}
          r.heldStatus = self:WriteStatus(held, "203 Held On")
          r.heldSend = self:SendResponse(held, "held " .. held)
        end)
        return
      end
      ids[#ids + 1] = p.requestID
      self:SendResponse(p.requestID, tostring(p.requestID))
    end
    local port = serve(s)
    local heldReport
    local waiter = task.concurrent(function()
      heldReport = K.raw(port, K.req("GET", "/held", {"Connection: close"}), 15)
    end)
    K.waitFor(function() return held ~= nil end, 10)
    local list = K.parse(K.raw(port, numbered(200), 10).data)
    assert.equal(#list, 200)
    for i = 1, 200 do assert.equal(list[i].body, tostring(ids[i])) end
    burstDone = true
    waiter:await()
    local answer = K.parse1(heldReport.data)
    assert.equal({answer.status, answer.reason, answer.body}, {203, "Held On", "held " .. held})
    assert.equal(r.sameSlot[2].code, "Closed")
    assert.equal(r.stale[2].code, "AlreadySent")
    assert.equal(r.staleStatus[2].code, "Closed")
    assert.equal({r.heldStatus, r.heldSend}, {true, true})
  end, 30)

  it("keeps \"200 OK\" and other status lines as they were written", function()
    local s = HttpServer()
    function s:HTTP_REQUEST_FINISHED(_, p)
      local line = ({["/ok"] = "200 OK", ["/okay"] = "200 Okay", ["/bare"] = "200", ["/nf"] = "404 Not Found"})[p.path]
      self:WriteStatus(p.requestID, line)
      self:SendResponse(p.requestID, p.path)
    end
    serve(s)
    local list = K.parse(K.raw(s.port, K.pipeline({"/ok", "/okay", "/bare", "/nf"}), 5).data)
    local got = {}
    for i, a in ipairs(list) do got[i] = a.status .. " " .. a.reason .. " " .. a.body end
    assert.equal(got, {"200 OK /ok", "200 Okay /okay", "200 OK /bare", "404 Not Found /nf"})
  end, 15)
end)
