// bench/sqlite/node.js PATH N: better-sqlite3, the same work as evo.lua.
const Database = require("better-sqlite3");
const fs = require("fs");
const [path, nArg] = process.argv.slice(2);
const n = Number(nArg || 100000);
try { fs.unlinkSync(path); } catch {}
const db = new Database(path);
db.pragma("journal_mode = WAL");  // Evo's default
db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL NOT NULL)");
const ins = db.prepare("INSERT INTO t(id, name, score) VALUES (?, ?, ?)");
const now = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; };  // CPU seconds
let t0 = now();
db.transaction(() => { for (let i = 1; i <= n; i++) ins.run(i, "user" + i, i * 0.5); })();
let dt = now() - t0;
console.log(`insert ${(n / dt).toFixed(1)} ops/s`);
const sel = db.prepare("SELECT id, name, score FROM t WHERE id = ?");
const reps = n * 5;
let sum = 0;
t0 = now();
for (let i = 1; i <= reps; i++) sum += sel.get((i * 7919) % n + 1).score;
dt = now() - t0;
console.log(`select ${(reps / dt).toFixed(1)} ops/s`);
db.close();
for (const p of [path, path + "-wal", path + "-shm"]) { try { fs.unlinkSync(p); } catch {} }
