import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { type AttackedRelay, startAttackedRelay } from './support.js';

// Issue 14 point 6: live matching must cost O(event tags + candidate subscriptions). On the old
// matcher a candidate that failed was re-checked for every tag of the event, each check scanning
// arrays: five such subscriptions and one event blocked the event loop for seconds.
describe('security: live tag matching is not quadratic', () => {
  let relay: AttackedRelay;
  beforeAll(async () => {
    relay = await startAttackedRelay();
  });
  afterAll(() => relay.stop());

  it('one event with 1000 matching x tags and 1000 non-matching y tags against 5 large subscriptions blocks the loop < 250 ms', async () => {
    const attacker = await RawClient.connect(relay.url);
    const xs = Array.from({ length: 1000 }, (_, i) => `x${i}`);
    const ys = Array.from({ length: 1000 }, (_, i) => `y${i}`);
    for (let s = 0; s < 5; s++) {
      attacker.send(['REQ', `s${s}`, { '#x': xs, '#y': ys }]);
      await attacker.eose(`s${s}`);
    }
    const ev = signEvent(makeKey(), {
      kind: 20001,
      tags: [...xs.map((v) => ['x', v]), ...ys.map((_, i) => ['y', `z${i}`])],
    });
    await relay.metric('nodejs_eventloop_lag_max_seconds'); // starts a fresh measuring window
    const ok = await attacker.publish(ev);
    expect(ok[2]).toBe(true);
    // Ask again until the sampler has seen the fan-out turn (it samples every 10 ms).
    await new Promise((r) => setTimeout(r, 50));
    const lag = await relay.metric('nodejs_eventloop_lag_max_seconds');
    expect(lag).toBeLessThan(0.25);
    expect(attacker.of('EVENT')).toHaveLength(0);
    // A matching event still reaches all five.
    const hit = signEvent(makeKey(), {
      kind: 20001,
      tags: [
        ['x', 'x999'],
        ['y', 'y0'],
      ],
    });
    await attacker.publish(hit);
    await attacker.next(() => attacker.of('EVENT').length === 5, 'five deliveries');
    attacker.close();
  });
});
