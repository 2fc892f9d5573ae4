import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { finalizeEvent } from 'nostr-tools/pure';
import { npubEncode } from 'nostr-tools/nip19';
import type { NostrEvent } from '../../../shared/event.js';
import { makeAuthorizationHeader, makeHttpAuthTemplate } from '../../../shared/nip98.js';
import { callRelay, runAdmin } from '../../../cli/admin.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';

const RPC = 'application/nostr+json+rpc';

/** A NIP-86 request with a NIP-98 header built from `over` (to break one check at a time). */
async function rawCall(
  url: string,
  key: Key,
  body: string,
  over: { u?: string; method?: string; payload?: string; created_at?: number; kind?: number; header?: string } = {},
) {
  const payload = over.payload ?? createHash('sha256').update(body).digest('hex');
  const t = makeHttpAuthTemplate({ url: over.u ?? url + '/', method: over.method ?? 'POST', payload, created_at: over.created_at ?? nowSeconds() });
  const ev = finalizeEvent({ ...t, kind: over.kind ?? t.kind }, key.sk) as NostrEvent;
  const header = over.header ?? makeAuthorizationHeader(ev);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': RPC, authorization: header }, body });
  return { status: res.status, body: (await res.json()) as { result?: unknown; error?: string }, header };
}

describe('NIP-86 authorisation', () => {
  const admin = makeKey();
  let t: TestRelay;
  beforeAll(async () => (t = await startRelay({ adminPubkeys: npubEncode(admin.pk) })));
  afterAll(async () => t.close());
  const body = JSON.stringify({ method: 'listbannedpubkeys', params: [] });

  it('serves an admin (npub in the configuration)', async () => {
    const r = await callRelay(t.httpUrl, admin.sk, 'supportedmethods', []);
    expect(r.status).toBe(200);
    expect(r.body.result).toEqual(expect.arrayContaining(['banpubkey', 'listbannedpubkeys', 'allowpubkey', 'banevent', 'changerelayname']));
  });

  it('refuses a stranger with a valid NIP-98 event (403)', async () => {
    const r = await callRelay(t.httpUrl, makeKey().sk, 'banpubkey', [makeKey().pk]);
    expect(r.status).toBe(403);
    expect(r.body.error).toMatch(/^forbidden/);
    expect(t.relay.operator.admin.listBannedPubkeys()).toEqual([]);
  });

  it('refuses missing, malformed, stale, misdirected, tampered and replayed authorisation (401)', async () => {
    const none = await fetch(t.httpUrl, { method: 'POST', headers: { 'content-type': RPC }, body });
    expect(none.status).toBe(401);
    expect((await rawCall(t.httpUrl, admin, body, { header: 'Nostr not-base64!' })).status).toBe(401);
    expect((await rawCall(t.httpUrl, admin, body, { kind: 1 })).status).toBe(401);
    expect((await rawCall(t.httpUrl, admin, body, { created_at: nowSeconds() - 600 })).status).toBe(401);
    expect((await rawCall(t.httpUrl, admin, body, { u: 'http://elsewhere.example/' })).status).toBe(401);
    expect((await rawCall(t.httpUrl, admin, body, { method: 'GET' })).status).toBe(401);
    const tampered = await rawCall(t.httpUrl, admin, body, { payload: createHash('sha256').update('{"method":"supportedmethods"}').digest('hex') });
    expect(tampered.status).toBe(401);
    expect(tampered.body.error).toMatch(/payload/);
    const first = await rawCall(t.httpUrl, admin, body);
    expect(first.status).toBe(200);
    const replay = await fetch(t.httpUrl, { method: 'POST', headers: { 'content-type': RPC, authorization: first.header }, body });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toMatch(/already used/);
  });

  it('answers method errors in the NIP-86 shape', async () => {
    expect((await callRelay(t.httpUrl, admin.sk, 'nosuchmethod', [])).body.error).toMatch(/unsupported method/);
    expect((await callRelay(t.httpUrl, admin.sk, 'banpubkey', ['not-a-key'])).body.error).toMatch(/invalid params/);
    const wrongType = await fetch(t.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(wrongType.status).toBe(415);
  });

  it('refuses every call when no admin is configured', async () => {
    const bare = await startRelay();
    try {
      expect((await callRelay(bare.httpUrl, admin.sk, 'supportedmethods', [])).status).toBe(403);
    } finally {
      await bare.close();
    }
  });
});

describe('NIP-86 moderation, enforced by policy hooks and kept in SQLite', () => {
  const admin = makeKey();
  const dir = mkdtempSync(join(tmpdir(), 'roost-nip86-'));
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close({ keep: true });
    t = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const call = async (method: string, ...params: unknown[]) => {
    const r = await callRelay(t!.httpUrl, admin.sk, method, params);
    expect(r.body.error, `${method} error`).toBeUndefined();
    return r.body.result;
  };

  it('bans a pubkey, bans and removes an event, changes NIP-11 fields, and keeps all of it across a restart', async () => {
    const db = join(dir, 'moderation.db');
    t = await startRelay({ adminPubkeys: admin.pk, db });
    const spammer = makeKey();
    const author = makeKey();
    const c = await RawClient.connect(t.url);
    const bad = signEvent(author, { content: 'remove me' });
    const good = signEvent(author, { content: 'keep me' });
    await c.publish(bad);
    await c.publish(good);

    expect(await call('banpubkey', spammer.pk, 'spam')).toBe(true);
    expect(await call('listbannedpubkeys')).toEqual([{ pubkey: spammer.pk, reason: 'spam' }]);
    const refused = await c.publish(signEvent(spammer, { content: 'buy now' }));
    expect(refused.slice(2)).toEqual([false, 'blocked: this pubkey is banned from this relay']);

    expect(await call('banevent', bad.id, 'abuse')).toBe(true);
    expect((await c.req('q', { authors: [author.pk] })).map((e) => e.id)).toEqual([good.id]);
    const again = await RawClient.connect(t.url);
    expect((await again.publish(bad)).slice(2)).toEqual([false, 'blocked: this event is banned from this relay']);
    again.close();

    expect(await call('changerelayname', 'Moderated Roost')).toBe(true);
    expect(await call('changerelaydescription', 'a quiet place')).toBe(true);
    expect(await call('disallowkind', 7)).toBe(true);
    expect(reasonOf(await c.publish(signEvent(author, { kind: 7, content: '+' })))).toMatch(/^blocked: kind 7/);
    c.close();
    await t.close({ keep: true });

    t = await startRelay({ adminPubkeys: admin.pk, db });
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ name: 'Moderated Roost', description: 'a quiet place' });
    const c2 = await RawClient.connect(t.url);
    expect((await c2.publish(signEvent(spammer, { content: 'after restart' })))[2]).toBe(false);
    expect((await c2.publish(bad))[2]).toBe(false);
    expect(await call('listbannedevents')).toEqual([{ id: bad.id, reason: 'abuse' }]);
    expect(await call('listdisallowedkinds')).toEqual([7]);
    expect(await call('unbanpubkey', spammer.pk)).toBe(true);
    expect((await c2.publish(signEvent(spammer, { content: 'forgiven' })))[2]).toBe(true);
    c2.close();
  });

  it('allow-list write policy: only allowed pubkeys and admins publish; allowpubkey takes effect at once', async () => {
    t = await startRelay({ adminPubkeys: admin.pk, writePolicy: 'allow-list', db: join(dir, 'allow.db') });
    const agent = makeKey();
    const c = await RawClient.connect(t.url);
    expect(reasonOf(await c.publish(signEvent(agent, { content: 'hi' })))).toMatch(/^auth-required: /);
    expect((await c.publish(signEvent(admin, { content: 'admin may' })))[2]).toBe(true);
    expect(await call('allowpubkey', agent.pk, 'our agent')).toBe(true);
    expect((await c.publish(signEvent(agent, { content: 'now I may' })))[2]).toBe(true);
    expect(await call('listallowedpubkeys')).toEqual([{ pubkey: agent.pk, reason: 'our agent' }]);
    // banpubkey takes a pubkey off the allow list (NIP-86).
    await call('banpubkey', agent.pk);
    expect(await call('listallowedpubkeys')).toEqual([]);
    expect((await c.publish(signEvent(agent, { content: 'banned again' })))[2]).toBe(false);
    const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { limitation: Record<string, unknown> };
    expect(info.limitation.restricted_writes).toBe(true);
    c.close();
  });

  it('authenticated write policy: publishing needs NIP-42 AUTH', async () => {
    t = await startRelay({ writePolicy: 'authenticated', db: join(dir, 'auth.db') });
    const k = makeKey();
    const c = await RawClient.connect(t.url);
    expect(reasonOf(await c.publish(signEvent(k, { content: 'anon' })))).toMatch(/^auth-required: /);
    const challenge = await c.challenge();
    const auth = finalizeEvent(
      {
        kind: 22242,
        created_at: nowSeconds(),
        content: '',
        tags: [
          ['relay', t.url],
          ['challenge', challenge],
        ],
      },
      k.sk,
    ) as NostrEvent;
    c.send(['AUTH', auth]);
    await c.ok(auth.id);
    expect((await c.publish(signEvent(k, { content: 'known' })))[2]).toBe(true);
    // Reading stays open.
    const reader = await RawClient.connect(t.url);
    expect((await reader.req('r', { authors: [k.pk] })).length).toBe(1);
    c.close();
    reader.close();
  });

  it('blockip closes live connections from the address and refuses new ones (403 before the upgrade)', async () => {
    t = await startRelay({ adminPubkeys: admin.pk, db: join(dir, 'ip.db') });
    const c = await RawClient.connect(t.url);
    expect(await call('blockip', '127.0.0.1', 'testing')).toBe(true);
    await waitFor(() => c.closed, 'blocked connection closed');
    await expect(RawClient.connect(t.url)).rejects.toThrow(/403/);
    expect(await call('listblockedips')).toEqual([{ ip: '127.0.0.1', reason: 'testing' }]);
    expect(await call('unblockip', '127.0.0.1')).toBe(true);
    (await RawClient.connect(t.url)).close();
  });
});

const reasonOf = (frame: unknown[]) => String(frame[3]);

describe('roost admin (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roost-admin-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = async (argv: string[]) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => (out += d));
    stderr.on('data', (d) => (err += d));
    const code = await runAdmin(argv, { stdout, stderr, stdin: new PassThrough(), env: {} });
    return { code, out, err };
  };

  it('generates a key, signs calls with it, and reports refusals', async () => {
    const keyFile = join(dir, 'admin.key');
    const gen = await run(['keygen', '--out', keyFile]);
    expect(gen.code).toBe(0);
    const pk = gen.out.trim();
    expect(pk).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(keyFile, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    const t = await startRelay({ adminPubkeys: pk });
    try {
      const target = makeKey().pk;
      const ban = await run(['banpubkey', target, 'from the CLI', '--relay', t.url, '--key', keyFile]);
      expect(ban).toMatchObject({ code: 0, out: 'true\n' });
      const list = await run(['listbannedpubkeys', '--relay', t.url, '--key', keyFile]);
      expect(JSON.parse(list.out)).toEqual([{ pubkey: target, reason: 'from the CLI' }]);
      const kind = await run(['allowkind', '1', '--relay', t.httpUrl, '--key', keyFile]);
      expect(kind.code).toBe(0);
      expect(t.relay.operator.admin.listAllowedKinds()).toEqual([1]);

      const strangerKey = join(dir, 'stranger.key');
      await run(['keygen', '--out', strangerKey]);
      const refused = await run(['banpubkey', target, '--relay', t.url, '--key', strangerKey]);
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/HTTP 403.*forbidden/);
    } finally {
      await t.close();
    }
  });
});
