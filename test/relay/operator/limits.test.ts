import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { RateLimiter, TokenBuckets, normalizeIp } from '../../../relay/policies/rate-limit.js';
import { makeKey, signEvent } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { authenticate } from '../../helpers/mailbox.js';

describe('token buckets (injected clock)', () => {
  const cases: Array<{ name: string; perMinute: number; steps: Array<['take' | 'has' | 'refund' | 'advance', number?]>; expect: boolean[] }> = [
    {
      name: 'a full bucket allows one minute of burst, then refuses',
      perMinute: 3,
      steps: [['take'], ['take'], ['take'], ['take']],
      expect: [true, true, true, false],
    },
    {
      name: 'refills at the per-minute pace',
      perMinute: 60,
      steps: [...Array.from({ length: 60 }, () => ['take'] as ['take']), ['take'], ['advance', 1000], ['take'], ['take']],
      expect: [...Array.from({ length: 60 }, () => true), false, true, false],
    },
    { name: 'never holds more than one minute', perMinute: 2, steps: [['advance', 600_000], ['take'], ['take'], ['take']], expect: [true, true, false] },
    { name: 'has() does not take', perMinute: 1, steps: [['has'], ['has'], ['take'], ['has']], expect: [true, true, true, false] },
    {
      name: 'refund() gives a token back, never above a full bucket',
      perMinute: 2,
      steps: [['take'], ['take'], ['take'], ['refund'], ['take'], ['take'], ['refund'], ['refund'], ['refund'], ['take'], ['take'], ['take']],
      expect: [true, true, false, true, false, true, true, false],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      let now = 0;
      const b = new TokenBuckets(c.perMinute, () => now);
      const seen: boolean[] = [];
      for (const [op, arg] of c.steps) {
        if (op === 'advance') now += arg!;
        else if (op === 'refund') b.refund('k');
        else seen.push(op === 'take' ? b.take('k') : b.has('k'));
      }
      expect(seen).toEqual(c.expect);
    });
  }

  it('keys are independent and their number is bounded, idle full buckets going first', () => {
    let now = 0;
    const b = new TokenBuckets(1, () => now, 3);
    expect(b.take('busy')).toBe(true);
    expect(b.take('a')).toBe(true);
    now += 60_000; // 'busy' and 'a' are full again, so they carry no information
    expect(b.take('busy')).toBe(true);
    expect(b.take('c')).toBe(true);
    expect(b.take('d')).toBe(true);
    expect(b.size).toBeLessThanOrEqual(3);
    expect(b.take('busy')).toBe(false);
  });

  it('keys an IPv4 client the same through a dual-stack socket', () => {
    expect(['::ffff:203.0.113.7', '203.0.113.7', '2001:db8::1'].map(normalizeIp)).toEqual(['203.0.113.7', '203.0.113.7', '2001:db8::1']);
  });

  it('a rate of 0 is off', () => {
    const l = new RateLimiter(
      { connectionsPerIp: 0, connectionsPerLoopback: 0, eventsPerIp: 0, eventsPerPubkey: 0, reqsPerIp: 0, reqsPerPubkey: 0, httpPerIp: 0 },
      () => 0,
    );
    const ev = signEvent(makeKey());
    for (let i = 0; i < 1000; i++)
      expect(l.admitEvent('1.2.3.4', ev) ?? l.admitReq('1.2.3.4', new Set(['pk'])) ?? l.admitConnection('1.2.3.4')).toBeUndefined();
  });
});

/** Sends a bare WebSocket upgrade request and returns the non-101 answer. */
function upgradeRequest(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve({ status: 101, body: '' });
    });
    req.on('error', reject);
    req.end();
  });
}

const reasonOf = (frame: unknown[]) => String(frame[frame[0] === 'OK' ? 3 : 2]);

describe('rate limits on the wire', () => {
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('limits EVENTs per IP with OK false rate-limited:, refilling with the clock', async () => {
    let ms = 1_000_000;
    t = await startRelay({ rateLimit: true, rateEventsPerIp: 3, rateEventsPerPubkey: 0 }, { nowMs: () => ms });
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    for (let i = 0; i < 3; i++) expect((await c.publish(signEvent(k, { content: `ok${i}` })))[2]).toBe(true);
    const over = await c.publish(signEvent(k, { content: 'over' }));
    expect(over[2]).toBe(false);
    expect(reasonOf(over)).toMatch(/^rate-limited: /);
    ms += 20_000; // one token back (3 per minute)
    expect((await c.publish(signEvent(k, { content: 'again' })))[2]).toBe(true);
    expect((await c.publish(signEvent(k, { content: 'over again' })))[2]).toBe(false);
    expect(t.relay.ctx.stats.rejections.get('rate-limited')).toBe(2);
    c.close();
  });

  it('limits events per author, charged only for verified events so forgeries cannot drain a victim', async () => {
    t = await startRelay({ rateLimit: true, rateEventsPerIp: 0, rateEventsPerPubkey: 2 });
    const c = await RawClient.connect(t.url);
    const victim = makeKey();
    for (let i = 0; i < 5; i++) {
      const forged = { ...signEvent(makeKey(), { content: `forged${i}` }), pubkey: victim.pk };
      expect(reasonOf(await c.publish(forged))).toMatch(/^invalid: /);
    }
    expect((await c.publish(signEvent(victim, { content: 'a' })))[2]).toBe(true);
    expect((await c.publish(signEvent(victim, { content: 'b' })))[2]).toBe(true);
    const over = await c.publish(signEvent(victim, { content: 'c' }));
    expect(reasonOf(over)).toMatch(/^rate-limited: .*author/);
    expect((await c.publish(signEvent(makeKey(), { content: 'someone else' })))[2]).toBe(true);
    c.close();
  });

  it('limits REQs and COUNTs per IP with CLOSED rate-limited:', async () => {
    t = await startRelay({ rateLimit: true, rateReqsPerIp: 3, rateReqsPerPubkey: 0 });
    const c = await RawClient.connect(t.url);
    await c.req('a', { kinds: [1] });
    await c.req('b', { kinds: [1] });
    c.send(['COUNT', 'n', { kinds: [1] }]);
    await c.next((f) => f[0] === 'COUNT' && f[1] === 'n', 'COUNT');
    c.send(['REQ', 'd', { kinds: [1] }]);
    expect(reasonOf(await c.closedOf('d'))).toMatch(/^rate-limited: /);
    c.send(['COUNT', 'm', { kinds: [1] }]);
    expect(reasonOf(await c.closedOf('m'))).toMatch(/^rate-limited: /);
    c.close();
  });

  it('limits REQs per authenticated pubkey; unauthenticated readers are not charged to it', async () => {
    t = await startRelay({ rateLimit: true, rateReqsPerIp: 0, rateReqsPerPubkey: 2 });
    const k = makeKey();
    const c = await RawClient.connect(t.url);
    await authenticate(c, k, t.url);
    await c.req('a', { kinds: [1] });
    await c.req('b', { kinds: [1] });
    c.send(['REQ', 'c', { kinds: [1] }]);
    expect(reasonOf(await c.closedOf('c'))).toMatch(/^rate-limited: .*pubkey/);
    const anon = await RawClient.connect(t.url);
    for (const id of ['x', 'y', 'z']) expect((await anon.req(id, { kinds: [1] })).length).toBe(0);
    expect(anon.of('CLOSED')).toEqual([]);
    const again = await RawClient.connect(t.url);
    await authenticate(again, k, t.url);
    again.send(['REQ', 'd', { kinds: [1] }]);
    expect(reasonOf(await again.closedOf('d'))).toMatch(/^rate-limited: /);
    for (const x of [c, anon, again]) x.close();
  });

  it('limits new connections per IP before the upgrade (HTTP 429 with the reason)', async () => {
    // the test's clients are on loopback, which has its own rate (the same buckets)
    t = await startRelay({ rateLimit: true, rateConnectionsPerIp: 2, rateConnectionsPerLoopback: 2 });
    const a = await RawClient.connect(t.url);
    const b = await RawClient.connect(t.url);
    await expect(RawClient.connect(t.url)).rejects.toThrow(/429/);
    const res = await upgradeRequest(t.httpUrl);
    expect(res.status).toBe(429);
    expect(res.body).toMatch(/^rate-limited: /);
    expect(t.relay.ctx.connections.size).toBe(2);
    // Plain HTTP (NIP-11, health) is not charged.
    expect((await fetch(`${t.httpUrl}/health`)).status).toBe(200);
    a.close();
    b.close();
  });

  it('loopback clients get their own connection rate: a local mesh of 80 agents starts at once under the default per-IP 60', async () => {
    t = await startRelay({ rateLimit: true });
    const clients = [];
    for (let i = 0; i < 80; i++) clients.push(await RawClient.connect(t.url));
    expect(t.relay.ctx.connections.size).toBe(80);
    for (const c of clients) c.close();
  });

  it('advertises the limits in NIP-11 from the same configuration that enforces them', async () => {
    t = await startRelay({ rateLimit: true, rateEventsPerIp: 7, rateReqsPerPubkey: 9, maxOutboundBytes: 100_000, maxSubscriptions: 4, maxFilters: 3 });
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, any>;
    expect(info.rate_limits).toMatchObject({ window_seconds: 60, events_per_ip: 7, reqs_per_pubkey: 9, connections_per_ip: 60 });
    expect(info.limitation).toMatchObject({ max_subscriptions: 4, max_filters: 3, max_outbound_bytes: 100_000, restricted_writes: false });
    expect(info.supported_nips).toContain(86);
    await t.close();
    t = await startRelay({ rateLimit: false });
    const off = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, unknown>;
    expect(off.rate_limits).toBeUndefined();
  });
});

describe('per-connection caps', () => {
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('caps subscriptions and filters with CLOSED', async () => {
    t = await startRelay({ maxSubscriptions: 2, maxFilters: 2 });
    const c = await RawClient.connect(t.url);
    await c.req('a', { kinds: [1] });
    await c.req('b', { kinds: [1] });
    c.send(['REQ', 'c', { kinds: [1] }]);
    expect(reasonOf(await c.closedOf('c'))).toMatch(/^blocked: too many open subscriptions/);
    c.send(['CLOSE', 'a']);
    c.send(['REQ', 'f', { kinds: [1] }, { kinds: [2] }, { kinds: [3] }]);
    expect(reasonOf(await c.closedOf('f'))).toMatch(/^invalid: too many filters/);
    c.close();
  });

  it('cuts off a client that never reads once its unsent bytes pass the cap, and keeps serving others', async () => {
    t = await startRelay({ maxOutboundBytes: 65536 });
    const reader = await RawClient.connect(t.url);
    await reader.req('all', { kinds: [1] });
    // Stop reading from the TCP socket: the relay's sends back up in the kernel, then in its buffer.
    (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const pub = await RawClient.connect(t.url);
    const k = makeKey();
    const big = 'x'.repeat(60_000);
    let sent = 0;
    for (let round = 0; round < 50 && t.relay.ctx.stats.slowClientsCut === 0; round++) {
      const batch = Array.from({ length: 10 }, (_, i) => signEvent(k, { content: `${big}${round}-${i}` }));
      await Promise.all(batch.map((e) => pub.publish(e)));
      sent += batch.length;
    }
    expect(t.relay.ctx.stats.slowClientsCut).toBe(1);
    expect(t.relay.ctx.connections.size).toBe(1);
    expect(sent).toBeLessThanOrEqual(500);
    (reader.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await waitFor(() => reader.closed, 'the slow client sees its connection end');
    expect((await pub.publish(signEvent(k, { content: 'still serving' })))[2]).toBe(true);
    pub.close();
  });
});
