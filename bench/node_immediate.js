// 1,000,000 setImmediate hops (one loop iteration each): Node's peer of task.yield().
const N = Number(process.argv[2] || 1000000);
function run() {
  return new Promise((resolve) => {
    let n = 0;
    const t0 = process.hrtime.bigint();
    function hop() {
      if (++n === N) resolve(Number(process.hrtime.bigint() - t0) / 1e9);
      else setImmediate(hop);
    }
    setImmediate(hop);
  });
}
(async () => {
  let best = Infinity;
  for (let i = 0; i < 3; i++) best = Math.min(best, await run());
  console.log(JSON.stringify({nsPerHop: (best / N) * 1e9}));
})();
