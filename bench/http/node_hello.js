// Hello world over Node's http module (one process), the peer of evo_hello.lua.
//   node bench/http/node_hello.js PORT
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 8080);
const body = 'Hello, World!';
const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) };

http.createServer((req, res) => {
  res.writeHead(200, headers);
  res.end(body);
}).listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
