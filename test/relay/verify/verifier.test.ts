import { hash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { schnorr } from '@noble/curves/secp256k1.js';
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeEvent, type NostrEvent } from '../../../shared/event.js';
import { RoostError } from '../../../relay/config.js';
import { VERIFY_REASONS } from '../../../relay/verify/event-record.js';
import {
  createVerifier,
  getDefaultWorkers,
  loadSchnorrCore,
  RECORD_SIZE,
  type CoreName,
  type SchnorrCore,
  type Verifier,
} from '../../../relay/verify/index.js';
import { loadJsCore } from '../../../relay/verify/js.js';
import { findNativeAddon, loadNativeCore } from '../../../relay/verify/native.js';
import { assertCoreWorks, makeKatRecords } from '../../../relay/verify/schnorr-core.js';
import { loadWasmCore } from '../../../relay/verify/wasm.js';
import { SchnorrWorkerPool } from '../../../relay/verify/worker-pool.js';

const require = createRequire(import.meta.url);
const skA = new Uint8Array(32).fill(0x11);
const skB = new Uint8Array(32).fill(0x22);
const pkA = getPublicKey(skA);

function sign(template: Partial<Pick<NostrEvent, 'kind' | 'tags' | 'content' | 'created_at'>> = {}, sk = skA): NostrEvent {
  const ev = finalizeEvent({ kind: 1, tags: [], content: 'hello', created_at: 1_700_000_000, ...template }, sk);
  return { id: ev.id, pubkey: ev.pubkey, created_at: ev.created_at, kind: ev.kind, tags: ev.tags, content: ev.content, sig: ev.sig };
}

function withId(ev: Omit<NostrEvent, 'id'> & { id?: string }): NostrEvent {
  return { ...ev, id: hash('sha256', serializeEvent(ev), 'hex') };
}

function flipHex(s: string, at: number): string {
  const c = s[at] === '0' ? '1' : '0';
  return s.slice(0, at) + c + s.slice(at + 1);
}

const base = sign();
const other = sign({ content: 'another event' });
const malformed = (what: string) => VERIFY_REASONS.malformed(what);

type Case = { name: string; event: () => unknown; expect: 'ok' | string };

const cases: Case[] = [
  { name: 'valid kind 1', event: () => base, expect: 'ok' },
  { name: 'valid with tags', event: () => sign({ kind: 7, tags: [['e', other.id], ['p', pkA, 'wss://r.example'], ['-']] }), expect: 'ok' },
  { name: 'valid unicode content', event: () => sign({ content: 'héllo 世界 🦉 \u200f שלום e\u0301', tags: [['t', '🌙']] }), expect: 'ok' },
  { name: 'valid with escapes', event: () => sign({ content: 'quote " backslash \\ newline \n tab \t ctrl \u0001 \u007f' }), expect: 'ok' },
  { name: 'valid empty content, kind 0', event: () => sign({ kind: 0, content: '' }), expect: 'ok' },
  { name: 'valid addressable kind 30023', event: () => sign({ kind: 30023, tags: [['d', 'x']], content: '# md' }), expect: 'ok' },
  { name: 'id of another event', event: () => ({ ...base, id: other.id }), expect: VERIFY_REASONS.badId },
  { name: 'id with one digit changed', event: () => ({ ...base, id: flipHex(base.id, 10) }), expect: VERIFY_REASONS.badId },
  { name: 'bad sig (one digit changed)', event: () => ({ ...base, sig: flipHex(base.sig, 100) }), expect: VERIFY_REASONS.badSig },
  { name: 'sig of another event', event: () => ({ ...base, sig: other.sig }), expect: VERIFY_REASONS.badSig },
  {
    name: 'sig from another key over the right id',
    event: () => ({ ...base, sig: Buffer.from(schnorr.sign(Buffer.from(base.id, 'hex'), skB)).toString('hex') }),
    expect: VERIFY_REASONS.badSig,
  },
  { name: 'pubkey swapped to another key, id recomputed', event: () => withId({ ...base, pubkey: getPublicKey(skB) }), expect: VERIFY_REASONS.badSig },
  { name: 'tampered content', event: () => ({ ...base, content: 'hellO' }), expect: VERIFY_REASONS.badId },
  { name: 'tampered content, id recomputed', event: () => withId({ ...base, content: 'hellO' }), expect: VERIFY_REASONS.badSig },
  { name: 'tampered tags', event: () => ({ ...base, tags: [['t', 'x']] }), expect: VERIFY_REASONS.badId },
  { name: 'tampered tags, id recomputed', event: () => withId({ ...base, tags: [['t', 'x']] }), expect: VERIFY_REASONS.badSig },
  { name: 'tampered created_at', event: () => ({ ...base, created_at: base.created_at + 1 }), expect: VERIFY_REASONS.badId },
  { name: 'tampered kind', event: () => ({ ...base, kind: 2 }), expect: VERIFY_REASONS.badId },
  { name: 'pubkey not on the curve', event: () => withId({ ...base, pubkey: '00'.repeat(31) + '05' }), expect: VERIFY_REASONS.badSig },
  { name: 'pubkey x >= p', event: () => withId({ ...base, pubkey: 'ff'.repeat(32) }), expect: VERIFY_REASONS.badSig },
  { name: 'sig s >= n', event: () => ({ ...base, sig: base.sig.slice(0, 64) + 'ff'.repeat(32) }), expect: VERIFY_REASONS.badSig },
  { name: 'sig r >= p', event: () => ({ ...base, sig: 'ff'.repeat(32) + base.sig.slice(64) }), expect: VERIFY_REASONS.badSig },
  { name: 'sig all zero', event: () => ({ ...base, sig: '0'.repeat(128) }), expect: VERIFY_REASONS.badSig },
  { name: 'uppercase id', event: () => ({ ...base, id: base.id.toUpperCase() }), expect: malformed('id must be 64 lowercase hex characters') },
  { name: 'uppercase pubkey', event: () => ({ ...base, pubkey: base.pubkey.toUpperCase() }), expect: malformed('pubkey must be 64 lowercase hex characters') },
  { name: 'uppercase sig', event: () => ({ ...base, sig: base.sig.toUpperCase() }), expect: malformed('sig must be 128 lowercase hex characters') },
  { name: '0x-prefixed id', event: () => ({ ...base, id: '0x' + base.id.slice(2) }), expect: malformed('id must be 64 lowercase hex characters') },
  { name: 'short sig', event: () => ({ ...base, sig: base.sig.slice(1) }), expect: malformed('sig must be 128 lowercase hex characters') },
  { name: 'missing sig', event: () => ({ ...base, sig: undefined }), expect: malformed('sig must be 128 lowercase hex characters') },
  { name: 'fractional created_at', event: () => withId({ ...base, created_at: 1.5 }), expect: malformed('created_at must be a non-negative integer') },
  {
    name: 'string created_at',
    event: () => ({ ...base, created_at: String(base.created_at) }),
    expect: malformed('created_at must be a non-negative integer'),
  },
  { name: 'negative created_at', event: () => withId({ ...base, created_at: -1 }), expect: malformed('created_at must be a non-negative integer') },
  { name: 'kind above 65535', event: () => withId({ ...base, kind: 70000 }), expect: malformed('kind must be an integer from 0 to 65535') },
  { name: 'fractional kind', event: () => withId({ ...base, kind: 1.25 }), expect: malformed('kind must be an integer from 0 to 65535') },
  { name: 'numeric tag value', event: () => ({ ...base, tags: [['t', 1]] }), expect: malformed('every tag must be an array of strings') },
  { name: 'tags not an array', event: () => ({ ...base, tags: {} }), expect: malformed('tags must be an array') },
  { name: 'content not a string', event: () => ({ ...base, content: 5 }), expect: malformed('content must be a string') },
  { name: 'null event', event: () => null, expect: malformed('not an object') },
];

async function available(): Promise<SchnorrCore[]> {
  const out: SchnorrCore[] = [];
  for (const load of [() => loadNativeCore(), loadWasmCore, loadJsCore]) {
    try {
      out.push(await load());
    } catch {
      // reported by the native-availability test below
    }
  }
  return out;
}

const cores = await available();
const nativeBuilt = findNativeAddon() !== undefined;

describe('backends', () => {
  it('finds wasm and js everywhere, and native when it was built', () => {
    const names = cores.map((c) => c.name);
    expect(names).toContain('wasm');
    expect(names).toContain('js');
    expect(names.includes('native')).toBe(nativeBuilt);
  });
});

type Config = { backend: CoreName; workers: number; maxBatch?: number };
const configs: Config[] = cores.flatMap((c) => [
  { backend: c.name, workers: 0 },
  { backend: c.name, workers: 2, maxBatch: 4 },
]);

describe.each(configs)('$backend with $workers workers', (config) => {
  let verifier: Verifier;
  beforeAll(async () => {
    verifier = await createVerifier(config);
  });
  afterAll(async () => {
    await verifier.close();
  });

  it('names its backend', () => {
    expect(verifier.backend).toBe(config.workers === 0 ? config.backend : `${config.backend}×${config.workers} workers`);
  });

  it.each(cases)('$name', async (c) => {
    const ev = c.event();
    const r = await verifier.verify(ev as NostrEvent);
    if (c.expect === 'ok') {
      expect(r).toEqual({ ok: true, event: ev });
    } else {
      expect(r).toEqual({ ok: false, reason: c.expect });
    }
  });

  it('returns a fresh event with only the NIP-01 fields', async () => {
    const withExtras = { ...base, seq: 7, relay: 'x' } as NostrEvent;
    const r = await verifier.verify(withExtras);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.keys(r.event).sort()).toEqual(['content', 'created_at', 'id', 'kind', 'pubkey', 'sig', 'tags']);
    expect(r.event).not.toBe(withExtras);
  });

  it('keeps results attached to their events when many are in flight', async () => {
    const events = Array.from({ length: 60 }, (_, i) => {
      const ev = sign({ content: `burst ${i}`, created_at: 1_700_000_000 + i }, i % 2 ? skA : skB);
      if (i % 3 === 1) return { ...ev, sig: flipHex(ev.sig, 5) };
      if (i % 5 === 2) return { ...ev, content: 'tampered' };
      return ev;
    });
    const results = await Promise.all(events.map((e) => verifier.verify(e)));
    results.forEach((r, i) => {
      const want = i % 3 === 1 ? VERIFY_REASONS.badSig : i % 5 === 2 ? VERIFY_REASONS.badId : 'ok';
      expect(r.ok ? 'ok' : r.reason, `event ${i}`).toBe(want);
      if (r.ok) expect(r.event.id).toBe(events[i]!.id);
    });
  });
});

describe('auto backend selection', () => {
  const missing = (name: string) => async (): Promise<SchnorrCore> => {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `${name} missing (injected)`);
  };

  it('uses native when it is available', async () => {
    const v = await createVerifier({ backend: 'auto', workers: 0 });
    expect(v.backend).toBe(nativeBuilt ? 'native' : 'wasm');
    await v.close();
  });

  it('falls back to wasm when the native loader fails, and says so', async () => {
    const warnings: object[] = [];
    const v = await createVerifier({ workers: 0, loaders: { native: missing('native') }, logger: { warn: (o) => warnings.push(o) } });
    expect(v.backend).toBe('wasm');
    expect(warnings).toEqual([{ backend: 'wasm', unavailable: ['native: native missing (injected)'] }]);
    expect((await v.verify(base)).ok).toBe(true);
    await v.close();
  });

  it('falls back to js when native and wasm both fail', async () => {
    const v = await createVerifier({ workers: 0, loaders: { native: missing('native'), wasm: missing('wasm') } });
    expect(v.backend).toBe('js');
    expect((await v.verify(base)).ok).toBe(true);
  });

  it('falls back inside workers too', async () => {
    const v = await createVerifier({ workers: 1, loaders: { native: missing('native') } });
    expect(v.backend).toBe('wasm×1 worker');
    expect((await v.verify(base)).ok).toBe(true);
    await v.close();
  });

  it('verifies on the calling thread when the workers cannot start', async () => {
    const wasm = await loadWasmCore();
    const unloadable = async (): Promise<SchnorrCore> => ({ ...wasm, name: 'native', source: '/nonexistent/roost_schnorr.node' });
    const warnings: object[] = [];
    const v = await createVerifier({ workers: 2, loaders: { native: unloadable }, logger: { warn: (o) => warnings.push(o) } });
    expect(v.backend).toBe('native');
    expect(warnings).toEqual([expect.objectContaining({ backend: 'native', workers: 2 })]);
    expect((await v.verify(base)).ok).toBe(true);
    expect(await v.verify({ ...base, sig: flipHex(base.sig, 3) })).toEqual({ ok: false, reason: VERIFY_REASONS.badSig });
    await v.close();
  });

  it('fails with a code when nothing loads', async () => {
    const p = createVerifier({ loaders: { native: missing('native'), wasm: missing('wasm'), js: missing('js') } });
    await expect(p).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' });
  });

  it('does not fall back when a backend is named', async () => {
    await expect(createVerifier({ backend: 'native', loaders: { native: missing('native') } })).rejects.toMatchObject({
      code: 'ROOST_ERR_VERIFY_UNAVAILABLE',
    });
  });

  it('defaults to one worker per core beyond the main thread', async () => {
    expect([1, 2, 4].map((c) => getDefaultWorkers(c))).toEqual([0, 1, 3]);
    const v = await createVerifier();
    const want = getDefaultWorkers();
    const best = nativeBuilt ? 'native' : 'wasm';
    expect(v.backend).toBe(want === 0 ? best : `${best}×${want} worker${want === 1 ? '' : 's'}`);
    expect((await v.verify(base)).ok).toBe(true);
    await v.close();
  });

  it('rejects bad options with ROOST_ERR_CONFIG', async () => {
    await expect(createVerifier({ workers: -1 })).rejects.toMatchObject({ code: 'ROOST_ERR_CONFIG' });
    await expect(createVerifier({ workers: 1.5 })).rejects.toMatchObject({ code: 'ROOST_ERR_CONFIG' });
    await expect(createVerifier({ maxBatch: 0 })).rejects.toMatchObject({ code: 'ROOST_ERR_CONFIG' });
    await expect(loadSchnorrCore({ backend: 'gpu' as CoreName })).rejects.toMatchObject({ code: 'ROOST_ERR_CONFIG' });
  });
});

describe('native loader', () => {
  it('reports an addon that was not built', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'roost-verify-'));
    try {
      expect(findNativeAddon(dir)).toBeUndefined();
      await expect(loadNativeCore(() => findNativeAddon(dir))).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' });
      await expect(loadNativeCore(() => join(dir, 'nope.node'))).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' });
      writeFileSync(join(dir, 'garbage.node'), 'not an ELF file');
      await expect(loadNativeCore(() => join(dir, 'garbage.node'))).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a core that fails the known-answer test', () => {
    const acceptsAll: SchnorrCore = { name: 'js', source: '', verifyBatch: (_r, out, n) => out.fill(1, 0, n) };
    const rejectsAll: SchnorrCore = { name: 'js', source: '', verifyBatch: (_r, out, n) => out.fill(0, 0, n) };
    expect(() => assertCoreWorks(acceptsAll)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' }));
    expect(() => assertCoreWorks(rejectsAll)).toThrow(expect.objectContaining({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' }));
  });

  it.skipIf(!nativeBuilt)('checks its arguments', async () => {
    const core = await loadNativeCore();
    expect(() => core.verifyBatch(new Uint8Array(RECORD_SIZE), new Uint8Array(2), 2)).toThrow(/count exceeds/);
    expect(() => core.verifyBatch([] as unknown as Uint8Array, new Uint8Array(1), 1)).toThrow(/records must be a Uint8Array/);
  });
});

describe('worker pool', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'roost-verify-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fails to start when workers cannot load the core', async () => {
    const p = SchnorrWorkerPool.start({ core: { name: 'native', source: join(dir, 'missing.node') }, size: 2, kat: makeKatRecords() });
    await expect(p).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' });
  });

  it('fails to start when the core fails its self-test in the worker', async () => {
    const liar = join(dir, 'liar.mjs');
    writeFileSync(liar, 'export const schnorr = { verify: () => true };\n');
    const p = SchnorrWorkerPool.start({ core: { name: 'js', source: pathToFileURL(liar).href }, size: 1, kat: makeKatRecords() });
    await expect(p).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_UNAVAILABLE' });
  });

  it('fails only the batch of a worker that dies, then replaces it', async () => {
    // A core that ends its thread when it sees a message starting 0xeeee; otherwise real @noble/curves.
    const noble = pathToFileURL(require.resolve('@noble/curves/secp256k1.js')).href;
    const crashy = join(dir, 'crashy.mjs');
    writeFileSync(
      crashy,
      `import { schnorr as real } from ${JSON.stringify(noble)};\n` +
        `export const schnorr = { verify(sig, msg, pk) { if (msg[0] === 0xee && msg[1] === 0xee) process.exit(3); return real.verify(sig, msg, pk); } };\n`,
    );
    const pool = await SchnorrWorkerPool.start({ core: { name: 'js', source: pathToFileURL(crashy).href }, size: 1, kat: makeKatRecords() });
    try {
      const poison = new Uint8Array(RECORD_SIZE).fill(0xee);
      await expect(pool.run(poison.buffer, 1)).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_WORKER' });
      const kat = makeKatRecords();
      const out = await pool.run(kat.buffer.slice(kat.byteOffset, kat.byteOffset + kat.byteLength) as ArrayBuffer, 2);
      expect([...out]).toEqual([1, 0]);
    } finally {
      await pool.close();
    }
  });

  it('rejects verifications after close', async () => {
    const v = await createVerifier({ backend: 'wasm', workers: 1 });
    await v.close();
    await v.close();
    await expect(v.verify(base)).rejects.toMatchObject({ code: 'ROOST_ERR_VERIFY_CLOSED' });
  });
});
