import {
  AGENT_CARD_D,
  AGENT_CARD_KIND,
  AGENT_HEARTBEAT_KIND,
  CAPABILITY_TAG,
  makeAgentCard,
  makeHeartbeat,
  type AgentCard,
  type HeartbeatStatus,
} from '../shared/agent-card.js';
import { getTagValues, type NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import type { KeyLog } from '../shared/identity-log.js';
import type { Timers } from './backoff.js';
import { getDocOwner, openAgentDoc, type AgentDoc, type AgentDocOptions, type DocHost, type IdentityDocs } from './crdt-relay.js';
import { makeDocAddress } from './crdt/wire.js';
import type { ClientLogger } from './emitter.js';
import { ClientError } from './errors.js';
import type { Identity } from './identity.js';
import type { KeyLogs } from './key-logs.js';
import { fetchRelayInfo, type FetchLike, type RelayInfo } from './nip11.js';
import type { Outbox, PublishResult } from './outbox.js';
import { combineDiscovery, fetchPresence, type AgentInfo } from './presence.js';
import type { PublishOptions, Publisher } from './publisher.js';
import type { OkResult, RelayLink } from './relay-link.js';
import type { AgentStore } from './store.js';
import { checkWakeChannels, makeWakeRegistration, type WakeChannel } from './wake.js';

/*
 * The parts an Agent is a facade over, besides the Publisher (publisher.ts) and the Messenger
 * (messaging.ts): presence (card, heartbeats, discovery), push wake registration, and shared
 * documents. Each is handed the links, store and publisher it needs, never the agent.
 */

/** Push wake: the devices that wake this agent, registered with every relay (again on each connect). */
export class Wake {
  readonly #identity: Identity;
  readonly #links: ReadonlyMap<string, RelayLink>;
  readonly #fetch: FetchLike | undefined;
  readonly #now: () => number;
  readonly #log: ClientLogger;
  readonly #info = new Map<string, Promise<RelayInfo>>();
  #channels: WakeChannel[] | undefined;

  constructor(deps: { identity: Identity; links: ReadonlyMap<string, RelayLink>; fetch: FetchLike | undefined; now: () => number; log: ClientLogger }) {
    this.#identity = deps.identity;
    this.#links = deps.links;
    this.#fetch = deps.fetch;
    this.#now = deps.now;
    this.#log = deps.log;
  }

  /** True when wake channels are registered in this session. */
  get wakeable(): boolean {
    return (this.#channels?.length ?? 0) > 0;
  }

  /** Registers `channels` with every connected relay (and on every later connect); each relay's answer. */
  async register(channels: readonly WakeChannel[]): Promise<OkResult[]> {
    this.#channels = checkWakeChannels(channels);
    const ready = [...this.#links.values()].filter((l) => l.isReady);
    return Promise.all(ready.map((l) => this.#send(l)));
  }

  /** Registers the channels of this session again (signed by the current key: after a rotation in place); none: nothing. */
  async reregister(): Promise<OkResult[]> {
    return this.#channels === undefined ? [] : this.register(this.#channels);
  }

  /** A relay link connected: re-sends the registration; an Error to report when the relay refused it. */
  async onReady(link: RelayLink): Promise<Error | undefined> {
    if (this.#channels === undefined) return undefined;
    try {
      const r = await this.#send(link);
      if (!r.accepted) {
        return new ClientError('ROOST_ERR_REFUSED', `${link.url} refused the wake registration: ${r.reason}`, { reason: r.reason, relay: link.url });
      }
      return undefined;
    } catch (err) {
      return err as Error;
    }
  }

  /** A relay link dropped: its NIP-11 is read again on the next connect (the relay may have been replaced). */
  onDisconnected(url: string): void {
    this.#info.delete(url);
  }

  async #relayInfo(url: string): Promise<RelayInfo> {
    let p = this.#info.get(url);
    if (!p) {
      if (!this.#fetch) throw new ClientError('ROOST_ERR_RELAY_INFO', 'no fetch implementation for NIP-11');
      p = fetchRelayInfo(url, this.#fetch);
      this.#info.set(url, p);
      p.catch(() => this.#info.delete(url));
    }
    return p;
  }

  async #send(link: RelayLink): Promise<OkResult> {
    const info = await this.#relayInfo(link.url);
    if (typeof info.pubkey !== 'string' || !/^[0-9a-f]{64}$/.test(info.pubkey)) {
      throw new ClientError('ROOST_ERR_RELAY_INFO', `${link.url} publishes no pubkey in NIP-11: it does not take wake registrations`, { relay: link.url });
    }
    const channels = this.#channels ?? [];
    const event = makeWakeRegistration(this.#identity, info.pubkey, channels, Math.floor(this.#now() / 1000));
    this.#log.info({ relay: link.url, channels: channels.length }, 'registering wake channels');
    return link.publish(event);
  }
}

/** Presence: the agent card, heartbeats (periodic and on connect) and discovery of other agents. */
export class Presence {
  readonly #identity: Identity;
  readonly #links: ReadonlyMap<string, RelayLink>;
  readonly #publisher: Publisher;
  readonly #fetch: FetchLike | undefined;
  readonly #timers: Timers;
  readonly #now: () => number;
  readonly #seconds: number;
  readonly #wakeable: () => boolean;
  readonly #keyVersion: () => { aid: string; keySeq: number } | undefined;
  readonly #keyLogs: Pick<KeyLogs, 'fetchLog'> | undefined;
  #timer: unknown;
  #running = false;
  /** The card published last in this session (republished by the new key after a rotation in place). */
  #card: (Omit<AgentCard, 'relays'> & { relays?: string[] }) | undefined;

  constructor(deps: {
    identity: Identity;
    links: ReadonlyMap<string, RelayLink>;
    publisher: Publisher;
    fetch: FetchLike | undefined;
    timers: Timers;
    now: () => number;
    heartbeatSeconds: number;
    wakeable: () => boolean;
    /** This agent's agent id and key version, named in its card. */
    keyVersion?: () => { aid: string; keySeq: number } | undefined;
    /** Verifies the agent ids cards claim (discovery). */
    keyLogs?: Pick<KeyLogs, 'fetchLog'>;
  }) {
    this.#identity = deps.identity;
    this.#links = deps.links;
    this.#publisher = deps.publisher;
    this.#fetch = deps.fetch;
    this.#timers = deps.timers;
    this.#now = deps.now;
    this.#seconds = deps.heartbeatSeconds;
    this.#wakeable = deps.wakeable;
    this.#keyVersion = deps.keyVersion ?? (() => undefined);
    this.#keyLogs = deps.keyLogs;
  }

  /** Heartbeats on: one per period while running. */
  start(): void {
    this.#running = true;
    if (this.#seconds > 0) this.#schedule();
  }

  /** Publishes (replaces) the agent's card; `relays` defaults to the agent's relays. */
  async publishCard(card: Omit<AgentCard, 'relays'> & { relays?: string[] }, opts: PublishOptions = {}): Promise<PublishResult> {
    this.#card = card;
    const full: AgentCard = { ...card, relays: card.relays ?? this.#publisher.relays, ...this.#keyVersion() };
    const stamped = await this.#publisher.stamped(makeAgentCard(full, Math.floor(this.#now() / 1000)));
    return this.#publisher.publishSigned(this.#identity.sign(stamped), opts);
  }

  /** Publishes the card of this session again (after a rotation in place: signed by the new key, naming the new key version); none: undefined. */
  async republishCard(opts: PublishOptions = {}): Promise<PublishResult | undefined> {
    return this.#card === undefined ? undefined : this.publishCard(this.#card, opts);
  }

  /** Publishes a heartbeat now (not durable: a stale one is worth nothing). */
  async heartbeat(status: HeartbeatStatus = 'online', timeoutMs = 5000): Promise<PublishResult> {
    const hb = makeHeartbeat({ status, interval: this.#seconds || 300, wake: this.#wakeable() }, Math.floor(this.#now() / 1000));
    return this.#publisher.publishSigned(this.#identity.sign(await this.#publisher.stamped(hb)), { durable: false, timeoutMs });
  }

  /** A relay link connected: it hears an `online` heartbeat at once (heartbeats on). */
  onReady(link: RelayLink): void {
    if (!this.#running || this.#seconds <= 0) return;
    const hb = makeHeartbeat({ status: 'online', interval: this.#seconds, wake: this.#wakeable() }, Math.floor(this.#now() / 1000));
    this.#publisher
      .stamped(hb)
      .then((t) => link.publish(this.#identity.sign(t)))
      .catch(() => undefined);
  }

  /** Stops heartbeats; with `last`, publishes a last one (asleep when wakeable, else offline) to the relays connected now. */
  async stop(last: boolean): Promise<void> {
    const wasRunning = this.#running;
    this.#running = false;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    const connected = [...this.#links.values()].some((l) => l.isReady);
    if (last && wasRunning && this.#seconds > 0 && connected) {
      await this.heartbeat(this.#wakeable() ? 'asleep' : 'offline', 2000).catch(() => undefined);
    }
  }

  /** Agents offering every capability asked for, with presence (see `Agent.discover`). */
  async discover(query: { capabilities?: readonly string[]; timeoutMs?: number } = {}): Promise<AgentInfo[]> {
    const wanted = [...(query.capabilities ?? [])];
    const timeoutMs = query.timeoutMs ?? 5000;
    const cardFilter: Filter = { kinds: [AGENT_CARD_KIND], '#d': [AGENT_CARD_D], limit: 500 };
    if (wanted.length > 0) cardFilter[`#${CAPABILITY_TAG}`] = [wanted[0]!];
    const links = [...this.#links.values()];
    const cards = (await Promise.all(links.map((l) => l.query([cardFilter], timeoutMs).catch(() => [] as NostrEvent[])))).flat();
    const authors = [...new Set(cards.map((c) => c.pubkey))];
    if (authors.length === 0) return [];
    const beats = (
      await Promise.all(links.map((l) => l.query([{ kinds: [AGENT_HEARTBEAT_KIND], authors }], timeoutMs).catch(() => [] as NostrEvent[])))
    ).flat();
    const presence: Array<{ relay: string; online: Record<string, boolean> }> = [];
    const fetch = this.#fetch;
    if (fetch) {
      const answers = await Promise.all(links.map(async (l) => ({ relay: l.url, online: await fetchPresence(l.url, authors, fetch, timeoutMs) })));
      for (const a of answers) if (a.online) presence.push({ relay: a.relay, online: a.online });
    }
    const logs = new Map<string, KeyLog>();
    const keyLogs = this.#keyLogs;
    if (keyLogs) {
      const aids = [...new Set(cards.flatMap((c) => getTagValues(c, 'aid').slice(0, 1)))];
      await Promise.all(
        aids.map(async (aid) => {
          const log = await keyLogs.fetchLog(aid, timeoutMs).catch(() => 'unreadable');
          if (typeof log !== 'string') logs.set(aid, log);
        }),
      );
    }
    return combineDiscovery(cards, beats, presence, wanted, Math.floor(this.#now() / 1000), logs);
  }

  #schedule(): void {
    this.#timer = this.#timers.setTimeout(() => {
      if (!this.#running) return;
      if ([...this.#links.values()].some((l) => l.isReady)) this.heartbeat('online').catch(() => undefined);
      this.#schedule();
    }, this.#seconds * 1000);
  }
}

/** The DocHost's key-following part over the agent's key event logs. */
function makeKeyFollowing(
  keyLogs: Pick<KeyLogs, 'priorKeys' | 'lookupMany' | 'lookup' | 'onChange'>,
  now: () => number,
): Pick<DocHost, 'priorKeys' | 'followKeys' | 'resolveKey'> {
  return {
    priorKeys: (pubkey) => keyLogs.priorKeys(pubkey, Math.floor(now() / 1000)),
    followKeys(keys, onMoved) {
      const known = new Set(keys);
      // Reading their logs puts them under the live watch, so a rotation is seen as it happens.
      keyLogs.lookupMany(keys).catch(() => undefined);
      return keyLogs.onChange((log) => {
        if (!log.keys.some((k) => known.has(k.pubkey))) return;
        const fresh = log.keys.map((k) => k.pubkey).filter((k) => !known.has(k));
        for (const k of fresh) known.add(k);
        if (fresh.length > 0) onMoved(fresh);
      });
    },
    resolveKey: async (pubkey) => keyLogs.lookup(pubkey),
  };
}

/** The agent's open shared documents (see crdt-relay.ts), one per address. */
export class Docs {
  readonly #host: DocHost;
  readonly #open = new Map<string, Promise<AgentDoc>>();

  constructor(deps: {
    identity: Identity;
    links: Map<string, RelayLink>;
    store: AgentStore;
    outbox: Outbox;
    timers: Timers;
    now: () => number;
    random: () => number;
    log: ClientLogger;
    /** Key event logs: a member's successor key is a member (docs/identity.md). */
    keyLogs?: Pick<KeyLogs, 'priorKeys' | 'lookupMany' | 'lookup' | 'onChange' | 'getByAid' | 'fetchLog'>;
    /** This agent's own agent id (documents opened with `identity: true`). */
    aid?: string;
    /** Documents addressed by agent id (client/identity-docs.ts). */
    identityDocs?: IdentityDocs;
  }) {
    const { identity, outbox, links, keyLogs } = deps;
    const follow = keyLogs ? makeKeyFollowing(keyLogs, deps.now) : {};
    this.#host = {
      ...follow,
      ...(keyLogs ? { keyLogs } : {}),
      ...(deps.aid === undefined ? {} : { aid: deps.aid }),
      ...(deps.identityDocs ? { identityDocs: deps.identityDocs } : {}),
      // A getter: after a rotation in place the documents sign as, and are written by, the new key.
      get self() {
        return identity.pubkey;
      },
      links,
      store: deps.store,
      sign: (t) => identity.sign(t),
      enqueue: (event) => outbox.enqueue(event, [...links.keys()]),
      timers: deps.timers,
      now: deps.now,
      random: deps.random,
      log: deps.log,
    };
  }

  /** Opens (or returns the open) document `name` of `opts.owner` (default this agent). */
  open(name: string, opts: AgentDocOptions = {}): Promise<AgentDoc> {
    const owner = getDocOwner(this.#host, opts);
    const address = opts.identity === undefined ? makeDocAddress(owner, name) : `34339:${owner}:${name}`;
    let open = this.#open.get(address);
    if (!open) {
      open = openAgentDoc(this.#host, name, opts.identity === undefined ? { ...opts, owner } : { ...opts, identity: owner });
      this.#open.set(address, open);
      open.then(
        (d) => d.onClose(() => this.#open.delete(address)),
        () => this.#open.delete(address),
      );
    }
    return open;
  }

  /** Closes every open document (each saves its state). */
  async close(): Promise<void> {
    for (const open of [...this.#open.values()]) await (await open.catch(() => undefined))?.close();
  }
}
