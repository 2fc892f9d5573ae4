import type { Database } from 'better-sqlite3';
import { isPending, type MaybePromise, type SyncEventReads } from '../store/types.js';
import type { OnAuth } from '../context.js';
import { runWithLaterReads, type ReplayedReads } from '../policies/later-reads.js';
import { npubEncode } from 'nostr-tools/nip19';
import type { NostrEvent } from '../../shared/event.js';
import { isRegularKind } from '../../shared/kinds.js';
import { makeReason } from '../../shared/reason.js';
import { makeNoticeFrame } from '../../shared/messages/relay.js';
import type { RelayConfig } from '../config.js';
import type { RelayContext } from '../context.js';
import type { InfoContributor } from '../plugins/nip11.js';
import { rejectFullMailbox } from '../policies/mailbox-quota.js';
import { createSqliteLedgerStorage, DeliveryLedger, type LedgerStorage, type MailboxBacklog, type MailboxStatus } from './ledger.js';
import { MailboxQuota } from './quota.js';
import { createSqliteSenderMarks, SenderAge, type SenderMarksStorage } from './senders.js';
import { describeRetention, parseKindList, parseRetention, type RetentionRule } from './retention-rules.js';
import { sweepRetention, type RetentionOptions } from './retention.js';

export type { MailboxBacklog, MailboxStatus } from './ledger.js';

/** The agent mailbox (issue 3): delivery accounting, per-recipient quota, retention. */
export interface Mailbox {
  /** Where one agent's mailbox stands: `{ deliveredSeq, undelivered }`. */
  status(pubkey: string): MaybePromise<MailboxStatus>;
  /** The relay-wide undelivered backlog. */
  backlog(): MaybePromise<MailboxBacklog>;
  /** Applies the retention rules now; returns how many events were removed. */
  sweepRetention(now?: number): MaybePromise<number>;
  /** Writes pending delivery accounting to disk. */
  flush(): MaybePromise<void>;
  /** Stops the timers and flushes. */
  close(): MaybePromise<void>;
}

/**
 * What the mailbox keeps and asks besides the events: SQLite answers on the caller's turn; PostgreSQL
 * answers the policy's questions through replayed reads (`replayed`) and writes later.
 */
export interface MailboxStorage {
  ledger: LedgerStorage;
  senders: SenderMarksStorage;
  /** Whether `sender` is on the recipient's kind-3 list (only asked for a full mailbox). */
  isContact(recipient: string, sender: string): boolean;
  /** How many events from `sender` addressed to `recipient` are stored after `afterSeq`. */
  senderHolds(recipient: string, afterSeq: number, sender: string): number;
  /** Adds refusals not yet told to their agents. */
  saveRefused(entries: ReadonlyArray<readonly [string, number, number]>): MaybePromise<void>;
  /** Takes (and forgets) the refusals kept for an agent. */
  takeRefused(pubkey: string): MaybePromise<{ refused: number; since: number } | undefined>;
  /** Deletes events past their retention age, at most `maxBatches` batches. */
  sweepRetention(rules: readonly RetentionRule[], now: number, opts: RetentionOptions, maxBatches?: number): MaybePromise<{ removed: number; done: boolean }>;
  /** Set when the questions above answer inside a replayed run only (the quota policy then runs through it). */
  replayed?: ReplayedReads;
  /**
   * With several writers (a cluster): takes a place for event `id` in each mailbox the policy found at
   * least half full, counting stored mail and the places other events hold, atomically per recipient;
   * answers the first recipient whose mailbox is full (nothing taken then).
   */
  admit?(places: ReadonlyArray<{ recipient: string; ceiling: number; delivered: number }>, id: string, now: number): Promise<string | undefined>;
  /** Gives up the places event `id` took (it was stored or refused). */
  releaseAdmission?(id: string): Promise<void>;
}

/** The mailbox's statements on a SQLite database. */
export function createSqliteMailboxStorage(db: Database): MailboxStorage {
  // Only consulted for a full mailbox: the recipient's kind-3 list (events_pk_kind, then its tags by seq).
  const contact = db.prepare<[string, string]>(
    `SELECT 1 FROM events e JOIN tags t ON t.seq = e.seq
     WHERE e.pubkey = ? AND e.kind = 3 AND t.name = 'p' AND t.value = ? LIMIT 1`,
  );
  // A stranger's undelivered mail in one mailbox (only asked once the mailbox is half full).
  const fromSender = db.prepare<[string, number, string]>(
    `SELECT count(*) AS n FROM tags t JOIN events e ON e.seq = t.seq
     WHERE t.name = 'p' AND t.value = ? AND t.seq > ? AND e.pubkey = ?`,
  );
  const saveOne = db.prepare<[string, number, number]>(
    `INSERT INTO mailbox_refused (pubkey, refused, since) VALUES (?, ?, ?)
     ON CONFLICT (pubkey) DO UPDATE SET refused = refused + excluded.refused`,
  );
  const saveRefused = db.transaction((entries: ReadonlyArray<readonly [string, number, number]>) => {
    for (const [pk, n, since] of entries) saveOne.run(pk, n, since);
  });
  const takeRefused = db.prepare<[string]>('DELETE FROM mailbox_refused WHERE pubkey = ? RETURNING refused, since');
  return {
    ledger: createSqliteLedgerStorage(db),
    senders: createSqliteSenderMarks(db),
    isContact: (recipient, sender) => contact.get(recipient, sender) !== undefined,
    senderHolds: (recipient, afterSeq, sender) => (fromSender.get(recipient, afterSeq, sender) as { n: number }).n,
    saveRefused: (entries) => void saveRefused(entries),
    takeRefused: (pubkey) => takeRefused.get(pubkey) as { refused: number; since: number } | undefined,
    sweepRetention: (rules, now, opts, maxBatches) => sweepRetention(db, rules, now, opts, maxBatches),
  };
}

/** Kinds the settings add to the private-inbox kinds. */
export function configuredPrivateKinds(config: RelayConfig): number[] {
  const r = parseKindList(config.mailboxPrivateKinds);
  return r.ok ? r.kinds : [];
}

function retentionRules(config: RelayConfig): RetentionRule[] {
  const r = parseRetention(config.retention);
  return r.ok ? r.rules : [];
}

/**
 * Wires the mailbox into a built relay: a delivery hook and an AUTH hook feed the ledger, a
 * post-save hook and an appended policy enforce the quota, timers flush the ledger and sweep
 * retention, and NIP-11 advertises the sequence extension, private kinds, quota and retention.
 */
export function installMailbox(ctx: RelayContext, storage: MailboxStorage, reads: SyncEventReads, infoContributors: InfoContributor[]): Mailbox {
  const { config, log } = ctx;
  const { replayed } = storage;
  const failed = (what: string) => (err: unknown) => log.error({ err }, `${what} failed`);
  const ledger = new DeliveryLedger(storage.ledger, () => ctx.now());
  const rules = retentionRules(config);
  const keepUndelivered = config.retentionKeepUndelivered;

  ctx.hooks.onAuth.push(function registerAgent(_conn, pubkey) {
    ledger.register(pubkey);
  });
  ctx.hooks.onDelivered.push(function accountDelivery(conn, seq, raw) {
    if (conn.authed.size > 0) ledger.noteDelivered(conn.authed, seq, raw);
  });

  // Refusals per recipient not yet written (flushed with the ledger into mailbox_refused, so a restart keeps them).
  const refused = new Map<string, { n: number; since: number }>();
  const flushRefused = () => {
    const entries = [...refused].map(([pk, r]) => [pk, r.n, r.since] as const);
    refused.clear();
    return storage.saveRefused(entries);
  };
  const senders = new SenderAge(storage.senders, config.mailboxFreshSeconds, () => ctx.now());
  const tick = () => {
    try {
      const r = senders.tick();
      if (isPending(r)) r.catch(failed('sequence mark'));
    } catch (err) {
      failed('sequence mark')(err);
    }
  };
  tick();
  const senderTimer = setInterval(tick, senders.markEverySeconds * 1000);
  senderTimer.unref();
  if (config.mailboxQuota > 0) {
    const quota = new MailboxQuota(ledger, config.mailboxQuota, () => ctx.now());
    const isStored = (id: string) => reads.isKnown(id) === 'stored';
    const isContact = (recipient: string, sender: string) => storage.isContact(recipient, sender);
    const senderHolds = (recipient: string, sender: string) => storage.senderHolds(recipient, ledger.deliveredSeq(recipient), sender);
    const noteRefused = (recipient: string) => {
      const r = refused.get(recipient);
      if (r) r.n++;
      else {
        if (refused.size >= 100_000) {
          const saved = flushRefused();
          if (isPending(saved)) saved.catch(failed('saving mailbox refusals'));
        }
        refused.set(recipient, { n: 1, since: ctx.now() });
      }
    };
    const isEstablished = (sender: string) => senders.isEstablished(sender);
    // Mail this instance's policy admitted (it raised the bounds then), until it is stored or refused.
    const admittedHere = replayed ? new Set<string>() : undefined;
    // The places an event takes in mailboxes near their limit, per event, from the run that decided it.
    const near = storage.admit ? new Map<string, Array<{ recipient: string; ceiling: number; delivered: number }>>() : undefined;
    const onNearLimit = near
      ? (ev: NostrEvent, recipient: string, ceiling: number) => near.get(ev.id)?.push({ recipient, ceiling, delivered: ledger.deliveredSeq(recipient) })
      : undefined;
    const policy = rejectFullMailbox(quota, isStored, isContact, noteRefused, senderHolds, isEstablished, onNearLimit);
    if (!replayed) ctx.hooks.rejectEvent.push(policy);
    else if (!near || !storage.admit) ctx.hooks.rejectEvent.push(runWithLaterReads(replayed, policy));
    else {
      const admit = storage.admit.bind(storage);
      const release = storage.releaseAdmission?.bind(storage);
      const held = new Set<string>();
      const later = runWithLaterReads(replayed, (ev, pctx) => {
        // Each run of the replay starts the list afresh: only the run that decided counts.
        near.set(ev.id, []);
        const v = policy(ev, pctx);
        if (v === undefined && isRegularKind(ev.kind)) admittedHere?.add(ev.id);
        return v;
      });
      ctx.hooks.rejectEvent.push(function rejectFullMailboxAcrossInstances(ev, pctx) {
        const verdict = later(ev, pctx);
        const placesOf = (v: string | undefined) => {
          const places = near.get(ev.id) ?? [];
          near.delete(ev.id);
          if (v !== undefined || places.length === 0) return v;
          // The limit is near: take the places under the database's per-recipient locks (closes the race between instances).
          return admit(places, ev.id, pctx.now).then((full) => {
            if (full === undefined) {
              held.add(ev.id);
              return undefined;
            }
            noteRefused(full);
            return makeReason('rate-limited', `mailbox of ${npubEncode(full)} is full (${quota.limit} undelivered events)`);
          });
        };
        return isPending(verdict) ? verdict.then(placesOf) : placesOf(verdict);
      });
      const releasePlaces = (ev: NostrEvent) => {
        if (!held.delete(ev.id)) return;
        release?.(ev.id).catch(failed('releasing mailbox places'));
      };
      ctx.hooks.onEventSaved.push(releasePlaces);
      ctx.hooks.onEventUnproven.push(releasePlaces);
    }
    const tell = (conn: Parameters<OnAuth>[0], pubkey: string, saved: { refused: number; since: number } | undefined) => {
      const pending = refused.get(pubkey);
      refused.delete(pubkey);
      if (!saved && !pending) return;
      const r = { n: (saved?.refused ?? 0) + (pending?.n ?? 0), since: saved?.since ?? pending!.since };
      const since = new Date(r.since * 1000).toISOString();
      conn.send(
        makeNoticeFrame(
          `mailbox: ${r.n} events addressed to you were refused since ${since}: your mailbox was full (or half full, for keys new to this relay and for senders over their share)`,
        ),
      );
    };
    ctx.hooks.onAuth.push(function tellRefusedMail(conn, pubkey) {
      const saved = storage.takeRefused(pubkey);
      if (isPending(saved)) saved.then((s) => tell(conn, pubkey, s), failed('reading mailbox refusals'));
      else tell(conn, pubkey, saved);
    });
    // Regular kinds were counted when the policy admitted them; state kinds skip the policy. In a cluster,
    // mail admitted by another instance is counted here when it is stored.
    ctx.hooks.onEventSaved.push(function raiseQuotaBounds(event) {
      if (!isRegularKind(event.kind) || (admittedHere && !admittedHere.delete(event.id))) quota.raise(event);
    });
    if (admittedHere) ctx.hooks.onEventUnproven.push((event) => void admittedHere.delete(event.id));
  }

  infoContributors.push(() => ({
    roost: {
      seq: true,
      seq_page_limit: config.maxLimit,
      private_kinds: [...ctx.privateKinds].sort((a, b) => a - b),
      mailbox_quota: config.mailboxQuota > 0 ? config.mailboxQuota : null,
    },
    ...(rules.length > 0 ? { retention: describeRetention(rules) } : {}),
  }));

  const flush = (): MaybePromise<void> => {
    try {
      const a = ledger.flush();
      const b = refused.size > 0 ? flushRefused() : undefined;
      if (isPending(a) || isPending(b)) return Promise.all([a, b]).then(() => undefined, failed('mailbox ledger flush'));
    } catch (err) {
      log.error({ err }, 'mailbox ledger flush failed');
    }
  };
  const sweep = (now = ctx.now()): MaybePromise<number> => {
    const done = (r: { removed: number }) => {
      if (r.removed > 0) log.info({ removed: r.removed }, 'retention sweep removed events');
      return r.removed;
    };
    const flushed = ledger.flush();
    if (isPending(flushed)) return flushed.then(() => storage.sweepRetention(rules, now, { keepUndelivered })).then(done);
    const r = storage.sweepRetention(rules, now, { keepUndelivered });
    return isPending(r) ? r.then(done) : done(r);
  };
  // On the timer, one batch per turn of the event loop, so a large sweep never stalls delivery.
  let sweeping = false;
  let closed = false;
  const sweepInSteps = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      const flushed = ledger.flush();
      if (isPending(flushed)) await flushed;
      const now = ctx.now();
      let total = 0;
      for (;;) {
        if (closed) break;
        const step = storage.sweepRetention(rules, now, { keepUndelivered }, 1);
        const r = isPending(step) ? await step : step;
        total += r.removed;
        if (r.done) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (total > 0) log.info({ removed: total }, 'retention sweep removed events');
    } catch (err) {
      log.error({ err }, 'retention sweep failed');
    }
    sweeping = false;
  };
  const flushTimer = setInterval(flush, config.mailboxFlushMs);
  flushTimer.unref();
  const sweepTimer = rules.length > 0 ? setInterval(() => void sweepInSteps(), config.retentionSweepSeconds * 1000) : undefined;
  sweepTimer?.unref();

  return {
    status: (pubkey) => (replayed ? replayed.run(() => ledger.status(pubkey)) : ledger.status(pubkey)),
    backlog: () => ledger.backlog(),
    sweepRetention: (now) => (rules.length > 0 ? sweep(now) : 0),
    flush,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(flushTimer);
      clearInterval(senderTimer);
      if (sweepTimer) clearInterval(sweepTimer);
      return flush();
    },
  };
}
