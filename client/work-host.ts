import type { Tracer } from '@opentelemetry/api';
import type { EventTemplate, NostrEvent } from '../shared/event.js';
import type { PriorKeys } from '../shared/decisions.js';
import type { Filter } from '../shared/filter.js';
import { type KeyLog, makePriorKeys } from '../shared/identity-log.js';
import type { AgentInfo } from './presence.js';

/**
 * The small surface `agent.tasks` and `agent.decisions` work through: identity, acknowledged
 * publishing, reading, live subscriptions and direct messages. The agent provides it; tests and
 * other hosts may provide their own.
 */
export interface WorkHost {
  readonly pubkey: string;
  /** Signs as this agent. */
  sign(template: EventTemplate): NostrEvent;
  /** Publishes durably; resolves once the relays said OK true, rejects ROOST_ERR_REFUSED on a refusal. */
  publish(event: NostrEvent): Promise<unknown>;
  /** Stored events matching the filters on every connected relay (each once). */
  query(filters: Filter[], timeoutMs?: number): Promise<NostrEvent[]>;
  /** Stored then live events matching the filters, each once, re-subscribed after reconnects. */
  subscribe(filters: Filter[], onEvent: (event: NostrEvent) => void): { close(): void };
  /** Sends a gift-wrapped direct message. */
  sendDirect(to: string, content: string, tags: string[][]): Promise<unknown>;
  /** Agents offering every capability, with presence. */
  discover(capabilities: readonly string[]): Promise<AgentInfo[]>;
  /** Milliseconds since the epoch. */
  now(): number;
  /** Reads the key event logs of `keys` and answers, per key and time, the earlier keys of its identity. */
  priorKeys?(keys: readonly string[]): Promise<PriorKeys>;
  /** Every key of this agent's own key event log, the current one included (an agent without a log: absent). */
  ownKeys?(): readonly string[];
  /** Spans for task lifecycles (default: the global OpenTelemetry tracer, a no-op until an SDK is registered). */
  readonly tracer?: Tracer;
}

/** What a host needs from an agent (its public API only). */
interface AgentLike {
  readonly pubkey: string;
  readonly identity: { sign(t: EventTemplate): NostrEvent };
  readonly connectedRelays: string[];
  publishSigned(event: NostrEvent): Promise<unknown>;
  subscribe(filters: Filter[], onEvent: (event: NostrEvent, relay: string) => void, opts?: { onEose?: (relay: string) => void }): { close(): void };
  send(to: string, text: string, opts: { tags?: string[][] }): Promise<unknown>;
  discover(query: { capabilities?: readonly string[] }): Promise<AgentInfo[]>;
  whenConnected(timeoutMs?: number, count?: number): Promise<boolean>;
  readonly keyLogs?: { lookupMany(keys: readonly string[]): Promise<KeyLog[]> };
  readonly keyLog?: KeyLog | undefined;
}

/** A {@link WorkHost} over an agent's public API. */
export function makeWorkHost(agent: AgentLike, now: () => number = Date.now, tracer?: Tracer): WorkHost {
  return {
    tracer,
    pubkey: agent.pubkey,
    sign: (t) => agent.identity.sign(t),
    publish: (ev) => agent.publishSigned(ev),
    async query(filters, timeoutMs = 5000) {
      await agent.whenConnected(timeoutMs, 1);
      const expected = Math.max(1, agent.connectedRelays.length);
      const got = new Map<string, NostrEvent>();
      await new Promise<void>((resolve) => {
        let eose = 0;
        const timer = setTimeout(done, timeoutMs);
        const sub = agent.subscribe(filters, (ev) => got.set(ev.id, ev), { onEose: () => ++eose >= expected && done() });
        let finished = false;
        function done() {
          if (finished) return;
          finished = true;
          clearTimeout(timer);
          // The subscription may not exist yet when EOSE comes in the same tick.
          queueMicrotask(() => sub.close());
          resolve();
        }
      });
      return [...got.values()];
    },
    subscribe: (filters, onEvent) => agent.subscribe(filters, (ev) => onEvent(ev)),
    sendDirect: (to, content, tags) => agent.send(to, content, { tags }),
    ownKeys: () => agent.keyLog?.keys.map((k) => k.pubkey) ?? [agent.pubkey],
    discover: (capabilities) => agent.discover({ capabilities }),
    now,
    async priorKeys(keys) {
      return makePriorKeys((await agent.keyLogs?.lookupMany(keys)) ?? []);
    },
  };
}
