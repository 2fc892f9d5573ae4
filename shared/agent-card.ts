import type { EventTemplate, NostrEvent } from './event.js';
import { getDTag, getTagValues } from './event.js';

/**
 * Agent presence and discovery (Roost): an agent card (addressable, kind 31340, `d` = "agent") says
 * what an agent is and can do; a heartbeat (replaceable, kind 11340) says when it was last up and
 * whether it can be woken. Capabilities are `c` tags so relays can filter on them (`#c`).
 * Pure code shared by the client (publish, discover) and the relay (presence endpoint).
 */

/** Kind of the addressable agent card. */
export const AGENT_CARD_KIND = 31340;

/** Kind of the replaceable agent heartbeat. */
export const AGENT_HEARTBEAT_KIND = 11340;

/** The `d` tag of an agent card. */
export const AGENT_CARD_D = 'agent';

/** Tag letter carrying one capability each. */
export const CAPABILITY_TAG = 'c';

/** HTTP path, relative to the relay URL, of the presence query (see docs/client.md). */
export const PRESENCE_PATH = 'presence';

/** Most pubkeys one presence query may name. */
export const PRESENCE_MAX_PUBKEYS = 100;

/** What an agent says about itself. */
export interface AgentCard {
  name: string;
  description: string;
  capabilities: string[];
  version: string;
  /** Relays the agent reads (its inbox). */
  relays: string[];
  /** The agent id of the key event log the signing key belongs to (docs/identity.md); tag `aid`. */
  aid?: string;
  /** The `seq` of the log's head the card was signed under (the key version); tag `key-seq`. */
  keySeq?: number;
}

/** How an agent describes its own state in a heartbeat. */
export type HeartbeatStatus = 'online' | 'asleep' | 'offline';

/** The content of a heartbeat. */
export interface Heartbeat {
  status: HeartbeatStatus;
  /** Seconds until the next heartbeat while online. */
  interval: number;
  /** True when a push channel is registered: the agent can be woken while asleep. */
  wake: boolean;
}

/** The answer of a relay's presence endpoint: only agents that published a card appear. */
export interface PresenceAnswer {
  online: Record<string, boolean>;
}

const MAX_FIELD = 1024;
const MAX_CAPABILITIES = 64;

const isString = (v: unknown): v is string => typeof v === 'string';
const clip = (s: string) => s.slice(0, MAX_FIELD);

/** The event template of an agent card. */
export function makeAgentCard(card: AgentCard, createdAt: number): EventTemplate {
  const capabilities = [...new Set(card.capabilities)].slice(0, MAX_CAPABILITIES);
  const { aid, keySeq, ...body } = card;
  const tags = [['d', AGENT_CARD_D], ...capabilities.map((c) => [CAPABILITY_TAG, c]), ['name', card.name]];
  if (aid !== undefined) tags.push(['aid', aid], ['key-seq', String(keySeq ?? 0)]);
  return { kind: AGENT_CARD_KIND, created_at: createdAt, content: JSON.stringify({ ...body, capabilities }), tags };
}

/** True for an agent card event (kind and `d` tag). */
export function isAgentCard(ev: Pick<NostrEvent, 'kind' | 'tags'>): boolean {
  return ev.kind === AGENT_CARD_KIND && getDTag(ev) === AGENT_CARD_D;
}

/**
 * The card in an event, or undefined when it is not a well-formed card. Capabilities come from
 * the `c` tags (what relays index), never from the content alone.
 */
export function getAgentCard(ev: Pick<NostrEvent, 'kind' | 'tags' | 'content'>): AgentCard | undefined {
  if (!isAgentCard(ev)) return undefined;
  let body: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(ev.content);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    body = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const relays = Array.isArray(body.relays) ? body.relays.filter(isString).map(clip) : [];
  const card: AgentCard = {
    name: isString(body.name) ? clip(body.name) : '',
    description: isString(body.description) ? clip(body.description) : '',
    capabilities: getTagValues(ev, CAPABILITY_TAG).slice(0, MAX_CAPABILITIES),
    version: isString(body.version) ? clip(body.version) : '',
    relays,
  };
  const aid = getTagValues(ev, 'aid')[0];
  const seq = getTagValues(ev, 'key-seq')[0];
  if (aid !== undefined && /^[0-9a-f]{64}$/.test(aid)) {
    card.aid = aid;
    card.keySeq = seq !== undefined && /^(0|[1-9]\d{0,8})$/.test(seq) ? Number(seq) : 0;
  }
  return card;
}

/** The event template of a heartbeat. */
export function makeHeartbeat(hb: Heartbeat, createdAt: number): EventTemplate {
  return { kind: AGENT_HEARTBEAT_KIND, created_at: createdAt, content: JSON.stringify(hb), tags: [] };
}

/** The heartbeat in an event, or undefined when malformed. */
export function getHeartbeat(ev: Pick<NostrEvent, 'kind' | 'content'>): Heartbeat | undefined {
  if (ev.kind !== AGENT_HEARTBEAT_KIND) return undefined;
  try {
    const b = JSON.parse(ev.content) as Record<string, unknown>;
    const status = b.status === 'online' || b.status === 'asleep' || b.status === 'offline' ? b.status : undefined;
    if (!status) return undefined;
    const interval = typeof b.interval === 'number' && b.interval > 0 ? b.interval : 300;
    return { status, interval, wake: b.wake === true };
  } catch {
    return undefined;
  }
}

/** True when the card offers every capability asked for. */
export function matchCapabilities(card: AgentCard, wanted: readonly string[]): boolean {
  return wanted.every((c) => card.capabilities.includes(c));
}
