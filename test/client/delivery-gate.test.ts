import { describe, expect, it } from 'vitest';
import { systemTimers } from '../../client/backoff.js';
import { silentLogger } from '../../client/emitter.js';
import { DeliveryGate, MAX_UNRECORDED, getMessageKey, type DeliveryRecord } from '../../client/messaging.js';

/** A durable record in memory, with its writes counted (the agent's store in production). */
function memoryRecord(initial: string[] = []): DeliveryRecord & { keys: Set<string>; writes: number } {
  const keys = new Set(initial);
  const rec = {
    keys,
    writes: 0,
    has: (k: string) => keys.has(k),
    add: (ks: readonly string[]) => {
      rec.writes++;
      for (const k of ks) keys.add(k);
    },
  };
  return rec;
}

const key = (n: number) => getMessageKey('a'.repeat(64), n.toString(16).padStart(64, '0'));

describe('DeliveryGate (the one de-duplication gate of direct messages)', () => {
  it('hands a key over once, whichever path brings it; a key recorded in an earlier run is dropped', async () => {
    const record = memoryRecord([key(9)]);
    const gate = new DeliveryGate({ record, timers: systemTimers, now: Date.now, log: silentLogger });
    const got: number[] = [];
    expect(await gate.pass(key(1), () => void got.push(1), 'soon')).toBe(true);
    expect(await gate.pass(key(1), () => void got.push(1), 'now')).toBe(false);
    expect(await gate.pass(key(9), () => void got.push(9), 'now')).toBe(false);
    expect(got).toEqual([1]);
  });

  it('a copy arriving while the first is in its handler is dropped only once that handler returned', async () => {
    const gate = new DeliveryGate({ timers: systemTimers, now: Date.now, log: silentLogger });
    let release!: () => void;
    const first = gate.pass(key(1), () => new Promise<void>((r) => (release = r)), 'never');
    let secondDone = false;
    const second = gate
      .pass(key(1), () => undefined, 'never')
      .then((v) => {
        secondDone = true;
        return v;
      });
    await new Promise((r) => setTimeout(r, 20));
    expect(secondDone).toBe(false);
    release();
    expect(await first).toBe(true);
    expect(await second).toBe(false);
  });

  it('a handler that throws leaves the key open for a later copy', async () => {
    const gate = new DeliveryGate({ timers: systemTimers, now: Date.now, log: silentLogger });
    await expect(
      gate.pass(
        key(1),
        () => {
          throw new Error('boom');
        },
        'now',
      ),
    ).rejects.toThrow('boom');
    expect(await gate.pass(key(1), () => undefined, 'now')).toBe(true);
  });

  it("records: 'now' before pass resolves, 'soon' in one write for a burst, 'never' not at all", async () => {
    const record = memoryRecord();
    const gate = new DeliveryGate({ record, timers: systemTimers, now: Date.now, log: silentLogger });
    await gate.pass(key(1), () => undefined, 'now');
    expect(record.keys.has(key(1))).toBe(true);
    const writes = record.writes;
    for (let i = 2; i < 50; i++) await gate.pass(key(i), () => undefined, 'soon');
    await gate.flush();
    for (let i = 2; i < 50; i++) expect(record.keys.has(key(i))).toBe(true);
    expect(record.writes - writes).toBeLessThan(48);
    await gate.pass(key(99), () => undefined, 'never');
    await gate.flush();
    expect(record.keys.has(key(99))).toBe(false);
  });

  it('a burst handled back to back in microtasks, where no timer fires, is recorded from the message path (issue 25.2)', async () => {
    const record = memoryRecord();
    let clock = 0;
    const gate = new DeliveryGate({ record, timers: systemTimers, now: () => clock, log: silentLogger });
    // 1,000 synchronous handlers in one macrotask, the clock moving 0.1 ms each: no timer can run.
    for (let i = 0; i < 1000; i++) {
      await gate.pass(key(i), () => void (clock += 0.1), 'soon');
    }
    // Without writes from the message path, nothing would be recorded until the timer fired after the burst.
    let recorded = 0;
    for (let i = 0; i < 1000; i++) if (record.keys.has(key(i))) recorded++;
    expect(recorded).toBeGreaterThanOrEqual(1000 - 11);
  });

  it('while a record write is slow, at most 32 messages (MAX_UNRECORDED) are handed over and not yet durable', async () => {
    // The store's write takes as long as the test holds it (a loaded machine's fsync).
    const durable = new Set<string>();
    let hold: (() => void) | undefined;
    const record: DeliveryRecord = {
      has: (k) => durable.has(k),
      add: (ks) =>
        new Promise<void>((resolve) => {
          hold = () => {
            for (const k of ks) durable.add(k);
            resolve();
          };
        }),
    };
    const gate = new DeliveryGate({ record, timers: systemTimers, now: Date.now, log: silentLogger });
    const handled: string[] = [];
    // Every copy arrives at once, as a data channel's burst does.
    const passes = Array.from({ length: 200 }, (_, i) => gate.pass(key(i), () => void handled.push(key(i)), 'soon'));
    let maxExposed = 0;
    while (durable.size < 200) {
      await new Promise((r) => setTimeout(r, 3));
      maxExposed = Math.max(maxExposed, handled.filter((k) => !durable.has(k)).length);
      hold?.();
      hold = undefined;
    }
    expect(await Promise.all(passes)).toEqual(passes.map(() => true));
    expect(handled).toHaveLength(200);
    expect(maxExposed).toBeGreaterThan(0);
    expect(maxExposed).toBeLessThanOrEqual(32);
    expect(maxExposed).toBeLessThanOrEqual(MAX_UNRECORDED);
  });
});
