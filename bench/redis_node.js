// GET/SET from 50 concurrent promise chains on one ioredis connection.
// Usage: NODE_PATH=... node bench/redis_node.js PORT OPS AUTOPIPELINE(0|1)
const Redis = require("ioredis");
const [port, ops, auto] = [Number(process.argv[2]), Number(process.argv[3] || 200000), process.argv[4] === "1"];
const TASKS = 50;
const per = Math.floor(ops / TASKS / 2);
const r = new Redis({ port, enableAutoPipelining: auto });
async function run() {
  const chains = [];
  for (let i = 0; i < TASKS; i++) {
    chains.push((async () => {
      const key = "bench:" + i;
      for (let j = 0; j < per; j++) { await r.set(key, "value"); await r.get(key); }
    })());
  }
  await Promise.all(chains);
}
(async () => {
  await run();
  const t0 = process.hrtime.bigint();
  await run();
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`node ${Math.round(per * 2 * TASKS / dt)}`);
  r.disconnect();
})();
