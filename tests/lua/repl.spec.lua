-- The REPL: plain lines with -i (stdin not a terminal), and a real terminal
-- through util-linux's `script`, which gives evo a pseudo-terminal.
local h = require("helpers")
local uv = require("uv")

describe("REPL (plain input)", function()
  it("prints expression values, continues incomplete chunks, survives errors", function()
    local input = table.concat({
      "1 + 2",
      "x = 10",
      "x * 2, 'two'",
      "for i = 1, 2 do",
      "  x = x + i",
      "end",
      "x",
      "error('oops')",
      "{a = 1, 2}",
      "local y = = 1",
      "_",
      "",
    }, "\n")
    local r = h.runEvo({"-i"}, {stdin = input})
    assert.equal(r.code, 0, r.stderr)
    local out = r.stdout
    assert.match(out, "> 3\n")
    assert.match(out, "> 20\t\"two\"\n")
    assert.match(out, ">> >> > 13\n", "a for loop continues over three lines")
    assert.match(out, "> {2, a = 1}\n")
    assert.match(out, "> {2, a = 1}\n> \n$", "_ holds the last value")
    assert.match(r.stderr, "stdin:1: oops")
    assert.match(r.stderr, "unexpected symbol near '='")
  end)

  it("evaluates each input as a task: it may sleep and await", function()
    local r = h.runEvo({"-i"}, {stdin = table.concat({
      "task = require('task')",
      "f = task.async(function() task.sleep(0.05) return 'awaited' end)",
      "f:await()",
      "task.current() ~= nil",
    }, "\n") .. "\n"})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, "\"awaited\"\n")
    assert.match(r.stdout, "true\n")
  end)

  it("runs the loop after the input, so timers started at the prompt fire", function()
    local r = h.runEvo({"-i"}, {stdin = "require('uv').new_timer():start(10, 0, function() print('fired') end)\n"})
    assert.match(r.stdout, "fired\n")
  end)
end)

describe("REPL (terminal)", function()
  it("starts on a terminal, edits lines with libedit, and exits on Ctrl-D", function()
    assert.truthy(uv.fs_stat("/usr/bin/script"), "util-linux's script is needed (bsdutils)")
    -- Type as a person would, a line at a time; \27[A is the up arrow
    -- (history), \4 is Ctrl-D.
    local r = h.spawn("/usr/bin/script", {"-qfec", h.evo, "/dev/null"}, {
      env = {HOME = "/tmp", TERM = "xterm"},
      stdin = {"print('from ' .. 'tty')\n", "6 * 7\n", "for i = 1, 2 do\n", "print('loop', i)\n", "end\n",
        "\27[A\27[A\27[A\27[A\n", "\4"},
      timeout = 10,
    })
    assert.falsy(r.timedOut, r.stdout)
    assert.equal(r.code, 0, r.stdout)
    assert.match(r.stdout, "Evo %d+%.%d+%.%d+")
    assert.match(r.stdout, "from tty")
    assert.match(r.stdout, "\n42\r?\n")
    assert.match(r.stdout, ">> ", "a multi-line chunk continues on a >> prompt")
    assert.match(r.stdout, "loop\t1\r?\nloop\t2")
    local _, n = r.stdout:gsub("\n42\r?\n", "")
    assert.equal(n, 2, "the up arrow recalled 6 * 7 from the history")
  end, {timeout = 15})

  it("says the loop still has work at Ctrl-D, keeps reading, and exits on a second Ctrl-D", function()
    assert.truthy(uv.fs_stat("/usr/bin/script"), "util-linux's script is needed (bsdutils)")
    local r = h.spawn("/usr/bin/script", {"-qfec", h.evo, "/dev/null"}, {
      env = {HOME = "/tmp", TERM = "xterm"},
      stdin = {"server = require('uv').new_tcp(); server:bind('127.0.0.1', 0); server:listen(8, function() end)\n",
        "\4", "print('still ' .. 'evaluating')\n", "\4", "\4"},
      timeout = 10,
    })
    assert.falsy(r.timedOut, r.stdout)
    assert.equal(r.code, 0, r.stdout)
    local _, n = r.stdout:gsub("%(the event loop still has work: 1 tcp handle; press Ctrl%-D again to exit%)", "")
    assert.equal(n, 2, r.stdout)
    assert.match(r.stdout, "still evaluating")
  end, {timeout = 15})

  it("reports an error raised in a callback and keeps the REPL running", function()
    local r = h.runEvo({"-i"}, {
      stdin = {"require('uv').new_timer():start(1, 0, function() error('cb failed') end)\n", "print('still here')\n"},
    })
    assert.equal(r.code, 0)
    assert.match(r.stderr, "cb failed")
    assert.match(r.stdout, "still here")
  end)
end)
