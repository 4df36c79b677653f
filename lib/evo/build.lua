-- evo build: one-file executables (docs/build.md).
--
--   evo build app.lua -o app [--include DIR]... [--strip] [--app-version V] [--name NAME]
--
-- Follows app.lua's string-literal requires (and theirs) through
-- package.path and package.cpath, compiles each Lua module to LuaJIT
-- bytecode, reads each C module's shared object, adds every file under each
-- --include and the shared libraries the runtime loads itself (simdjson),
-- and has evo.appfs write a copy of the runtime with the archive appended.
-- Modules built into Evo are not copied: the runtime has them.
local appfs = require("evo.appfs")
local core = require("evo.core")
local fs = require("fs")

local format, gsub, match, sub = string.format, string.gsub, string.match, string.sub

local M = {}

local USAGE = "usage: evo build app.lua -o app [--include DIR]... [--strip] [--app-version V] [--name NAME]"

-- A failure of the command: reported in one line by main().
local Failure = {}
local function fail(fmt, ...) error(setmetatable({message = format(fmt, ...)}, Failure), 0) end

local function parseArgs(argv)
  local o = {includes = {}, strip = false}
  local i = 1
  local function value(flag)
    i = i + 1
    if argv[i] == nil then fail("%s needs a value\n%s", flag, USAGE) end
    return argv[i]
  end
  while i <= #argv do
    local a = argv[i]
    if a == "-o" or a == "--output" then o.out = value(a)
    elseif a == "--include" then o.includes[#o.includes + 1] = value(a)
    elseif a == "--strip" then o.strip = true
    elseif a == "--app-version" then o.version = value(a)
    elseif a == "--name" then o.name = value(a)
    elseif a == "-h" or a == "--help" then
      print(USAGE)
      return nil
    elseif sub(a, 1, 1) == "-" then fail("unknown option '%s'\n%s", a, USAGE)
    elseif o.entry == nil then o.entry = a
    else fail("one entry script only ('%s' and '%s')\n%s", o.entry, a, USAGE) end
    i = i + 1
  end
  if not o.entry then fail("no entry script\n%s", USAGE) end
  if not o.out then fail("no output file (-o app)\n%s", USAGE) end
  return o
end

local function dirOf(path) return match(path, "^(.*)/[^/]*$") or "." end
local function baseOf(path) return match(path, "([^/]*)$") end

-- Lua source -> bytecode named "@chunkname"; a syntax error names the file.
local function compile(source, chunkname, diskPath, strip)
  if sub(source, 1, 1) == "#" then source = gsub(source, "^[^\n]*", "", 1) end  -- a #! line
  local fn, err = loadstring(source, "@" .. chunkname)
  if not fn then
    local _, msg = loadstring(source, "@" .. diskPath)
    fail("%s", msg or err)  -- "path:line: message"
  end
  return string.dump(fn, strip)
end

-- require names in a chunk's source: string literals only (require "x",
-- require("x"), require 'x'); names built at run time need --include.
local function requiresOf(source)
  local names = {}
  for _, name in source:gmatch("require%s*%(?%s*([\"'])([^\"'\n]+)%1") do names[#names + 1] = name end
  return names
end

function M.run(argv)
  local o = parseArgs(argv)
  if not o then return end
  local appDir = dirOf(o.entry)
  local realApp = fs.realpath(appDir)
  -- a path on disk -> its name in the archive, relative to app.lua's directory
  local function relative(path)
    local real = fs.realpath(path) or path
    if realApp and sub(real, 1, #realApp + 1) == realApp .. "/" then return sub(real, #realApp + 2) end
    return nil
  end

  local builtins = appfs.builtins()
  local entries, seen, notes = {}, {}, {}
  local counts = {module = 0, cmodule = 0, file = 0, library = 0}
  local function add(e)
    entries[#entries + 1] = e
    counts[e.kind] = counts[e.kind] + 1
  end

  local queue = {}
  local function addLua(name, path, chunkname)
    local source, err = fs.readFile(path)
    if not source then fail("cannot read %s: %s", path, tostring(err)) end
    add({kind = "module", name = name, data = compile(source, chunkname, path, o.strip)})
    for _, r in ipairs(requiresOf(source)) do queue[#queue + 1] = r end
  end

  local main, err = fs.readFile(o.entry)
  if not main then fail("cannot read the entry script %s: %s", o.entry, tostring(err)) end
  seen["@main"] = true
  addLua("@main", o.entry, baseOf(o.entry))

  for _, dir in ipairs(o.includes) do
    local st = fs.stat(dir)
    if not st then fail("--include %s: no such file or directory", dir) end
    local base = relative(dir) or baseOf(gsub(dir, "/+$", ""))
    local function walk(path, rel, info)
      if info.type == "directory" then
        for _, name in ipairs(assert(fs.readdir(path))) do
          local p = path .. "/" .. name
          local sub_st = fs.stat(p)
          if sub_st then walk(p, rel == "" and name or rel .. "/" .. name, sub_st) end
        end
      elseif info.type == "file" then
        if match(rel, "%.lua$") then
          local name = gsub(gsub(gsub(rel, "%.lua$", ""), "/init$", ""), "/", ".")
          if not seen[name] then
            seen[name] = true
            addLua(name, path, rel)
          end
        else
          local data, rerr = fs.readFile(path)
          if not data then fail("cannot read %s: %s", path, tostring(rerr)) end
          add({kind = "file", name = rel, data = data, mode = info.mode % 4096, mtime = info.mtime.sec})
        end
      end
    end
    walk(dir, base == "." and "" or base, st)
  end

  -- Follow requires: breadth first over what each module names.
  local i = 1
  while i <= #queue do
    local name = queue[i]
    i = i + 1
    if not seen[name] and not builtins[name] then
      seen[name] = true
      local path = package.searchpath(name, package.path)
      if path then
        addLua(name, path, relative(path) or path)
      else
        local so = package.searchpath(name, package.cpath)
        if so then
          local data, rerr = fs.readFile(so)
          if not data then fail("cannot read %s: %s", so, tostring(rerr)) end
          add({kind = "cmodule", name = name, data = data})
        else
          notes[#notes + 1] = format("require '%s' not found at build time (left to run time)", name)
        end
      end
    end
  end

  -- The libraries the runtime dlopens (libsimdjson.so.14), copied from the
  -- file this evo loaded: the built app loads them from its archive, so the
  -- target machine needs none of them installed.
  for _, lib in ipairs(appfs.runtimeLibraries()) do
    local data, rerr
    if lib.path then data, rerr = fs.readFile(lib.path) end
    if data then
      add({kind = "library", name = lib.name, data = data, mode = 493})  -- 0755
    else
      notes[#notes + 1] = format("%s not embedded (%s): the app will need it installed", lib.name,
        tostring(lib.error or rerr))
    end
  end

  local meta = {name = o.name or baseOf(o.out), version = o.version or "0.0.0", entry = "@main"}
  local ok, werr = appfs.writeApp(o.out, meta, entries, o.strip)
  if not ok then fail("%s", werr) end
  for _, note in ipairs(notes) do io.stderr:write("evo build: note: ", note, "\n") end
  local st = fs.stat(o.out)
  print(format("evo build: wrote %s (%d modules, %d C modules, %d files, %d libraries; %d bytes)", o.out,
    counts.module, counts.cmodule, counts.file, counts.library, st and st.size or 0))
end

function M.main(...)
  local argv = {...}
  local ok, err = pcall(M.run, argv)
  if not ok then
    local msg = getmetatable(err) == Failure and err.message or tostring(err)
    io.stderr:write("evo build: ", msg, "\n")
    core.setExitCode(1)
  end
end

return M
