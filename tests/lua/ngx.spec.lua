-- ngx: the OpenResty API besides cosockets (ngx_socket.spec.lua): ngx.re
-- against the answers OpenResty's documentation gives, shared dictionaries,
-- timers, light threads, time, logging, hashes and encodings (known
-- answers, checked against Python's hashlib/base64/zlib), and Debian's
-- lua-resty-lrucache running unchanged on top. Runs in both Io modes;
-- timers and concurrent threads need the evented one.
local ngxmod = require("ngx")
local task = require("task")
local helpers = require("helpers")

local evented = task.mode() ~= "blocking"

describe("require('ngx')", function()
  it("installs the global and returns it; config and worker answer as one nginx worker", function()
    assert.equal(ngx, ngxmod)
    assert.equal(ngx.config.subsystem, "http")
    assert.equal(ngx.config.ngx_lua_version, 10025)
    assert.equal(type(ngx.config.nginx_version), "number")
    assert.equal(ngx.config.debug, false)
    assert.match(ngx.config.prefix(), "/$")
    assert.equal(ngx.worker.id(), 0)
    assert.equal(ngx.worker.count(), 1)
    assert.equal(ngx.worker.pid(), require("uv").os_getpid())
    assert.equal(ngx.worker.exiting(), false)
    assert.equal(ngx.get_phase(), "content")
    assert.same({ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG},
      {0, 1, 2, 3, 4, 5, 6, 7, 8})
    assert.equal(ngx.HTTP_OK, 200)
  end)

  it("has ngx.null: NULL light userdata, equal to cjson.null", function()
    assert.equal(type(ngx.null), "userdata")
    assert.equal(tostring(ngx.null), "userdata: NULL")
    assert.equal(ngx.null, require("cjson").null)
    assert.equal(require("cjson").decode("[null]")[1], ngx.null)
  end)

  it("keeps ngx.ctx per task", function()
    ngx.ctx.user = "main"
    assert.equal(ngx.ctx.user, "main")
    if evented then
      local f = task.concurrent(function()
        local before = ngx.ctx.user
        ngx.ctx.user = "other"
        return before, ngx.ctx.user
      end)
      assert.same({f:await()}, {nil, "other"})
      assert.equal(ngx.ctx.user, "main")
    end
    ngx.ctx = {fresh = true}
    assert.same(ngx.ctx, {fresh = true})
    helpers.raisesMatching("ngx.ctx must be a table", function() ngx.ctx = 1 end)
  end)
end)

describe("request APIs", function()
  it("exist as tables so drivers load (lua-resty-http keeps ngx.req.socket), and raise when called", function()
    -- the first lines of lua-resty-http's http.lua, as they index ngx at load
    local load = assert(loadstring([[
      local ngx_socket_tcp = ngx.socket.tcp
      local ngx_req = ngx.req
      local ngx_req_socket = ngx_req.socket
      local ngx_req_get_headers = ngx_req.get_headers
      local ngx_req_get_method = ngx_req.get_method
      local ngx_var, ngx_print, ngx_header = ngx.var, ngx.print, ngx.header
      local ngx_re_gmatch, ngx_re_sub, ngx_re_gsub, ngx_re_find = ngx.re.gmatch, ngx.re.sub, ngx.re.gsub, ngx.re.find
      return type(ngx_socket_tcp), type(ngx_req_socket), ngx_var.request_uri, type(ngx_re_find)
    ]]))
    assert.same({load()}, {"function", "function", nil, "function"})
    helpers.raisesMatching("ngx.req.get_headers needs an nginx request", ngx.req.get_headers)
    helpers.raisesMatching("ngx.exit needs an nginx request", ngx.exit, 200)
    helpers.raisesMatching("setting ngx.var needs an nginx request", function() ngx.var.x = 1 end)
  end)
end)

describe("ngx time", function()
  it("gives now, time, dates and HTTP dates", function()
    local now = ngx.now()
    assert.truthy(math.abs(now - os.time()) < 2)
    assert.equal(now * 1000 % 1 < 1e-6 or now * 1000 % 1 > 1 - 1e-6, true)  -- millisecond resolution
    assert.truthy(math.abs(ngx.time() - os.time()) <= 1)
    ngx.update_time()
    assert.match(ngx.today(), "^%d%d%d%d%-%d%d%-%d%d$")
    assert.match(ngx.localtime(), "^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$")
    assert.match(ngx.utctime(), "^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$")
    -- OpenResty's documented examples
    assert.equal(ngx.http_time(1290079655), "Thu, 18 Nov 2010 11:27:35 GMT")
    assert.equal(ngx.cookie_time(1290079655), "Thu, 18-Nov-10 11:27:35 GMT")
    assert.equal(ngx.parse_http_time("Thu, 18 Nov 2010 11:27:35 GMT"), 1290079655)
    assert.equal(ngx.parse_http_time("not a date"), nil)
    assert.equal(ngx.http_time(0), "Thu, 01 Jan 1970 00:00:00 GMT")
    helpers.raisesMatching("bad argument #1 to 'ngx.http_time' %(number expected, got string%)", ngx.http_time, "x")
  end)

  it("sleeps", function()
    local t0 = ngx.now()
    ngx.sleep(0.05)
    assert.truthy(ngx.now() - t0 >= 0.045)
    ngx.sleep(0)
    helpers.raisesMatching("bad argument #1 to 'ngx.sleep'", ngx.sleep, -1)
  end)
end)

describe("ngx hashes and encodings", function()
  it("match known answers and Python's hashlib, base64, zlib, urllib", function()
    assert.equal(ngx.md5("hello"), "5d41402abc4b2a76b9719d911017c592")
    assert.equal(ngx.md5(""), "d41d8cd98f00b204e9800998ecf8427e")
    local inputs = {"", "hello", string.rep("\0\1\255", 1000)}
    local py = helpers.python([[
import sys, hashlib, hmac, base64, zlib, urllib.parse
for line in sys.stdin.read().split("\n"):
    if not line: continue
    data = bytes.fromhex(line) if line != "-" else b""
    print(hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), hmac.new(b"key", data, "sha1").hexdigest(),
          base64.b64encode(data).decode() or "-", zlib.crc32(data), urllib.parse.quote(data, safe="-._~") or "-")
]], table.concat({"-", require("hex").encode(inputs[2]), require("hex").encode(inputs[3])}, "\n") .. "\n")
    local hex = require("hex").encode
    local i = 0
    for line in py:gmatch("[^\n]+") do
      i = i + 1
      local s = inputs[i]
      local md5, sha1, mac, b64, crc, quoted = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
      assert.equal(ngx.md5(s), md5)
      assert.equal(hex(ngx.md5_bin(s)), md5)
      assert.equal(hex(ngx.sha1_bin(s)), sha1)
      assert.equal(hex(ngx.hmac_sha1("key", s)), mac)
      assert.equal(ngx.encode_base64(s), b64 == "-" and "" or b64)
      assert.equal(ngx.decode_base64(ngx.encode_base64(s)), s)
      assert.equal(ngx.crc32_short(s), tonumber(crc))
      assert.equal(ngx.crc32_long(s), tonumber(crc))
      assert.equal(ngx.escape_uri(s), quoted == "-" and "" or quoted)
      assert.equal(ngx.unescape_uri(ngx.escape_uri(s)), s)
    end
    assert.equal(i, 3)
  end)

  it("encodes base64 without padding, decodes with or without, refuses bad input with nil", function()
    assert.equal(ngx.encode_base64("hello"), "aGVsbG8=")
    assert.equal(ngx.encode_base64("hello", true), "aGVsbG8")
    assert.equal(ngx.decode_base64("aGVsbG8="), "hello")
    assert.equal(ngx.decode_base64("aGVsbG8"), "hello")
    assert.equal(ngx.decode_base64("a"), nil)
    assert.equal(ngx.decode_base64("!!!!"), nil)
    assert.equal(ngx.encode_base64(""), "")
    helpers.raisesMatching("bad argument #1 to 'ngx.decode_base64' %(string expected, got nil%)", ngx.decode_base64)
  end)

  it("quotes SQL strings and URI parts, encodes and decodes args", function()
    assert.equal(ngx.quote_sql_str("it's a \"test\"\n\0\\\26"), [['it\'s a \"test\"\n\0\\\Z']])
    assert.equal(ngx.escape_uri("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9")
    assert.equal(ngx.escape_uri("a b/c?d=1", 0), "a%20b/c?d=1")
    assert.equal(ngx.unescape_uri("a+b%20c%zz%41"), "a b c%zzA")
    assert.equal(ngx.encode_args({foo = 3, ["b r"] = "hello world"}), "b%20r=hello%20world&foo=3")
    assert.equal(ngx.encode_args({a = true, b = false, c = {"1", "2"}}), "a&c=1&c=2")
    assert.same(ngx.decode_args("a=1&b=x%20y&a=2&flag&e="), {a = {"1", "2"}, b = "x y", flag = true, e = ""})
    assert.same(ngx.decode_args("a=1&b=2&c=3", 2), {a = "1", b = "2"})
  end)
end)

describe("ngx.log, ngx.say, ngx.print", function()
  it("log to stderr in nginx's format, filtered by level; say and print to stdout", function()
    local r = helpers.spawn(helpers.evo, {"-e", [[
      require("ngx")
      ngx.log(ngx.ERR, "failed: ", 42, " ", nil, " ", true, " ", ngx.null)
      ngx.log(ngx.INFO, "hidden by the default level")
      ngx.evo.setLogLevel(ngx.DEBUG)
      ngx.log(ngx.DEBUG, "now shown")
      ngx.say("a", 1, {"b", {"c"}}, nil, false)
      ngx.print("no newline")
    ]]})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, "a1bcnilfalse\nno newline")
    local lines = {}
    for line in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(#lines, 2, r.stderr)
    assert.match(lines[1], "^%d%d%d%d/%d%d/%d%d %d%d:%d%d:%d%d %[error%] %d+#0: %[lua%] .*failed: 42 nil true null$")
    assert.match(lines[2], "%[debug%] .*now shown$")
    helpers.raisesMatching("bad argument #1 to 'ngx.log' %(bad log level%)", ngx.log, 99, "x")
  end)
end)

describe("ngx.re", function()
  it("match: captures, named captures, unmatched groups as false, OpenResty's examples", function()
    local m = ngx.re.match("hello, 1234", "[0-9]+")
    assert.equal(m[0], "1234")
    m = ngx.re.match("hello, 1234", "([0-9])[0-9]+")
    assert.same({m[0], m[1]}, {"1234", "1"})
    m = ngx.re.match("hello, 1234", "(?<remaining>[0-9]+)")
    assert.same({m[0], m[1], m.remaining}, {"1234", "1234", "1234"})
    m = ngx.re.match("hello, world", "(world)|(hello)|(?<named>howdy)")
    assert.same({m[0], m[1], m[2], m[3], m.named}, {"hello", false, "hello", false, false})
    assert.equal(ngx.re.match("hello, world", "HELLO"), nil)
    assert.equal(ngx.re.match("hello, world", "HELLO", "i")[0], "hello")
    m = ngx.re.match("hello, world", "(?<named>\\w+), (?<named>\\w+)", "D")
    assert.same(m.named, {"hello", "world"})
    assert.equal(ngx.re.match("hello", "l+", "jo")[0], "ll")
    assert.equal(ngx.re.match(1234, "3")[0], "3")  -- a number subject is a string
  end)

  it("honours option letters: i m s x u a d J", function()
    assert.equal(ngx.re.match("a\nb", "^b", "m")[0], "b")
    assert.equal(ngx.re.match("a\nb", "^b"), nil)
    assert.equal(ngx.re.match("a\nb", "a.b", "s")[0], "a\nb")
    assert.equal(ngx.re.match("a\nb", "a.b"), nil)
    assert.equal(ngx.re.match("abc", "a b # comment\n c", "x")[0], "abc")
    assert.equal(ngx.re.match("héllo", "^h.l", "u")[0], "hél")
    assert.equal(ngx.re.match("héllo", "^h.l"), nil)  -- without u, . is one byte
    assert.equal(ngx.re.match("xabc", "abc", "a"), nil)
    assert.equal(ngx.re.match("abcx", "abc", "a")[0], "abc")
    assert.equal(ngx.re.match("hello", "l+?", "d")[0], "ll")  -- DFA: the longest match
    assert.equal(ngx.re.match("A", "\\u0041", "J")[0], "A")  -- JavaScript's \u escapes
    -- u refuses an invalid UTF-8 subject
    local r, err = ngx.re.match("\255", ".", "u")
    assert.equal(r, nil)
    assert.match(err, "UTF%-8")
  end)

  it("reports bad patterns as nil, err and raises on unknown options", function()
    local m, err = ngx.re.match("hello", "(abc")
    assert.equal(m, nil)
    assert.equal(err, 'pcre2_compile() failed: missing closing parenthesis in "(abc" at ""')
    helpers.raisesMatching('unknown flag "z" %(flags "iz"%)', ngx.re.match, "a", "a", "iz")
    helpers.raisesMatching("bad argument #2 to 'ngx.re.match' %(string expected, got nil%)", ngx.re.match, "a")
    assert.same({ngx.re.sub("a", "(", "x")}, {nil, nil, 'pcre2_compile() failed: missing closing parenthesis in "(" at ""'})
  end)

  it("find: positions, ctx.pos, nth", function()
    assert.same({ngx.re.find("hello, 1234", "([0-9])([0-9]+)", "jo")}, {8, 11})
    assert.same({ngx.re.find("hello, 1234", "([0-9])([0-9]+)", "jo", nil, 2)}, {9, 11})
    assert.same({ngx.re.find("hello, world", "[0-9]+")}, {})
    local ctx = {pos = 3}
    assert.same({ngx.re.find("1234, 1234", "[0-9]+", "", ctx)}, {3, 4})
    assert.equal(ctx.pos, 5)
    assert.same({ngx.re.find("1234, 1234", "[0-9]+", "", ctx)}, {7, 10})
    assert.equal(ctx.pos, 11)
    ctx = {pos = 2}
    assert.equal(ngx.re.match("1234, 1234", "[0-9]+", "", ctx)[0], "234")
    assert.equal(ctx.pos, 5)
  end)

  it("gmatch iterates every match, empty ones included", function()
    local found = {}
    for m in ngx.re.gmatch("hello, world", "([a-z])[a-z]+", "i") do found[#found + 1] = m[0] .. "/" .. m[1] end
    assert.same(found, {"hello/h", "world/w"})
    local it = ngx.re.gmatch("ab", "")
    local n = 0
    while it() do n = n + 1 end
    assert.equal(n, 3)
    assert.same({ngx.re.gmatch("a", "(")}, {nil, 'pcre2_compile() failed: missing closing parenthesis in "(" at ""'})
  end)

  it("sub and gsub: templates, functions, OpenResty's examples", function()
    assert.same({ngx.re.sub("hello, 1234", "([0-9])[0-9]", "[$0][$1]")}, {"hello, [12][1]34", 1})
    assert.same({ngx.re.sub("hello, 1234", "[0-9]", "${0}00")}, {"hello, 100234", 1})
    assert.same({ngx.re.sub("hello, 1234", "[0-9]", "$$")}, {"hello, $234", 1})
    assert.same({ngx.re.sub("hello, 1234", "( [0-9] ) [0-9]", function(m)
      return "[" .. m[0] .. "][" .. m[1] .. "]"
    end, "x")}, {"hello, [12][1]34", 1})
    assert.same({ngx.re.gsub("hello, world", "([a-z])[a-z]+", "[$0,$1]", "i")}, {"[hello,h], [world,w]", 2})
    assert.same({ngx.re.gsub("hello, world", "(?<w>[a-z]+)", "<${w}>")}, {"<hello>, <world>", 2})
    assert.same({ngx.re.gsub("hello, world", "l", function() return "$1" end)}, {"he$1$1o, wor$1d", 3})
    assert.same({ngx.re.gsub("abc", "", "-")}, {"-a-b-c-", 4})
    assert.same({ngx.re.gsub("héé", "", "-", "u")}, {"-h-é-é-", 4})
    assert.same({ngx.re.sub("abc", "x", "y")}, {"abc", 0})
    assert.same({ngx.re.sub("abc", "b", "$9")}, {"ac", 1})  -- a group that does not exist is empty
    local s, n, err = ngx.re.sub("abc", "b", "$x")
    assert.same({s, n}, {nil, nil})
    assert.equal(err, 'invalid capturing variable name found in "$x"')
    s, n, err = ngx.re.sub("abc", "b", "${1")
    assert.match(err, "closing bracket")
    helpers.raisesMatching("bad argument #3 to 'ngx.re.gsub'", ngx.re.gsub, "a", "a", {})
  end)
end)

describe("ngx.shared", function()
  it("stores values with flags and expiry; set/add/replace/safe_* return ok, err, forcible", function()
    local d = ngx.shared.spec_basic
    assert.equal(ngx.shared.spec_basic, d)
    assert.same({d:set("s", "v")}, {true, nil, false})
    assert.same({d:get("s")}, {"v"})
    assert.same({d:set("n", 1.5, 0, 7)}, {true, nil, false})
    assert.same({d:get("n")}, {1.5, 7})
    assert.same({d:set("b", false)}, {true, nil, false})
    assert.same({d:get("b")}, {false})
    assert.same({d:get("missing")}, {})
    assert.same({d:add("s", "x")}, {false, "exists", false})
    assert.same({d:add("new", "x")}, {true, nil, false})
    assert.same({d:replace("nope", "x")}, {false, "not found", false})
    assert.same({d:replace("new", "y")}, {true, nil, false})
    assert.equal(d:get("new"), "y")
    assert.same({d:set("t", {})}, {nil, "bad value type", false})
    assert.same({d:get("")}, {nil, "empty key"})
    assert.same({d:set("s", nil)}, {true, nil, false})  -- set to nil deletes
    assert.equal(d:get("s"), nil)
    assert.equal(d:delete("new"), true)
    assert.equal(d:get("new"), nil)
    assert.same({d:safe_set("s2", "v")}, {true, nil, false})
    assert.same({d:safe_add("s2", "v")}, {false, "exists", false})
  end)

  it("expires items: ttl, expire, get_stale, flush_all, flush_expired, get_keys", function()
    local d = ngx.shared.spec_ttl
    assert(d:set("short", "v", 0.05))
    assert(d:set("long", "v", 100))
    assert(d:set("forever", "v"))
    assert.equal(d:ttl("forever"), 0)
    assert.truthy(d:ttl("long") > 99 and d:ttl("long") <= 100)
    assert.same({d:ttl("missing")}, {nil, "not found"})
    ngx.sleep(0.08)
    assert.equal(d:get("short"), nil)
    assert.same({d:get_stale("short")}, {"v", nil, true})
    assert.same({d:get_stale("long")}, {"v", nil, false})
    assert.same({d:expire("short", 10)}, {nil, "not found"})
    assert.equal(d:expire("forever", 0.05), true)
    ngx.sleep(0.08)
    assert.equal(d:get("forever"), nil)
    local keys = d:get_keys()
    assert.same(keys, {"long"})
    assert.equal(d:flush_expired(), 2)
    d:flush_all()
    assert.equal(d:get("long"), nil)
    assert.same(d:get_keys(0), {})
    assert.equal(d:flush_expired(), 1)
  end)

  it("incr: init, init_ttl, not found, not a number", function()
    local d = ngx.shared.spec_incr
    assert.same({d:incr("c", 1)}, {nil, "not found"})
    assert.same({d:incr("c", 1, 0)}, {1, nil, false})
    assert.same({d:incr("c", 10)}, {11, nil, false})
    assert.same({d:incr("c", -0.5)}, {10.5, nil, false})
    assert(d:set("s", "text"))
    assert.same({d:incr("s", 1)}, {nil, "not a number"})
    assert.same({d:incr("t", 1, 5, 0.05)}, {6, nil, false})
    assert.truthy(d:ttl("t") > 0)
    ngx.sleep(0.08)
    assert.equal(d:get("t"), nil)
  end)

  it("evicts the least recently used when full (forcible); safe_set refuses instead", function()
    local d = ngx.evo.sharedDict("spec_small", 8192)
    assert.equal(d:capacity(), 8192)
    local value = string.rep("v", 1000)
    local forcedAt
    for i = 1, 20 do
      local ok, err, forcible = d:set("k" .. i, value)
      assert.same({ok, err}, {true, nil})
      if forcible and not forcedAt then forcedAt = i end
      if i == 3 then d:get("k1") end  -- k1 becomes recently used
    end
    assert.truthy(forcedAt and forcedAt > 5, "evicted at " .. tostring(forcedAt))
    assert.equal(d:get("k20"), value)
    assert.equal(d:get("k2"), nil)  -- the least recently used went first
    assert.truthy(d:free_space() < 8192)
    assert.same({d:safe_set("another", value)}, {false, "no memory", false})
    assert.same({d:set("huge", string.rep("x", 10000))}, {false, "no memory", false})
    helpers.raisesMatching("at least 8192", ngx.evo.sharedDict, "x", 10)
  end)

  it("keeps lists", function()
    local d = ngx.shared.spec_list
    assert.equal(d:rpush("l", "a"), 1)
    assert.equal(d:rpush("l", "b"), 2)
    assert.equal(d:lpush("l", "z"), 3)
    assert.equal(d:llen("l"), 3)
    assert.equal(d:lpop("l"), "z")
    assert.equal(d:rpop("l"), "b")
    assert.equal(d:rpop("l"), "a")
    assert.equal(d:rpop("l"), nil)
    assert(d:set("s", "x"))
    assert.same({d:lpush("s", "a")}, {nil, "value not a list"})
  end)
end)

if evented then
  describe("ngx.timer", function()
    it("runs fn(premature, ...) as a task after the delay, in the timer phase", function()
      local q = task.queue()
      assert.equal(ngx.timer.at(0.02, function(premature, a, b)
        q:put({premature, a, b, ngx.get_phase()})
      end, "x", nil), true)
      assert.equal(ngx.timer.pending_count(), 1)
      assert.same(q:get(), {false, "x", nil, "timer"})
      assert.equal(ngx.timer.pending_count(), 0)
      helpers.raisesMatching("bad argument #2 to 'ngx.timer.at' %(function expected", ngx.timer.at, 1, 2)
    end)

    it("repeats with every; a failing timer is logged and the process goes on", function()
      local r = helpers.spawn(helpers.evo, {"-e", [[
        require("ngx")
        local n = 0
        ngx.timer.every(0.01, function(premature)
          n = n + 1
          if premature then print("premature", n, ngx.worker.exiting()) return end
          if n == 3 then ngx.evo.stopTimers() end
        end)
        ngx.timer.at(0.001, function() error("boom") end)
        ngx.timer.at(100, function(premature) print("long timer premature:", premature) end)
      ]]})
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, "long timer premature:\ttrue")
      assert.match(r.stdout, "premature\t4\ttrue")
      assert.match(r.stderr, "%[error%].*lua entry thread aborted: runtime error: .*boom")
    end)
  end)
end

describe("ngx.thread", function()
  it("spawns, waits for the first to finish, returns errors as false, err", function()
    local t1 = ngx.thread.spawn(function(a) ngx.sleep(0.02) return a, "slow" end, 1)
    local t2 = ngx.thread.spawn(function() return "fast" end)
    if evented then
      assert.same({ngx.thread.wait(t1, t2)}, {true, "fast"})
      assert.same({ngx.thread.wait(t1)}, {true, 1, "slow"})
    else
      assert.same({ngx.thread.wait(t1)}, {true, 1, "slow"})
      assert.same({ngx.thread.wait(t2)}, {true, "fast"})
    end
    assert.same({ngx.thread.wait(t1)}, {nil, "already waited or killed"})
    local t3 = ngx.thread.spawn(function() error("oops", 0) end)
    assert.same({ngx.thread.wait(t3)}, {false, "oops"})
    helpers.raisesMatching("bad argument #1 to 'ngx.thread.wait' %(thread expected", ngx.thread.wait, 1)
  end)

  if evented then
    it("kills a thread", function()
      local t = ngx.thread.spawn(function() ngx.sleep(10) return "never" end)
      ngx.sleep(0.01)
      assert.equal(ngx.thread.kill(t), true)
      assert.same({ngx.thread.kill(t)}, {nil, "already waited or killed"})
      assert.same({ngx.thread.wait(t)}, {nil, "already waited or killed"})
    end)
  end
end)

describe("lua-resty-lrucache from Debian, unchanged", function()
  for _, name in ipairs({"resty.lrucache", "resty.lrucache.pureffi"}) do
    it(name .. ": set, get, expiry, eviction, delete", function()
      local lrucache = require(name)
      local c = assert(lrucache.new(2))
      c:set("short", "v", 0.05)
      assert.equal(c:get("short"), "v")
      ngx.sleep(0.08)
      local v, stale = c:get("short")
      assert.equal(v, nil)
      assert.equal(stale, "v")
      c:set("a", 1)
      c:set("b", {2})
      assert.equal(c:get("a"), 1)  -- a is now the most recently used
      c:set("c", 3)                -- evicts the least recently used: b
      assert.equal(c:get("b"), nil)
      assert.equal(c:get("a"), 1)
      assert.equal(c:get("c"), 3)
      c:delete("a")
      assert.equal(c:get("a"), nil)
      c:set("d", 4)
      assert.equal(c:count(), 2)
    end)
  end
end)
