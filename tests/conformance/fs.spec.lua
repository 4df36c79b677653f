-- fs: every function, in both Io modes, with the same results.
local H = require("helpers")
local fs = require("fs")
local task = require("task")

describe("fs (" .. H.mode .. ")", function()
  local dir
  beforeEach(function() dir = H.tempDir() end)
  afterEach(function() assert(fs.rm(dir, {recursive = true, force = true})) end)

  it("writes, appends and reads whole files", function()
    local p = dir .. "/f.txt"
    assert.truthy(fs.writeFile(p, "hello"))
    assert.truthy(fs.appendFile(p, {" ", "world"}))
    assert.equal(fs.readFile(p), "hello world")
    local big = string.rep("0123456789", 20000)
    assert.truthy(fs.writeFile(p, big))
    assert.equal(fs.readFile(p), big)
  end)

  it("returns nil and an error object for operational failures", function()
    local data, err = fs.readFile(dir .. "/missing")
    assert.isNil(data)
    assert.equal(err.code, "ENOENT")
    assert.match(tostring(err), "^ENOENT: ")
    local ok, e2 = fs.mkdir(dir)
    assert.isNil(ok)
    assert.equal(e2.code, "EEXIST")
    assert.throws(function() fs.readFile(nil) end, "bad argument #1 to 'readFile' (string expected, got nil)")
  end)

  it("stats files, directories and links", function()
    local p = dir .. "/s.txt"
    assert(fs.writeFile(p, "12345"))
    local st = assert(fs.stat(p))
    assert.equal(st.size, 5)
    assert.equal(st.type, "file")
    assert.equal(assert(fs.stat(dir)).type, "directory")
    assert(fs.symlink(p, dir .. "/link"))
    assert.equal(assert(fs.lstat(dir .. "/link")).type, "link")
    assert.equal(assert(fs.readlink(dir .. "/link")), p)
    assert.equal(assert(fs.realpath(dir .. "/link")), assert(fs.realpath(p)))
    assert.truthy(fs.exists(p))
    assert.falsy(fs.exists(dir .. "/nope"))
  end)

  it("stats as luv does: the same table for files, directories, links, FIFOs and devices (Io::fs)", function()
    local uv = require("uv")
    assert(fs.writeFile(dir .. "/f", "12345"))
    assert(uv.fs_symlink(dir .. "/f", dir .. "/l"))
    assert.equal(os.execute("mkfifo " .. dir .. "/p"), 0)
    local function check(got, want, what)
      for k, v in pairs(want) do
        if type(v) == "table" then
          -- atime moves when the file is read (luv's call read nothing, but be safe)
          if k ~= "atime" then assert.same(got[k], v, what .. "." .. k) end
        else
          assert.equal(got[k], v, what .. "." .. k)
        end
      end
      for k in pairs(got) do assert.notNil(want[k], what .. ": a field luv has not: " .. k) end
    end
    for _, p in ipairs({dir .. "/f", dir, dir .. "/l", dir .. "/p", "/dev/null"}) do
      check(assert(fs.stat(p)), uv.fs_stat(p), "stat " .. p)
      check(assert(fs.lstat(p)), uv.fs_lstat(p), "lstat " .. p)
    end
    assert.equal(fs.lstat(dir .. "/l").type, "link")
    assert.equal(fs.stat(dir .. "/p").type, "fifo")
    assert.equal(fs.stat("/dev/null").type, "char")
    local f = assert(fs.open(dir .. "/f"))
    check(assert(f:stat()), uv.fs_stat(dir .. "/f"), "file:stat")
    f:close()
  end)

  it("reports file-handle failures with luv's codes and messages", function()
    local p = dir .. "/f"
    local _, err = fs.open(dir .. "/nope")
    assert.equal(err.code, "ENOENT")
    assert.equal(err.message, "no such file or directory: " .. dir .. "/nope")
    assert(fs.writeFile(p, "x"))
    _, err = fs.open(p, "wx")
    assert.equal(err.code, "EEXIST")
    _, err = fs.open(dir, "w")
    assert.equal(err.code, "EISDIR")
    local f = assert(fs.open(p))
    _, err = f:write("no")
    assert.equal(err.code, "EBADF")
    assert.equal(err.message, "bad file descriptor")
    assert.truthy(f:close())
    assert.truthy(f:close())  -- closing twice is a no-op
    local g = assert(fs.open(p, "a+"))
    assert.truthy(g:write("y", 2))
    assert.truthy(g:sync())
    assert.equal(g:seek("end"), 3)
    g:close()
    assert.equal(fs.readFile(p), "xy2")
  end)

  it("makes and removes directory trees and lists them sorted", function()
    assert.truthy(fs.mkdir(dir .. "/a/b/c", {recursive = true}))
    assert.truthy(fs.mkdir(dir .. "/a/b/c", {recursive = true}), "recursive mkdir of an existing dir is fine")
    assert(fs.writeFile(dir .. "/a/z.txt", "z"))
    assert(fs.writeFile(dir .. "/a/m.txt", "m"))
    assert.equal(fs.readdir(dir .. "/a"), {"b", "m.txt", "z.txt"})
    local typed = fs.readdir(dir .. "/a", {types = true})
    assert.equal(typed[1], {name = "b", type = "directory"})
    local _, err = fs.rm(dir .. "/a")
    assert.truthy(err ~= nil, "a non-empty directory needs recursive")
    assert.truthy(fs.rm(dir .. "/a", {recursive = true}))
    assert.falsy(fs.exists(dir .. "/a"))
    assert.truthy(fs.rm(dir .. "/never", {force = true}))
  end)

  it("renames, copies, chmods and sets times", function()
    local p = dir .. "/one"
    assert(fs.writeFile(p, "data"))
    assert.truthy(fs.rename(p, dir .. "/two"))
    assert.truthy(fs.copyFile(dir .. "/two", dir .. "/three"))
    assert.equal(fs.readFile(dir .. "/three"), "data")
    assert.truthy(fs.chmod(dir .. "/three", tonumber("600", 8)))
    assert.equal(fs.stat(dir .. "/three").mode % 512, tonumber("600", 8))
    assert.truthy(fs.utime(dir .. "/three", 1000000000, 1000000000))
    assert.equal(fs.stat(dir .. "/three").mtime.sec, 1000000000)
  end)

  it("makes unique temporary directories", function()
    local a = assert(fs.mkdtemp(dir .. "/t-"))
    local b = assert(fs.mkdtemp(dir .. "/t-"))
    assert.notEqual(a, b)
    assert.match(a, "/t%-%w%w%w%w%w%w$")
  end)

  it("opens files for reading lines, seeking and writing", function()
    local f = assert(fs.open(dir .. "/lines.txt", "w+"))
    assert.truthy(f:write("alpha\n", "beta\r\n", 42, "\n", "last"))
    assert.equal(f:seek("set", 0), 0)
    local lines = {}
    for line in f:lines() do lines[#lines + 1] = line end
    assert.equal(lines, {"alpha", "beta\r", "42", "last"})
    assert.equal(f:seek("set", 6), 6)
    assert.equal(f:read(4), "beta")
    assert.equal(f:seek("end", 0), 19)
    assert.isNil(f:read(1))
    assert.truthy(f:write(), "writing nothing is fine")
    assert.truthy(f:sync())
    assert.truthy(f:close())
    assert.truthy(f:close(), "closing twice is harmless")
    local err = H.raisesCode("Closed", f.read, f, 1)
    assert.match(err.message, "closed")
  end)

  it("reads a file in pieces and all at once", function()
    assert(fs.writeFile(dir .. "/r.txt", "0123456789"))
    local f = assert(fs.open(dir .. "/r.txt"))
    assert.equal(f:read(0), "", "as Lua's io does")
    assert.equal(f:read(3), "012")
    assert.equal(f:read(), "3456789")
    assert.isNil(f:read(1))
    f:close()
  end)

  it("watches a directory and reports FILE_CHANGED events", function()
    local w = assert(fs.watch(dir))
    local seen = {}
    function w:FILE_CHANGED(event, p) seen[#seen + 1] = p end
    H.runLoop(0.05)
    assert(fs.writeFile(dir .. "/watched.txt", "x"))
    H.runLoop(0.2)
    w:close()
    assert.truthy(#seen > 0, "no event")
    assert.equal(seen[1].filename, "watched.txt")
    assert.truthy(seen[1].change == "rename" or seen[1].change == "change")
    local _, err = fs.watch(dir .. "/missing")
    assert.equal(err.code, "ENOENT")
  end)

  it("refuses an invalid open mode and a negative read size as bad arguments", function()
    local p = dir .. "/m.txt"
    assert(fs.writeFile(p, "data"))
    assert.throws(function() fs.open(p, "zz") end, "bad argument #2 to 'open' (invalid mode 'zz')")
    local f = assert(fs.open(p))
    assert.throws(function() f:read(-1) end, "bad argument #1 to 'read'")
    assert.equal(f:read(0), "", "read(0) is still the empty string")
    assert.equal(f:read(), "data")
    assert(f:close())
  end)

  it("serialises the operations of one File shared by tasks: no lost writes, no line read twice", function()
    local p = dir .. "/shared.txt"
    local f = assert(fs.open(p, "w"))
    local g = task.group()
    for _, who in ipairs({"a", "b"}) do
      g:async(function()
        for _ = 1, 9 do assert(f:write(who)) end
      end)
    end
    g:await()
    assert(f:close())
    local data = assert(fs.readFile(p))
    assert.equal(#data, 18, "writes were lost: " .. data)
    assert.equal(select(2, data:gsub("a", "")), 9)

    local lines = {}
    for i = 1, 20 do lines[i] = "line " .. i end
    assert(fs.writeFile(p, table.concat(lines, "\n") .. "\n"))
    f = assert(fs.open(p))
    local got = {}
    g = task.group()
    for _ = 1, 2 do
      g:async(function()
        while true do
          local line = f:readLine()
          if not line then break end
          got[#got + 1] = line
        end
      end)
    end
    g:await()
    assert(f:close())
    table.sort(got, function(x, y) return tonumber(x:match("%d+")) < tonumber(y:match("%d+")) end)
    assert.equal(got, lines, "each line is read exactly once")
  end)

  it("works the same from concurrent tasks", function()
    local futures = {}
    for i = 1, 8 do
      futures[i] = task.async(function()
        assert(fs.writeFile(dir .. "/c" .. i, string.rep(tostring(i), i)))
        return fs.readFile(dir .. "/c" .. i)
      end)
    end
    for i = 1, 8 do assert.equal(futures[i]:await(), string.rep(tostring(i), i)) end
  end)
end)
