-- bench/loadgen's evo_loadgen (a benchmark tool, built only on request:
-- `cmake --build build --target evo_loadgen`, which make test does; pending when it is not built):
-- short runs against Evo's own http.serve and ws.accept, and against Python
-- servers that answer awkwardly (tests/http/peers/loadgen_peer.py): chunked
-- bodies split anywhere, interim and bodiless responses, "Connection: close",
-- malformed framing, fragmented echoes, corrupted echoes, a wrong handshake.
local K = require("httpkit")
local uv = require("uv")
local fs = require("fs")
local ws = require("ws")
local process = require("process")
local task = require("task")

local LOADGEN = os.getenv("EVO_LOADGEN") or (K.evo:match("^(.*)/[^/]+$") or ".") .. "/bench/loadgen/evo_loadgen"
local PEER = K.peers .. "/loadgen_peer.py"

-- loadgen(args...) -> the RESULT line's fields (numbers), the whole output, the
-- exit code. Tables among the arguments are spliced in.
local function loadgen(...)
  local argv = {}
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    if type(a) == "table" then
      for _, v in ipairs(a) do argv[#argv + 1] = v end
    else
      argv[#argv + 1] = a
    end
  end
  local r = K.run(LOADGEN, argv, {timeout = 20})
  local result = {}
  local line = r.out:match("RESULT ([^\n]*)")
  for k, v in (line or ""):gmatch("([%w_]+)=(%S+)") do result[k] = tonumber(v) or v end
  return result, r.out .. r.err, r.code
end

local function need()
  if not fs.exists(LOADGEN) then
    pending("evo_loadgen not built (cmake --build build --target evo_loadgen)")
  end
end

-- A Python peer in MODE; returns its port. Stopped after the test.
local function peer(mode)
  local child = assert(process.spawn(K.python, {PEER, mode}, {stdin = "ignore", stderr = "ignore"}))
  K.onCleanup(function()
    child:kill("KILL")
    child:wait()
    child.stdout:close()
  end)
  local line = task.timeout(10, function() return child.stdout:readLine() end)
  local port = line and tonumber(line:match("^listening on (%d+)$"))
  assert(port, "the peer did not report its port: " .. tostring(line))
  return port
end

local function helloServer()
  local _, url = K.serve({}, function(req, res)
    res:send(200, "Hello, World!", {["content-type"] = "text/plain"})
  end)
  return url .. "/"
end

describe("evo_loadgen", function()
  afterEach(K.cleanup)

  describe("HTTP/1.1 against Evo", function()
    it("keeps connections alive and counts every response as 2xx", function()
      need()
      local r, out, code = loadgen("-c", "4", "-d", "0.3", helloServer())
      assert.are.equal(0, code, out)
      assert.are.equal("http", r.mode)
      assert.truthy(r.requests > 100, out)
      assert.are.equal(0, r.errors, out)
      assert.are.equal(0, r.non2xx, out)
      assert.truthy(r.rps > 0 and r.p50_ms > 0 and r.p99_ms >= r.p50_ms, out)
    end)

    it("pipelines -p requests per connection, in both refill policies", function()
      need()
      local url = helloServer()
      for _, batch in ipairs({false, true}) do
        local r, out = loadgen("-c", "3", "-p", "8", "-d", "0.3", batch and "--batch" or "--no-latency", url)
        assert.truthy(r.requests > 100, out)
        assert.are.equal(0, r.errors, out)
        assert.are.equal(0, r.non2xx, out)
      end
    end)

    it("-R keeps an open loop at the asked rate, spread over the connections; --warmup is not counted", function()
      need()
      local arrivals = {}
      local _, url = K.serve({}, function(req, res)
        arrivals[#arrivals + 1] = uv.hrtime()
        res:send(200, "ok")
      end)
      -- 10 connections, 200 requests a second in all: each connection every 50 ms
      local r, out, code = loadgen("-c", "10", "-R", "200", "--warmup", "0.5", "-d", "1", "--pid",
        tostring(uv.os_getpid()), url .. "/")
      assert.are.equal(0, code, out)
      assert.are.equal(0, r.errors, out)
      assert.are.equal(0, r.skipped, out)
      -- counted: the second after the warm-up only; the server saw both
      assert.truthy(r.requests >= 170 and r.requests <= 230, out)
      assert.truthy(r.rps >= 170 and r.rps <= 230, out)
      assert.truthy(#arrivals >= r.requests + 70, #arrivals .. " arrivals\n" .. out)
      -- evenly spread: about 2 arrivals in every 10 ms slot. Connections sending
      -- together every 50 ms would fill one slot in five.
      local first, last, slots = arrivals[1], arrivals[#arrivals], {}
      for _, t in ipairs(arrivals) do slots[math.floor((t - first) / 1e7)] = true end
      local filled, total = 0, math.floor((last - first) / 1e7) + 1
      for _ in pairs(slots) do filled = filled + 1 end
      assert.truthy(filled / total > 0.5, ("%d of %d slots of 10 ms had arrivals"):format(filled, total))
      -- --pid: this process is the server
      assert.truthy(r.server_cpu_s >= 0 and r.server_rss_kib > 1000, out)
    end)

    it("-R counts the sends a connection could not make (its request unanswered)", function()
      need()
      local _, url = K.serve({}, function(req, res)
        task.sleep(0.3)
        res:send(200, "late")
      end)
      -- one connection asked for 50 requests a second, each answered after 300 ms
      local r, out = loadgen("-c", "1", "-R", "50", "-d", "1", url .. "/")
      assert.are.equal(0, r.errors, out)
      assert.truthy(r.requests >= 2 and r.requests <= 4, out)
      assert.truthy(r.skipped >= 40, out)
      assert.truthy(out:find("sends missed", 1, true), out)
    end)

    it("stops after exactly -n responses, across threads", function()
      need()
      local r, out = loadgen("-c", "4", "-p", "4", "-t", "2", "-n", "1001", helloServer())
      assert.are.equal(1001, r.requests, out)
      assert.are.equal(0, r.errors, out)
    end)
  end)

  describe("WebSocket echo against Evo's ws.accept", function()
    local function echoServer()
      local _, url = K.serve({}, function(req, res)
        local conn = ws.accept(req, res)
        while true do
          local data, kind = conn:receive()
          if not data then break end
          conn:send(data, kind)
        end
      end)
      return (url:gsub("^http", "ws")) .. "/"
    end

    it("checks every echo of text and binary messages of several sizes", function()
      need()
      local url = echoServer()
      for _, args in ipairs({{"-s", "32"}, {"-s", "0", "--binary"}, {"-s", "300", "--sample", "1"},
        {"-s", "70000", "--binary", "--sample", "1"}}) do
        local r, out, code = loadgen("-c", "3", "-p", "4", "-d", "0.3", args, url)
        assert.are.equal(0, code, out)
        assert.are.equal("ws", r.mode)
        assert.truthy(r.messages > 10, out)
        assert.are.equal(0, r.errors, out)
      end
    end)
  end)

  describe("against awkward servers (Python)", function()
    local function run(mode)
      local scheme = mode:match("^ws%-") and "ws" or "http"
      return loadgen("-c", "3", "-p", "3", "-d", "0.3", "--sample", "1", scheme .. "://127.0.0.1:" .. peer(mode) .. "/")
    end

    it("reads chunked bodies with extensions and trailers, split anywhere", function()
      need()
      local r, out = run("chunked")
      assert.truthy(r.requests > 10, out)
      assert.are.equal(0, r.errors, out)
    end)

    it("counts 404 as non-2xx, reads 204 without a body and skips 1xx interim responses", function()
      need()
      local r, out = run("mixed")
      assert.truthy(r.requests > 20, out)
      assert.are.equal(0, r.errors, out)
      -- one response in five is a 404; were the 103 counted, it would be two in six
      assert.truthy(math.abs(r.non2xx - r.requests / 5) <= 3, out)
    end)

    it("connects again after Connection: close, without counting an error", function()
      need()
      local r, out = run("close")
      assert.truthy(r.requests > 10, out)
      assert.are.equal(0, r.errors, out)
    end)

    it("reports malformed framing as errors, not responses", function()
      need()
      local r, out, code = run("malformed")
      assert.are.equal(0, r.requests, out)
      assert.truthy(r.errors > 0, out)
      assert.truthy(out:find("bad Content-Length", 1, true), out)
      assert.are.equal(1, code)
      r, out = run("unframed")
      assert.are.equal(0, r.requests, out)
      assert.truthy(out:find("read until close", 1, true), out)
    end)

    it("reassembles fragmented echoes and skips pings between the fragments", function()
      need()
      local r, out = run("ws-split")
      assert.truthy(r.messages > 10, out)
      assert.are.equal(0, r.errors, out)
    end)

    it("counts corrupted echoes as mismatches", function()
      need()
      local r, out = run("ws-corrupt")
      assert.truthy(r.messages > 30, out)
      -- every third echo has its last byte changed; --sample 1 checks every byte
      assert.truthy(math.abs(r.errors - r.messages / 3) <= 2, out)
      assert.truthy(out:find("mismatched echoes " .. r.errors, 1, true), out)
    end)

    it("refuses a handshake with a wrong Sec-WebSocket-Accept", function()
      need()
      local r, out = run("ws-badkey")
      assert.are.equal(0, r.messages, out)
      assert.truthy(r.errors > 0, out)
      assert.truthy(out:find("Sec-WebSocket-Accept", 1, true), out)
    end)
  end)

  it("explains bad usage with exit code 2", function()
    need()
    for _, args in ipairs({{}, {"-c", "0", "http://127.0.0.1:1/"}, {"--what", "http://127.0.0.1:1/"},
      {"ftp://127.0.0.1:1/"}, {"-d", "soon", "http://127.0.0.1:1/"}, {"-R", "0", "http://127.0.0.1:1/"},
      {"-R", "fast", "http://127.0.0.1:1/"}, {"--warmup", "-1", "http://127.0.0.1:1/"},
      {"--pid", "x", "http://127.0.0.1:1/"}}) do
      local _, out, code = loadgen(args)
      assert.are.equal(2, code, out)
      assert.truthy(out:find("evo_loadgen", 1, true), out)
    end
  end)
end)
