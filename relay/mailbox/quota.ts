import type { NostrEvent } from '../../shared/event.js';
import type { DeliveryLedger } from './ledger.js';

/** Recipients whose bound is cached before the cache is reset. */
const MAX_TRACKED = 100_000;
/** A mailbox found full is counted again after this long even if nothing was delivered. */
const RECOUNT_FULL_SECONDS = 5;

interface Bound {
  /** At least the recipient's undelivered count (exact when counted, then raised per stored event). */
  n: number;
  /** Delivered seq when last counted exactly. */
  deliveredAt: number;
  /** When last counted exactly, in seconds. */
  countedAt: number;
}

/**
 * Per-recipient mailbox quota. Keeps an upper bound of each recipient's undelivered count: exact
 * when counted, raised by one for every event addressed to it as it is admitted (so a burst still
 * in flight counts), never lowered by deliveries, refusals further down the pipeline, deletions or
 * sweeps. Only a bound at the limit costs an exact count (an index range over the
 * undelivered part of the mailbox), and a mailbox found full is counted again only once its agent
 * has been delivered something or a few seconds have passed.
 */
export class MailboxQuota {
  readonly limit: number;
  #ledger: DeliveryLedger;
  #now: () => number;
  #bounds = new Map<string, Bound>();

  constructor(ledger: DeliveryLedger, limit: number, now: () => number) {
    this.#ledger = ledger;
    this.limit = limit;
    this.#now = now;
  }

  /** True when the recipient already has `ceiling` (default `limit`) or more undelivered events. */
  isFull(pubkey: string, ceiling = this.limit): boolean {
    const b = this.#bounds.get(pubkey);
    if (b && b.n < ceiling) return false;
    const delivered = this.#ledger.deliveredSeq(pubkey);
    const now = this.#now();
    if (b && b.deliveredAt === delivered && now - b.countedAt < RECOUNT_FULL_SECONDS) return true;
    const n = this.#ledger.countAfter(pubkey, delivered);
    if (!b && this.#bounds.size >= MAX_TRACKED) this.#bounds.clear();
    this.#bounds.set(pubkey, { n, deliveredAt: delivered, countedAt: now });
    return n >= ceiling;
  }

  /** Raises the bound of every recipient the event is addressed to (admitted or stored). */
  raise(event: NostrEvent): void {
    let seen: Set<string> | undefined;
    for (const t of event.tags) {
      if (t[0] !== 'p' || t[1] === undefined) continue;
      const b = this.#bounds.get(t[1]);
      if (!b) continue;
      if (seen?.has(t[1])) continue;
      (seen ??= new Set()).add(t[1]);
      b.n++;
    }
  }
}
