import { finalizeEvent, verifyEvent } from 'nostr-tools/pure';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NostrEvent } from '../../shared/event.js';
import { type Key, makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';

// Several libraries use the global WebSocket, which Node 20 lacks.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

/**
 * NIP-42 challenge timing against real third-party clients (issue 25.4): each library, against a
 * relay that challenges at connect and one that challenges on demand, is asked for three things —
 * a public REQ that ends (EOSE), a public publish that gets its OK, and (with a signer, where the
 * library can authenticate) a read of a kind-4 message addressed to the signer. A cell that has
 * not succeeded within BOUND_MS counts as "no": the failures measured are stalls, not slowness.
 * The table below is what docs/interop.md reports; the default `auth_challenge` follows from it.
 */
const BOUND_MS = 4000;

type Outcome = 'yes' | 'no' | 'n/a';
interface Cells {
  req: Outcome;
  publish: Outcome;
  privateRead: Outcome;
}

/** Cells plus what the relay and the console saw. */
interface Measured extends Cells {
  /** The library signed a NIP-42 AUTH during the public REQ or publish (needless signature, identity shown). */
  authForPublic: boolean;
  /** Lines the library wrote to the console that mention AUTH (e.g. "unsupported R2C message type: AUTH"). */
  authWarnings: number;
}

interface Fixture {
  url: string;
  /** A public kind-1 note stored beforehand. */
  note: NostrEvent;
  /** The reader (signer) and a kind-4 message addressed to it. */
  reader: Key;
  dm: NostrEvent;
  /** AUTH events the relay has accepted so far. */
  auths(): number;
  /** Called by an adapter between its public cells and its private read. */
  publicDone(): void;
}

/** Resolves 'yes' when the attempt succeeds within the bound, 'no' when it fails or stalls. */
async function within(attempt: () => Promise<boolean>, cleanup: Array<() => void>): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const stall = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), BOUND_MS)));
  try {
    return (await Promise.race([attempt().catch(() => false), stall])) ? 'yes' : 'no';
  } finally {
    clearTimeout(timer);
    for (const c of cleanup) {
      try {
        c();
      } catch {
        // already closed
      }
    }
  }
}

const hex = (k: Key) => Buffer.from(k.sk).toString('hex');

/** nostr-tools 2.x SimplePool (its `onauth` answers challenges and retries refused requests). */
async function nostrTools(f: Fixture): Promise<Cells> {
  const { SimplePool } = await import('nostr-tools/pool');
  const run = (fn: (pool: InstanceType<typeof SimplePool>) => Promise<boolean>) => {
    const pool = new SimplePool();
    return within(() => fn(pool), [() => pool.close([f.url])]);
  };
  const onauth = async (t: Parameters<typeof finalizeEvent>[0]) => finalizeEvent(t, f.reader.sk);
  const req = await run(async (pool) => (await pool.querySync([f.url], { ids: [f.note.id] })).some((e) => e.id === f.note.id));
  const publish = await run(async (pool) => {
    const ev = finalizeEvent({ kind: 1, content: 'nostr-tools', tags: [], created_at: nowSeconds() }, f.reader.sk);
    await Promise.all(pool.publish([f.url], ev, { onauth }));
    return true;
  });
  f.publicDone();
  const privateRead = await run(
    (pool) =>
      new Promise<boolean>((resolve) => {
        pool.subscribe([f.url], { kinds: [4], '#p': [f.reader.pk] }, { onauth, onevent: (e) => e.id === f.dm.id && resolve(true) });
      }),
  );
  return { req, publish, privateRead };
}

/** NDK 3 with a private-key signer and the sign-in auth policy. */
async function ndk(f: Fixture): Promise<Cells> {
  const { default: NDK, NDKEvent, NDKPrivateKeySigner, NDKRelayAuthPolicies } = await import('@nostr-dev-kit/ndk');
  const run = (fn: (n: InstanceType<typeof NDK>) => Promise<boolean>) => {
    const n = new NDK({ explicitRelayUrls: [f.url], signer: new NDKPrivateKeySigner(hex(f.reader)), enableOutboxModel: false });
    n.relayAuthDefaultPolicy = NDKRelayAuthPolicies.signIn({ ndk: n });
    return within(async () => {
      await n.connect(BOUND_MS);
      return fn(n);
    }, [() => n.pool.relays.forEach((r) => r.disconnect())]);
  };
  const req = await run(async (n) => {
    const got = await n.fetchEvents({ ids: [f.note.id] }, { closeOnEose: true });
    return [...got].some((e) => e.id === f.note.id);
  });
  const publish = await run(async (n) => {
    const ev = new NDKEvent(n, { kind: 1, content: 'ndk', tags: [], created_at: nowSeconds() } as never);
    return (await ev.publish()).size === 1;
  });
  f.publicDone();
  const privateRead = await run(
    (n) =>
      new Promise<boolean>((resolve) => {
        const sub = n.subscribe({ kinds: [4], '#p': [f.reader.pk] }, { closeOnEose: false });
        sub.on('event', (e: { id: string }) => e.id === f.dm.id && resolve(true));
      }),
  );
  return { req, publish, privateRead };
}

/** rx-nostr 3 with `authenticator: "auto"` and a signer over nostr-tools. */
async function rxNostr(f: Fixture): Promise<Cells> {
  const { createRxNostr, createRxBackwardReq, createRxForwardReq } = await import('rx-nostr');
  const signerOf = (k: Key) => ({
    signEvent: async (p: { kind: number; content: string; tags?: string[][]; created_at?: number }) =>
      finalizeEvent({ kind: p.kind, content: p.content, tags: p.tags ?? [], created_at: p.created_at ?? nowSeconds() }, k.sk),
    getPublicKey: async () => k.pk,
  });
  const run = (fn: (rx: ReturnType<typeof createRxNostr>) => Promise<boolean>) => {
    const rx = createRxNostr({
      verifier: async (e) => verifyEvent(e as never),
      signer: signerOf(f.reader) as never,
      authenticator: 'auto',
      skipFetchNip11: true,
    });
    rx.setDefaultRelays([f.url]);
    return within(() => fn(rx), [() => rx.dispose()]);
  };
  const req = await run(
    (rx) =>
      new Promise<boolean>((resolve) => {
        let seen = false;
        const r = createRxBackwardReq();
        rx.use(r).subscribe({ next: (p) => (seen ||= p.event.id === f.note.id), complete: () => resolve(seen) });
        r.emit({ ids: [f.note.id] });
        r.over();
      }),
  );
  const publish = await run(
    (rx) =>
      new Promise<boolean>((resolve) => {
        rx.send({ kind: 1, content: 'rx-nostr' }).subscribe({ next: (p) => resolve(p.ok) });
      }),
  );
  f.publicDone();
  const privateRead = await run(
    (rx) =>
      new Promise<boolean>((resolve) => {
        const r = createRxForwardReq();
        rx.use(r).subscribe({ next: (p) => p.event.id === f.dm.id && resolve(true) });
        r.emit({ kinds: [4], '#p': [f.reader.pk] });
      }),
  );
  return { req, publish, privateRead };
}

/** applesauce-relay 6: `request` completes at EOSE; `authenticate(signer)` once challenged. */
async function applesauce(f: Fixture): Promise<Cells> {
  const { Relay } = await import('applesauce-relay');
  const { lastValueFrom, toArray } = await import('rxjs');
  const signer = { getPublicKey: async () => f.reader.pk, signEvent: async (t: never) => finalizeEvent(t, f.reader.sk) };
  const run = (fn: (r: InstanceType<typeof Relay>) => Promise<boolean>) => {
    const r = new Relay(f.url);
    // The application authenticates when the relay challenges (the library re-sends what was refused).
    const s = r.challenge$.subscribe((c) => c && !r.authenticated && r.authenticate(signer as never).catch(() => {}));
    return within(() => fn(r), [() => s.unsubscribe(), () => r.close()]);
  };
  const req = await run(async (r) => (await lastValueFrom(r.request({ ids: [f.note.id] }).pipe(toArray()))).some((e) => e.id === f.note.id));
  const publish = await run(async (r) => (await r.publish(signEvent(f.reader, { content: 'applesauce' }) as never)).ok);
  f.publicDone();
  const privateRead = await run(
    (r) =>
      new Promise<boolean>((resolve) => {
        r.subscription({ kinds: [4], '#p': [f.reader.pk] }).subscribe({
          next: (m) => typeof m === 'object' && (m as NostrEvent).id === f.dm.id && resolve(true),
          error: () => {},
        });
      }),
  );
  return { req, publish, privateRead };
}

/** nostr-fetch 0.17: read only, no NIP-42 support (publish and private reads do not apply). */
async function nostrFetch(f: Fixture): Promise<Cells> {
  // Its .d.ts re-exports extension-less paths that NodeNext cannot follow: the surface used, typed here.
  const { NostrFetcher } = (await import('nostr-fetch')) as unknown as {
    NostrFetcher: { init(): { fetchAllEvents(relays: string[], filter: object, range: object): Promise<NostrEvent[]>; shutdown(): void } };
  };
  const fetcher = NostrFetcher.init();
  const req = await within(
    async () => (await fetcher.fetchAllEvents([f.url], { ids: [f.note.id] }, {})).some((e) => e.id === f.note.id),
    [() => fetcher.shutdown()],
  );
  f.publicDone();
  return { req, publish: 'n/a', privateRead: 'n/a' };
}

/** rust-nostr (nostr-sdk wasm binding): automatic authentication is on by default. */
async function rustNostr(f: Fixture): Promise<Cells> {
  const sdk = await import('@rust-nostr/nostr-sdk');
  await sdk.loadWasmAsync();
  const run = (fn: (c: InstanceType<typeof sdk.Client>) => Promise<boolean>) => {
    const c = new sdk.Client(sdk.NostrSigner.keys(sdk.Keys.parse(hex(f.reader))));
    return within(async () => {
      await c.addRelay(f.url);
      await c.connect();
      return fn(c);
    }, [() => void c.disconnect()]);
  };
  const fetch = async (c: InstanceType<typeof sdk.Client>, filter: object, id: string) =>
    (await c.fetchEvents(sdk.Filter.fromJson(JSON.stringify(filter)), sdk.Duration.fromSecs(BOUND_MS / 1000))).toVec().some((e) => e.id.toHex() === id);
  const req = await run((c) => fetch(c, { ids: [f.note.id] }, f.note.id));
  const publish = await run(async (c) => {
    const out = await c.sendEvent(sdk.Event.fromJson(JSON.stringify(signEvent(f.reader, { content: 'rust-nostr' }))));
    return out.success.length === 1;
  });
  f.publicDone();
  const privateRead = await run((c) => fetch(c, { kinds: [4], '#p': [f.reader.pk] }, f.dm.id));
  return { req, publish, privateRead };
}

const LIBRARIES = {
  'nostr-tools': nostrTools,
  NDK: ndk,
  'rx-nostr': rxNostr,
  'applesauce-relay': applesauce,
  'nostr-fetch': nostrFetch,
  'rust-nostr': rustNostr,
};
type Library = keyof typeof LIBRARIES;

/** What was measured (see docs/interop.md); a change in any cell fails this test. */
const EXPECTED: Record<'connect' | 'demand', Record<Library, Measured>> = {
  connect: {
    'nostr-tools': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
    NDK: { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: true, authWarnings: 0 },
    'rx-nostr': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: true, authWarnings: 0 },
    'applesauce-relay': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: true, authWarnings: 0 },
    'nostr-fetch': { req: 'yes', publish: 'n/a', privateRead: 'n/a', authForPublic: false, authWarnings: 1 },
    'rust-nostr': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
  },
  demand: {
    'nostr-tools': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
    NDK: { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
    'rx-nostr': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
    'applesauce-relay': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
    'nostr-fetch': { req: 'yes', publish: 'n/a', privateRead: 'n/a', authForPublic: false, authWarnings: 0 },
    'rust-nostr': { req: 'yes', publish: 'yes', privateRead: 'yes', authForPublic: false, authWarnings: 0 },
  },
};

describe.each(['connect', 'demand'] as const)('NIP-42 challenge at %s: third-party clients', (mode) => {
  let t: TestRelay;
  let f: Fixture;
  beforeAll(async () => {
    t = await startRelay({ authChallenge: mode });
    const reader = makeKey();
    const note = signEvent(makeKey(), { content: 'public note' });
    const dm = signEvent(makeKey(), { kind: 4, content: 'not really encrypted', tags: [['p', reader.pk]] });
    const c = await RawClient.connect(t.url);
    for (const ev of [note, dm]) expect((await c.publish(ev))[2]).toBe(true);
    c.ws.close();
    let auths = 0;
    t.relay.ctx.hooks.onAuth.push(() => auths++);
    f = { url: t.url, note, reader, dm, auths: () => auths, publicDone: () => {} };
  });
  afterAll(async () => t.close());

  it.each(Object.keys(LIBRARIES) as Library[])('%s', async (lib) => {
    // The previous library's sockets are gone first, so a late AUTH of theirs is not counted here.
    await waitFor(() => t.relay.ctx.connections.size === 0, 'previous connections closed');
    const before = f.auths();
    let publicAuths = 0;
    let authWarnings = 0;
    const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
    const saved = methods.map((m) => console[m]);
    for (const m of methods) console[m] = (...args: unknown[]) => void (authWarnings += /AUTH/i.test(args.map(String).join(' ')) ? 1 : 0);
    let cells: Cells;
    try {
      cells = await LIBRARIES[lib]({ ...f, publicDone: () => (publicAuths = f.auths() - before) });
    } finally {
      methods.forEach((m, i) => (console[m] = saved[i]!));
    }
    const measured: Measured = { ...cells, authForPublic: publicAuths > 0, authWarnings };
    console.log(`auth-challenge ${mode} ${lib}: ${JSON.stringify(measured)}`);
    expect(measured).toEqual(EXPECTED[mode][lib]);
  });
});
