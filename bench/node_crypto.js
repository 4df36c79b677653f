// Node's side of bench/crypto.sh: the same measures as bench/crypto.lua.
//   node bench/node_crypto.js INPUT SECONDS
const crypto = require("crypto");
const zlib = require("zlib");
const fs = require("fs");
const [path, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 1);
const data = fs.readFileSync(path);
function rate(fn) {
  fn();
  let n = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    for (let i = 0; i < 8; i++) fn();
    n += 8;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (elapsed < seconds);
  return n / elapsed;
}
const MB = 1024 * 1024;
const small = data.subarray(0, 64).toString("latin1");
console.log(`sha256-1MiB ${(rate(() => crypto.createHash("sha256").update(data).digest()) * data.length / MB).toFixed(1)} MB/s`);
console.log(`sha256-64B ${rate(() => crypto.createHash("sha256").update(small).digest("hex")).toFixed(0)} ops/s`);
const packed = zlib.gzipSync(data, { level: 6 });
console.log(`gzip ${(rate(() => zlib.gzipSync(data, { level: 6 })) * data.length / MB).toFixed(1)} MB/s`);
console.log(`gunzip ${(rate(() => zlib.gunzipSync(packed)) * data.length / MB).toFixed(1)} MB/s`);
