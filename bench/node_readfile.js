// N reads of a 4 KiB file with K in flight, with fs.promises.readFile: Node's
// peer of bench/readfile.lua. Prints {readsPerSecond}.
const fs = require("fs");
const os = require("os");
const path = require("path");
const N = Number(process.argv[2] || 100000);
const K = Number(process.argv[3] || 64);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "evo-node-bench-"));
const file = path.join(dir, "4k.bin");
fs.writeFileSync(file, Buffer.alloc(4096, "r"));
async function run() {
  let remaining = N;
  const t0 = process.hrtime.bigint();
  async function worker() {
    while (remaining > 0) {
      remaining--;
      const data = await fs.promises.readFile(file);
      if (data.length !== 4096) throw new Error("short read");
    }
  }
  await Promise.all(Array.from({length: K}, worker));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
(async () => {
  let best = Infinity;
  for (let i = 0; i < 3; i++) best = Math.min(best, await run());
  fs.rmSync(dir, {recursive: true});
  console.log(JSON.stringify({readsPerSecond: N / best}));
})();
