// tests/apps/node_http.js: a Node.js HTTP server and client for `make
// check-apps` (tests/apps/run-event-loops.sh). Node's bundled libuv closes
// every socket with syscall(SYS_close).
//   node node_http.js server          prints its port, serves 64 KiB bodies
//                                     with "Connection: close" until killed
//   node node_http.js client PORT N   N requests, 8 at a time, each on a new
//                                     connection; checks every body's length
//                                     and bytes; prints "requests=... bytes=...
//                                     failures=..." once every connection is
//                                     closed; exit 0 when all came back
'use strict';
const http = require('http');

const BODY = Buffer.alloc(65536, 0);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + 7) & 0xff;

function server() {
  const s = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Length': BODY.length, 'Connection': 'close' });
    res.end(BODY);
  });
  s.listen(0, '127.0.0.1', () => console.log(s.address().port));
}

function client(port, total) {
  let started = 0, done = 0, failures = 0, bytes = 0, closed = 0;
  const agent = new http.Agent({ keepAlive: false, maxSockets: 8 });
  const next = () => {
    if (started >= total) return;
    started++;
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        bytes += body.length;
        if (res.statusCode !== 200 || !body.equals(BODY)) failures++;
        finish();
      });
      res.on('error', () => { failures++; finish(); });
    });
    req.on('error', () => { failures++; finish(); });
    // Exit once every connection is closed, so that each close is made.
    req.on('socket', (socket) => socket.on('close', () => { closed++; report(); }));
  };
  const report = () => {
    if (done === total && closed === total) {
      console.log(`requests=${done} bytes=${bytes} failures=${failures}`);
      process.exit(failures === 0 ? 0 : 1);
    }
  };
  const finish = () => {
    done++;
    report();
    next();
  };
  for (let i = 0; i < 8; i++) next();
}

if (process.argv[2] === 'server') server();
else if (process.argv[2] === 'client') client(Number(process.argv[3]), Number(process.argv[4]));
else { console.error('usage: node node_http.js server | client PORT N'); process.exit(2); }
