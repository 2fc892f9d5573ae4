import { Bonjour, type Browser, type Service } from 'bonjour-service';
import { getEventHash } from 'nostr-tools/pure';
import type { NostrEvent } from '../../shared/event.js';
import {
  AGENT_SERVICE_TYPE,
  agentTxtSchema,
  getUrlPort,
  isUrlAtAddress,
  makeAdvertTemplate,
  parseTxt,
  RELAY_SERVICE_TYPE,
  relayTxtSchema,
} from '../../shared/mdns.js';
import { Emitter, type ClientLogger } from '../emitter.js';
import { type Identity, verifyEvent } from '../identity.js';
import { fetchRelayInfo, type FetchLike, type RelayInfo } from '../nip11.js';

/** A relay found on the local network and verified (docs/client.md#local-discovery). */
export interface LocalRelay {
  url: string;
  pubkey: string;
  /** The DNS-SD instance name (untrusted text, for display only). */
  name: string;
  /** The address the answer came from. */
  address: string;
  info: RelayInfo;
}

/** An agent found on the local network, its advertisement signed by its key. */
export interface LocalAgent {
  pubkey: string;
  /** The relay it says it is reached on (used only when that relay is a verified {@link LocalRelay}). */
  relay?: string;
  name: string;
  address: string;
}

/** An answer that was not used, and why. */
export interface RejectedAnswer {
  type: string;
  name: string;
  address: string;
  reason: string;
}

/** Events of a {@link LocalDiscovery}. */
export type LocalDiscoveryEvents = { relay: [LocalRelay]; agent: [LocalAgent]; rejected: [RejectedAnswer] };

/** Options of a {@link LocalDiscovery}. */
export interface LocalDiscoveryOptions {
  /** How NIP-11 documents are fetched (default: the platform's fetch). */
  fetch?: FetchLike;
  /** Timeout of each NIP-11 fetch (default 3000 ms). */
  infoTimeoutMs?: number;
  /** Most relays, agents and rejected answers kept (default 64 each): a flood of answers cannot grow memory. */
  maxEntries?: number;
  log?: ClientLogger;
  /** The mDNS responder (default: a new bonjour-service instance on the default interfaces). */
  mdns?: Bonjour;
  /** Seconds since the epoch (the advertisement's timestamp). */
  now?: () => number;
}

/**
 * Local discovery over DNS-SD/mDNS (Node only): advertises this agent's presence and browses for
 * relays and agents on the LAN. Every answer is untrusted: its TXT record is validated with bounded
 * sizes; a relay is used only when its advertisement is signed by the key it names, its URL points at
 * the address the answer came from (and its SRV port), and the NIP-11 document served there states
 * the same pubkey; an agent only when its advertisement is signed by its key.
 */
export class LocalDiscovery extends Emitter<LocalDiscoveryEvents> {
  readonly #mdns: Bonjour;
  readonly #ownsMdns: boolean;
  readonly #fetch: FetchLike;
  readonly #infoTimeoutMs: number;
  readonly #max: number;
  readonly #log: ClientLogger | undefined;
  readonly #now: () => number;
  readonly #relays = new Map<string, LocalRelay>();
  readonly #agents = new Map<string, LocalAgent>();
  readonly #rejected: RejectedAnswer[] = [];
  readonly #browsers: Browser[] = [];
  readonly #checking = new Set<string>();
  readonly #pending = new Set<Promise<void>>();

  constructor(opts: LocalDiscoveryOptions = {}) {
    super();
    this.#ownsMdns = opts.mdns === undefined;
    this.#mdns = opts.mdns ?? new Bonjour(undefined, (err: Error) => this.#log?.warn({ err: err.message }, 'mDNS error'));
    this.#fetch = opts.fetch ?? boundedFetch;
    this.#infoTimeoutMs = opts.infoTimeoutMs ?? 3000;
    this.#max = opts.maxEntries ?? 64;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** Verified relays found so far. */
  get relays(): LocalRelay[] {
    return [...this.#relays.values()];
  }

  /** Agents found so far (their own advertisement excluded only if the caller filters it). */
  get agents(): LocalAgent[] {
    return [...this.#agents.values()];
  }

  /** Answers refused so far (at most `maxEntries`, the latest). */
  get rejected(): RejectedAnswer[] {
    return [...this.#rejected];
  }

  /** Starts browsing for relays and agents; answers are checked as they come. */
  browse(): this {
    for (const type of [RELAY_SERVICE_TYPE, AGENT_SERVICE_TYPE]) {
      const browser = this.#mdns.find({ type }, (service) => this.#track(this.#onAnswer(type, service)));
      this.#browsers.push(browser);
    }
    return this;
  }

  /** Asks the network again (a new mDNS query per service type): answers lost or sent before browsing come back. */
  refresh(): void {
    for (const b of this.#browsers) b.update();
  }

  /**
   * Advertises this agent (`_roost-agent._tcp`): TXT with its pubkey, the relay it is reached on,
   * and its signature over both. An agent listens on no port; the SRV record names `port` (default 9).
   */
  advertise(identity: Identity, opts: { relay?: string; name?: string; port?: number } = {}): void {
    const proof = identity.sign(makeAdvertTemplate(AGENT_SERVICE_TYPE, opts.relay, this.#now()));
    const txt: Record<string, string> = { pubkey: identity.pubkey, ts: String(proof.created_at), sig: proof.sig };
    if (opts.relay !== undefined) txt.relay = opts.relay;
    this.#mdns.publish({ name: opts.name ?? `roost-agent ${identity.pubkey.slice(0, 12)}`, type: AGENT_SERVICE_TYPE, port: opts.port ?? 9, txt });
  }

  /**
   * The relays to prefer for messages to `pubkey`: the LAN relay it advertised, when that relay is
   * verified here; empty otherwise (use the usual relays).
   */
  relaysFor(pubkey: string): string[] {
    const relay = this.#agents.get(pubkey)?.relay;
    return relay !== undefined && [...this.#relays.values()].some((r) => r.url === relay) ? [relay] : [];
  }

  /** Waits until every answer received so far has been checked. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Stops browsing, withdraws the advertisement (goodbye packets) and closes the mDNS socket. */
  async close(): Promise<void> {
    for (const b of this.#browsers) b.stop();
    if (!this.#ownsMdns) return;
    await new Promise<void>((resolve) => this.#mdns.unpublishAll(() => this.#mdns.destroy(() => resolve())));
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #onAnswer(type: string, service: Service): Promise<void> {
    const address = service.referer?.address ?? '';
    const name = String(service.name ?? '').slice(0, 64);
    const reject = (reason: string) => {
      const r = { type, name, address, reason };
      this.#rejected.push(r);
      if (this.#rejected.length > this.#max) this.#rejected.shift();
      this.#log?.info({ type, address, reason }, 'mDNS answer rejected');
      this.emit('rejected', r);
    };
    try {
      if (type === RELAY_SERVICE_TYPE) await this.#checkRelay(service, name, address, reject);
      else this.#checkAgent(service, name, address, reject);
    } catch (err) {
      reject(`error: ${(err as Error).message}`.slice(0, 200));
    }
  }

  async #checkRelay(service: Service, name: string, address: string, reject: (reason: string) => void): Promise<void> {
    const txt = parseTxt(relayTxtSchema, service.txt);
    if (!txt) return reject('invalid: TXT record is not a relay advertisement');
    if (!verifyAdvert(RELAY_SERVICE_TYPE, txt.pubkey, txt.url, txt.ts, txt.sig)) return reject('invalid: advertisement not signed by the key it names');
    const addresses = [address, ...(service.addresses ?? [])].filter((a) => a !== '');
    if (!isUrlAtAddress(txt.url, addresses)) return reject(`invalid: ${txt.url} is not at the address that answered`);
    if (getUrlPort(txt.url) !== service.port) return reject(`invalid: ${txt.url} is not the advertised port ${service.port}`);
    if (this.#relays.has(txt.url) || this.#checking.has(txt.url)) return;
    if (this.#relays.size >= this.#max) return reject('blocked: too many local relays');
    this.#checking.add(txt.url);
    try {
      const info = await fetchRelayInfo(txt.url, this.#fetch, this.#infoTimeoutMs).catch(() => undefined);
      if (!info) return reject(`invalid: no NIP-11 document at ${txt.url}`);
      if (info.pubkey !== txt.pubkey) return reject(`invalid: NIP-11 at ${txt.url} names another pubkey`);
      const relay: LocalRelay = { url: txt.url, pubkey: txt.pubkey, name, address, info };
      this.#relays.set(txt.url, relay);
      this.emit('relay', relay);
    } finally {
      this.#checking.delete(txt.url);
    }
  }

  #checkAgent(service: Service, name: string, address: string, reject: (reason: string) => void): void {
    const txt = parseTxt(agentTxtSchema, service.txt);
    if (!txt) return reject('invalid: TXT record is not an agent advertisement');
    if (!verifyAdvert(AGENT_SERVICE_TYPE, txt.pubkey, txt.relay, txt.ts, txt.sig)) return reject('invalid: advertisement not signed by the key it names');
    if (!this.#agents.has(txt.pubkey) && this.#agents.size >= this.#max) return reject('blocked: too many local agents');
    const agent: LocalAgent = { pubkey: txt.pubkey, name, address };
    if (txt.relay !== undefined) agent.relay = txt.relay;
    this.#agents.set(txt.pubkey, agent);
    this.emit('agent', agent);
  }
}

/** Most bytes of a NIP-11 document read from a LAN answer's address. */
const MAX_INFO_BYTES = 64 * 1024;

/**
 * The default NIP-11 fetch for LAN answers: no redirects (the document must come from the address
 * that answered) and at most {@link MAX_INFO_BYTES} read.
 */
const boundedFetch: FetchLike = async (url, init) => {
  const res = await fetch(url, { ...init, redirect: 'error' });
  return {
    ok: res.ok,
    status: res.status,
    async json() {
      const reader = res.body?.getReader();
      const chunks: Uint8Array[] = [];
      let size = 0;
      for (;;) {
        const next = await reader?.read();
        if (!next || next.done) break;
        size += next.value.byteLength;
        if (size > MAX_INFO_BYTES) {
          await reader?.cancel();
          throw new Error(`NIP-11 document over ${MAX_INFO_BYTES} bytes`);
        }
        chunks.push(next.value);
      }
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    },
  };
};

/** Whether `sig` is `pubkey`'s signature over the advertisement of `url` at `ts`. */
function verifyAdvert(type: string, pubkey: string, url: string | undefined, ts: number, sig: string): boolean {
  const unsigned = { ...makeAdvertTemplate(type, url, ts), pubkey };
  const event: NostrEvent = { ...unsigned, id: getEventHash(unsigned), sig };
  return verifyEvent(event);
}

/**
 * Browses for `waitMs` (default 2000) and resolves with what was found and verified
 * (`roost agent discover --local`).
 */
export async function discoverLocal(
  opts: LocalDiscoveryOptions & { waitMs?: number } = {},
): Promise<{ relays: LocalRelay[]; agents: LocalAgent[]; rejected: RejectedAnswer[] }> {
  const d = new LocalDiscovery(opts).browse();
  const waitMs = opts.waitMs ?? 2000;
  try {
    // A second query halfway picks up answers the first one lost.
    await new Promise((r) => setTimeout(r, waitMs / 2));
    d.refresh();
    await new Promise((r) => setTimeout(r, waitMs / 2));
    await d.settled();
    return { relays: d.relays, agents: d.agents, rejected: d.rejected };
  } finally {
    await d.close();
  }
}
