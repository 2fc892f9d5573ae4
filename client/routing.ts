import type { NostrEvent } from '../shared/event.js';
import { AGENT_CARD_D, AGENT_CARD_KIND, getAgentCard } from '../shared/agent-card.js';
import { getReadRelays, RELAY_LIST_KIND } from '../shared/nip65.js';
import type { ClientLogger } from './emitter.js';
import { normalizeRelayUrl, type RelayLink } from './relay-link.js';

/** What a {@link Router} is handed. */
export interface RouterDeps {
  /** The agent's own relays. */
  links: ReadonlyMap<string, RelayLink>;
  /** Opens (or returns) a write-only link to a relay that is not the agent's own. */
  openLink: (url: string) => RelayLink;
  now: () => number;
  log: ClientLogger;
  /** How long a recipient's relays are remembered (ms). */
  cacheMs?: number;
  /** How long a lookup waits for the relays (ms). */
  lookupMs?: number;
}

/**
 * Outbox routing (NIP-65): a message goes to the relays its recipient reads, named by the recipient's
 * newest relay list (kind 10002) or agent card found on the relays this agent is connected to.
 * Relays the agent does not use get a write-only link, opened on first use.
 */
export class Router {
  readonly #d: RouterDeps;
  readonly #cache = new Map<string, { at: number; relays: string[] | undefined }>();

  constructor(deps: RouterDeps) {
    this.#d = deps;
  }

  /** The read relays of `pubkey` (normalised), or undefined when none of the connected relays knows them. */
  async relaysOf(pubkey: string): Promise<string[] | undefined> {
    const cached = this.#cache.get(pubkey);
    if (cached && this.#d.now() - cached.at < (this.#d.cacheMs ?? 60_000)) return cached.relays;
    const ready = [...this.#d.links.values()].filter((l) => l.isReady);
    if (ready.length === 0) return undefined;
    const filters = [
      { kinds: [RELAY_LIST_KIND], authors: [pubkey], limit: 1 },
      { kinds: [AGENT_CARD_KIND], authors: [pubkey], '#d': [AGENT_CARD_D], limit: 1 },
    ];
    const found = (await Promise.all(ready.map((l) => l.query(filters, this.#d.lookupMs ?? 3000).catch(() => [] as NostrEvent[])))).flat();
    const newest = (kind: number) =>
      found.filter((e) => e.kind === kind && e.pubkey === pubkey).sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : 1))[0];
    const list = newest(RELAY_LIST_KIND);
    const card = newest(AGENT_CARD_KIND);
    let relays: string[] = [];
    if (list) relays = getReadRelays(list);
    else if (card) relays = getAgentCard(card)?.relays ?? [];
    const normalised = [...new Set(relays.flatMap((r) => safeNormalise(r)))];
    const result = normalised.length > 0 ? normalised : undefined;
    this.#cache.set(pubkey, { at: this.#d.now(), relays: result });
    return result;
  }

  /** The relays to deliver to `pubkey` through (links opened as needed), or undefined for the agent's own. */
  async route(pubkey: string): Promise<string[] | undefined> {
    const relays = await this.relaysOf(pubkey);
    if (!relays) return undefined;
    for (const url of relays) if (!this.#d.links.has(url)) this.#d.openLink(url);
    this.#d.log.debug({ to: pubkey, relays }, 'routed to the recipient’s read relays');
    return relays;
  }
}

function safeNormalise(url: string): string[] {
  try {
    return [normalizeRelayUrl(url)];
  } catch {
    return [];
  }
}
