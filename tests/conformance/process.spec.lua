-- process, dns and timer, in both Io modes.
local H = require("helpers")
local process = require("process")
local dns = require("dns")
local timer = require("timer")
local task = require("task")

describe("process (" .. H.mode .. ")", function()
  it("runs a command line and collects its output and status", function()
    local out, err, code = process.exec("echo out; echo err >&2; exit 3")
    assert.equal({out, err, code}, {"out\n", "err\n", 3})
  end)

  it("reads stdout and stderr together, so a child filling stderr first does not stall", function()
    local out, err, code = process.exec("head -c 300000 /dev/zero >&2; echo done")
    assert.equal({out, #err, code}, {"done\n", 300000, 0})
  end)

  it("spawns a child with pipes for its standard streams", function()
    local child = assert(process.spawn("cat", {}, {stderr = "ignore"}))
    assert.truthy(child.pid > 0)
    child.stdin:write("through ", "cat")
    child.stdin:close()
    assert.equal(child.stdout:readAll(), "through cat")
    assert.equal({child:wait()}, {0, 0})
    child.stdout:close()
  end)

  it("passes arguments, cwd and env", function()
    local dir = H.tempDir()
    local child = assert(process.spawn("/bin/sh", {"-c", "pwd; echo \"$GREETING\" \"$1\"", "sh", "arg one"},
      {cwd = dir, env = {GREETING = "hi", PATH = "/usr/bin:/bin"}, stdin = "ignore", stderr = "inherit"}))
    local out = child.stdout:readAll()
    child:wait()
    child.stdout:close()
    assert.equal(out, require("fs").realpath(dir) .. "\nhi arg one\n")
    require("fs").rm(dir, {recursive = true})
  end)

  it("rejects an unknown signal name", function()
    local child = assert(process.spawn("sleep", {"10"}, {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
    assert.throws(function() child:kill("BOGUS") end, "bad argument #1 to 'kill' (unknown signal 'BOGUS')")
    child:kill("kill")
    child:wait()
  end)

  it("answers a read of the child's stdin (write-only) with an error, not a hang", function()
    local child = assert(process.spawn("cat", {}, {stdout = "ignore", stderr = "ignore"}))
    local data, err = child.stdin:read()
    assert.isNil(data)
    assert.notNil(err)
    child.stdin:close()
    child:wait()
  end)

  it("kills a child and reports the signal", function()
    local child = assert(process.spawn("sleep", {"10"}, {stdin = "ignore", stdout = "ignore", stderr = "ignore"}))
    assert.truthy(child:kill("SIGTERM"))
    assert.equal({child:wait()}, {0, 15})
  end)

  it("returns an error for a command that does not exist", function()
    local child, err = process.spawn("/no/such/command")
    assert.isNil(child)
    assert.equal(err.code, "ENOENT")
  end)

  it("knows its own pid, cwd and environment", function()
    assert.equal(process.pid, require("uv").os_getpid())
    assert.equal(process.cwd(), H.root)
    assert.equal(process.env.PATH, os.getenv("PATH"))
  end)

  it("delivers signals as SIGNAL_RECEIVED events", function()
    local s = process.signal("SIGUSR2")
    local got
    function s:SIGNAL_RECEIVED(event, p) got = p.signal end
    require("uv").kill(process.pid, "sigusr2")
    H.runLoop(0.05)
    s:close()
    assert.equal(got, "SIGUSR2")
  end)
end)

describe("dns (" .. H.mode .. ")", function()
  it("looks up names and addresses", function()
    -- numeric hosts resolve without any resolver configuration
    assert.equal(assert(dns.lookup("127.0.0.1")), {{address = "127.0.0.1", family = 4}})
    assert.equal(assert(dns.lookup("::1", {family = 6}))[1], {address = "::1", family = 6})
    assert.type(assert(dns.reverse("127.0.0.1")), "string")
    -- "localhost" needs /etc/hosts, which every normal system has
    local hosts = io.open("/etc/hosts")
    if hosts then
      hosts:close()
      local addrs = assert(dns.lookup("localhost", {family = 4}))
      assert.equal(addrs[1], {address = "127.0.0.1", family = 4})
      assert.equal(dns.reverse("127.0.0.1"), "localhost")
    end
  end)

  it("returns resolution failures as values", function()
    local host, rerr = dns.reverse("not an ip")
    assert.isNil(host)
    assert.equal(rerr.code, "EINVAL")
    local res, err = dns.lookup("no-such-host.invalid")
    assert.isNil(res)
    assert.equal(err.code, "EAI_NONAME")
    assert.throws(function() dns.lookup(1) end, "bad argument #1 to 'lookup' (string expected, got number)")
  end)
end)

describe("timer (" .. H.mode .. ")", function()
  it("runs a function once after a delay, as a task", function()
    local ran, inTask
    timer.after(0.02, function(x) ran = x; inTask = task.current() ~= nil end, "arg")
    H.runLoop(0.1)
    assert.equal(ran, "arg")
    assert.truthy(inTask)
  end)

  it("runs a function repeatedly until stopped", function()
    local n = 0
    local h = timer.every(0.01, function() n = n + 1 end)
    H.runLoop(0.1)
    h:stop()
    local seen = n
    H.runLoop(0.05)
    assert.truthy(seen >= 3, seen)
    assert.equal(n, seen, "nothing runs after stop")
    assert.falsy(h:isActive())
  end)

  it("treats every(0) as every millisecond, like Node's setInterval", function()
    local n = 0
    local h = timer.every(0, function() n = n + 1 end)
    H.runLoop(0.05)
    h:stop()
    assert.truthy(n >= 3, n)
  end)

  it("can be stopped before it fires", function()
    local ran = false
    local h = timer.after(0.02, function() ran = true end)
    h:stop()
    H.runLoop(0.05)
    assert.falsy(ran)
  end)
end)
