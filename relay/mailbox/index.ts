import type { Database } from 'better-sqlite3';
import type { SyncEventReads } from '../store/types.js';
import { isRegularKind } from '../../shared/kinds.js';
import { makeNoticeFrame } from '../../shared/messages/relay.js';
import type { RelayConfig } from '../config.js';
import type { RelayContext } from '../context.js';
import type { InfoContributor } from '../plugins/nip11.js';
import { rejectFullMailbox } from '../policies/mailbox-quota.js';
import { DeliveryLedger, type MailboxBacklog, type MailboxStatus } from './ledger.js';
import { MailboxQuota } from './quota.js';
import { SenderAge } from './senders.js';
import { describeRetention, parseKindList, parseRetention, type RetentionRule } from './retention-rules.js';
import { sweepRetention } from './retention.js';

export type { MailboxBacklog, MailboxStatus } from './ledger.js';

/** The agent mailbox (issue 3): delivery accounting, per-recipient quota, retention. */
export interface Mailbox {
  /** Where one agent's mailbox stands: `{ deliveredSeq, undelivered }`. */
  status(pubkey: string): MailboxStatus;
  /** The relay-wide undelivered backlog. */
  backlog(): MailboxBacklog;
  /** Applies the retention rules now; returns how many events were removed. */
  sweepRetention(now?: number): number;
  /** Writes pending delivery accounting to disk. */
  flush(): void;
  /** Stops the timers and flushes. */
  close(): void;
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
export function installMailbox(ctx: RelayContext, db: Database, reads: SyncEventReads, infoContributors: InfoContributor[]): Mailbox {
  const { config, log } = ctx;
  const ledger = new DeliveryLedger(db, () => ctx.now());
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
  const saveRefused = db.prepare<[string, number, number]>(
    `INSERT INTO mailbox_refused (pubkey, refused, since) VALUES (?, ?, ?)
     ON CONFLICT (pubkey) DO UPDATE SET refused = refused + excluded.refused`,
  );
  const flushRefused = db.transaction(() => {
    for (const [pk, r] of refused) saveRefused.run(pk, r.n, r.since);
    refused.clear();
  });
  const senders = new SenderAge(db, config.mailboxFreshSeconds, () => ctx.now());
  senders.tick();
  const senderTimer = setInterval(() => {
    try {
      senders.tick();
    } catch (err) {
      log.error({ err }, 'sequence mark failed');
    }
  }, senders.markEverySeconds * 1000);
  senderTimer.unref();
  if (config.mailboxQuota > 0) {
    const quota = new MailboxQuota(ledger, config.mailboxQuota, () => ctx.now());
    const isStored = (id: string) => reads.isKnown(id) === 'stored';
    // Only consulted for a full mailbox: the recipient's kind-3 list (events_pk_kind, then its tags by seq).
    const contact = db.prepare<[string, string]>(
      `SELECT 1 FROM events e JOIN tags t ON t.seq = e.seq
       WHERE e.pubkey = ? AND e.kind = 3 AND t.name = 'p' AND t.value = ? LIMIT 1`,
    );
    const isContact = (recipient: string, sender: string) => contact.get(recipient, sender) !== undefined;
    // A stranger's undelivered mail in one mailbox (only asked once the mailbox is half full).
    const fromSender = db.prepare<[string, number, string]>(
      `SELECT count(*) AS n FROM tags t JOIN events e ON e.seq = t.seq
       WHERE t.name = 'p' AND t.value = ? AND t.seq > ? AND e.pubkey = ?`,
    );
    const senderHolds = (recipient: string, sender: string) => (fromSender.get(recipient, ledger.deliveredSeq(recipient), sender) as { n: number }).n;
    const noteRefused = (recipient: string) => {
      const r = refused.get(recipient);
      if (r) r.n++;
      else {
        if (refused.size >= 100_000) flushRefused();
        refused.set(recipient, { n: 1, since: ctx.now() });
      }
    };
    const isEstablished = (sender: string) => senders.isEstablished(sender);
    ctx.hooks.rejectEvent.push(rejectFullMailbox(quota, isStored, isContact, noteRefused, senderHolds, isEstablished));
    const takeRefused = db.prepare<[string]>('DELETE FROM mailbox_refused WHERE pubkey = ? RETURNING refused, since');
    ctx.hooks.onAuth.push(function tellRefusedMail(conn, pubkey) {
      const saved = takeRefused.get(pubkey) as { refused: number; since: number } | undefined;
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
    });
    // Regular kinds were counted when the policy admitted them; state kinds skip the policy.
    ctx.hooks.onEventSaved.push(function raiseQuotaBounds(event) {
      if (!isRegularKind(event.kind)) quota.raise(event);
    });
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

  const flush = () => {
    try {
      ledger.flush();
      if (refused.size > 0) flushRefused();
    } catch (err) {
      log.error({ err }, 'mailbox ledger flush failed');
    }
  };
  const sweep = (now = ctx.now()) => {
    ledger.flush();
    const { removed } = sweepRetention(db, rules, now, { keepUndelivered });
    if (removed > 0) log.info({ removed }, 'retention sweep removed events');
    return removed;
  };
  // On the timer, one batch per turn of the event loop, so a large sweep never stalls delivery.
  let sweeping = false;
  let closed = false;
  const sweepInSteps = () => {
    if (sweeping) return;
    sweeping = true;
    ledger.flush();
    const now = ctx.now();
    let total = 0;
    const step = () => {
      try {
        if (closed) return void (sweeping = false);
        const r = sweepRetention(db, rules, now, { keepUndelivered }, 1);
        total += r.removed;
        if (!r.done) return void setImmediate(step);
        if (total > 0) log.info({ removed: total }, 'retention sweep removed events');
      } catch (err) {
        log.error({ err }, 'retention sweep failed');
      }
      sweeping = false;
    };
    step();
  };
  const flushTimer = setInterval(flush, config.mailboxFlushMs);
  flushTimer.unref();
  const sweepTimer = rules.length > 0 ? setInterval(sweepInSteps, config.retentionSweepSeconds * 1000) : undefined;
  sweepTimer?.unref();

  return {
    status: (pubkey) => ledger.status(pubkey),
    backlog: () => ledger.backlog(),
    sweepRetention: (now) => (rules.length > 0 ? sweep(now) : 0),
    flush,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(flushTimer);
      clearInterval(senderTimer);
      if (sweepTimer) clearInterval(sweepTimer);
      flush();
    },
  };
}
