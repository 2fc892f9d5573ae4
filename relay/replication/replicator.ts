import type { Logger } from 'pino';
import { finalizeEvent } from 'nostr-tools/pure';
import WebSocket from 'ws';
import type { NostrEvent, VerifiedEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { isHistoryReset } from '../../shared/history-reset.js';
import { parseRelayFrame } from '../../shared/messages/relay-parse.js';
import { bytesToHex, hexToBytes, Negentropy, NegentropySet } from '../../shared/nip77.js';
import type { ReplicationStore } from '../store/types.js';
import { makeOriginChain } from './origins.js';
import type { Verifier } from '../verify/index.js';

/** Subscription id of the tail REQ on the upstream. */
const TAIL_ID = 'roost-replica';
/** Subscription id of the REQ that asks an on-demand upstream for its NIP-42 challenge. */
const AUTH_PROBE_ID = 'roost-replica-auth';
/** Subscription ids of the NIP-77 first sync: the upstream's newest seq, the reconciliation, and the fetch of missing ids. */
const HEAD_ID = 'roost-replica-head';
const NEG_ID = 'roost-replica-neg';
const FETCH_ID = 'roost-replica-fetch';
/** Ids asked for in one REQ of the first sync. */
const FETCH_CHUNK = 500;
/** Events received but not yet committed: past this the socket is paused (TCP pushes back on the upstream). */
const MAX_PENDING = 4000;

/** What one replicator has done (for metrics and tests). */
export interface ReplicatorStats {
  /** EVENT frames received from the upstream. */
  pulled: number;
  stored: number;
  duplicates: number;
  /** Refused here: by this relay's write policies (run in the replicated context), by the store (a newer replaceable version, deleted) or by verification. */
  rejected: number;
  connects: number;
  /** The committed cursor. */
  cursor: number;
  /** True once the upstream's backlog has been read (its EOSE) on the current connection. */
  live: boolean;
}

/** Everything a replicator needs; every I/O edge is injected. */
export interface ReplicatorOptions {
  /** ws(s):// URL of the upstream relay. */
  url: string;
  /** Extra filter fields (no seq fields). */
  filter: Filter;
  store: ReplicationStore;
  verifier: Verifier;
  log: Logger;
  /** This relay's key: it authenticates (NIP-42) as it, so an upstream may allow-list it for private kinds. */
  secretKey?: Uint8Array;
  /** Learns each relay of an origin chain (the upstream's NIP-11 pubkey, and the relays it names in `via`) so their events are not served back to them. */
  onOrigin?: (pubkey: string) => void;
  /** Milliseconds before reconnect attempt n (0-based). */
  backoffMs?: (attempt: number) => number;
  WebSocketImpl?: typeof WebSocket;
  fetchImpl?: typeof fetch;
  /** Seconds since the epoch. */
  now?: () => number;
  /** First read of an upstream (no cursor): tail from 0, or reconcile with NIP-77 and fetch what is missing. */
  firstSync?: 'cursor' | 'negentropy';
  /** Most local events the NIP-77 first sync reconciles (past it, it tails from 0 instead). */
  negentropyMaxRecords?: number;
  /** This relay's write policies in the replicated context: a reason to refuse the event, or undefined. */
  admit?: (event: NostrEvent) => string | undefined;
  /** Told each refusal (policy, store or verification), after the cursor has moved past it. */
  onRefused?: (reason: string, id: string) => void;
  /** Told each event that was already stored here (checked before any verification or store work). */
  onDuplicate?: () => void;
}

/** What becomes of one received event, decided before it reaches the store. */
type Verdict = { ok: true; event: VerifiedEvent } | { ok: false; reason: string; recheck?: NostrEvent } | { ok: 'duplicate' };

/** The key under which an upstream's cursor is kept: its URL, plus the filter when there is one. */
export function getUpstreamKey(url: string, filter: Filter): string {
  const f = JSON.stringify(filter);
  return f === '{}' ? url : `${url} ${f}`;
}

/** Full jitter over an exponential window: 0.5 s doubling to 30 s. */
export function defaultBackoffMs(attempt: number): number {
  return Math.random() * Math.min(30_000, 500 * 2 ** attempt);
}

/**
 * Replicates one upstream by sequence cursor: a tail-mode REQ from the committed cursor, each event
 * verified and stored with its upstream seq in the same transaction, so the cursor only ever names
 * committed events. After a drop it waits for what is in flight to commit, then resumes from the
 * cursor: nothing is fetched twice and nothing is skipped, whichever side restarted.
 */
export class Replicator {
  readonly key: string;
  readonly stats: ReplicatorStats = { pulled: 0, stored: 0, duplicates: 0, rejected: 0, connects: 0, cursor: 0, live: false };
  readonly #o: ReplicatorOptions;
  readonly #backoff: (attempt: number) => number;
  #ws: WebSocket | undefined;
  /** The id of this link's AUTH event while its OK is awaited. */
  #authId: string | undefined;
  #closed = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Writes in flight, in upstream order; settled when all are committed. */
  #inFlight: Promise<unknown> = Promise.resolve();
  #pending = 0;
  /** Verifications in upstream order; the head is written first, so writes keep the upstream's order. */
  #queue: Array<{ seq: number; id: string; verdict: Verdict | Promise<Verdict>; chain?: string }> = [];
  /** The origin chain last announced (consecutive events usually share it). */
  #lastChain: string | undefined;
  /** Highest upstream seq skipped (duplicate or refused) since the cursor was last written. */
  #skippedTo = 0;
  #origin: string | undefined;
  #paused = false;
  #draining = false;
  /** The NIP-77 first sync in progress on this connection. */
  #neg: { head: number; session: Negentropy | undefined; need: string[] } | undefined;

  constructor(opts: ReplicatorOptions) {
    this.#o = opts;
    this.key = getUpstreamKey(opts.url, opts.filter);
    this.#backoff = opts.backoffMs ?? defaultBackoffMs;
    this.stats.cursor = opts.store.getReplicationCursor(this.key);
  }

  /** Starts (connects, and reconnects until closed). */
  start(): void {
    void this.#connect();
  }

  async #learnOrigin(): Promise<void> {
    if (this.#origin !== undefined) return;
    try {
      const http = this.#o.url.replace(/^ws/, 'http');
      const res = await (this.#o.fetchImpl ?? fetch)(http, { headers: { accept: 'application/nostr+json' }, signal: AbortSignal.timeout(5000) });
      const info = (await res.json()) as { pubkey?: unknown };
      if (typeof info.pubkey === 'string' && /^[0-9a-f]{64}$/.test(info.pubkey)) {
        this.#origin = info.pubkey;
        this.#o.onOrigin?.(info.pubkey);
      }
    } catch (err) {
      this.#o.log.debug({ err, upstream: this.#o.url }, 'upstream NIP-11 not read; its events are not marked with an origin');
    }
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    // Whatever the last connection delivered commits first, so the cursor is exact.
    await this.#drained();
    await this.#learnOrigin();
    if (this.#closed) return;
    this.stats.cursor = this.#o.store.getReplicationCursor(this.key);
    this.stats.live = false;
    this.#neg = undefined;
    this.#authId = undefined;
    const Impl = this.#o.WebSocketImpl ?? WebSocket;
    const ws = new Impl(this.#o.url, { maxPayload: 64 * 1024 * 1024 });
    this.#ws = ws;
    ws.on('open', async () => {
      this.stats.connects++;
      // The upstream may have come up between the NIP-11 read and this socket: its key must be known before
      // any event is stored, or the origin chain would lack it (and a ring would bring the event back).
      await this.#learnOrigin();
      if (this.#ws !== ws) return;
      this.#o.log.info({ upstream: this.#o.url, cursor: this.stats.cursor }, 'replicating');
      if (this.#o.secretKey) this.#send(['REQ', AUTH_PROBE_ID, { ids: ['0'.repeat(64)], kinds: [4], limit: 1 }]);
      else this.#tail();
    });
    ws.on('message', (data) => this.#onMessage(String(data)));
    ws.on('error', (err) => this.#o.log.debug({ err, upstream: this.#o.url }, 'replication link error'));
    ws.on('close', () => {
      if (this.#ws === ws) this.#ws = undefined;
      this.stats.live = false;
      this.#paused = false;
      if (this.#closed) return;
      const delay = this.#backoff(this.#attempt++);
      this.#timer = setTimeout(() => void this.#connect(), delay);
    });
  }

  #send(frame: unknown[]): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(frame));
  }

  #tail(): void {
    if (this.stats.cursor === 0 && this.#o.firstSync === 'negentropy' && this.#neg === undefined) return this.#startFirstSync();
    this.#send(['REQ', TAIL_ID, { ...this.#o.filter, seq_after: this.stats.cursor }]);
  }

  /** NIP-77 first sync, step 1: the upstream's newest seq (a page that matches nothing reports it as its cursor). */
  #startFirstSync(): void {
    this.#neg = { head: 0, session: undefined, need: [] };
    this.#send(['REQ', HEAD_ID, { ids: ['0'.repeat(64)], seq_after: 0, limit: 1 }]);
  }

  /** Step 2: reconcile what is here with what the upstream has under the filter. */
  #openNegentropy(head: number): void {
    const neg = this.#neg!;
    neg.head = head;
    const items = this.#o.store.negentropyItems(this.#o.filter, this.#o.negentropyMaxRecords ?? 500_000);
    if (items === undefined) return this.#abandonFirstSync('too many local events for NIP-77');
    neg.session = new Negentropy(NegentropySet.from(items), 'initiator', { frameSizeLimit: 60_000 });
    this.#send(['NEG-OPEN', NEG_ID, this.#o.filter, bytesToHex(neg.session.initiate())]);
  }

  #onNegMsg(hex: string): void {
    const neg = this.#neg;
    if (!neg?.session) return;
    let round: ReturnType<Negentropy['reconcile']>;
    try {
      round = neg.session.reconcile(hexToBytes(hex));
    } catch (err) {
      return this.#abandonFirstSync(`bad NEG-MSG: ${(err as Error).message}`);
    }
    // What this relay refused before would only be refused again: not fetched (no repair loop).
    for (const id of round.need) if (!this.#o.store.isReplicationRefused(id)) neg.need.push(id);
    if (round.next !== undefined) return this.#send(['NEG-MSG', NEG_ID, bytesToHex(round.next)]);
    this.#send(['NEG-CLOSE', NEG_ID]);
    this.#o.log.info({ upstream: this.#o.url, missing: neg.need.length }, 'NIP-77 reconciled; fetching what is missing');
    this.#fetchNext();
  }

  /** Step 3: fetch the missing ids in chunks; then tail from the head seen before reconciling. */
  #fetchNext(): void {
    const neg = this.#neg!;
    const ids = neg.need.splice(0, FETCH_CHUNK);
    if (ids.length > 0) return this.#send(['REQ', FETCH_ID, { ids, limit: ids.length }]);
    const head = neg.head;
    void this.#drained().then(() => {
      if (this.#closed) return;
      // Everything up to the head is here now; what was written since comes by the tail.
      this.#o.store.setReplicationCursor(this.key, head);
      this.stats.cursor = Math.max(this.stats.cursor, head);
      this.#tail();
    });
  }

  #abandonFirstSync(why: string): void {
    this.#o.log.warn({ upstream: this.#o.url, why }, 'NIP-77 first sync not possible; tailing from 0');
    this.#neg = { head: 0, session: undefined, need: [] };
    this.#send(['REQ', TAIL_ID, { ...this.#o.filter, seq_after: 0 }]);
  }

  #onMessage(text: string): void {
    const m = parseRelayFrame(text);
    if (!m) return;
    switch (m.type) {
      case 'EVENT':
        if (m.subId === TAIL_ID) this.#onEvent(m.event, m.seq, m.via);
        // Fetched by id: no seq; the cursor moves to the head once all are committed.
        else if (m.subId === FETCH_ID) this.#onEvent(m.event, 0);
        return;
      case 'EVENT-MALFORMED':
        if (m.subId === TAIL_ID) this.#onEvent(undefined, m.seq);
        else if (m.subId === FETCH_ID) this.#onEvent(undefined, 0);
        return;
      case 'NEG-MSG':
        if (m.subId === NEG_ID) this.#onNegMsg(m.message);
        return;
      case 'NEG-ERR':
        if (m.subId === NEG_ID) this.#abandonFirstSync(m.reason);
        return;
      case 'EOSE':
        if (m.subId === AUTH_PROBE_ID) return this.#tail();
        if (m.subId === HEAD_ID) return m.cursor !== undefined ? this.#openNegentropy(m.cursor) : this.#abandonFirstSync('no sequence cursor');
        if (m.subId === FETCH_ID) return this.#fetchNext();
        if (m.subId === TAIL_ID) this.#onEose(m.cursor);
        return;
      case 'AUTH':
        this.#authenticate(m.challenge);
        return;
      case 'OK':
        if (this.#authId === undefined || m.eventId !== this.#authId) return;
        this.#authId = undefined;
        if (!m.accepted) this.#o.log.warn({ upstream: this.#o.url, reason: m.reason }, 'upstream refused AUTH; replicating public events only');
        this.#tail();
        return;
      case 'CLOSED':
        if (m.subId === AUTH_PROBE_ID) {
          // auth-required: the AUTH frame came first; the tail starts once its OK... or at once if the probe was refused otherwise.
          if (!m.reason.startsWith('auth-required:')) this.#tail();
          return;
        }
        if (m.subId === TAIL_ID) this.#onClosed(m.reason);
        else if (m.subId === HEAD_ID) this.#abandonFirstSync(m.reason);
        return;
      default:
        return;
    }
  }

  #authenticate(challenge: string): void {
    const sk = this.#o.secretKey;
    if (!sk) return;
    const auth = finalizeEvent(
      {
        kind: 22242,
        created_at: (this.#o.now ?? (() => Math.floor(Date.now() / 1000)))(),
        tags: [
          ['relay', this.#o.url],
          ['challenge', challenge],
        ],
        content: '',
      },
      sk,
    );
    this.#authId = auth.id;
    this.#send(['AUTH', auth]);
  }

  /** An event read from the upstream (undefined: malformed, refused and counted) with its sequence number. */
  #onEvent(ev: NostrEvent | undefined, seq: number | undefined, via?: unknown[]): void {
    if (seq === undefined) {
      this.#o.log.error({ upstream: this.#o.url }, 'upstream sent an event without a sequence number (not a Roost relay?): closing the link');
      this.#ws?.close();
      return;
    }
    this.stats.pulled++;
    let verdict: Verdict | Promise<Verdict>;
    let id = '';
    if (!ev) verdict = { ok: false, reason: 'invalid: malformed event' };
    else {
      id = ev.id;
      // Cheapest first: an event already here (it came round a ring of relays, or twice during a first
      // sync) costs one indexed lookup, no verification and no store work; then this relay's own policies.
      if (this.#o.store.isKnown(ev.id) === 'stored') verdict = { ok: 'duplicate' };
      else {
        const refused = this.#o.admit?.(ev);
        verdict = refused !== undefined ? { ok: false, reason: refused, recheck: ev } : (this.#o.verifier.verify(ev) as Promise<Verdict>);
      }
    }
    const chain = makeOriginChain(this.#origin, via);
    // Every relay of the chain is told before the event commits, so it is never served back to any of them.
    if (chain !== undefined && chain !== this.#lastChain) {
      this.#lastChain = chain;
      for (const k of chain.split(',')) this.#o.onOrigin?.(k);
    }
    this.#queue.push({ seq, id, verdict, ...(chain !== undefined ? { chain } : {}) });
    this.#pending++;
    if (this.#pending >= MAX_PENDING && !this.#paused) {
      this.#paused = true;
      this.#ws?.pause();
    }
    if (!this.#draining) void this.#drain();
  }

  /** Writes verified events strictly in upstream order (verification may finish out of order). */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      await this.#drainQueue();
    } finally {
      this.#draining = false;
    }
  }

  async #drainQueue(): Promise<void> {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      let v = await head.verdict;
      if (v.ok === false && v.recheck !== undefined) v = await this.#recheck(v.recheck);
      this.#queue.shift();
      if (v.ok === 'duplicate') {
        this.stats.duplicates++;
        this.#o.onDuplicate?.();
        this.#skip(head.seq);
        continue;
      }
      if (!v.ok) {
        this.#refused(head.id, v.reason);
        this.#skip(head.seq);
        continue;
      }
      const write = this.#o.store
        .writeReplicated(v.event, { upstream: this.key, seq: head.seq, ...(head.chain !== undefined ? { origin: head.chain } : {}) })
        .then((r) => {
          if (r.status === 'stored') this.stats.stored++;
          else if (r.status === 'duplicate') {
            this.stats.duplicates++;
            this.#o.onDuplicate?.();
          } else if (!r.reason.startsWith('error:')) this.#refused(v.event.id, r.reason);
          else this.stats.rejected++;
          if (head.seq > this.stats.cursor) this.stats.cursor = head.seq;
          this.#settle();
        });
      this.#inFlight = Promise.all([this.#inFlight, write]);
    }
    this.#commitSkipped();
  }

  /**
   * A policy refused the event when it arrived, before the events ahead of it had committed: a rule that
   * reads stored state (a task's proposal, a document's membership record) may have missed one of them.
   * Asked again once they have; only a refusal that stands is final. Refusals are rare, so the wait is too.
   */
  async #recheck(ev: NostrEvent): Promise<Verdict> {
    await this.#inFlight;
    const reason = this.#o.admit?.(ev);
    if (reason !== undefined) return { ok: false, reason };
    return (await this.#o.verifier.verify(ev)) as Verdict;
  }

  /** An event refused here: counted, remembered (NIP-77 does not fetch it again), logged at debug only. */
  #refused(id: string, reason: string): void {
    this.stats.rejected++;
    if (id !== '') this.#o.store.recordReplicationRefused(id, reason);
    this.#o.log.debug({ upstream: this.#o.url, eventId: id, reason }, 'replicated event refused');
    this.#o.onRefused?.(reason, id);
  }

  #skip(seq: number): void {
    if (seq > this.#skippedTo) this.#skippedTo = seq;
    this.#settle();
  }

  /**
   * Moves the committed cursor past skipped events once everything before them has committed: one
   * write per burst (not per event), so a run of duplicates or refusals costs no store work each,
   * and a restart does not read them again.
   */
  #commitSkipped(): void {
    const to = this.#skippedTo;
    if (to === 0) return;
    this.#skippedTo = 0;
    this.#inFlight = this.#inFlight.then(() => {
      this.#o.store.setReplicationCursor(this.key, to);
      if (to > this.stats.cursor) this.stats.cursor = to;
    });
  }

  #settle(): void {
    this.#pending--;
    if (this.#paused && this.#pending < MAX_PENDING / 2) {
      this.#paused = false;
      this.#ws?.resume();
    }
  }

  #onEose(cursor: number | undefined): void {
    this.#attempt = 0;
    this.stats.live = true;
    if (cursor === undefined) return;
    // The upstream examined events up to here that this replica may not read or that were skipped:
    // once everything before it has committed, the cursor moves past them.
    void this.#drained().then(() => {
      if (!this.#closed && cursor > this.stats.cursor) {
        this.#o.store.setReplicationCursor(this.key, cursor);
        this.stats.cursor = cursor;
      }
      const { pulled, stored, duplicates, rejected } = this.stats;
      this.#o.log.info({ upstream: this.#o.url, cursor: this.stats.cursor, pulled, stored, duplicates, rejected }, 'replication caught up; live');
    });
  }

  /** Settles once every event received so far is verified and committed. */
  async #drained(): Promise<void> {
    while (this.#queue.length > 0 || this.#draining) await new Promise((r) => setTimeout(r, 5));
    await this.#inFlight;
  }

  #onClosed(reason: string): void {
    if (isHistoryReset(reason)) {
      // The upstream's database was replaced: read it again from 0 (stored events come back as duplicates).
      this.#o.log.warn({ upstream: this.#o.url, reason }, 'upstream history was reset; replicating it again from 0');
      void this.#drained().then(() => {
        this.#o.store.setReplicationCursor(this.key, 0, true);
        this.stats.cursor = 0;
        this.#neg = undefined;
        this.#tail();
      });
      return;
    }
    this.#o.log.warn({ upstream: this.#o.url, reason }, 'upstream closed the replication subscription; retrying');
    this.#ws?.close();
  }

  /** Stops: closes the link and waits for what it delivered to commit. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#ws?.close();
    await this.#drained();
  }
}
