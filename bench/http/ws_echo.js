// WebSocket echo load generator (Node + Debian's node-ws). N connections each send a
// 32-byte text message, wait for its echo, check it, and send the next, for D seconds.
// Prints one JSON line: messages/s, round-trip percentiles, errors, and how busy this
// process was (near 100% cpu means the generator, not the server, set the pace).
//   node bench/http/ws_echo.js URL [CONNECTIONS=50] [SECONDS=10]
'use strict';
let WebSocket;
try { WebSocket = require('ws'); } catch (e) { WebSocket = require('/usr/share/nodejs/ws'); }

const url = process.argv[2];
const connections = Number(process.argv[3] || 50);
const seconds = Number(process.argv[4] || 10);
if (!url) {
  console.error('usage: ws_echo.js URL [CONNECTIONS] [SECONDS]');
  process.exit(2);
}

const { performance } = require('perf_hooks');

const rtts = [];                  // round trips in milliseconds
let messages = 0;
let mismatches = 0;
let errors = 0;
let open = 0;
let measuring = false;
let start = 0;
let stopAt = 0;
let cpu0;
const senders = [];

function finish() {
  const elapsed = (stopAt - start) / 1000;
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  rtts.sort((a, b) => a - b);
  const pct = (p) => (rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * p))] : null);
  console.log(JSON.stringify({
    connections, seconds: elapsed, messages,
    messagesPerSecond: messages / elapsed,
    p50Ms: pct(0.5), p99Ms: pct(0.99),
    mismatches, errors, connected: open,
    generatorCpu: (cpu.user + cpu.system) / 1e6 / wall,
  }));
  process.exit(0);
}

// Client frames must be masked; a cheap varying mask instead of ws's crypto-random one
// keeps the generator's cost per message down (the server unmasks either the same way).
let maskState = 0x9e3779b9;
function generateMask(mask) {
  maskState = (Math.imul(maskState, 1103515245) + 12345) >>> 0;
  mask.writeUInt32LE(maskState >>> 0 || 1);
}

function startClient(id) {
  const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, generateMask });
  // 32 bytes of text; the sequence number in it changes with every message so that a
  // stale or misrouted echo is caught
  const message = Buffer.from(`c${id} m000000000000 `.padEnd(32, 'x'), 'latin1');
  const seqAt = message.indexOf('m') + 1;
  let seq = 0;
  let sentAt = 0;
  const sendNext = () => {
    message.write(String(seq++ % 1e12).padStart(12, '0'), seqAt, 'latin1');
    sentAt = performance.now();
    ws.send(message, { binary: false });
  };
  ws.on('open', () => {
    open++;
    if (open === connections) begin();
  });
  ws.on('message', (data, isBinary) => {
    const now = performance.now();
    if (isBinary || !message.equals(data)) mismatches++;
    if (measuring && now <= stopAt) {
      messages++;
      rtts.push(now - sentAt);
    }
    if (now < stopAt) sendNext();
  });
  ws.on('error', () => { errors++; });
  ws.on('close', () => { if (!measuring || performance.now() < stopAt) errors++; });
  senders.push(sendNext);
}

function begin() {
  measuring = true;
  start = performance.now();
  stopAt = start + seconds * 1000;
  cpu0 = process.cpuUsage();
  for (const send of senders) send();
  setTimeout(finish, seconds * 1000 + 50);
}

for (let i = 0; i < connections; i++) startClient(i);
// give up if not every connection opened within 5 s
setTimeout(() => {
  if (!measuring) {
    console.log(JSON.stringify({ connections, connected: open, errors, failed: 'not every connection opened within 5 s' }));
    process.exit(1);
  }
}, 5000);
