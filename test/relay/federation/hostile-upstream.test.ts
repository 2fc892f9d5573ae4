import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { startRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { fast, statsOf } from './helpers.js';

// An upstream that answers the replica's AUTH with junk frames before its OK: the replica must shrug them
// off (no exception out of a socket listener, which would take the whole relay down) and go on to tail.
const http = createServer((_req, res) => {
  res.setHeader('content-type', 'application/nostr+json');
  res.end(JSON.stringify({ pubkey: 'ab'.repeat(32), supported_nips: [1, 42] }));
});
const wss = new WebSocketServer({ server: http });
const seen: unknown[][] = [];
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const f = JSON.parse(String(data)) as unknown[];
    seen.push(f);
    if (f[0] === 'REQ' && f[1] === 'roost-replica-auth') ws.send(JSON.stringify(['AUTH', 'challenge-1']));
    if (f[0] === 'AUTH') {
      for (const junk of ['not json{', '"a string"', '[]', '["OK"]', '["OK", 5, true]']) ws.send(junk);
      ws.send(JSON.stringify(['OK', (f[1] as { id: string }).id, true, '']));
    }
    if (f[0] === 'REQ' && f[1] === 'roost-replica') ws.send(JSON.stringify(['EOSE', 'roost-replica', { cursor: 0, more: false }]));
  });
});
afterAll(() => {
  wss.close();
  http.close();
});

it('a replica authenticating to an upstream that sends junk frames goes on to tail it, and stays up', async () => {
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const replica = await startRelay({ replicateFrom: url }, fast);
  try {
    await waitFor(() => seen.some((f) => f[0] === 'REQ' && f[1] === 'roost-replica'), 'the replica tails after its AUTH OK');
    expect(seen.some((f) => f[0] === 'AUTH')).toBe(true);
    await waitFor(() => statsOf(replica).live, 'the replica is live');
    const info = await fetch(replica.httpUrl, { headers: { accept: 'application/nostr+json' } });
    expect(info.status).toBe(200);
  } finally {
    await replica.close();
  }
});
