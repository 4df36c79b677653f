-- FileWatcher: reports FILE_CHANGED {path, filename, change} for a file or
-- a directory ("change": contents or metadata; "rename": created, deleted,
-- moved). fs.watch(path) makes and starts one.
--
--   local w = assert(require("fs").watch("/tmp/dir"))
--   function w:FILE_CHANGED(event, p) print(p.change, p.filename) end
--   ... w:close()
local events = require("events")
local errors = require("evo.errors")
local native = require("evo.fswatch")
local args = require("evo.args")

local FileWatcher = events.class("FileWatcher", {"FILE_CHANGED"})

-- The native delivers FILE_CHANGED through this (events::emit_values);
-- filename and error may be nil (absent).
local deliver = events.deliverer("FILE_CHANGED", "path", "filename", "change", "error")

function FileWatcher:init() native.open(self, deliver) end

-- start(path [, {recursive = true}]) -> true | nil, err
local function isWatcher(w) return events.isInstance(w, FileWatcher) end

function FileWatcher:start(path, opts)
  if not isWatcher(self) then args.badSelf("start", "FileWatcher", self) end
  args.check(1, "start", path, "string")
  if opts ~= nil then args.check(2, "start", opts, "table") end
  local ok, code, message = native.start(self, path, opts and opts.recursive)
  if not ok then return nil, errors.new(code, message) end
  return true
end

FileWatcher.stop = args.method("stop", native.stop, isWatcher, "FileWatcher")
FileWatcher.close = args.method("close", native.close, isWatcher, "FileWatcher")

return FileWatcher
