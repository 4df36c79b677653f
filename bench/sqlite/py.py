# bench/sqlite/py.py PATH N: Python's sqlite3 (Debian's libsqlite3, as Evo's),
# the same work as evo.lua. Rows are tuples (Python's default, cheaper than
# the keyed rows Evo and better-sqlite3 build).
import os, sqlite3, sys, time
path, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100000
for p in (path, path + "-wal", path + "-shm"):
    if os.path.exists(p): os.remove(p)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL NOT NULL)")
ins = "INSERT INTO t(id, name, score) VALUES (?, ?, ?)"
t0 = time.process_time()
db.execute("BEGIN")
for i in range(1, n + 1):
    db.execute(ins, (i, "user%d" % i, i * 0.5))
db.execute("COMMIT")
print("insert %.1f ops/s" % (n / (time.process_time() - t0)))
sel = "SELECT id, name, score FROM t WHERE id = ?"
reps, total = n * 5, 0.0
t0 = time.process_time()
for i in range(1, reps + 1):
    total += db.execute(sel, ((i * 7919) % n + 1,)).fetchone()[2]
print("select %.1f ops/s" % (reps / (time.process_time() - t0)))
db.close()
for p in (path, path + "-wal", path + "-shm"):
    if os.path.exists(p): os.remove(p)
