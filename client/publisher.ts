import type { EventTemplate, NostrEvent } from '../shared/event.js';
import { getTagValue } from '../shared/event.js';
import { isAddressableKind, isEphemeralKind, isReplaceableKind } from '../shared/kinds.js';
import { Kind } from '../shared/kinds.js';

/** Kinds whose outside never carries trace context (their context travels inside the encryption). */
const isPrivateKind = (kind: number) => kind === Kind.GiftWrap || kind === Kind.EncryptedDirectMessage || kind === Kind.Seal;
import { withTimeout, type Timers } from './backoff.js';
import { ClientError } from './errors.js';
import type { Identity } from './identity.js';
import { isDuplicateOfThis, type Outbox, type PublishResult } from './outbox.js';
import { normalizeRelayUrl, type RelayLink } from './relay-link.js';
import type { AgentStore } from './store.js';
import { runInSpan, startSendSpan } from './tracing.js';
import type { Tracer } from '@opentelemetry/api';

/** Options of a publish. */
export interface PublishOptions {
  /** Relays to publish to (default: all of the agent's). */
  relays?: readonly string[];
  /** Give up waiting after this long (the event stays in the outbox). */
  timeoutMs?: number;
  /** false: no outbox; sent to the relays connected now and awaited once (heartbeats, status). */
  durable?: boolean;
}

/** What a {@link Publisher} is handed. */
export interface PublisherDeps {
  identity: Identity;
  store: AgentStore;
  outbox: Outbox;
  links: ReadonlyMap<string, RelayLink>;
  timers: Timers;
  now: () => number;
  /** `client.publish` spans; its `traceparent` goes in the event's tags (docs/observability.md). */
  tracer: Tracer;
  /** Links to relays the agent does not use, opened to deliver to a recipient's relays (outbox routing). */
  remoteLinks?: ReadonlyMap<string, RelayLink>;
}

/**
 * Signs and publishes the agent's events: through the durable outbox (resolved once every relay
 * asked said `OK true`), once to the relays connected now, or fire-and-forget for ephemeral kinds.
 * Replaceable and addressable events get a `created_at` above the last version the agent stamped.
 */
export class Publisher {
  readonly #d: PublisherDeps;

  constructor(deps: PublisherDeps) {
    this.#d = deps;
  }

  /** The agent's relays (normalised URLs). */
  get relays(): string[] {
    return [...this.#d.links.keys()];
  }

  /** Signs and publishes a template (see `Agent.publish`). */
  async publish(template: EventTemplate | (Partial<EventTemplate> & { kind: number }), opts: PublishOptions = {}): Promise<PublishResult> {
    const { span, tag } = startSendSpan(this.#d.tracer, 'client.publish');
    return runInSpan(span, async () => {
      const t = this.template(template);
      if (tag && !isPrivateKind(t.kind)) t.tags = [...t.tags, tag];
      const event = this.#d.identity.sign(await this.stamped(t, template.created_at === undefined));
      span.setAttributes({ 'nostr.event.id': event.id, 'nostr.event.kind': event.kind });
      return this.publishSigned(event, opts);
    });
  }

  /** Publishes an already signed event (same rules as {@link publish}). */
  async publishSigned(event: NostrEvent, opts: PublishOptions = {}): Promise<PublishResult> {
    const relays = this.targets(opts.relays);
    if (opts.durable === false) return this.#publishOnce(event, relays, opts.timeoutMs);
    return this.#d.outbox.add(event, relays, opts.timeoutMs);
  }

  /** Fire and forget (ephemeral events): sent to the relays connected now; returns how many. */
  publishEphemeral(template: Partial<EventTemplate> & { kind: number }): { event: NostrEvent; sentTo: number } {
    if (!isEphemeralKind(template.kind)) throw new ClientError('ROOST_ERR_BAD_INPUT', `kind ${template.kind} is not ephemeral (20000-29999)`);
    const event = this.#d.identity.sign(this.template(template));
    let sentTo = 0;
    for (const link of this.#d.links.values()) if (link.fire(event)) sentTo++;
    return { event, sentTo };
  }

  /** A full template, `created_at` now unless given. */
  template(t: Partial<EventTemplate> & { kind: number }): EventTemplate {
    return { kind: t.kind, content: t.content ?? '', tags: t.tags ?? [], created_at: t.created_at ?? Math.floor(this.#d.now() / 1000) };
  }

  /**
   * A replaceable or addressable template gets a `created_at` above the last version this agent
   * stamped for its kind and `d` (kept in the store), so it always supersedes it: two versions in one
   * second would otherwise tie and the relay keep the lower id. `restamp` false keeps a caller's time.
   */
  async stamped(t: EventTemplate, restamp = true): Promise<EventTemplate> {
    if (!restamp || !(isReplaceableKind(t.kind) || isAddressableKind(t.kind))) return t;
    const d = isAddressableKind(t.kind) ? (getTagValue(t, 'd') ?? '') : '';
    return { ...t, created_at: await this.#d.store.stampReplaceable(`${t.kind}:${d}`, t.created_at) };
  }

  /** The relays named (normalised), or all of the agent's; ROOST_ERR_NO_RELAY for one it does not have. */
  targets(relays: readonly string[] | undefined): string[] {
    if (!relays) return this.relays;
    const out = relays.map(normalizeRelayUrl);
    const unknown = out.filter((r) => !this.#d.links.has(r) && !this.#d.remoteLinks?.has(r));
    if (unknown.length) throw new ClientError('ROOST_ERR_NO_RELAY', `not one of this agent's relays: ${unknown.join(', ')}`);
    return out;
  }

  async #publishOnce(event: NostrEvent, relays: readonly string[], timeoutMs = 10_000): Promise<PublishResult> {
    const links = relays.map((r) => (this.#d.links.get(r) ?? this.#d.remoteLinks?.get(r))!).filter((l) => l.isReady);
    if (links.length === 0) throw new ClientError('ROOST_ERR_DISCONNECTED', 'no relay connected', { eventId: event.id });
    const results = await Promise.all(
      links.map((l) =>
        withTimeout(
          l.publish(event),
          timeoutMs,
          this.#d.timers,
          () => new ClientError('ROOST_ERR_TIMEOUT', `no OK from ${l.url}`, { relay: l.url, eventId: event.id }),
        ),
      ),
    );
    const refused = results.find((r) => !r.accepted && !isDuplicateOfThis(event, r.reason));
    if (refused) {
      throw new ClientError('ROOST_ERR_REFUSED', `${refused.relay} refused ${event.id.slice(0, 12)}: ${refused.reason}`, {
        reason: refused.reason,
        relay: refused.relay,
        eventId: event.id,
      });
    }
    return { id: event.id, relays: results };
  }
}
