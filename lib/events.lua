-- events: Evo's event convention.
--
-- An object reports what happens as events. An event name is CAPITALISED;
-- its handler is the object's method of the same name, called as
-- object:NAME(NAME, payload) with payload a table. A class declares its
-- events; each gets a default handler that does nothing unless debugging is
-- on (evo --debug, EVO_DEBUG=1), when it prints "[Class] NAME {payload}".
--
--   local events = require("events")
--   local Door = events.class("Door", {"DOOR_OPENED"})
--   local door = Door()
--   function door:DOOR_OPENED(event, payload) print(payload.by) end
--   door:emit("DOOR_OPENED", {by = "me"})
--
-- Native objects (Timer, Signal, servers, sockets) deliver their events
-- through the same handlers straight from their libuv callbacks.
local core = require("evo.core")
local pretty = require("pretty")
local args = require("evo.args")

local type, setmetatable, getmetatable, rawget, xpcall = type, setmetatable, getmetatable, rawget, xpcall
local traceback = debug.traceback
local isEventName, isDebug, reportError = core.isEventName, core.debug, core.reportHandlerError

local events = {}

local function className(object)
  local mt = getmetatable(object)
  return mt and rawget(mt, "__name") or "object"
end

-- The one default handler shared by every class: silent unless debugging.
local function defaultHandler(self, event, payload)
  if isDebug() then
    io.stderr:write("[", className(self), "] ", event, " ", pretty.summary(payload), "\n")
  end
end
events.defaultHandler = defaultHandler
core.setDefaultHandler(defaultHandler)

local function checkEventName(name, level)
  args.check(1, "emit", name, "string", level + 1)
  if not isEventName(name) then
    error(("event name '%s' must be CAPITALISED (A-Z, 0-9, _)"):format(name), level + 1)
  end
end

local Emitter = {__name = "Emitter", events = {}}
Emitter.__index = Emitter

-- Delivers an event to this object's handler. An error in the handler is
-- reported with its traceback and does not propagate to the emitter.
-- Names already checked (a C call each time otherwise, which the JIT does
-- not compile: WebSocketServer emits a message's event per message), up
-- to a bound, so a program making up names cannot grow it for ever.
local checkedNames, checkedCount = {}, 0

function Emitter:emit(event, payload)
  if checkedNames[event] == nil then
    checkEventName(event, 2)
    if checkedCount < 1024 then
      checkedNames[event] = true
      checkedCount = checkedCount + 1
    end
  end
  if payload == nil then
    payload = {}
  else
    args.check(2, "emit", payload, "table")
  end
  local handler = self[event] or defaultHandler
  if handler == defaultHandler and not isDebug() then return end
  local ok, err = xpcall(handler, traceback, self, event, payload)
  if not ok then
    reportError(("error in %s:%s handler: %s"):format(className(self), event, tostring(err)))
  end
end

-- The class a class table inherits from (its metatable's __index), when
-- that is a table indexing itself; nil otherwise (the end of the chain, or
-- one rawHandler leaves to events::emit).
local function parentClass(cls)
  local pmt = getmetatable(cls)
  local parent = pmt and rawget(pmt, "__index")
  if type(parent) == "table" and rawget(parent, "__index") == parent then return parent end
  return nil
end

-- object[event] as events::emit finds it, for the usual chains: the object,
-- its class and up to three ancestors (a subclass of a subclass of Timer
-- still reaches Timer's and Emitter's), tables that index themselves, read
-- with raw gets (nothing runs, nothing can raise; unrolled, no loop, so a
-- trace through it stays whole). nil for any other chain (an __index
-- function, a deeper class) and when it ends without the event: a native's
-- deliver function hands those to events::emit, which walks any chain.
local function rawHandler(object, event)
  local h = rawget(object, event)
  if h ~= nil then return h end
  local cls = getmetatable(object)
  if cls == nil or rawget(cls, "__index") ~= cls then return nil end
  h = rawget(cls, event)
  if h ~= nil then return h end
  cls = parentClass(cls)
  if cls == nil then return nil end
  h = rawget(cls, event)
  if h ~= nil then return h end
  cls = parentClass(cls)
  if cls == nil then return nil end
  h = rawget(cls, event)
  if h ~= nil then return h end
  cls = parentClass(cls)
  if cls == nil then return nil end
  return rawget(cls, event)
end
events.rawHandler = rawHandler

-- events.deliverer(EVENT, field...) -> deliver(object, debugging, value...)
-- The Lua half of events::emit_values (src/lua/events.h), one per event a
-- native source delivers: the native calls deliver with the payload's
-- values, in the order of the field names given here (at most 6), and
-- deliver finds the handler (rawHandler), returns at once when nobody
-- listens (the silent default with `debugging` false), else tail-calls
-- handler(object, EVENT, {field = value...}): a constructor with constant
-- keys, compiled with the handler, costs less than a payload filled
-- through the C API. What it cannot find or call as emit would (see
-- rawHandler; a handler that is not a function) it hands back by returning
-- itself, and the native emits it. The function is generated once per
-- event and field list (a constructor's keys must be constants in the
-- source), and shared.
local deliverers = {}
local identifier = "^[%a_][%w_]*$"

function events.deliverer(event, ...)
  args.check(1, "events.deliverer", event, "string")
  if not isEventName(event) then
    args.error(1, "events.deliverer", ("event name '%s' must be CAPITALISED (A-Z, 0-9, _)"):format(event))
  end
  local count = select("#", ...)
  if count > 6 then args.error(8, "events.deliverer", "at most 6 fields") end
  local names = {...}
  for i = 1, count do
    args.check(i + 1, "events.deliverer", names[i], "string")
    if not names[i]:match(identifier) then
      args.error(i + 1, "events.deliverer", ("field name '%s' is not an identifier"):format(names[i]))
    end
  end
  local signature = event .. "(" .. table.concat(names, ",") .. ")"
  local deliver = deliverers[signature]
  if deliver then return deliver end
  local params, fields = {}, {}
  for i, name in ipairs(names) do
    params[i] = ", v" .. i
    fields[i] = name .. " = v" .. i
  end
  local source = ([[
local rawHandler, defaultHandler, type = ...
local deliver
function deliver(self, debugging%s)
  local h = rawHandler(self, %q)
  if type(h) ~= "function" then return deliver end
  if h == defaultHandler and not debugging then return end
  return h(self, %q, {%s})
end
return deliver
]]):format(table.concat(params), event, event, table.concat(fields, ", "))
  local chunk = load(source, "=events.deliverer(" .. signature .. ")")
  if not chunk then args.error(2, "events.deliverer", "a field name is a Lua keyword") end
  deliver = chunk(rawHandler, defaultHandler, type)
  deliverers[signature] = deliver
  return deliver
end

-- Is `object` an instance of `class` (or of a subclass)?
function events.isInstance(object, class)
  local mt = getmetatable(object)
  -- An instance of the class itself needs no loop: a loop here would stop
  -- the JIT compiling every method that checks its self (an inner loop in a
  -- trace), e.g. HttpServer's per request.
  if mt == class then return true end
  while mt do
    if mt == class then return true end
    local parent = getmetatable(mt)
    mt = parent and parent.__index
  end
  return false
end

-- Creates a class. `eventNames` lists the events its objects emit; `parent`
-- (default Emitter) is inherited from. Calling the class makes an object and
-- runs class.init(object, ...) when defined.
function events.class(name, eventNames, parent)
  args.check(1, "class", name, "string")
  eventNames = args.check(2, "class", eventNames or {}, "table")
  parent = parent or Emitter
  local cls = {__name = name, events = {}}
  cls.__index = cls
  for _, ev in ipairs(parent.events or {}) do cls.events[#cls.events + 1] = ev end
  for _, ev in ipairs(eventNames) do
    checkEventName(ev, 2)
    cls.events[#cls.events + 1] = ev
    cls[ev] = defaultHandler
  end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...)
      local object = setmetatable({}, c)
      local init = c.init
      if init then init(object, ...) end
      return object
    end,
    __tostring = function() return "class " .. name end,
  })
end

-- A subclass: Base:extend("Name", {"EVENTS"}).
function Emitter.extend(parent, name, eventNames)
  return events.class(name, eventNames, parent)
end

events.Emitter = Emitter

-- Debugging switch, as set by --debug or EVO_DEBUG=1.
function events.debug() return isDebug() end
function events.setDebug(on) core.setDebug(on) end

return events
