import type { FastifyInstance } from 'fastify';
import { AGENT_CARD_D, AGENT_CARD_KIND, PRESENCE_MAX_PUBKEYS, PRESENCE_PATH, type PresenceAnswer } from '../../shared/agent-card.js';
import type { RelayContext } from '../context.js';
import type { InfoContributor } from './nip11.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** Pubkeys named in `?p=a,b&p=c`, deduplicated; a string when the query is malformed. */
export function parsePresenceQuery(p: unknown): string[] | string {
  const raw = (Array.isArray(p) ? p : [p]).filter((v): v is string => typeof v === 'string');
  const keys = [
    ...new Set(
      raw
        .flatMap((v) => v.split(','))
        .map((v) => v.trim())
        .filter((v) => v !== ''),
    ),
  ];
  if (keys.length === 0) return 'name at least one pubkey: ?p=<hex>[,<hex>...]';
  if (keys.length > PRESENCE_MAX_PUBKEYS) return `at most ${PRESENCE_MAX_PUBKEYS} pubkeys per query`;
  if (!keys.every((k) => HEX64.test(k))) return 'pubkeys must be 64 lowercase hex characters';
  return keys;
}

/**
 * Which of `pubkeys` are connected and authenticated (NIP-42) right now. Only agents that have an
 * agent card stored here are answered; the others are left out, exactly as unknown keys are, so the
 * endpoint reveals nothing about anyone who did not publish a card.
 */
export async function answerPresence(ctx: RelayContext, pubkeys: readonly string[]): Promise<PresenceAnswer> {
  const rows = await ctx.store.query([{ kinds: [AGENT_CARD_KIND], authors: [...pubkeys], '#d': [AGENT_CARD_D] }], {
    limits: [pubkeys.length],
  });
  const carded = new Set<string>();
  for (const r of rows) carded.add((JSON.parse(r.raw) as { pubkey: string }).pubkey);
  const online: Record<string, boolean> = {};
  for (const pk of carded) online[pk] = false;
  for (const conn of ctx.connections) {
    if (!conn.isOpen) continue;
    for (const pk of conn.authed) if (carded.has(pk)) online[pk] = true;
  }
  // Online on another relay of the cluster.
  const shared = ctx.store.provides.sharedPresence;
  const elsewhere = shared && carded.size > 0 ? await shared.onlineOf([...carded].filter((pk) => !online[pk])) : undefined;
  for (const pk of elsewhere ?? []) online[pk] = true;
  return { online };
}

/**
 * Presence for agent discovery: `GET /presence?p=<hex>[,<hex>...]` answers
 * `{"online": {"<pubkey>": true|false}}` for agents that published a card. Advertised in NIP-11 as
 * `roost_presence`. Open to anyone (CORS), like the cards themselves.
 */
export function registerPresence(app: FastifyInstance, ctx: RelayContext, info: InfoContributor[]): void {
  info.push(() => ({ roost_presence: { path: `/${PRESENCE_PATH}`, max_pubkeys: PRESENCE_MAX_PUBKEYS } }));
  app.get(`/${PRESENCE_PATH}`, async (req, reply) => {
    reply.header('Access-Control-Allow-Origin', '*');
    reply.header('Cache-Control', 'no-store');
    const keys = parsePresenceQuery((req.query as Record<string, unknown> | undefined)?.p);
    if (typeof keys === 'string') return reply.code(400).send({ error: keys });
    return answerPresence(ctx, keys);
  });
}
