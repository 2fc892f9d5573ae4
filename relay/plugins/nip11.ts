import type { FastifyReply } from 'fastify';
import type { RelayConfig } from '../config.js';

/** Extra NIP-11 fields contributed by subsystems (wake, sequence extension, ...). */
export type InfoContributor = () => Record<string, unknown>;

/** Software URL advertised in NIP-11. */
export const SOFTWARE_URL = 'https://github.com/roost-relay/roost';

/** The NIP-11 relay information document; limits come from the same config that enforces them. */
export function buildRelayInfo(config: RelayConfig, version: string, contributors: readonly InfoContributor[] = []) {
  const info: Record<string, unknown> = {
    name: config.name,
    description: config.description,
    ...(config.contact ? { contact: config.contact } : {}),
    supported_nips: [1, 9, 11, 40, 42, 45, 70],
    software: SOFTWARE_URL,
    version,
    limitation: {
      max_message_length: config.maxMessageLength,
      max_subscriptions: config.maxSubscriptions,
      max_filters: config.maxFilters,
      max_limit: config.maxLimit,
      default_limit: config.defaultLimit,
      max_subid_length: 64,
      max_event_tags: config.maxEventTags,
      max_content_length: config.maxContentLength,
      auth_required: config.authRequired,
      payment_required: false,
      restricted_writes: false,
      created_at_lower_limit: config.createdAtPastLimit,
      created_at_upper_limit: config.createdAtFutureLimit,
    },
  };
  // `supported_nips` add up; objects under the same key (`limitation`, `roost`) merge; other fields replace.
  for (const c of contributors) {
    for (const [key, value] of Object.entries(c())) {
      const prev = info[key];
      if (key === 'supported_nips' && Array.isArray(prev) && Array.isArray(value)) {
        info[key] = [...new Set([...(prev as number[]), ...(value as number[])])].sort((x, y) => x - y);
      } else info[key] = isPlainObject(prev) && isPlainObject(value) ? { ...prev, ...value } : value;
    }
  }
  return info;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** NIP-11 requires CORS on the information document. */
export function setCorsHeaders(reply: FastifyReply): void {
  reply.header('Access-Control-Allow-Origin', '*');
  reply.header('Access-Control-Allow-Headers', '*');
  reply.header('Access-Control-Allow-Methods', 'GET, OPTIONS');
}
