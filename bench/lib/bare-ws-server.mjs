// The floor for an idle subscribed connection on Node: a bare `ws` server (no compression) that
// answers every REQ with its EOSE and holds nothing else. Prints "port N" once listening.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('listening', () => process.stdout.write(`port ${wss.address().port}\n`));
wss.on('connection', (ws) =>
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data));
    if (msg[0] === 'REQ') ws.send(JSON.stringify(['EOSE', msg[1]]));
  }),
);
