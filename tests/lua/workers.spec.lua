-- `evo --workers N` (docs/workers.md), for real: a supervisor and its
-- workers started here on free ports, with HTTP, net, WebSocket and port-0
-- listeners (tests/fixtures/workers/app.lua); connections spread over every
-- worker; kill -9 under load; rolling reloads (SIGHUP) during a wrk run with
-- zero socket errors and zero non-2xx; SIGTERM with requests in flight; a
-- crash loop; the supervisor.lua hook; the blocking Io mode; bad arguments.
local assert = require("assert")
local process = require("process")
local task = require("task")
local net = require("net")
local ws = require("ws")
local fs = require("fs")
local helpers = require("helpers")
package.path = helpers.root .. "/tests/lua/?.lua;" .. package.path
local servers = require("servers")

local uv = require("uv")
local EVO = helpers.evo

-- (not assert.match: its argument order is busted's or Evo's, issue 11)
local function has(text, pattern)
  assert.truthy(tostring(text):find(pattern), ("%q not found in:\n%s"):format(pattern, tostring(text)))
end
local function now() return uv.hrtime() / 1e9 end
local APP = helpers.root .. "/tests/fixtures/workers/app.lua"
local BLOCKING = helpers.root .. "/tests/fixtures/workers/blocking.lua"

-- A supervisor child whose stdout and stderr lines are collected as they
-- come; waitFor(stream, pattern, timeout) returns the first line matching.
-- Every supervisor started, so that one a failed test left running is
-- stopped after it (with its workers) instead of outliving the run.
local started = {}

local function start(args, opts)
  local env
  if opts and opts.env then
    env = process.env()
    for k, v in pairs(opts.env) do env[k] = v end
  end
  local child = assert(process.spawn(opts and opts.program or EVO, args, {stdin = "ignore", cwd = opts and opts.cwd, env = env}))
  local sup = {child = child, out = {}, err = {}, pid = child.pid}
  for _, name in ipairs({"out", "err"}) do
    local stream, lines = name == "out" and child.stdout or child.stderr, sup[name]
    task.async(function()
      while true do
        local line = stream:readLine()
        if not line then break end
        lines[#lines + 1] = line
      end
      lines.closed = true
    end)
  end
  function sup.waitFor(name, pattern, timeout, from)
    local lines = sup[name]
    local deadline = now() + (timeout or 10)
    local i = from or 1
    while true do
      while lines[i] do
        if lines[i]:find(pattern) then return lines[i], i end
        i = i + 1
      end
      if lines.closed or now() > deadline then
        error(("no %s line matching %q; stdout:\n%s\nstderr:\n%s"):format(name, pattern,
          table.concat(sup.out, "\n"), table.concat(sup.err, "\n")), 2)
      end
      task.sleep(0.02)
    end
  end
  function sup.count(name, pattern)
    local n = 0
    for _, l in ipairs(sup[name]) do n = n + (l:find(pattern) and 1 or 0) end
    return n
  end
  function sup.stop()
    sup.stopped = true
    child:kill("SIGTERM")
    local code, signal = task.timeout(20, function() return child:wait() end)
    if code == nil then
      child:kill("SIGKILL")
      child:wait()
    end
    return code, signal
  end
  started[#started + 1] = sup
  return sup
end

-- One request on a connection of its own: the body and the connection header.
local function get(port, path)
  local c, err = net.connect({host = "127.0.0.1", port = port})
  if not c then return nil, err end
  c:write("GET ", path or "/", " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local text, rerr = c:readAll()
  c:close()
  if not text then return nil, rerr end
  local status = text:match("^HTTP/1%.1 (%d+)")
  if not status then return nil, "no response: " .. text end
  return text:match("\r\n\r\n(.*)$"), tonumber(status), text:lower():match("\r\nconnection: (%a+)")
end

local function readyLines(sup, n)
  local ports = {}
  for i = 1, n do
    local line = sup.waitFor("out", "^worker " .. i .. " of " .. n .. " ready", 15)
    ports[i] = tonumber(line:match("port0 (%d+)"))
  end
  return ports
end

if require("evo.task").mode() == "blocking" then
  -- The spec drives servers and loads concurrently; the workers' own
  -- blocking mode is the "blocking-mode accept loop" test of the evented run.
  describe("evo --workers", function()
    it("runs in the evented Io mode only (its blocking-mode case runs there)", function() end)
  end)
  return
end

describe("evo --workers", function()
  afterEach(function()
    for i = #started, 1, -1 do
      local sup = table.remove(started, i)
      if not sup.stopped and not sup.out.closed then pcall(sup.stop) end
    end
  end)

  it("spreads connections over every worker, on HTTP, net and WebSocket listeners", function()
    local httpPort, netPort = servers.freePort(), servers.freePort()
    local sup = start({"--workers", "3", APP, tostring(httpPort), tostring(netPort)})
    local ports = readyLines(sup, 3)
    -- port 0: the n-th such listen of every worker got the same port
    assert.truthy(ports[1] > 0)
    assert.equal(ports[1], ports[2])
    assert.equal(ports[1], ports[3])

    local seen, netSeen, wsSeen, zeroSeen = {}, {}, {}, {}
    for _ = 1, 60 do
      local body = assert(get(httpPort, "/"))
      seen[tonumber(body:match("^worker (%d+)"))] = true
      local c = assert(net.connect({host = "127.0.0.1", port = netPort}))
      c:write("hi\n")
      netSeen[tonumber(c:readLine():match("^worker (%d+): hi$"))] = true
      c:close()
      zeroSeen[tonumber((assert(get(ports[1], "/"))))] = true
    end
    for _ = 1, 30 do
      local conn = assert(ws.connect("ws://127.0.0.1:" .. httpPort .. "/ws"))
      conn:send("ping")
      local reply = assert(conn:receive())
      wsSeen[tonumber(reply:match("^(%d+):ping$"))] = true
      conn:close()
    end
    for i = 1, 3 do
      assert.truthy(seen[i], "HTTP never reached worker " .. i)
      assert.truthy(netSeen[i], "net never reached worker " .. i)
      assert.truthy(zeroSeen[i], "the port-0 server never reached worker " .. i)
    end
    assert.truthy(next(wsSeen))
    local code = sup.stop()
    assert.equal(143, code)
    sup.waitFor("err", "stopping 3 workers")
    assert.equal(nil, (get(httpPort, "/")))  -- nobody listens any more
  end)

  it("replaces a worker killed with SIGKILL under load while the others keep serving", function()
    local dir = helpers.tempDir()
    local app = dir .. "/app.lua"
    assert(fs.writeFile(app, assert(fs.readFile(APP))))
    -- the hook sees the events
    assert(fs.writeFile(dir .. "/supervisor.lua", [[
      local log = assert(io.open(os.getenv("HOOK_LOG_DIR") .. "/events", "a"))
      log:setvbuf("line")
      function Supervisor:WORKER_STARTED(event, p) log:write(event, " ", p.workerId, " ", p.reason, "\n") end
      function Supervisor:WORKER_EXITED(event, p)
        log:write(event, " ", p.workerId, " ", p.reason, " ", tostring(p.code), " ", tostring(p.signal), "\n")
      end
    ]]))
    process.env.HOOK_LOG_DIR = dir
    local httpPort, netPort = servers.freePort(), servers.freePort()
    local sup = start({"--workers", "2", app, tostring(httpPort), tostring(netPort)})
    process.env.HOOK_LOG_DIR = nil
    readyLines(sup, 2)

    local pids = {}
    while not (pids[1] and pids[2]) do
      local body = assert(get(httpPort, "/"))
      local id, pid = body:match("^worker (%d+) pid (%d+)")
      pids[tonumber(id)] = tonumber(pid)
    end
    local ok, failed, okAfter, running = 0, 0, 0, true
    local killed = false
    local load = task.async(function()
      while running do
        if get(httpPort, "/") then
          ok = ok + 1
          if killed then okAfter = okAfter + 1 end
        else
          failed = failed + 1
        end
      end
    end)
    task.sleep(0.5)
    assert(uv.kill(pids[1], "sigkill"))
    killed = true
    sup.waitFor("err", "worker 1 %(pid " .. pids[1] .. "%) was killed by signal 9; restarting it in 0%.1 s")
    sup.waitFor("out", "^worker 1 of 2 ready", 10, 2)
    -- the replacement serves, under a new pid
    local newPid
    for _ = 1, 200 do
      local body = get(httpPort, "/")
      local id, pid = (body or ""):match("^worker (%d+) pid (%d+)")
      if id == "1" then newPid = tonumber(pid) break end
    end
    task.sleep(0.3)
    running = false
    load:await()
    assert.truthy(newPid and newPid ~= pids[1], "worker 1 was not replaced")
    assert.truthy(okAfter > 20, "too few answers after the kill: " .. okAfter)
    -- only requests in flight in the killed worker may fail
    assert.truthy(failed <= 2, ("%d failed, %d answered"):format(failed, ok))
    assert.equal(143, (sup.stop()))
    local events = assert(fs.readFile(dir .. "/events"))
    has(events, "WORKER_STARTED 1 start\n")
    has(events, "WORKER_STARTED 2 start\n")
    has(events, "WORKER_EXITED 1 died nil 9\n")
    has(events, "WORKER_STARTED 1 restart\n")
    has(events, "WORKER_EXITED 2 stopped 0 nil\n")
  end, {timeout = 20})

  -- And a shorter run under --io=uring: a draining worker's cancelled ring
  -- accept could already have taken a connection, which was then reset.
  for _, case in ipairs({{mode = "evented", reloads = 10, seconds = 20}, {mode = "uring", reloads = 4, seconds = 8}}) do
  local reloads, seconds = case.reloads, case.seconds
  it(("reloads %d times during a %d s wrk run with zero socket errors and zero non-2xx (%s)"):format(reloads, seconds, case.mode), function()
    local wrk = "/usr/bin/wrk"
    assert(fs.stat(wrk), "wrk is not installed (scripts/install-deps test installs it)")
    local httpPort, netPort = servers.freePort(), servers.freePort()
    local sup = start({"--workers", "2", "--io=" .. case.mode, APP, tostring(httpPort), tostring(netPort)})
    readyLines(sup, 2)
    local before = {}
    for _ = 1, 20 do before[assert(get(httpPort, "/")):match("pid (%d+)")] = true end

    -- Two loads at once: keep-alive connections (a drained worker must not
    -- close one a request is already on its way on) and a new connection per
    -- request (a drained worker's accept queue must not be reset).
    local cmd = "%s -t1 -c8 -d" .. seconds .. "s --timeout 5s %s http://127.0.0.1:%d/"
    local keepAlive = task.async(process.exec, cmd:format(wrk, "", httpPort))
    local perRequest = task.async(process.exec, cmd:format(wrk, "-H 'Connection: close'", httpPort))
    task.sleep(1)
    local from = 1
    for i = 1, reloads do
      sup.child:kill("SIGHUP")
      local _, at = sup.waitFor("err", "^evo: reload done$", 10, from)
      from = at + 1
      if i < reloads then task.sleep(0.8) end
    end
    for name, load in pairs({["keep-alive"] = keepAlive, ["Connection: close"] = perRequest}) do
      local out, err, code = load:await()
      assert.equal(0, code, err)
      local requests = tonumber(out:match("(%d+) requests in"))
      print(("      wrk %s: %d requests during %d reloads, %s"):format(name, requests or -1, reloads,
        out:match("Requests/sec:%s*[%d.]+") or ""))
      assert.truthy(requests and requests > 1000, out)
      assert.equal(nil, out:match("Socket errors[^\n]*"), name .. ": " .. out)
      assert.equal(nil, out:match("Non%-2xx[^\n]*"), name .. ": " .. out)
    end
    assert.equal(reloads, sup.count("err", "^evo: reload done$"))
    -- every worker is new
    for _ = 1, 20 do
      assert.equal(nil, before[assert(get(httpPort, "/")):match("pid (%d+)")])
    end
    assert.equal(143, (sup.stop()))
  end, {timeout = 40})
  end

  it("finishes the requests in flight on SIGTERM, then exits; one over the grace period is cut", function()
    local httpPort, netPort = servers.freePort(), servers.freePort()
    local sup = start({"--workers", "2", "--grace", "3", APP, tostring(httpPort), tostring(netPort)})
    readyLines(sup, 2)
    local inflight = {}
    for i = 1, 6 do inflight[i] = task.async(get, httpPort, "/slow?ms=1200") end
    task.sleep(0.4)  -- every request is in its handler now
    local t0 = now()
    sup.child:kill("SIGTERM")
    task.sleep(0.2)
    assert.equal(nil, (get(httpPort, "/")))  -- no new connection is taken
    for i = 1, 6 do
      local body, status, connection = inflight[i]:await()
      assert.equal(200, status)
      has(body, "^worker %d pid %d+\n$")
      assert.equal("close", connection)
    end
    local code = task.timeout(10, function() return sup.child:wait() end)
    assert.equal(143, code)
    assert.truthy(now() - t0 < 5)

    -- the grace period bounds a request that would take longer
    local sup2 = start({"--workers", "1", "--grace", "0.5", APP, tostring(httpPort), tostring(netPort)})
    readyLines(sup2, 1)
    local slow = task.async(get, httpPort, "/slow?ms=20000")
    task.sleep(0.3)
    sup2.child:kill("SIGTERM")
    local code2 = task.timeout(5, function() return sup2.child:wait() end)
    assert.equal(143, code2)
    sup2.waitFor("err", "worker 1: the grace period is over")
    assert.equal(nil, (slow:await()))
  end, {timeout = 15})

  it("reports a crash loop and stops restarting", function()
    local script = helpers.tempFile("crash.lua", "error('broken at start')")
    local r = helpers.runEvo({"--workers", "2", script}, {timeout = 20})
    assert.equal(1, r.code)
    has(r.stderr, "broken at start")
    has(r.stderr, "restarting it in 0%.1 s")
    has(r.stderr, "restarting it in 0%.8 s")
    has(r.stderr, "worker 1 is crash%-looping: it died 5 times in a row")
    has(r.stderr, "worker 2 is crash%-looping")
  end, {timeout = 15})

  it("does not restart a worker that ends by itself, and sets process.workerId", function()
    local script = helpers.tempFile("once.lua",
      "local p = require('process'); print(p.workerId .. '/' .. p.workers .. ' ' .. tostring(os.getenv('EVO_WORKER')))")
    local r = helpers.runEvo({"--workers=2", script})  -- (the = form, as evo --watch passes it on)
    assert.equal(0, r.code, r.stderr)
    local lines = helpers.lines(r.stdout)
    table.sort(lines)
    assert.same({"1/2 nil", "2/2 nil"}, lines)
    local plain = helpers.runEvo({"-e", "local p = require('process'); print(p.workerId, p.workers)"})
    assert.equal("nil\tnil\n", plain.stdout)
  end)

  it("stops a blocking-mode accept loop gracefully", function()
    local port = servers.freePort()
    local sup = start({"--workers", "2", "--io=blocking", BLOCKING, tostring(port)})
    sup.waitFor("out", "^worker 1 ready")
    sup.waitFor("out", "^worker 2 ready")
    local seen = {}
    for _ = 1, 40 do
      local c = assert(net.connect({host = "127.0.0.1", port = port}))
      c:write("x\n")
      seen[c:readLine():match("^worker (%d+): x$")] = true
      c:close()
    end
    assert.truthy(seen["1"] and seen["2"])
    assert.equal(143, (sup.stop()))
    assert.equal(2, sup.count("out", "accept: Closed"))
  end)

  -- Under --io=uring too: the ring's accept took every connection of the
  -- shared queue into whichever worker armed it first, busy or not.
  for _, mode in ipairs({"evented", "uring"}) do
  it("shares one Unix socket between the workers and removes its file at the end (" .. mode .. ")", function()
    local dir = helpers.tempDir()
    local sock = dir .. "/app.sock"
    local script = helpers.tempFile("unix.lua", ([[
      local net, process = require("net"), require("process")
      local uv = require("uv")
      assert(net.listen({path = %q}, function(conn)
        local t = uv.hrtime() + 20e6
        while uv.hrtime() < t do end  -- busy: the other worker takes the next ones
        conn:write("worker ", process.workerId, "\n")
      end))
      print("worker " .. process.workerId .. " ready")
      io.stdout:flush()
    ]]):format(sock))
    local sup = start({"--workers", "2", "--io=" .. mode, script})
    sup.waitFor("out", "^worker 1 ready")
    sup.waitFor("out", "^worker 2 ready")
    -- One queue shared by the workers (no SO_REUSEPORT for Unix sockets):
    -- whichever worker is not busy takes the next connection.
    local seen, answered = {}, 0
    for _ = 1, 10 do
      local round = {}
      for i = 1, 6 do
        round[i] = task.async(function()
          local c = assert(net.connect({path = sock}))
          local line = c:readLine()
          c:close()
          return line
        end)
      end
      for i = 1, 6 do
        local line = round[i]:await()
        if line then seen[line], answered = true, answered + 1 end
      end
    end
    assert.equal(60, answered)
    assert.truthy(seen["worker 1"] and seen["worker 2"])
    assert.equal(143, (sup.stop()))
    assert.equal(nil, fs.stat(sock))
  end)
  end

  -- Every word of a built app's command line is the app's: EVO_WORKERS
  -- (and EVO_GRACE) make it the supervisor of copies of itself.
  it("runs a one-file built app as workers with EVO_WORKERS", function()
    local dir = helpers.tempDir()
    local appPath = dir .. "/app"
    local r = helpers.runEvo({"build", APP, "-o", appPath})
    assert.equal(0, r.code, r.stderr)
    local httpPort, netPort = servers.freePort(), servers.freePort()
    local sup = start({tostring(httpPort), tostring(netPort)},
      {program = appPath, cwd = dir, env = {EVO_WORKERS = "2", EVO_GRACE = "1"}})
    readyLines(sup, 2)
    local seen = {}
    for _ = 1, 40 do
      local body = assert(get(httpPort, "/"))
      seen[tonumber(body:match("^worker (%d+)"))] = true
    end
    assert.truthy(seen[1] and seen[2], "both workers answer")
    assert.equal(143, (sup.stop()))
    sup.waitFor("err", "stopping 2 workers %(grace period 1 s%)")
    local bad = helpers.spawn(appPath, {"x", "y"}, {env = {EVO_WORKERS = "lots"}})
    assert.equal(2, bad.code)
    has(bad.stderr, "EVO_WORKERS must be a number of workers or 'auto', not 'lots'")
  end)

  it("refuses bad arguments", function()
    local r = helpers.runEvo({"--workers", "0", "x.lua"})
    assert.equal(2, r.code)
    has(r.stderr, "%-%-workers must be a number from 1 to 1024 or 'auto', not '0'")
    r = helpers.runEvo({"--workers", "2"})
    assert.equal(2, r.code)
    has(r.stderr, "%-%-workers needs a script file")
    r = helpers.runEvo({"--workersx", "2", "x.lua"})
    assert.equal(2, r.code)
    has(r.stderr, "unknown option '%-%-workersx'")
    r = helpers.runEvo({"--workers", "2", "--grace=soon", "x.lua"})
    assert.equal(2, r.code)
    has(r.stderr, "%-%-grace must be a positive number")
  end)
end)
