// Node's peer of tests/load/idle_server.lua for bench/http_idle.sh: hello world on a
// free port with a 120 s keep-alive timeout. Prints its port, then serves until killed.
//   node bench/http/node_idle_server.js
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
  res.end('hello');
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 130000; // must exceed keepAliveTimeout
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
