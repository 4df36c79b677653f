// WebSocket echo over Node and the `ws` package (Debian's node-ws), the peer of
// evo_ws_echo.lua.
//   node bench/http/node_ws_echo.js PORT
'use strict';
let WebSocket;
try { WebSocket = require('ws'); } catch (e) { WebSocket = require('/usr/share/nodejs/ws'); }

const port = Number(process.argv[2] || 8080);
const wss = new WebSocket.Server({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening on ${port}`));
