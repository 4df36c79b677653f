// Postgres from 50 concurrent promise chains on a pool of 10, with Node's
// `pg` (node-postgres, pg.Pool) or `postgres` (postgres.js).
// Usage: NODE_PATH=... node bench/postgres_node.js URL OPS pg|postgres
const [url, ops, lib] = [process.argv[2], Number(process.argv[3] || 100000), process.argv[4] || "pg"];
const TASKS = 50;
const ROWS = "SELECT n, 'row ' || n AS name, n * 1.5 AS score FROM generate_series(1, 100) AS n";
let query, end;
if (lib === "pg") {
  const pg = require("pg");
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  query = (sql, a) => pool.query(sql, [a]);
  end = () => pool.end();
} else {
  const mod = require("postgres");  // ESM since 4.x: require() gives its namespace
  const postgres = mod.default || mod;
  const sql = postgres(url, { max: 10 });
  query = (text, a) => sql.unsafe(text, [a], { prepare: true });
  end = () => sql.end();
}
async function run(n, text, arg) {
  const per = Math.floor(n / TASKS);
  const chains = [];
  for (let i = 0; i < TASKS; i++) {
    chains.push((async () => { for (let j = 0; j < per; j++) await query(text, arg === undefined ? i : arg); })());
  }
  await Promise.all(chains);
  return per * TASKS;
}
async function measure(name, n, text, arg) {
  await run(Math.floor(n / 10), text, arg);
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const done = await run(n, text, arg);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  console.log(`${name} ${Math.round(done / dt)} ${((c.user + c.system) / done).toFixed(2)}`);
}
(async () => {
  await measure("select1", ops, "SELECT $1");
  await measure("rows100", Math.floor(ops / 10), ROWS + " WHERE n > $1", 0);
  await end();
})();
