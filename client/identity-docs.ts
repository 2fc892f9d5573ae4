/**
 * Documents addressed by their owner's agent id (`34339:<aid>:<name>`, docs/identity.md): the owner is
 * whichever key speaks for the identity now, by its key event log, so the document outlives the owner's
 * rotations. Passed in (`identityDocs` of createAgent; createNodeAgent does it), so browser bundles that
 * do not open such documents do not carry it.
 */
import { DocKind, ENFORCE_TAG, getMembershipMembers, isEnforcedMembership, makeIdentityDocAddress } from '../shared/crdt-events.js';
import { getIdentityRecordRank, getRankFloor, getRankTime, isOwnerKeyAt } from '../shared/doc-owner.js';
import type { EventTemplate } from '../shared/event.js';
import type { Agent } from './agent.js';
import type { AgentDoc, DocHost, DocOwnership, IdentityDocs } from './crdt-relay.js';
import { ClientError } from './errors.js';
import { CrdtError } from './crdt/errors.js';
import { makeMembership } from './crdt/membership.js';

/**
 * Template of a membership record of the document at `address` (`34339:<aid>:<name>`), signed by whichever
 * key of the identity speaks for it now. It names its document in `a` and `d` tags; the record in force is
 * the newest by the latest key (shared/doc-owner.ts).
 */
export function makeIdentityMembershipEvent(
  aid: string,
  name: string,
  members: Iterable<string>,
  createdAt: number,
  opts: { enforce?: boolean } = {},
): EventTemplate {
  const tags = [
    ['d', name],
    ['a', makeIdentityDocAddress(aid, name)],
  ];
  for (const m of new Set(members)) tags.push(['p', m]);
  if (opts.enforce) tags.push([ENFORCE_TAG, 'members']);
  return { kind: DocKind.IdentityMembership, created_at: createdAt, tags, content: '' };
}

/** Documents addressed by agent id: pass as `identityDocs` to createAgent (createNodeAgent does). */
export const identityDocs: IdentityDocs = {
  aid(host, identity) {
    const aid = identity === true ? host.aid : identity;
    if (aid === undefined || !/^[0-9a-f]{64}$/.test(aid)) {
      throw new ClientError(
        'ROOST_ERR_BAD_INPUT',
        identity === true ? 'identity: true needs an agent with a key event log' : 'identity must be an agent id (64 hex) or true',
      );
    }
    return aid;
  },
  async open(host, aid, name) {
    if (!host.keyLogs?.getByAid(aid)) await host.keyLogs?.fetchLog(aid).catch(() => undefined);
    return identityDocOwnership(host, aid, name);
  },
};

/**
 * The ownership of document `name` of identity `aid`: owner keys and records
 * are checked against the identity's log as this agent knows it (current, or rotated out inside the grace
 * period; never revoked); a record by a key the log does not know yet reads the log again, then counts.
 */
export function identityDocOwnership(host: DocHost, aid: string, name: string): DocOwnership {
  const address = makeIdentityDocAddress(aid, name);
  const logs = host.keyLogs;
  const log = () => logs?.getByAid(aid);
  const now = () => Math.floor(host.now() / 1000);
  const fetching = new Set<string>();
  return {
    owner: aid,
    address,
    isOwner(pubkey) {
      const l = log();
      return l !== undefined && isOwnerKeyAt(l, pubkey, now());
    },
    records: () => ({ kinds: [DocKind.IdentityMembership], '#a': [address] }),
    read(ev, later) {
      const l = log();
      if (!l?.keys.some((k) => k.pubkey === ev.pubkey)) {
        // Perhaps a rotation this replica has not seen yet.
        if (!fetching.has(ev.id) && logs) {
          fetching.add(ev.id);
          void logs
            .fetchLog(aid)
            .then(() => log()?.keys.some((k) => k.pubkey === ev.pubkey) && later())
            .catch(() => undefined);
        }
        return undefined;
      }
      const rank = getIdentityRecordRank(l, ev, address);
      if (rank === undefined) {
        host.log.info({ address, eventId: ev.id, author: ev.pubkey }, 'membership record by a key that does not speak for the owner; ignored');
        return undefined;
      }
      return { record: makeMembership(aid, getMembershipMembers(ev), rank), enforced: isEnforcedMembership(ev) };
    },
    make(members, enforce, current) {
      // The version is the record's rank: a later key of the identity always outranks an earlier one.
      const l = log();
      const index = l ? l.keys.findIndex((k) => k.pubkey === host.self) : -1;
      const floor = getRankFloor(index);
      if (index < 0 || current.version >= getRankFloor(index + 1)) {
        throw new CrdtError('ROOST_ERR_CRDT_NOT_OWNER', `${host.self} is not the latest key of identity ${aid} that signed a record of ${address}`);
      }
      const createdAt = Math.max(now(), current.version >= floor ? getRankTime(current.version) + 1 : 0);
      return host.sign(makeIdentityMembershipEvent(aid, name, members, createdAt, { enforce }));
    },
    keys: () => log()?.keys.map((k) => k.pubkey) ?? [],
    watch: (fn) => logs?.onChange((l) => l.aid === aid && fn()) ?? (() => undefined),
  };
}

/**
 * Moves a document addressed by a key (`34337:<from>:<name>`, by default the agent's current key; pass an
 * earlier key after a rotation) to the agent's identity address (`34339:<aid>:<name>`): reads the old one
 * to the end, takes its whole state into the new one, gives it the same members (unless it has a record
 * already) and publishes a snapshot of it, which readers of the new address load. The old document stays
 * readable where it is. Returns the new document.
 */
export async function migrateToIdentityDoc(agent: Agent, name: string, opts: { from?: string; timeoutMs?: number } = {}): Promise<AgentDoc> {
  const old = await agent.doc(name, { owner: opts.from ?? agent.pubkey });
  await old.whenSynced(opts.timeoutMs ?? 10_000);
  const doc = await agent.doc(name, { identity: true });
  await doc.whenSynced(opts.timeoutMs ?? 10_000);
  doc.doc.receive(old.diff(doc.stateVector()), { author: agent.pubkey, kind: 'snapshot' });
  if (doc.membership.version === 0) doc.setMembers(old.membership.members, { enforce: old.enforced });
  await doc.publishSnapshot();
  return doc;
}
