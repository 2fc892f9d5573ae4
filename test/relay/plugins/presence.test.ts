import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_CARD_KIND, makeAgentCard } from '../../../shared/agent-card.js';
import { parsePresenceQuery } from '../../../relay/plugins/presence.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function authedClient(relay: TestRelay, key: Key): Promise<RawClient> {
  const c = await RawClient.connect(relay.url);
  cleanups.push(() => c.close());
  const challenge = await c.challenge();
  const auth = signEvent(key, {
    kind: 22242,
    tags: [
      ['relay', relay.url],
      ['challenge', challenge],
    ],
  });
  c.send(['AUTH', auth]);
  expect((await c.ok(auth.id))[2]).toBe(true);
  return c;
}

describe('presence endpoint', () => {
  it('parses ?p= lists', () => {
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    expect(parsePresenceQuery(`${a},${b}`)).toEqual([a, b]);
    expect(parsePresenceQuery([a, `${b},${a}`])).toEqual([a, b]);
    for (const bad of [
      undefined,
      '',
      'A'.repeat(64),
      'x',
      Array(101)
        .fill(0)
        .map((_, i) => i.toString(16).padStart(64, '0'))
        .join(','),
    ]) {
      expect(typeof parsePresenceQuery(bad)).toBe('string');
    }
  });

  it('answers for carded agents only: connected and authenticated now, or not', async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const carded = makeKey();
    const uncarded = makeKey();
    const a = await authedClient(relay, carded);
    await authedClient(relay, uncarded);
    const card = signEvent(carded, { ...makeAgentCard({ name: 'a', description: '', capabilities: ['x'], version: '1', relays: [] }, nowSeconds()) });
    expect((await a.publish(card))[2]).toBe(true);
    expect(card.kind).toBe(AGENT_CARD_KIND);

    const ask = async () => (await fetch(`${relay.httpUrl}/presence?p=${carded.pk},${uncarded.pk}`)).json();
    expect(await ask()).toEqual({ online: { [carded.pk]: true } });
    const res = await fetch(`${relay.httpUrl}/presence?p=${carded.pk}`);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    a.close();
    await waitFor(async () => (await ask()).online[carded.pk] === false, 'offline after disconnect');
    const info = await (await fetch(relay.httpUrl, { headers: { Accept: 'application/nostr+json' } })).json();
    expect(info.roost_presence).toEqual({ path: '/presence', max_pubkeys: 100 });
  });
});
