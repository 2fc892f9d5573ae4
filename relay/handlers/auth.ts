import type { NostrEvent } from '../../shared/event.js';
import { getTagValue } from '../../shared/event.js';
import { Kind } from '../../shared/kinds.js';
import { makeOkFrame } from '../../shared/messages/relay.js';
import { makeReason } from '../../shared/reason.js';
import type { Connection } from '../connection.js';
import type { RelayContext } from '../context.js';

/** How far an AUTH event's created_at may be from now (NIP-42 suggests about ten minutes). */
const AUTH_WINDOW_SECONDS = 600;

/** Checks a NIP-42 AUTH event: kind, relay URL, challenge, time and signature. Returns a reason or undefined. */
export function checkAuthEvent(ctx: RelayContext, conn: Connection, event: NostrEvent): string | undefined {
  if (event.kind !== Kind.ClientAuth) return makeReason('invalid', `AUTH event must be kind ${Kind.ClientAuth}`);
  if (getTagValue(event, 'challenge') !== conn.challenge) return makeReason('invalid', 'challenge does not match');
  const relay = getTagValue(event, 'relay');
  if (relay === undefined || !conn.isRelayUrl(relay)) return makeReason('invalid', 'relay tag does not name this relay');
  if (Math.abs(event.created_at - ctx.now()) > AUTH_WINDOW_SECONDS) return makeReason('invalid', 'created_at is too far from now');
  return undefined;
}

/** AUTH: on success the connection may act as the event's pubkey (several identities allowed). */
export async function handleAuth(ctx: RelayContext, conn: Connection, event: NostrEvent): Promise<void> {
  const reason = checkAuthEvent(ctx, conn, event);
  if (reason) {
    conn.send(makeOkFrame(event.id, false, reason));
    return;
  }
  const checked = await ctx.verifier.verify(event);
  if (!checked.ok) {
    conn.send(makeOkFrame(event.id, false, checked.reason));
    return;
  }
  if (!conn.authed.has(event.pubkey)) {
    conn.authed.add(event.pubkey);
    ctx.online.set(event.pubkey, (ctx.online.get(event.pubkey) ?? 0) + 1);
  }
  if (ctx.replicaReaders.has(event.pubkey)) conn.readsPrivate = true;
  if (ctx.replicationOrigins.has(event.pubkey)) conn.peerRelay = event.pubkey;
  conn.log.debug({ pubkey: event.pubkey, replica: conn.readsPrivate }, 'authenticated');
  for (const hook of ctx.hooks.onAuth) hook(conn, event.pubkey);
  conn.send(makeOkFrame(event.id, true, ''));
}
