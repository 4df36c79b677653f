-- The client's request bodies: streamed from a function or a Stream
-- (chunked, or as declared by Content-Length), errors from the source,
-- redirects that cannot resend a streamed body, `json = value` and
-- res:json(). The peer is Python's http.server (peers/body_server.py), so
-- the spec runs in both Io modes (evo --io=blocking test ...).
local K = require("httpkit")
local http = require("http")
local process = require("process")

local peer, base

-- Python's hashlib over the data (through a file: K.run's stdin feeding
-- needs concurrency, which the blocking Io mode has not).
local function sha256(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local r = K.run(K.python, {"-c", "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())", path})
  os.remove(path)
  return (r.out:gsub("%s+$", ""))
end

local function report(r)
  assert(r, "no response")
  assert.equal(r.status, 200, r.body)
  return assert(loadstring("return " .. r.body))()
end

-- A body function giving `pieces` and then nil.
local function pieces(list)
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

describe("client request bodies", function()
  before(function()
    peer = assert(process.spawn(K.python, {K.peers .. "/body_server.py"}, {stderr = "ignore"}))
    local line = peer.stdout:readLine()
    base = "http://127.0.0.1:" .. assert(line:match("^port (%d+)$"), line)
  end)
  after(function()
    http.closeIdle()
    peer:kill("TERM")
    peer:wait()
    peer.stdout:close()
  end)

  it("streams a function's pieces as chunks", function()
    local list = {}
    for i = 1, 50 do list[i] = K.bytes(1000 + i, i) end
    local rep = report(http.request({method = "POST", url = base .. "/echo", body = pieces(list)}))
    local all = table.concat(list)
    assert.equal({rep.te, rep.cl, rep.size, rep.chunks}, {"chunked", nil, #all, 50})
    assert.equal(rep.sha256, sha256(all))
  end)

  it("skips empty pieces and sends an empty chunked body for a function giving nil at once", function()
    local rep = report(http.request({method = "PUT", url = base .. "/echo", body = pieces({"", "ab", "", "c"})}))
    assert.equal({rep.method, rep.size, rep.chunks, rep.body}, {"PUT", 3, 2, "abc"})
    rep = report(http.request({method = "POST", url = base .. "/echo", body = function() return nil end}))
    assert.equal({rep.te, rep.size}, {"chunked", 0})
  end)

  it("sends the pieces as they are when the Content-Length is given", function()
    local rep = report(http.request({method = "POST", url = base .. "/echo", headers = {["Content-Length"] = 6},
      body = pieces({"abc", "def"})}))
    assert.equal({rep.te, rep.cl, rep.body, rep.chunks}, {nil, "6", "abcdef", 0})
  end)

  it("reads a Stream to its end: a child process's output, 3 MB", function()
    local child = assert(process.spawn("head", {"-c", "3000000", "/dev/urandom"}, {}))
    local tee = {}
    local source = {read = function()
      local chunk, err = child.stdout:read()
      if chunk then tee[#tee + 1] = chunk end
      return chunk, err
    end}
    local rep = report(http.request({method = "POST", url = base .. "/echo", body = source}))
    child:wait()
    assert.equal(rep.size, 3000000)
    assert.equal(rep.sha256, sha256(table.concat(tee)))
    -- the process's stdout Stream itself
    child = assert(process.spawn("head", {"-c", "100000", "/dev/zero"}, {}))
    rep = report(http.request({method = "POST", url = base .. "/echo", body = child.stdout}))
    child:wait()
    assert.equal({rep.size, rep.sha256}, {100000, sha256(("\0"):rep(100000))})
  end, 20)

  it("returns the source's error, or a clear one for a piece that is not a string", function()
    local r, err = http.request({method = "POST", url = base .. "/echo", body = pieces({"a"}), timeout = 5})
    assert.equal(r.status, 200)
    r, err = http.request({method = "POST", url = base .. "/echo", body = function() return nil, "disk on fire" end})
    assert.isNil(r)
    assert.equal({err.code, err.message}, {"BodyError", "disk on fire"})
    local i = 0
    r, err = http.request({method = "POST", url = base .. "/echo", body = function()
      i = i + 1
      if i == 1 then return "ok" end
      return 42
    end})
    assert.isNil(r)
    assert.equal(err.code, "BodyError")
    assert.match(err.message, "gave a number, not a string")
    assert.throws(function() http.request({method = "POST", url = base .. "/echo", body = {}}) end,
      "bad argument #1 to 'request' %(string, function or Stream body expected, got table%)")
    assert.throws(function() http.request({method = "POST", url = base .. "/echo", body = pieces({}), json = {}}) end,
      "bad argument #1 to 'request' %(body and json are exclusive%)")
  end)

  it("returns a 307 instead of following it with a streamed body; follows a 303 as a GET", function()
    local r = assert(http.request({method = "POST", url = base .. "/r307", body = pieces({"x"}), follow = 3}))
    assert.equal(r.status, 307)
    local rep = report(http.request({method = "POST", url = base .. "/r303", body = pieces({"x"}), follow = 3}))
    assert.equal({rep.method, rep.size}, {"GET", 0})
  end)

  it("sends json = value as application/json, and res:json() decodes the answer", function()
    local r = assert(http.request({method = "POST", url = base .. "/json", json = {name = "Zoë", tags = {"a", "b"}, n = 3}}))
    local rep = assert(r:json())
    assert.equal(rep.ctype, "application/json")
    assert.equal(rep.value, {name = "Zoë", tags = {"a", "b"}, n = 3})
    r = assert(http.request({method = "POST", url = base .. "/json", json = {1, 2},
      headers = {["Content-Type"] = "application/vnd.api+json"}}))
    rep = assert(r:json())
    assert.equal({rep.ctype, rep.value}, {"application/vnd.api+json", {1, 2}})
    r = assert(http.request({url = base .. "/echo"}))
    local v, err = r:json()
    assert.isNil(v)
    assert.equal(err.code, "JsonSyntax")
  end)
end)
