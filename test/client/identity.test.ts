import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClientError,
  Identity,
  KeyValueStore,
  MemoryStore,
  SqliteAgentStore,
  getNpub,
  loadKeyFile,
  loadOrCreateIdentity,
  loadOrCreateKeyFile,
  parsePubkey,
  parseSecretKey,
  saveKeyFile,
  verifyEvent,
  nobleCrypto,
  unwrapDirectMessage,
  wasmCrypto,
  wrapDirectMessage,
  type AgentStore,
  type KeyValueStorage,
} from '../../client/node/index.js';
import { tempDir } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A Map behind the localStorage interface, as a browser would give. */
function mapStorage(): KeyValueStorage & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v), removeItem: (k) => void map.delete(k) };
}

describe('identity', () => {
  it('round-trips keys through hex, nsec and npub, and signs verifiable events', () => {
    const id = Identity.generate();
    const again = Identity.fromSecretKey(id.exportNsec());
    expect(again.pubkey).toBe(id.pubkey);
    expect(Identity.fromSecretKey(id.exportSecretKeyHex()).pubkey).toBe(id.pubkey);
    expect(id.npub).toMatch(/^npub1/);
    expect(parsePubkey(id.npub)).toBe(id.pubkey);
    expect(parsePubkey(id.pubkey.toUpperCase())).toBe(id.pubkey);
    expect(getNpub(id.pubkey)).toBe(id.npub);
    const ev = id.sign({ kind: 1, content: 'hi', tags: [['t', 'x']], created_at: 1_700_000_000 });
    expect(ev.pubkey).toBe(id.pubkey);
    expect(verifyEvent(ev)).toBe(true);
    expect(verifyEvent({ ...ev, content: 'changed' })).toBe(false);
  });

  it('never shows the secret key when printed or serialised', () => {
    const id = Identity.generate();
    const shown = JSON.stringify(id) + String((id as unknown as Record<symbol, () => string>)[Symbol.for('nodejs.util.inspect.custom')]!());
    expect(shown).not.toContain(id.exportSecretKeyHex());
    expect(shown).toContain(id.npub);
  });

  it('refuses malformed keys with ROOST_ERR_BAD_KEY', () => {
    for (const bad of ['', 'zz', 'a'.repeat(63), 'nsec1qqqq', '0'.repeat(64), 'f'.repeat(64)]) {
      expect(() => parseSecretKey(bad), bad).toThrow(expect.objectContaining({ code: 'ROOST_ERR_BAD_KEY' }));
    }
    for (const bad of ['npub1xyz', 'b'.repeat(65), Identity.generate().exportNsec()]) {
      expect(() => parsePubkey(bad), bad).toThrow(expect.objectContaining({ code: 'ROOST_ERR_BAD_KEY' }));
    }
  });

  it('creates a key file with mode 0600, loads it again, and refuses one others can read', () => {
    const path = join(dir(), 'nested', 'agent.key');
    const { identity, created } = loadOrCreateKeyFile(path);
    expect(created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(loadOrCreateKeyFile(path)).toEqual({ identity: expect.objectContaining({ pubkey: identity.pubkey }), created: false });
    expect(() => saveKeyFile(path, Identity.generate())).toThrow(expect.objectContaining({ code: 'ROOST_ERR_KEY_FILE' }));
    chmodSync(path, 0o644);
    expect(() => loadKeyFile(path)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_KEY_FILE' }));
    const junk = join(dir(), 'junk.key');
    writeFileSync(junk, 'not a key\n', { mode: 0o600 });
    expect(() => loadKeyFile(junk)).toThrow(ClientError);
  });

  it('keeps a browser identity in the storage the caller passes', async () => {
    const storage = mapStorage();
    const a = await loadOrCreateIdentity(storage);
    const b = await loadOrCreateIdentity(storage);
    expect(b.pubkey).toBe(a.pubkey);
    expect(storage.map.get('roost:identity')).toBe(a.exportSecretKeyHex());
  });
});

describe('crypto backends', () => {
  const backends = [nobleCrypto, wasmCrypto];
  it("agree on keys, signatures and NIP-44 conversation keys, and open each other's gift wraps", () => {
    for (const a of backends) {
      for (const b of backends) {
        const sender = Identity.generate(a);
        const recipient = Identity.generate(b);
        expect(Identity.fromSecretKey(sender.exportSecretKey(), b).pubkey, `${a.name}/${b.name} pubkey`).toBe(sender.pubkey);
        const ev = sender.sign({ kind: 1, content: 'x', tags: [], created_at: 1 });
        expect(b.verify(ev)).toBe(true);
        expect(b.verify({ ...ev, content: 'y' })).toBe(false);
        expect(b.verify({ ...ev, sig: ev.sig.replace(/^./, (c) => (c === '0' ? '1' : '0')) })).toBe(false);
        expect(Buffer.from(sender.conversationKey(recipient.pubkey)).toString('hex')).toBe(
          Buffer.from(recipient.conversationKey(sender.pubkey)).toString('hex'),
        );
        const { wrap, rumor } = wrapDirectMessage(sender, recipient.pubkey, `from ${a.name} to ${b.name}`, { tags: [['t', 'x']] });
        expect(b.verify(wrap)).toBe(true);
        const opened = unwrapDirectMessage(recipient, wrap);
        expect(opened).toEqual(rumor);
        expect(opened.pubkey).toBe(sender.pubkey);
        expect(wrap.pubkey).not.toBe(sender.pubkey);
        expect(() => unwrapDirectMessage(Identity.generate(a), wrap)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_DECRYPT' }));
      }
    }
  });
});

describe('agent stores', () => {
  const ev = (n: number) => Identity.generate().sign({ kind: 1, content: `e${n}`, tags: [], created_at: 1_700_000_000 + n });

  async function exercise(open: () => Promise<AgentStore>) {
    let s = await open();
    const [e1, e2, e3] = [ev(1), ev(2), ev(3)];
    await s.outboxAdd(e1, ['ws://a', 'ws://b']);
    await s.outboxAdd(e2, ['ws://a']);
    await s.outboxAdd(e3, ['ws://b']);
    await s.outboxAdd(e1, ['ws://a']);
    await s.outboxSettle(e1.id, 'ws://a');
    await s.outboxSettle(e2.id, 'ws://a');
    await s.markDelivered('x'.repeat(64), 1000, 'ws://a', 7);
    await s.markDelivered('y'.repeat(64), 2000);
    await s.setCursors(new Map([['ws://b', 3]]));
    await s.close();

    s = await open();
    const list = await s.outboxList();
    expect(list.map((e) => [e.event.content, e.relays])).toEqual([
      ['e1', ['ws://b']],
      ['e3', ['ws://b']],
    ]);
    expect(await s.getCursor('ws://a')).toBe(7);
    expect(await s.getCursor('ws://b')).toBe(3);
    expect(await s.getCursor('ws://c')).toBe(0);
    expect(await s.hasSeen('x'.repeat(64))).toBe(true);
    await s.pruneSeen(1500, 100);
    expect(await s.hasSeen('x'.repeat(64))).toBe(false);
    expect(await s.hasSeen('y'.repeat(64))).toBe(true);
    await s.markDelivered('z'.repeat(64), 3000);
    await s.pruneSeen(0, 1);
    expect(await s.hasSeen('y'.repeat(64))).toBe(false);
    expect(await s.hasSeen('z'.repeat(64))).toBe(true);
    await s.close();
  }

  it('SQLite store keeps outbox, cursors and seen ids across reopenings', async () => {
    const path = join(dir(), 'agent.db');
    await exercise(async () => new SqliteAgentStore(path));
  });

  it('key-value store (browser storage) does the same', async () => {
    const storage = mapStorage();
    await exercise(() => KeyValueStore.open(storage));
  });

  it('memory store behaves the same within one opening', async () => {
    const s = new MemoryStore();
    await s.outboxAdd(ev(1), ['ws://a']);
    expect(await s.outboxList()).toHaveLength(1);
  });
});
