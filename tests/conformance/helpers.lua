-- Shared by the conformance specs, which run twice: in the evented Io mode
-- and in the blocking one (`evo --io=blocking test tests/conformance`).
local uv = require("uv")
local task = require("task")
local assert = require("assert")

local H = {}

H.mode = task.mode()
H.evented = H.mode == "evented"
H.root = uv.cwd()
H.evo = uv.exepath()

-- Lets the event loop run for `seconds`, in either mode: the test's
-- coroutine yields and a luv timer resumes it (timers, watchers and
-- callbacks only run while the loop does).
function H.runLoop(seconds)
  local co = coroutine.running()
  local t = uv.new_timer()
  t:start(math.floor(seconds * 1000), 0, function()
    t:close()
    coroutine.resume(co)
  end)
  coroutine.yield()
end

function H.tempDir()
  return assert(require("fs").mkdtemp("/tmp/evo-conf-"))
end

-- Asserts that fn raises an error object with the given code.
function H.raisesCode(code, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error with code " .. code)
  assert.equal(type(err) == "table" and err.code, code, tostring(err))
  return err
end

-- Runs fn (which needs concurrency) in the evented mode; in the blocking
-- mode asserts that asking for concurrency fails cleanly instead.
function H.needsConcurrency(fn)
  if H.evented then return fn() end
  H.raisesCode("ConcurrencyUnavailable", task.concurrent, function() end)
end

-- Starts an echo server in a child evo process (evented) and returns its
-- port and the child. Lines are echoed back; "bye" closes the connection;
-- "big N" answers with N bytes; "slow" answers after 0.5 s.
function H.startEchoServer()
  local process = require("process")
  local child = assert(process.spawn(H.evo, {"--io=evented", H.root .. "/tests/fixtures/echo_server.lua"},
    {stdin = "ignore", stderr = "inherit", env = {PATH = os.getenv("PATH") or "/usr/bin:/bin"}}))
  local port = tonumber(child.stdout:readLine())
  assert(port, "the echo server did not report its port")
  return port, child
end

function H.stopEchoServer(child)
  child:kill("term")
  child:wait()
  child.stdout:close()
end

return H
