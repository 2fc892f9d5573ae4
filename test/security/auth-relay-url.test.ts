import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { makeAuthorizationHeader, makeHttpAuthTemplate } from '../../shared/nip98.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { logLines, spawnTarget, type AttackedRelay } from './support.js';

// Issue 14.1: a relay the victim trusts ("evil") forwards the victim's NIP-42 AUTH, or an admin's
// NIP-98 header, to Roost and names itself in Host / X-Forwarded-Host. Roost must never take its
// own URL from those headers.

const EVIL = 'evil.example:43295';

function authEvent(key: Key, relay: string, challenge: string): NostrEvent {
  return signEvent(key, {
    kind: 22242,
    tags: [
      ['relay', relay],
      ['challenge', challenge],
    ],
  });
}

/** Connects (optionally with forged headers), answers the challenge as `key` for `relay`, returns the OK. */
async function authAs(url: string, key: Key, relay: string, headers: Record<string, string> = {}): Promise<{ c: RawClient; ok: unknown[] }> {
  const c = await RawClient.connect(url, { headers });
  const challenge = await c.challenge();
  const ev = authEvent(key, relay, challenge);
  c.send(['AUTH', ev]);
  return { c, ok: await c.ok(ev.id) };
}

/** POST with any Host header (fetch would not let a test forge it). */
function post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function nip98(key: Key, u: string, body: string): string {
  const payload = createHash('sha256').update(body).digest('hex');
  return makeAuthorizationHeader(signEvent(key, makeHttpAuthTemplate({ url: u, method: 'POST', payload, created_at: nowSeconds() })));
}

const RPC = 'application/nostr+json+rpc';

describe('NIP-42 relay binding, no public URL configured (quick start)', () => {
  const alice = makeKey();
  const bob = makeKey();
  const admin = makeKey();
  let relay: AttackedRelay;
  let dm: NostrEvent;
  beforeAll(async () => {
    relay = await spawnTarget({ ROOST_ADMIN_PUBKEYS: admin.pk });
    const a = await RawClient.connect(relay.url);
    dm = signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: 'secret?iv=x' });
    expect((await a.publish(dm))[2]).toBe(true);
    a.close();
  });
  afterAll(async () => relay?.stop());

  it('warns at start that only local names are accepted', () => {
    const warn = logLines(relay).find((l) => String(l.msg).includes('no public URL configured'));
    expect(warn?.level).toBe(40);
  });

  it('refuses an AUTH made for another relay, whatever Host or X-Forwarded-Host say; the DMs stay private', async () => {
    const forged: Array<Record<string, string>> = [
      { host: EVIL },
      { 'x-forwarded-host': EVIL },
      { host: EVIL, 'x-forwarded-host': EVIL, 'x-forwarded-proto': 'ws' },
    ];
    for (const headers of forged) {
      const { c, ok } = await authAs(relay.url, bob, `ws://${EVIL}`, headers);
      expect(ok[2]).toBe(false);
      expect(ok[3]).toMatch(/^invalid: relay tag does not name this relay/);
      const sub = await c.req('dms', { kinds: [4], '#p': [bob.pk] });
      expect(sub.map((e) => e.id)).not.toContain(dm.id);
      expect((await c.closedOf('dms'))[2]).toMatch(/^auth-required:/);
      c.close();
    }
  });

  it('keeps the quick start working: ws://127.0.0.1:PORT and ws://localhost:PORT', async () => {
    for (const [url, named] of [
      [relay.url, `ws://127.0.0.1:${relay.port}`],
      [`ws://localhost:${relay.port}`, `ws://localhost:${relay.port}/`],
      [relay.url, `ws://localhost:${relay.port}`],
    ] as const) {
      const { c, ok } = await authAs(url, bob, named);
      expect(ok[2]).toBe(true);
      expect((await c.req('dms', { kinds: [4], '#p': [bob.pk] })).map((e) => e.id)).toEqual([dm.id]);
      c.close();
    }
  });

  it('refuses a local name on another port (another relay on this machine)', async () => {
    const { c, ok } = await authAs(relay.url, bob, `ws://127.0.0.1:${relay.port + 1}`);
    expect(ok[2]).toBe(false);
    c.close();
  });

  it('refuses a NIP-98 header made for another relay and replayed with its Host (no ban)', async () => {
    const victim = makeKey().pk;
    const body = JSON.stringify({ method: 'banpubkey', params: [victim, 'forwarded'] });
    const r = await post(
      relay.httpUrl + '/',
      { host: EVIL, 'x-forwarded-host': EVIL, 'content-type': RPC, authorization: nip98(admin, `http://${EVIL}/`, body) },
      body,
    );
    expect(r.status).toBe(401);
    expect(r.body).toMatch(/u tag does not name this URL/);
    const list = JSON.stringify({ method: 'listbannedpubkeys', params: [] });
    const l = await post(relay.httpUrl + '/', { 'content-type': RPC, authorization: nip98(admin, `${relay.httpUrl}/`, list) }, list);
    expect(l.status).toBe(200);
    expect(JSON.stringify(JSON.parse(l.body).result)).not.toContain(victim);
  });
});

describe('NIP-42 relay binding with public URLs configured', () => {
  const bob = makeKey();
  let relay: AttackedRelay;
  beforeAll(async () => (relay = await spawnTarget({ ROOST_PUBLIC_URL: 'wss://relay.example, wss://alias.example/roost' })));
  afterAll(async () => relay?.stop());

  it('accepts each configured URL and nothing else, whatever the headers', async () => {
    for (const named of ['wss://relay.example', 'wss://relay.example/', 'wss://alias.example/roost']) {
      const { c, ok } = await authAs(relay.url, bob, named);
      expect(ok[2]).toBe(true);
      c.close();
    }
    for (const [named, headers] of [
      [`ws://${EVIL}`, { host: EVIL }],
      [`wss://${EVIL}`, { 'x-forwarded-host': EVIL, 'x-forwarded-proto': 'wss' }],
      [`ws://127.0.0.1:${relay.port}`, {}],
      ['wss://alias.example', {}],
    ] as const) {
      const { c, ok } = await authAs(relay.url, bob, named, headers);
      expect(ok[2]).toBe(false);
      c.close();
    }
    expect(logLines(relay).some((l) => String(l.msg).includes('no public URL configured'))).toBe(false);
  });
});
