// Node's JSON.parse / JSON.stringify over corpus files, printed as
// bench.lua prints them: "name op MB/s" (file size per run, best of five).
const fs = require("fs");
const seconds = Number(process.env.SECONDS_PER_RUN || 1);

function now() { return Number(process.hrtime.bigint()) / 1e9; }

function measure(fn) {
  fn(); fn();
  let best = Infinity;
  for (let b = 0; b < 5; b++) {
    let n = 0;
    const t0 = now();
    let elapsed;
    do { fn(); n++; elapsed = now() - t0; } while (elapsed < seconds / 5);
    best = Math.min(best, elapsed / n);
  }
  return best;
}

let sink = 0;
for (const path of process.argv.slice(2)) {
  const text = fs.readFileSync(path, "utf8");
  const bytes = Buffer.byteLength(text);
  const name = path.match(/([^/]+)\.json$/)[1];
  const tdec = measure(() => { sink += JSON.parse(text) ? 1 : 0; });
  const value = JSON.parse(text);
  const tenc = measure(() => { sink += JSON.stringify(value).length; });
  console.log(`${name} decode ${(bytes / tdec / 1e6).toFixed(1)}`);
  console.log(`${name} encode ${(bytes / tenc / 1e6).toFixed(1)}`);
}
if (sink < 0) console.log(sink);
