import type { Database } from 'better-sqlite3';
import { isPending, type DocCompaction, type MaybePromise, type PolicyClaims, type SyncEventReads } from '../store/types.js';
import { runWithLaterReads, type ReplayedReads } from '../policies/later-reads.js';
import { DocKind, getIdentityRecordAddress, getSnapshotPart, makeDocAddress, parseDocAddress, parseStateVector } from '../../shared/crdt-events.js';
import { IDENTITY_KINDS } from '../../shared/identity-log.js';
import { getDTag, getTagValue, type NostrEvent, type VerifiedEvent } from '../../shared/event.js';
import { Kind } from '../../shared/kinds.js';
import { recordError, type RelayContext } from '../context.js';
import type { InfoContributor } from '../plugins/nip11.js';
import { rejectNonMemberDocWrites } from '../policies/crdt-membership.js';
import { DocCompactor, type CompactionJob, type CompactionStep } from './compaction.js';
import { MembershipBook, isDocMember, type StoredMembership } from './membership.js';

export { DocCompactor, type CompactionJob, type CompactionStep } from './compaction.js';
export { MembershipBook, isDocMember, readMembership, type StoredMembership } from './membership.js';

/** Shared documents (issue 5) on the relay side: membership enforcement and compaction. */
export interface SharedDocs {
  /** The stored membership record of the document at `address` (later, on a store that answers later). */
  membership(address: string): MaybePromise<StoredMembership | undefined>;
  /** Resolves once every event committed before the call has been looked at and every compaction it queued has run. */
  idle(): Promise<void>;
  /** Compactions run and deltas given an expiry since start. */
  stats(): { compactions: number; deltasExpired: number };
  /** Stops running queued compactions. */
  close(): void;
}

/** Where shared documents read and compact. */
export interface SharedDocsStorage {
  /** Event reads (synchronous on SQLite; replayed reads on a store that answers later). */
  reads: SyncEventReads | undefined;
  /** Set when `reads` are replayed: the membership policy and compaction's reads run through it. */
  replayed?: ReplayedReads;
  /** A SQLite database: compaction runs on it. */
  db?: Database | undefined;
  /** Compaction on a shared database (when there is no SQLite one). */
  compaction?: DocCompaction | undefined;
  /** Claims shared by the instances of a cluster: one instance compacts each snapshot. */
  claims?: PolicyClaims | undefined;
}

/**
 * Wires shared documents into a built relay: the membership policy (appended to `rejectEvent` unless
 * `crdtMembership` is off), a post-save hook that keeps the membership cache fresh, and compaction (on a
 * SQLite database, or a store's own): when a trusted snapshot's last part is stored, the deltas before it
 * that it covers expire after `crdtCompactionGraceSeconds`. Compaction runs one page per turn of the event loop.
 */
export function installSharedDocs(
  ctx: RelayContext,
  storage: SharedDocsStorage,
  infoContributors: InfoContributor[],
  priorKeys?: (pubkey: string) => readonly string[],
): SharedDocs {
  const { config, log } = ctx;
  const { reads, replayed } = storage;
  // Over replayed reads nothing is cached between events: a record read for one event could otherwise be
  // cached after the notice of its replacement (another instance's commit) had already cleared the cache.
  const book = new MembershipBook((filters) => reads?.query(filters) ?? [], replayed ? 0 : undefined);
  if (config.crdtMembership !== 'off' && reads) {
    const isStored = (id: string) => reads.isKnown(id) === 'stored';
    const policy = rejectNonMemberDocWrites(
      (a) => book.get(a),
      config.crdtMembership,
      isStored,
      priorKeys,
      (aid) => book.keyLog(aid),
    );
    ctx.hooks.rejectEvent.push(replayed ? runWithLaterReads(replayed, policy) : policy);
  }

  const compactor: DocCompaction | undefined =
    !reads || config.crdtCompaction === 'off' ? undefined : storage.db ? new DocCompactor(storage.db) : storage.compaction;
  const instance = Math.random().toString(36).slice(2);
  const queue: CompactionJob[] = [];
  let running = false;
  let closed = false;
  // Snapshots being looked at over replayed reads (not queued yet).
  let preparing = 0;
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
    const failed = (err: unknown) => {
      recordError(ctx.stats, 'crdt compaction', err);
      log.error({ err, address: job.address }, 'document compaction failed');
      running = false;
      setImmediate(drain);
    };
    const stepped = (s: CompactionStep) => {
      marked += s.marked;
      after = s.lastSeq;
      if (!s.done) return void setImmediate(step);
      counts.compactions++;
      counts.deltasExpired += marked;
      log.info({ address: job.address, expiring: marked, beforeSeq: job.beforeSeq }, 'document compacted');
      running = false;
      setImmediate(drain);
    };
    const step = () => {
      try {
        if (closed) return void (running = false);
        const s = compactor!.step(job, after);
        if (isPending(s)) s.then(stepped, failed);
        else stepped(s);
      } catch (err) {
        failed(err);
      }
    };
    step();
  };

  /** A trusted snapshot part was stored: when its generation is complete, queue the compaction. */
  const onSnapshotStored = (ev: VerifiedEvent, seq: number): void => {
    if (!compactor) return;
    if (!replayed) return compactIfComplete(ev, seq);
    // Every instance of a cluster sees the snapshot; the one that claims it compacts (the work is idempotent anyway).
    const claimed = storage.claims ? storage.claims.claim([`compact:${ev.id}`], instance, ctx.now()) : Promise.resolve(undefined);
    preparing++;
    claimed
      .then((taken) => (taken ? undefined : replayed.run(() => compactIfComplete(ev, seq))))
      .catch((err) => {
        recordError(ctx.stats, 'crdt compaction', err);
        log.error({ err, eventId: ev.id }, 'document compaction failed');
      })
      .finally(() => {
        preparing--;
        setImmediate(drain);
      });
  };
  const compactIfComplete = (ev: VerifiedEvent, seq: number): void => {
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
    const stale = compactor.expireStaleParts(address, ev.pubkey, part.id, expiresAt);
    if (isPending(stale)) stale.catch((err) => log.error({ err, address }, 'expiring stale snapshot parts failed'));
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
    membership: (address) => (replayed ? replayed.run(() => book.get(address)) : book.get(address)),
    async idle() {
      // On a shared database a commit reaches the post-save hooks after its OK: first every commit so far.
      await ctx.store.catchUp();
      while (!closed && (running || preparing > 0 || queue.length > 0)) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    stats: () => ({ ...counts }),
    close() {
      closed = true;
      queue.length = 0;
      for (const w of idleWaiters) w();
      idleWaiters = [];
    },
  };
}
