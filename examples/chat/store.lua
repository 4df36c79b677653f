-- The chat's message history behind one small interface, so the server does
-- not care where it lives:
--
--   local store = require("store").open()     -- DATABASE_URL, else SQLite
--   store:add(sender, text)                   -- sender: a number
--   for _, m in ipairs(store:recent(50)) do print(m.sender, m.text) end  -- oldest first
--   store.shared                              -- true when every instance sees one store
--
-- SQLite (the default) is a file of this process (CHAT_DB, or ":memory:");
-- Postgres (DATABASE_URL=postgres://...) is one database for every instance.
local store = {}

local SCHEMA_SQLITE = [[
  CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY,
    sender INTEGER NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
]]

local SCHEMA_POSTGRES = [[
  CREATE TABLE IF NOT EXISTS messages(
    id BIGSERIAL PRIMARY KEY,
    sender INTEGER NOT NULL,
    text TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now())
]]

-- Rows come newest first (the index does the LIMIT); the chat shows them
-- oldest first.
local function oldestFirst(rows)
  local list, n = {}, #rows
  for i = n, 1, -1 do list[n - i + 1] = {sender = rows[i].sender, text = rows[i].text} end
  return list
end

-- SQLite: one file per process. Calls are synchronous, and short enough
-- that a chat message does not notice.
function store.sqlite(path)
  local sqlite = require("sqlite")
  local db = assert(sqlite.open(path or ":memory:"))
  assert(db:exec(SCHEMA_SQLITE))
  local s = {name = "sqlite " .. (path or ":memory:"), shared = false}
  function s:add(sender, text)
    return db:run("INSERT INTO messages(sender, text) VALUES (?, ?)", sender, text)
  end
  function s:recent(n)
    local rows, err = db:query("SELECT sender, text FROM messages ORDER BY id DESC LIMIT ?", n)
    if not rows then return nil, err end
    return oldestFirst(rows)
  end
  function s:close() db:close() end
  return s
end

-- Postgres: one database for every instance, through a pool of connections
-- (docs/postgres.md: postgres.pool{url, max}, db:query(sql, $1...)).
function store.postgres(url)
  local postgres = require("postgres")
  local db = postgres.pool({url = url, max = 10})
  assert(db:query(SCHEMA_POSTGRES))
  local s = {name = "postgres", shared = true}
  function s:add(sender, text)
    return db:query("INSERT INTO messages(sender, text) VALUES ($1, $2)", sender, text)
  end
  function s:recent(n)
    local rows, err = db:query("SELECT sender, text FROM messages ORDER BY id DESC LIMIT $1", n)
    if not rows then return nil, err end
    return oldestFirst(rows)
  end
  function s:close() db:close() end
  return s
end

-- open([env]) -> the store the environment asks for: Postgres when
-- DATABASE_URL is set and the postgres module loads, else SQLite (CHAT_DB).
function store.open(env)
  env = env or os.getenv
  local url = env("DATABASE_URL")
  if url and url ~= "" then
    local ok, s = pcall(store.postgres, url)
    if ok then return s end
    io.stderr:write("chat: cannot use DATABASE_URL (", tostring(s), "); history in SQLite instead\n")
  end
  return store.sqlite(env("CHAT_DB"))
end

return store
