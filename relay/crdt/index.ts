import type { Database } from 'better-sqlite3';
import type { SyncEventReads } from '../store/types.js';
import { DocKind, getIdentityRecordAddress, getSnapshotPart, makeDocAddress, parseDocAddress, parseStateVector } from '../../shared/crdt-events.js';
import { IDENTITY_KINDS } from '../../shared/identity-log.js';
import { getDTag, getTagValue, type NostrEvent, type VerifiedEvent } from '../../shared/event.js';
import { Kind } from '../../shared/kinds.js';
import { recordError, type RelayContext } from '../context.js';
import type { InfoContributor } from '../plugins/nip11.js';
import { rejectNonMemberDocWrites } from '../policies/crdt-membership.js';
import { DocCompactor, type CompactionJob } from './compaction.js';
import { MembershipBook, isDocMember, type StoredMembership } from './membership.js';

export { DocCompactor, type CompactionJob, type CompactionStep } from './compaction.js';
export { MembershipBook, isDocMember, readMembership, type StoredMembership } from './membership.js';

/** Shared documents (issue 5) on the relay side: membership enforcement and compaction. */
export interface SharedDocs {
  /** The stored membership record of the document at `address`. */
  membership(address: string): StoredMembership | undefined;
  /** Resolves once every queued compaction has run. */
  idle(): Promise<void>;
  /** Compactions run and deltas given an expiry since start. */
  stats(): { compactions: number; deltasExpired: number };
  /** Stops running queued compactions. */
  close(): void;
}

/**
 * Wires shared documents into a built relay: the membership policy (appended to `rejectEvent` unless
 * `crdtMembership` is off), a post-save hook that keeps the membership cache fresh, and, with a SQLite
 * database, compaction: when a trusted snapshot's last part is stored, the deltas before it that it
 * covers expire after `crdtCompactionGraceSeconds`. Compaction runs one page per turn of the event loop.
 */
export function installSharedDocs(
  ctx: RelayContext,
  reads: SyncEventReads | undefined,
  db: Database | undefined,
  infoContributors: InfoContributor[],
  priorKeys?: (pubkey: string) => readonly string[],
): SharedDocs {
  const { config, log } = ctx;
  // Membership is read inside a synchronous policy: without synchronous reads it is not enforced.
  const book = new MembershipBook((filters) => reads?.query(filters) ?? []);
  if (config.crdtMembership !== 'off' && reads) {
    const isStored = (id: string) => reads.isKnown(id) === 'stored';
    ctx.hooks.rejectEvent.push(
      rejectNonMemberDocWrites(
        (a) => book.get(a),
        config.crdtMembership,
        isStored,
        priorKeys,
        (aid) => book.keyLog(aid),
      ),
    );
  }

  const compactor = db && reads && config.crdtCompaction !== 'off' ? new DocCompactor(db) : undefined;
  const queue: CompactionJob[] = [];
  let running = false;
  let closed = false;
  let idleWaiters: Array<() => void> = [];
  const counts = { compactions: 0, deltasExpired: 0 };

  const isTrusted = (address: string, author: string): boolean => {
    const doc = parseDocAddress(address);
    if (!doc) return false;
    if (author === doc.owner) return true;
    const record = book.get(address);
    if (doc.identity && record?.ownerKeyAt?.(author, ctx.now())) return true;
    if (config.crdtCompaction !== 'members') return false;
    return record !== undefined && isDocMember(record, author);
  };

  const drain = () => {
    if (running || closed) return;
    const job = queue.shift();
    if (!job) {
      for (const w of idleWaiters) w();
      idleWaiters = [];
      return;
    }
    running = true;
    let after = 0;
    let marked = 0;
    const step = () => {
      try {
        if (closed) return void (running = false);
        const s = compactor!.step(job, after);
        marked += s.marked;
        after = s.lastSeq;
        if (!s.done) return void setImmediate(step);
        counts.compactions++;
        counts.deltasExpired += marked;
        log.info({ address: job.address, expiring: marked, beforeSeq: job.beforeSeq }, 'document compacted');
      } catch (err) {
        recordError(ctx.stats, 'crdt compaction', err);
        log.error({ err, address: job.address }, 'document compaction failed');
      }
      running = false;
      setImmediate(drain);
    };
    step();
  };

  /** A trusted snapshot part was stored: when its generation is complete, queue the compaction. */
  const onSnapshotStored = (ev: VerifiedEvent, seq: number) => {
    const address = getTagValue(ev, 'a');
    const part = getSnapshotPart(ev);
    const svText = getTagValue(ev, 'sv');
    const stateVector = svText === undefined ? undefined : parseStateVector(svText);
    if (!compactor || address === undefined || !part || !stateVector || !isTrusted(address, ev.pubkey)) return;
    let beforeSeq = seq;
    if (part.count > 1) {
      const have = new Set<number>();
      for (const row of reads?.query([{ kinds: [DocKind.Snapshot], authors: [ev.pubkey], '#a': [address] }]) ?? []) {
        const p = JSON.parse(row.raw) as NostrEvent;
        const pp = getSnapshotPart(p);
        if (!pp || pp.id !== part.id || pp.count !== part.count || getTagValue(p, 'sv') !== svText || getDTag(p) !== `${address}#${pp.index}`) continue;
        have.add(pp.index);
        beforeSeq = Math.max(beforeSeq, row.seq);
      }
      if (have.size < part.count) return;
    }
    const expiresAt = ctx.now() + config.crdtCompactionGraceSeconds;
    compactor.expireStaleParts(address, ev.pubkey, part.id, expiresAt);
    queue.push({ address, stateVector, beforeSeq, expiresAt });
    setImmediate(drain);
  };

  ctx.hooks.onEventSaved.push(function trackSharedDocs(event, seq) {
    if (event.kind === DocKind.Membership) book.forget(makeDocAddress(event.pubkey, getDTag(event)));
    else if (event.kind === DocKind.IdentityMembership) {
      const doc = getIdentityRecordAddress(event);
      if (doc) book.forget(doc.address);
    } else if (event.kind === Kind.Deletion || IDENTITY_KINDS.includes(event.kind)) book.clear();
    else if (event.kind === DocKind.Snapshot) onSnapshotStored(event, seq);
  });

  infoContributors.push(() => ({
    roost: {
      crdt: {
        kinds: {
          update: DocKind.Update,
          awareness: DocKind.Awareness,
          membership: DocKind.Membership,
          snapshot: DocKind.Snapshot,
          identity_membership: DocKind.IdentityMembership,
        },
        membership: reads ? config.crdtMembership : 'off',
        compaction: compactor ? config.crdtCompaction : 'off',
        compaction_grace: config.crdtCompactionGraceSeconds,
      },
    },
  }));

  return {
    membership: (address) => book.get(address),
    idle: () => (!running && queue.length === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    stats: () => ({ ...counts }),
    close() {
      closed = true;
      queue.length = 0;
      for (const w of idleWaiters) w();
      idleWaiters = [];
    },
  };
}
