import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';

// Seeded frame fuzzing over a real socket: malformed JSON, wrong types, huge numbers, deep
// nesting, invalid UTF-8, wrong ids and signatures, oversized frames and filter bombs. The relay
// must answer every frame that expects an answer with a NIP-01 message, never crash, and keep
// serving other connections.
const SOAK = process.env.ROOST_SOAK === '1';
const RUNS = SOAK ? 20_000 : 1_500;
const SEED = Number(process.env.ROOST_FUZZ_SEED ?? 424242);

describe('frame fuzzing', () => {
  let t: TestRelay;
  const key = makeKey();
  const good = signEvent(key, { content: 'template' });
  beforeAll(async () => (t = await startRelay({ maxMessageLength: 65536, maxSubscriptions: 20 })));
  afterAll(async () => t.close());

  const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
  const anyJson = fc.jsonValue({ maxDepth: 4 });
  const badEvent = fc.oneof(
    fc.record({ ...Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.constant(v)])), content: fc.string() }),
    fc.record({ ...Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.constant(v)])), sig: hex(128) }),
    fc.record({ ...Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.constant(v)])), id: hex(64) }),
    fc.record({
      ...Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.constant(v)])),
      created_at: fc.oneof(fc.double(), fc.constant(1e300), fc.constant(-1)),
    }),
    fc.record({ ...Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.constant(v)])), kind: fc.oneof(fc.integer(), fc.string()) }),
    fc.record({
      ...Object.fromEntries(Object.entries(good).map(([k, v]) => [k, fc.constant(v)])),
      tags: fc.oneof(anyJson, fc.array(fc.array(fc.string(), { maxLength: 3 }), { maxLength: 3000 })),
    }),
    fc.dictionary(fc.string(), anyJson),
  );
  const filterBomb = fc.oneof(
    fc.record({ authors: fc.array(hex(64), { minLength: 1001, maxLength: 1200 }) }),
    fc.record({ kinds: fc.array(fc.integer({ min: 0, max: 65535 }), { minLength: 1001, maxLength: 1100 }) }),
    fc.record({ limit: fc.oneof(fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(1e308), fc.integer()) }),
    fc.record({ '#p': fc.array(fc.string(), { maxLength: 50 }), since: fc.integer(), until: fc.integer() }),
    fc.dictionary(fc.string({ maxLength: 3 }), anyJson),
  );
  const subId = fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), fc.constant(''), fc.string({ minLength: 65, maxLength: 80 }), anyJson);
  // Each case is [frame as raw bytes or text, whether the relay owes an answer].
  const frame: fc.Arbitrary<[string | Buffer, boolean]> = fc.oneof(
    fc.string().map((s) => [s, true] as [string, boolean]),
    anyJson.map((j) => [JSON.stringify(j), true] as [string, boolean]),
    fc.tuple(fc.constant('EVENT'), badEvent).map((f) => [JSON.stringify(f), true] as [string, boolean]),
    fc.tuple(fc.constant('REQ'), subId, filterBomb).map((f) => [JSON.stringify(f), true] as [string, boolean]),
    fc
      .tuple(fc.constant('REQ'), fc.string({ minLength: 1, maxLength: 8 }), ...Array.from({ length: 12 }, () => fc.constant({})))
      .map((f) => [JSON.stringify(f), true] as [string, boolean]),
    fc.tuple(fc.constant('COUNT'), subId, filterBomb).map((f) => [JSON.stringify(f), true] as [string, boolean]),
    fc.tuple(fc.constant('AUTH'), badEvent).map((f) => [JSON.stringify(f), true] as [string, boolean]),
    fc.integer({ min: 1, max: 3000 }).map((d) => ['['.repeat(d) + ']'.repeat(d), true] as [string, boolean]),
    fc
      .uint8Array({ minLength: 1, maxLength: 64 })
      .map((b) => [Buffer.concat([Buffer.from('["REQ","'), Buffer.from([0xff, 0xfe, ...b]), Buffer.from('",{}]')]), true] as [Buffer, boolean]),
    fc.constant(['["EVENT",' + JSON.stringify({ ...good, content: 'x'.repeat(70_000) }) + ']', true] as [string, boolean]),
  );

  it(`answers ${RUNS} fuzzed frames with NIP-01 messages and stays up (seed ${SEED})`, async () => {
    const c = await RawClient.connect(t.url);
    const bystander = await RawClient.connect(t.url);
    const cases = fc.sample(frame, { numRuns: RUNS, seed: SEED });
    let owed = 0;
    let bytes = 0;
    const before = c.frames.length;
    for (const [data, answered] of cases) {
      c.ws.send(data);
      bytes += data.length;
      if (answered) owed++;
      // Close any subscription the fuzzer managed to open so the cap is not what is under test.
      if (c.frames.length % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    // A sentinel round trip: when its OK arrives, every earlier frame has been handled.
    const sentinel = signEvent(key, { content: 'sentinel' });
    c.send(['EVENT', sentinel]);
    await c.ok(sentinel.id);
    const replies = c.frames.slice(before).filter((f) => f !== c.frames.find((g) => g[0] === 'OK' && g[1] === sentinel.id));
    const errors = replies.filter((f) => f[0] === 'NOTICE' || (f[0] === 'OK' && f[2] === false) || f[0] === 'CLOSED');
    for (const f of errors) {
      const reason = (f[0] === 'NOTICE' ? f[1] : f[0] === 'OK' ? f[3] : f[2]) as string;
      expect(reason).toMatch(/^(invalid|blocked|rate-limited|auth-required|restricted|duplicate|error): /);
      expect(reason).not.toMatch(/^error: internal error/);
    }
    const answers = replies.filter((f) => f[0] !== 'EVENT' && f[0] !== 'AUTH').length;
    console.log(
      `fuzz: ${cases.length} frames (${(bytes / 1024).toFixed(0)} KiB) sent, ${answers} answers, ${errors.length} refusals, connection open: ${!c.closed}`,
    );
    expect(c.closed).toBe(false);
    expect(answers).toBeGreaterThanOrEqual(owed);
    // Another connection still works.
    expect((await bystander.publish(signEvent(key, { content: 'still fine' })))[2]).toBe(true);
    await waitFor(() => t.relay.ctx.stats.errors === 0, 'no internal errors', 1000);
    c.close();
    bystander.close();
  }, 120_000);
});
