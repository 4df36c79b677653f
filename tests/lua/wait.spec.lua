-- evo.wait: the one unwrapping of a native blocking call's answer,
-- (true, results...) or (false) for a cancelled task (issue 8).
local wait = require("evo.wait")
local errors = require("evo.errors")
local task = require("task")

local finish, raiseCanceled = wait.finish, wait.raiseCanceled

local function pack(...) return {n = select("#", ...), ...} end

-- Calls fn under xpcall; returns the error and the traceback taken where it
-- was raised.
local function raised(fn)
  local where
  local ok, err = xpcall(fn, function(e)
    where = debug.traceback("", 2)
    return e
  end)
  assert.falsy(ok, "expected an error")
  return err, where
end

-- The first line of the traceback that names this file must be `line`: the
-- caller's line comes first, and nothing of this file sits above it.
local function blames(where, line)
  local first = where:match("wait%.spec%.lua:(%d+):")
  assert.equal(tonumber(first), line, where)
end

local function assertCanceled(err)
  assert.truthy(errors.is(err, "Canceled"), "not a Canceled error: " .. tostring(err))
  assert.equal(err.code, "Canceled")
  assert.equal(tostring(err), "Canceled: the task was canceled")
end

describe("evo.wait", function()
  it("finish passes every result through, nils in the middle and at the end included", function()
    assert.equal(select("#", finish(true)), 0)
    assert.equal(pack(finish(true, "a")), {n = 1, "a"})
    assert.equal(pack(finish(true, nil)), {n = 1})
    assert.equal(pack(finish(true, 1, nil, 3)), {n = 3, 1, nil, 3})
    assert.equal(pack(finish(true, "x", nil, nil)), {n = 3, "x"})
    assert.equal(pack(finish(true, nil, errors.new("EOF"))), {n = 2, nil, errors.new("EOF")})
    local many = pack(finish(true, 1, 2, 3, 4, 5, 6, 7, 8, 9, nil))
    assert.equal(many.n, 10)
    assert.equal(many[9], 9)
  end)

  it("finish raises Canceled on false, blaming the wrapper's caller", function()
    -- A wrapper as the modules write it: `return finish(native(...))`.
    local function api(...) return finish(...) end
    local line
    local err, where = raised(function()
      line = debug.getinfo(1, "l").currentline; api(false)
    end)
    assertCanceled(err)
    blames(where, line)
  end)

  it("finish raises Canceled from a wrapper that keeps the results (not a tail call)", function()
    local apiLine
    local function api(...)
      apiLine = debug.getinfo(1, "l").currentline; local a, b = finish(...)
      return a, b
    end
    local line
    local err, where = raised(function()
      line = debug.getinfo(1, "l").currentline; api(false, "ignored")
    end)
    assertCanceled(err)
    blames(where, apiLine)  -- the wrapper's frame is kept, and its caller follows
    assert.truthy(where:find("wait.spec.lua:" .. line .. ":", 1, true), where)
    assert.equal(pack(api(true, nil, "b")), {n = 2, nil, "b"})
  end)

  it("raiseCanceled raises Canceled at the calling function's line", function()
    local line
    local err, where = raised(function()
      line = debug.getinfo(1, "l").currentline; raiseCanceled(2)
    end)
    assertCanceled(err)
    blames(where, line)
  end)

  it("a fresh error object each time (a handler may annotate it)", function()
    local a = raised(function() finish(false) end)
    local b = raised(function() finish(false) end)
    assert.truthy(a ~= b)
  end)

  it("a cancelled blocking call raises Canceled through it", function()
    if task.mode() ~= "evented" then return end
    local f = task.concurrent(function()
      local ok, err = pcall(task.sleep, 10)
      return ok, err
    end)
    task.sleep(0.01)
    local ok, err = f:cancel()
    assert.falsy(ok)
    assertCanceled(err)
  end)
end)
