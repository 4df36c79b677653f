// A minimal static-file server over Node's http module, the peer of evo_static.lua:
// stat the file, send Content-Length, pipe fs.createReadStream into the response.
//   node bench/http/node_static.js DIR PORT
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const root = path.resolve(process.argv[2] || '.');
const port = Number(process.argv[3] || 8080);

function fail(res, status) {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': 0 });
  res.end();
}

http.createServer((req, res) => {
  let name;
  try {
    name = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  } catch (e) {
    return fail(res, 400);
  }
  const file = path.join(root, path.normalize(name));
  if (!file.startsWith(root + path.sep)) return fail(res, 403);
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) return fail(res, 404);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
    if (req.method === 'HEAD') return res.end();
    const stream = fs.createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
}).listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
