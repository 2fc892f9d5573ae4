import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MISTAKES_LOGGED_PER_CONNECTION } from '../../relay/client-mistakes.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';
import { logLines, spawnTarget, type AttackedRelay } from './support.js';

// Issue 14.10: a hostile client's frames (over the size cap, breaking the WebSocket protocol, not
// JSON) are its mistakes: counted in metrics, logged without a stack below error level, and the log
// it can cause per connection is bounded.

const HANDSHAKE =
  'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** Sends raw bytes after a valid handshake and waits for the relay to drop the socket. */
async function sendRawFrame(port: number, frame: Buffer): Promise<void> {
  const s = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  s.write(HANDSHAKE);
  await new Promise<void>((resolve) => s.once('data', () => resolve()));
  s.write(frame);
  await new Promise<void>((resolve) => {
    s.once('close', () => resolve());
    s.on('error', () => undefined);
  });
}

async function metric(relay: AttackedRelay, name: string): Promise<string[]> {
  const text = await (await fetch(`${relay.httpUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('client mistakes in the log and metrics', () => {
  let relay: AttackedRelay;
  beforeAll(async () => (relay = await spawnTarget({ ROOST_LOG_LEVEL: 'debug', ROOST_MAX_MESSAGE_LENGTH: '65536' })));
  afterAll(async () => relay?.stop());

  it('logs oversized frames, protocol violations and junk without stack or error level, boundedly, and counts them', async () => {
    const before = relay.output().length;
    const CONNS = 20;
    for (let i = 0; i < CONNS; i++) {
      const c = await RawClient.connect(relay.url);
      c.send('x'.repeat(300_000)); // over four times the limit: the WebSocket layer closes (1009)
      await waitFor(() => c.closed, 'oversized frame closes the connection');
    }
    await sendRawFrame(relay.port, Buffer.from([0x81, 0x02, 0x61, 0x62])); // unmasked client frame
    await sendRawFrame(relay.port, Buffer.from([0xf1, 0x82, 0, 0, 0, 0, 0x61, 0x62])); // RSV bits set
    const junk = await RawClient.connect(relay.url);
    const FRAMES = 200;
    for (let i = 0; i < FRAMES; i++) junk.send(i % 2 ? '{not json' : 'y'.repeat(70_000));
    await waitFor(() => junk.of('NOTICE').length === FRAMES, 'a NOTICE per junk frame', 20_000);
    junk.close();

    await waitFor(async () => (await metric(relay, 'roost_client_mistakes_total{kind="protocol"}')).join().endsWith(' 2'), 'protocol mistakes counted');
    expect(await metric(relay, 'roost_client_mistakes_total{kind="oversized"}')).toEqual([
      `roost_client_mistakes_total{kind="oversized"} ${CONNS + FRAMES / 2}`,
    ]);
    expect(await metric(relay, 'roost_client_mistakes_total{kind="malformed"}')).toEqual([`roost_client_mistakes_total{kind="malformed"} ${FRAMES / 2}`]);
    expect(await metric(relay, 'roost_errors_total')).toEqual(['roost_errors_total 0']);

    const logged = relay.output().slice(before);
    const lines = logLines({ ...relay, output: () => logged });
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(logged).not.toMatch(/"stack"/);
    // One line per closed hostile connection, at most a few for the one sending 200 junk frames.
    const perConn = new Map<string, number>();
    for (const l of lines) if (typeof l.conn === 'string') perConn.set(l.conn, (perConn.get(l.conn) ?? 0) + 1);
    expect(Math.max(...perConn.values())).toBeLessThanOrEqual(MISTAKES_LOGGED_PER_CONNECTION + 1);
    expect(logged.length).toBeLessThan((CONNS + 2 + MISTAKES_LOGGED_PER_CONNECTION + 1) * 400);
  });
});
