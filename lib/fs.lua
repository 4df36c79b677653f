-- fs: files and directories, colourless.
--
-- Every function works the same from a task (it suspends only that task),
-- from the main chunk, and in the blocking Io mode (a plain syscall).
-- Operational failures return nil, err (err.code is libuv's name: ENOENT,
-- EACCES, EEXIST...); bad arguments raise.
--
--   local fs = require("fs")
--   assert(fs.writeFile("/tmp/a.txt", "hello\n"))
--   print(assert(fs.readFile("/tmp/a.txt")))
local uv = require("uv")
local io = require("evo.io")
local errors = require("evo.errors")
local args = require("evo.args")
local events = require("events")

local call = io.call
local type, pairs, ipairs, select, concat, tostring = type, pairs, ipairs, select, table.concat, tostring
local check = args.check

local fs = {}

local READ_CHUNK = 65536

-- In a one-file executable (evo build, docs/build.md) embedded files come
-- first: readFile, stat, lstat, exists and readdir ask the archive, then the
-- disk. nil in a plain evo, so each call pays one upvalue test.
local appfs = require("evo.appfs")
local embedded = appfs.active and appfs or nil

local function checkPath(n, fname, path)
  if type(path) ~= "string" then args.fail(n, fname, "string", path, 3) end
  return path
end

-- Whole-file operations run as one job on the thread pool (evo.fsfast):
-- open, read or write, close, in a single trip.
local fast = require("evo.fsfast")
local wait = require("evo.wait")
local finish, raiseCanceled = wait.finish, wait.raiseCanceled

-- readFile(path) -> contents | nil, err
function fs.readFile(path)
  checkPath(1, "readFile", path)
  if embedded then
    local data = embedded.readFile(path)
    if data then return data end
  end
  return finish(fast.readFile(path, nil, true))
end

local function writeWith(fname, op, path, data)
  checkPath(1, fname, path)
  if type(data) == "table" then
    for i = 1, #data do
      if type(data[i]) ~= "string" then args.fail(2, fname, "string", data[i], 3) end
    end
    data = concat(data)
  elseif type(data) ~= "string" then
    args.fail(2, fname, "string", data, 3)
  end
  return finish(op(path, data, true))
end

-- writeFile(path, data) -> true | nil, err. data: a string or a list of strings.
function fs.writeFile(path, data) return writeWith("writeFile", fast.writeFile, path, data) end

-- appendFile(path, data) -> true | nil, err
function fs.appendFile(path, data) return writeWith("appendFile", fast.appendFile, path, data) end

-- File handles and stat go through the Io (evo.fsfast: a libuv fs
-- request, the system call, or a ring entry under --io=uring), with luv's
-- results (the stat table is uv.fs_stat's).
local fstat, flstat = fast.stat, fast.lstat
local function stat(path) return finish(fstat(path, true)) end
local function lstat(path) return finish(flstat(path, true)) end

-- stat and lstat: an embedded file (a built app's, docs/build.md) first, then the disk.
local function statWith(fname, op, path)
  checkPath(1, fname, path)
  if embedded then
    local st = embedded.stat(path)
    if st then return st end
  end
  return op(path)
end

function fs.stat(path) return statWith("stat", stat, path) end

function fs.lstat(path) return statWith("lstat", lstat, path) end

-- exists(path) -> boolean
function fs.exists(path)
  checkPath(1, "exists", path)
  if embedded and embedded.stat(path) then return true end
  return (stat(path)) ~= nil
end

-- readdir(path [, {types = true}]) -> names (or {name, type} entries), sorted by name
function fs.readdir(path, opts)
  checkPath(1, "readdir", path)
  if embedded then
    local names = embedded.readdir(path, opts and opts.types)
    if names then return names end
  end
  local req, err = call(uv.fs_scandir, path)
  if not req then return nil, err end
  local entries = {}
  while true do
    local name, kind = uv.fs_scandir_next(req)
    if not name then break end
    entries[#entries + 1] = (opts and opts.types) and {name = name, type = kind} or name
  end
  if opts and opts.types then
    table.sort(entries, function(a, b) return a.name < b.name end)
  else
    table.sort(entries)
  end
  return entries
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == "" then return "/" end
  return d
end

-- mkdir(path [, {recursive = true, mode = 0755}]) -> true | nil, err
function fs.mkdir(path, opts)
  checkPath(1, "mkdir", path)
  local mode = (opts and opts.mode) or 493
  local ok, err = call(uv.fs_mkdir, path, mode)
  if ok or not (opts and opts.recursive) then return ok, err end
  if err.code == "EEXIST" then
    local st = stat(path)
    if type(st) == "table" and st.type == "directory" then return true end
    return nil, err
  end
  if err.code ~= "ENOENT" then return nil, err end
  local parent = dirname(path)
  if not parent or parent == path then return nil, err end
  local pok, perr = fs.mkdir(parent, opts)
  if not pok then return nil, perr end
  ok, err = call(uv.fs_mkdir, path, mode)
  if not ok and err.code == "EEXIST" then return true end
  return ok, err
end

-- rm(path [, {recursive = true, force = true}]) -> true | nil, err
function fs.rm(path, opts)
  checkPath(1, "rm", path)
  opts = opts or {}
  local st, err = lstat(path)
  if not st then
    if opts.force and err.code == "ENOENT" then return true end
    return nil, err
  end
  if st.type ~= "directory" then return call(uv.fs_unlink, path) end
  if not opts.recursive then return call(uv.fs_rmdir, path) end
  local names, lerr = fs.readdir(path)
  if not names then return nil, lerr end
  for _, name in ipairs(names) do
    local ok, e = fs.rm(path .. "/" .. name, opts)
    if not ok then return nil, e end
  end
  return call(uv.fs_rmdir, path)
end

function fs.rename(from, to)
  return call(uv.fs_rename, checkPath(1, "rename", from), checkPath(2, "rename", to))
end

function fs.copyFile(from, to)
  return call(uv.fs_copyfile, checkPath(1, "copyFile", from), checkPath(2, "copyFile", to))
end

function fs.symlink(target, path)
  return call(uv.fs_symlink, checkPath(1, "symlink", target), checkPath(2, "symlink", path))
end

function fs.readlink(path) return call(uv.fs_readlink, checkPath(1, "readlink", path)) end
function fs.realpath(path) return call(uv.fs_realpath, checkPath(1, "realpath", path)) end

function fs.chmod(path, mode)
  check(2, "chmod", mode, "number")
  return call(uv.fs_chmod, checkPath(1, "chmod", path), mode)
end

-- utime(path, atime, mtime): seconds since the epoch
function fs.utime(path, atime, mtime)
  check(2, "utime", atime, "number")
  check(3, "utime", mtime, "number")
  return call(uv.fs_utime, checkPath(1, "utime", path), atime, mtime)
end

-- mkdtemp(prefix) -> the new directory's path (prefix .. 6 random characters)
function fs.mkdtemp(prefix)
  checkPath(1, "mkdtemp", prefix)
  return call(uv.fs_mkdtemp, prefix .. "XXXXXX")
end

--------------------------------------------------------------------- File

local File = {}
File.__index = File
File.__name = "File"

-- One operation at a time per File. Tasks sharing a File (evented mode) take
-- turns: each operation runs whole, from the position the previous one left,
-- so writes are not lost and a line is read once, as in the blocking mode.
local tasknative = require("evo.task")
local prepare, suspend, wake = tasknative.prepare, tasknative.suspend, tasknative.wake

local function removeWaiter(list, entry)
  for k = #list, 1, -1 do
    if list[k] == entry then table.remove(list, k) end
  end
end

local function lock(self, fname)
  if not self.busy then
    self.busy = true
    return
  end
  local me, id = prepare(true)
  if me == false then raiseCanceled(3) end
  if me == nil then
    error(("%s: the file is in use by another task's operation, and this call cannot wait for it " ..
      "(not in a task, or where Lua cannot yield)"):format(fname), 3)
  end
  local entry = {me, id}
  local waiters = self.waiters
  waiters[#waiters + 1] = entry
  local ok = suspend(function(list) removeWaiter(list, entry) end, waiters)
  if not ok then raiseCanceled(3) end
  -- woken by unlock(): the lock was handed over (busy stays true)
end

local function unlock(self)
  local waiters = self.waiters
  while #waiters > 0 do
    local w = table.remove(waiters, 1)
    if wake(w[1], w[2]) then return end
  end
  self.busy = false
end

local function unlockWith(self, ok, ...)
  unlock(self)
  if not ok then error((...), 0) end
  return ...
end

-- locked(self, fname, op, ...): op(self, ...) holding the File's lock.
local function locked(self, fname, op, ...)
  lock(self, fname)
  if not self.fd then  -- another task closed it while this one waited its turn
    unlock(self)
    if fname == "close" then return true end
    error(errors.new("Closed", "the file is closed"), 3)
  end
  return unlockWith(self, pcall(op, self, ...))
end

-- the flags libuv (luv) understands
local OPEN_FLAGS = {}
for _, f in ipairs({"r", "rs", "sr", "r+", "rs+", "sr+", "w", "wx", "xw", "w+", "wx+", "xw+",
                    "a", "ax", "xa", "a+", "ax+", "xa+"}) do OPEN_FLAGS[f] = true end

-- open(path [, flags = "r" [, mode = 0644]]) -> File | nil, err
function fs.open(path, flags, mode)
  checkPath(1, "open", path)
  flags = flags or "r"
  check(2, "open", flags, "string")
  if not OPEN_FLAGS[flags] then error(("bad argument #2 to 'open' (invalid mode '%s')"):format(flags), 2) end
  if mode ~= nil then check(3, "open", mode, "number") end
  local fd, err = finish(fast.open(path, flags, mode or 420, true))
  if not fd then return nil, err end
  local append = flags:find("a", 1, true) ~= nil
  return setmetatable({fd = fd, path = path, pos = 0, buffer = "", append = append, busy = false, waiters = {}},
    File)
end

local function checkOpen(self, fname)
  if getmetatable(self) ~= File then args.fail(1, fname, "File", self, 3) end
  if not self.fd then error(errors.new("Closed", "the file is closed"), 3) end
end

local function fill(self)
  local data, err = finish(fast.read(self.fd, READ_CHUNK, self.pos, true))
  if not data then return nil, err end
  if data == true or #data == 0 then return false end
  self.pos = self.pos + #data
  self.buffer = self.buffer .. data
  return true
end

local function readOp(self, n)
  if n == nil then
    while true do
      local more, err = fill(self)
      if more == nil then return nil, err end
      if not more then break end
    end
    local all = self.buffer
    self.buffer = ""
    return all
  end
  while #self.buffer < n do
    local more, err = fill(self)
    if more == nil then return nil, err end
    if not more then break end
  end
  if #self.buffer == 0 then return nil end
  local out = self.buffer:sub(1, n)
  self.buffer = self.buffer:sub(n + 1)
  return out
end

-- read([n]) -> up to n bytes (all the rest without n); nil at end of file
function File:read(n)
  checkOpen(self, "read")
  if n == "a" or n == "*a" then n = nil end
  if n ~= nil then
    check(1, "read", n, "number")
    if n < 0 or n ~= n then error("bad argument #1 to 'read' (size must be 0 or more)", 2) end
    if n == 0 then return "" end
  end
  return locked(self, "read", readOp, n)
end

local function readLineOp(self)
  while true do
    local nl = self.buffer:find("\n", 1, true)
    if nl then
      local line = self.buffer:sub(1, nl - 1)
      self.buffer = self.buffer:sub(nl + 1)
      return line
    end
    local more, err = fill(self)
    if more == nil then return nil, err end
    if not more then
      if #self.buffer == 0 then return nil end
      local line = self.buffer
      self.buffer = ""
      return line
    end
  end
end

-- readLine() -> the next line without its "\n"; nil at end of file
function File:readLine()
  checkOpen(self, "readLine")
  return locked(self, "readLine", readLineOp)
end

-- lines() -> an iterator over the remaining lines
function File:lines()
  checkOpen(self, "lines")
  return function()
    local line, err = self:readLine()
    if err then error(err, 2) end
    return line
  end
end

local function writeOp(self, parts)
  -- writes go where the file position is (reads may have buffered ahead)
  local offset = self.append and -1 or (self.pos - #self.buffer)
  local n, err = finish(fast.write(self.fd, concat(parts), offset, true))
  if not n then return nil, err end
  if not self.append then
    self.pos = offset + n
    self.buffer = ""
  end
  return true
end

-- write(...) -> true | nil, err: strings (or numbers) written in one call
function File:write(...)
  checkOpen(self, "write")
  if select("#", ...) == 0 then return true end
  local parts = {...}
  for i = 1, select("#", ...) do
    local v = parts[i]
    if type(v) == "number" then parts[i] = tostring(v)
    elseif type(v) ~= "string" then args.fail(i, "write", "string", v, 2) end
  end
  return locked(self, "write", writeOp, parts)
end

local function seekOp(self, whence, offset)
  local current = self.pos - #self.buffer
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = current
  elseif whence == "end" then
    local st, err = finish(fast.fstat(self.fd, true))
    if not st then return nil, err end
    base = st.size
  end
  self.pos = base + offset
  self.buffer = ""
  return self.pos
end

-- seek([whence = "cur" [, offset = 0]]) -> the new position
function File:seek(whence, offset)
  checkOpen(self, "seek")
  whence, offset = whence or "cur", offset or 0
  if whence ~= "set" and whence ~= "cur" and whence ~= "end" then
    error(("bad argument #1 to 'seek' (invalid option '%s')"):format(tostring(whence)), 2)
  end
  check(2, "seek", offset, "number")
  return locked(self, "seek", seekOp, whence, offset)
end

local function syncOp(self) return finish(fast.fsync(self.fd, true)) end
local function statOp(self) return finish(fast.fstat(self.fd, true)) end

function File:sync()
  checkOpen(self, "sync")
  return locked(self, "sync", syncOp)
end

function File:stat()
  checkOpen(self, "stat")
  return locked(self, "stat", statOp)
end

local function closeOp(self)
  local fd = self.fd
  self.fd = nil
  return finish(fast.close(fd, true))
end

-- close(): waits for the operations other tasks have started on the File.
function File:close()
  if getmetatable(self) ~= File then args.fail(1, "close", "File", self, 2) end
  if not self.fd then return true end
  return locked(self, "close", closeOp)
end

fs.File = File

--------------------------------------------------------------------- watch

-- watch(path [, {recursive = true}]) -> a FileWatcher reporting
-- FILE_CHANGED {path, filename, change = "change" | "rename"} events.
function fs.watch(path, opts)
  checkPath(1, "watch", path)
  local FileWatcher = require("FileWatcher")
  local w = FileWatcher()
  local ok, err = w:start(path, opts)
  if not ok then
    w:close()
    return nil, err
  end
  return w
end

return fs
