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

local FileWatcher = events.class("FileWatcher", {"FILE_CHANGED"})

function FileWatcher:init() native.open(self) end

-- start(path [, {recursive = true}]) -> true | nil, err
function FileWatcher:start(path, opts)
  local ok, code, message = native.start(self, path, opts and opts.recursive)
  if not ok then return nil, errors.new(code, message) end
  return true
end

FileWatcher.stop = native.stop
FileWatcher.close = native.close

return FileWatcher
