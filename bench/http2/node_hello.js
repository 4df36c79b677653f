// bench/http2.sh's Node server: hello world over h2c with the http2 module.
//   node bench/http2/node_hello.js PORT
const http2 = require("http2");
const port = Number(process.argv[2] || 8080);
const server = http2.createServer({ settings: { maxConcurrentStreams: 100 } });
server.on("stream", (stream) => {
  stream.respond({ ":status": 200, "content-type": "text/plain" });
  stream.end("Hello, World!");
});
server.listen(port, "127.0.0.1", () => console.log("listening on " + port));
