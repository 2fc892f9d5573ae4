import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { spawnTarget, type AttackedRelay } from './support.js';

// Issue 14.2: knowing only an event's id, an unauthenticated stranger must not learn from any answer
// whether a private event (here a DM to Bob) is stored, or was deleted.

const ZERO_SIG = '0'.repeat(128);

describe('no existence oracle for private events', () => {
  const alice = makeKey();
  const bob = makeKey();
  let relay: AttackedRelay;
  let dm: NostrEvent;
  let deletedDm: NostrEvent;
  let stranger: RawClient;
  beforeAll(async () => {
    relay = await spawnTarget();
    const a = await RawClient.connect(relay.url);
    dm = signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: 'kept?iv=x' });
    deletedDm = signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: 'gone?iv=x' });
    expect((await a.publish(dm))[2]).toBe(true);
    expect((await a.publish(deletedDm))[2]).toBe(true);
    expect((await a.publish(signEvent(alice, { kind: 5, tags: [['e', deletedDm.id]] })))[2]).toBe(true);
    a.close();
    stranger = await RawClient.connect(relay.url);
  });
  afterAll(async () => {
    stranger?.close();
    await relay?.stop();
  });

  /** The stranger's answer to a forgery: everything but the id and signature invented or copied. */
  async function answerTo(forged: NostrEvent): Promise<[boolean, string]> {
    const from = stranger.frames.length;
    stranger.send(['EVENT', forged]);
    // The same id is sent several times: wait for the OK that follows this send.
    const ok = await stranger.next((f) => f[0] === 'OK' && f[1] === forged.id && stranger.frames.indexOf(f) >= from, 'OK');
    return [ok[2] as boolean, ok[3] as string];
  }

  it('answers a forgery reusing a stored id exactly as one reusing an unknown id: invalid signature', async () => {
    const unknown = signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: 'never sent?iv=x' });
    const forStored = await answerTo({ ...dm, sig: ZERO_SIG });
    const forUnknown = await answerTo({ ...unknown, sig: ZERO_SIG });
    expect(forStored).toEqual([false, 'invalid: bad signature']);
    expect(forStored).toEqual(forUnknown);
  });

  it('gives nothing away with a made-up body under a stored id either', async () => {
    const forged = { ...signEvent(makeKey(), { kind: 4, content: 'x' }), id: dm.id };
    const [accepted, reason] = await answerTo(forged);
    expect(accepted).toBe(false);
    expect(reason).toMatch(/^invalid: /);
    expect(reason).not.toMatch(/duplicate|already|deleted/);
  });

  it('does not reveal that a private event was deleted', async () => {
    const [accepted, reason] = await answerTo({ ...deletedDm, sig: ZERO_SIG });
    expect([accepted, reason]).toEqual([false, 'invalid: bad signature']);
  });

  it('still answers duplicate to the holder of the real signed event, after its signature checked', async () => {
    expect(await answerTo(dm)).toEqual([true, 'duplicate: already have this event']);
    expect(await answerTo(deletedDm)).toEqual([false, 'blocked: this event was deleted by its author']);
  });
});
