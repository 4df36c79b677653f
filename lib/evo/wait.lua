-- evo.wait: the Lua side of the native waiting protocol (src/lua/tasks.h,
-- above `waiter`). A native blocking call returns (true, results...) when it
-- is done, now or after its task was resumed, or (false) when the task was
-- cancelled; its Lua wrapper then raises Canceled. Every module unwraps with
-- these two functions; cache them as upvalues (no lookup per call):
--
--   local finish = require("evo.wait").finish
--   function Stream:readLine() return finish(sread(self, "line", nil, true)) end
--
-- Levels: Canceled is an error object (a table), and Lua attaches a position
-- only to string messages, so the level given to error() shows nowhere in
-- the error; a traceback starts at the raise, whose next frame is the
-- wrapper or (after a tail call) its caller. The levels are still the right
-- ones, so that a string error raised the same way would name the user's line.
local error = error
local canceled = require("evo.errors").canceled

local wait = {}

-- finish(ok, ...) -> ...: the results, every one (nils included, in the
-- middle and at the end); raises Canceled when ok is false (or nil).
-- Written for the tail call `return finish(native(...))`: LuaJIT keeps no
-- frame for the wrapper then, so level 2 is the line that called it.
function wait.finish(ok, ...)
  if not ok then error(canceled(), 2) end
  return ...
end

-- raiseCanceled([level = 1]): raises Canceled as error(err, level) would in
-- the calling function (1: that function, 2: its caller). For the checks
-- that are not an (ok, ...) answer: prepare() -> false (a cancellation was
-- due), a suspend answer with cleanup to do first, cancelDue().
function wait.raiseCanceled(level)
  error(canceled(), (level or 1) + 1)
end

return wait
