// A minimal FCM HTTP v1 endpoint on 127.0.0.1 for the wake-queue workload: every send to
// /v1/projects/<id>/messages:send is answered 200 and noted (arrival time and device token). Nothing
// leaves the machine.
import http from 'node:http';

/**
 * Starts the fake. `onSend(token, atMs)` is told of every accepted push. Resolves with
 * `{ url, sends, close() }`.
 */
export async function startFakeFcm(onSend = () => {}) {
  let sends = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":{"code":404,"status":"NOT_FOUND"}}');
        return;
      }
      const at = performance.now();
      let token = '';
      try {
        token = JSON.parse(Buffer.concat(chunks).toString('utf8')).message?.token ?? '';
      } catch {
        /* counted anyway */
      }
      sends++;
      onSend(token, at);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"name":"projects/${m[1]}/messages/${sends}"}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get sends() {
      return sends;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
