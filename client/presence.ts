import type { NostrEvent } from '../shared/event.js';
import type { KeyLog } from '../shared/identity-log.js';
import { PRESENCE_MAX_PUBKEYS, PRESENCE_PATH, getAgentCard, getHeartbeat, matchCapabilities, type AgentCard, type Heartbeat } from '../shared/agent-card.js';
import { getNpub } from './identity.js';
import { getRelayHttpUrl, type FetchLike } from './nip11.js';

/** How reachable an agent is: connected now, asleep but wakeable by push, or neither. */
export type Presence = 'online' | 'asleep' | 'offline';

/** One agent found by discovery. */
export interface AgentInfo extends AgentCard {
  pubkey: string;
  npub: string;
  presence: Presence;
  /** Unix seconds the agent was last known up (now when online; else its last heartbeat). */
  lastSeen: number | undefined;
  /** A push channel is registered: the agent can be woken. */
  wakeable: boolean;
  /** Relays whose presence endpoint answered for this agent. */
  presenceFrom: string[];
  /** Reputation score (0–1), when discovery was asked for a `minReputation`. */
  reputation?: number;
}

/**
 * Asks a relay which of `pubkeys` are connected now (GET /presence); undefined when the relay has no
 * presence endpoint or does not answer. Agents without a card are absent from the answer.
 */
export async function fetchPresence(
  relayUrl: string,
  pubkeys: readonly string[],
  fetchFn: FetchLike,
  timeoutMs = 5000,
): Promise<Record<string, boolean> | undefined> {
  const out: Record<string, boolean> = {};
  for (let i = 0; i < pubkeys.length; i += PRESENCE_MAX_PUBKEYS) {
    const chunk = pubkeys.slice(i, i + PRESENCE_MAX_PUBKEYS);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await fetchFn(`${getRelayHttpUrl(relayUrl, PRESENCE_PATH)}?p=${chunk.join(',')}`, { signal: ctl.signal });
      if (!res.ok) return undefined;
      const body = (await res.json()) as { online?: unknown };
      if (!body || typeof body.online !== 'object' || body.online === null) return undefined;
      for (const [pk, v] of Object.entries(body.online as Record<string, unknown>)) if (typeof v === 'boolean') out[pk] = out[pk] || v;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
  return out;
}

/**
 * Combines cards, heartbeats and relay presence answers into the discovery result (pure).
 * Online: a relay says the agent is connected; or, when no relay could say, a fresh `online`
 * heartbeat (younger than twice its interval). Asleep: not online, and its last heartbeat says it
 * has a wake channel and did not sign off as offline. Newest card per agent wins. A card naming an
 * agent id counts only with `logs` (verified key event logs by agent id): signed by the current key of
 * that log it stands for the identity (its `keySeq` the log's head); signed by one of its older keys it
 * is superseded and dropped; otherwise its claim is removed and it is a plain key's card.
 */
export function combineDiscovery(
  cards: readonly NostrEvent[],
  heartbeats: readonly NostrEvent[],
  presence: ReadonlyArray<{ relay: string; online: Record<string, boolean> }>,
  wanted: readonly string[],
  nowSec: number,
  logs: ReadonlyMap<string, KeyLog> = new Map(),
): AgentInfo[] {
  const newest = new Map<string, { ev: NostrEvent; card: AgentCard }>();
  for (const ev of cards) {
    const card = getAgentCard(ev);
    if (!card || !matchCapabilities(card, wanted)) continue;
    if (card.aid !== undefined) {
      const log = logs.get(card.aid);
      if (log?.status === 'active' && log.current === ev.pubkey) card.keySeq = log.head.seq;
      else if (log?.keys.some((k) => k.pubkey === ev.pubkey)) continue;
      else {
        delete card.aid;
        delete card.keySeq;
      }
    }
    const prev = newest.get(ev.pubkey);
    if (!prev || ev.created_at > prev.ev.created_at) newest.set(ev.pubkey, { ev, card });
  }
  const beats = new Map<string, { at: number; hb: Heartbeat }>();
  for (const ev of heartbeats) {
    const hb = getHeartbeat(ev);
    if (!hb) continue;
    const prev = beats.get(ev.pubkey);
    if (!prev || ev.created_at > prev.at) beats.set(ev.pubkey, { at: ev.created_at, hb });
  }
  const out: AgentInfo[] = [];
  for (const [pubkey, { ev, card }] of newest) {
    const answers = presence.filter((p) => p.online[pubkey] !== undefined);
    const relayOnline = answers.some((p) => p.online[pubkey] === true);
    const beat = beats.get(pubkey);
    const fresh = beat !== undefined && beat.hb.status === 'online' && nowSec - beat.at <= 2 * beat.hb.interval;
    const wakeable = beat?.hb.wake === true;
    let state: Presence;
    if (relayOnline || (answers.length === 0 && fresh)) state = 'online';
    else if (wakeable && beat!.hb.status !== 'offline') state = 'asleep';
    else state = 'offline';
    out.push({
      ...card,
      pubkey,
      npub: getNpub(pubkey),
      presence: state,
      lastSeen: state === 'online' ? nowSec : (beat?.at ?? ev.created_at),
      wakeable,
      presenceFrom: answers.map((p) => p.relay),
    });
  }
  const rank = { online: 0, asleep: 1, offline: 2 } as const;
  return out.sort((a, b) => rank[a.presence] - rank[b.presence] || (b.lastSeen ?? 0) - (a.lastSeen ?? 0) || a.name.localeCompare(b.name));
}
