import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOrCreateRelayIdentity } from '../../../relay/identity.js';
import { bytesToHex, Negentropy, NegentropySet } from '../../../shared/nip77.js';
import { makeKey, signEvent } from '../../helpers/events.js';
import { authenticate } from '../../helpers/mailbox.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { fast, makeEvents, seed, statsOf, storedIds, tempDirs } from './helpers.js';

const tempDir = tempDirs('roost-fedpriv-');
/** A private kind the upstream's operator configured (ROOST_MAILBOX_PRIVATE_KINDS), besides 4 and 1059. */
const MAILBOX_KIND = 1401;

/** The ids a NEG-OPEN answer tells an initiator holding nothing that it lacks. */
async function negNeed(c: RawClient, subId: string, filter: object): Promise<string[] | string> {
  const neg = new Negentropy(NegentropySet.from([]), 'initiator');
  c.send(['NEG-OPEN', subId, filter, bytesToHex(neg.initiate())]);
  const f = await c.next((m) => (m[0] === 'NEG-MSG' || m[0] === 'NEG-ERR') && m[1] === subId, subId);
  if (f[0] === 'NEG-ERR') return f[2] as string;
  const round = neg.reconcile(Buffer.from(f[2] as string, 'hex'));
  expect(round.next).toBeUndefined();
  c.send(['NEG-CLOSE', subId]);
  return round.need;
}

describe('private kinds never reach a replica the upstream does not allow-list', () => {
  it('neither by cursor nor by NIP-77 (the id set included); an allow-listed replica gets them both ways', async () => {
    const [dirB, dirC, dirD] = [tempDir(), tempDir(), tempDir()];
    const bId = loadOrCreateRelayIdentity(join(dirB, 'roost.db'));
    const cKey = loadOrCreateRelayIdentity(join(dirC, 'roost.db')).pubkey;
    const a = await startRelay({ replicaReaders: cKey, mailboxPrivateKinds: String(MAILBOX_KIND) }, {}, tempDir());
    const [alice, bob] = [makeKey(), makeKey()];
    const makePrivate = (tag: string) => [
      signEvent(alice, { kind: 4, tags: [['p', bob.pk]], content: `dm ${tag}` }),
      signEvent(makeKey(), { kind: 1059, tags: [['p', bob.pk]], content: `wrap ${tag}` }),
      signEvent(alice, { kind: MAILBOX_KIND, tags: [['p', bob.pk]], content: `mail ${tag}` }),
    ];
    const publicEvents = makeEvents([alice], 30, 'public');
    const privateBacklog = makePrivate('backlog');
    await seed(a, [...publicEvents, ...privateBacklog]);

    // The NIP-77 id set itself: the replica's key, authenticated but not allow-listed, learns no private id.
    const raw = await RawClient.connect(a.url);
    await authenticate(raw, { sk: bId.secretKey, pk: bId.pubkey }, a.url);
    const need = await negNeed(raw, 'all', {});
    expect([...(need as string[])].sort()).toEqual(publicEvents.map((e) => e.id).sort());
    for (const kind of [4, 1059, MAILBOX_KIND]) expect(await negNeed(raw, `k${kind}`, { kinds: [kind] })).toMatch(/^restricted: /);
    raw.close();

    // B (not listed) and C (listed) start by NIP-77, D (not listed) by cursor; all then tail.
    const b = await startRelay({ replicateFrom: a.url, replicateFirstSync: 'negentropy' }, fast, dirB);
    const c = await startRelay({ replicateFrom: a.url, replicateFirstSync: 'negentropy' }, fast, dirC);
    const d = await startRelay({ replicateFrom: a.url }, fast, dirD);
    await waitFor(() => [b, c, d].every((t) => statsOf(t).live), 'all caught up');
    const privateLive = makePrivate('live');
    const publicLive = signEvent(alice, { content: 'live public' });
    await seed(a, [...privateLive, publicLive]);
    await waitFor(() => [b, c, d].every((t) => storedIds(t).includes(publicLive.id)), 'live public event everywhere');
    await waitFor(() => privateLive.every((e) => storedIds(c).includes(e.id)), 'live private events on the listed replica');

    const allPrivate = [...privateBacklog, ...privateLive].map((e) => e.id);
    expect(storedIds(c)).toEqual(storedIds(a));
    for (const t of [b, d]) {
      expect(storedIds(t)).toEqual([...publicEvents.map((e) => e.id), publicLive.id].sort());
      for (const id of allPrivate) expect(storedIds(t)).not.toContain(id);
    }
    // Not even offered: B and D never pulled a private event (no refusal hid one).
    expect(statsOf(b)).toMatchObject({ pulled: 31, rejected: 0 });
    expect(statsOf(d)).toMatchObject({ pulled: 31, rejected: 0 });
    expect(statsOf(c)).toMatchObject({ pulled: 37, rejected: 0 });
    for (const t of [d, c, b, a]) await t.close();
  }, 60_000);
});
