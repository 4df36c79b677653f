-- evo.replyqueue: the in-order reply queue of Evo's pipelining clients (redis,
-- postgres). Callers append a waiter w = {done, canceled, me, id, ...} to
-- c.queue[c.head .. c.tail]; one task at a time, c.reader, reads replies for
-- everyone and settles the waiters in order; the others sleep until their
-- reply is settled or the reading is handed on to them. What reading and
-- settling mean is the client's (readFor, abandon).
local tasknative = require("evo.task")
local prepare, suspend, wake = tasknative.prepare, tasknative.suspend, tasknative.wake
local raiseCanceled = require("evo.wait").raiseCanceled
local error = error

local replyqueue = {}

-- Wakes the oldest sleeping waiter, so that it takes over the reading.
function replyqueue.handOff(c)
  local q = c.queue
  for i = c.head, c.tail do
    local w = q[i]
    if w and w.me and not w.done then
      local me = w.me
      w.me = nil
      if wake(me, w.id) then return end
    end
  end
end

local function onCancel(w) w.canceled, w.me = true, nil end

-- await(c, w, can, readFor, abandon, what) -> w once settled: reads for
-- everyone (readFor(c, w, can)) while no one else does, else sleeps until
-- the reader settles w or hands the reading on. can: this task may suspend.
-- A cancelled waiter is given to abandon(c, w) and raises Canceled at the
-- client's caller; `what` names the call in the error for a caller that
-- cannot wait ("a redis command").
function replyqueue.await(c, w, can, readFor, abandon, what)
  while not w.done do
    if not c.reader then
      readFor(c, w, can)
    elseif not can then
      error(what .. " cannot wait here while a task reads this connection: call it from a task " ..
        "(not from a callback, a __gc finalizer or a module's top level)", 4)
    else
      local me, id = prepare(true)
      if me == false then
        abandon(c, w)
        raiseCanceled(3)
      end
      w.me, w.id = me, id
      if not suspend(onCancel, w) then
        abandon(c, w)
        raiseCanceled(3)
      end
    end
  end
  return w
end

return replyqueue
