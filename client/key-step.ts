/**
 * Rotating a running agent's key in place (docs/identity.md): what `agent.rotate()` / `agent.revoke()` do
 * once the key source has signed the step. Kept out of the browser entry: Node's key ring passes it in
 * (createNodeAgent), as a browser application with a key store of its own may.
 */
import type { NostrEvent } from '../shared/event.js';
import { type KeyLog, verifyKeyLog } from '../shared/identity-log.js';
import type { KeyStep, KeyStepHost } from './agent.js';
import { ClientError } from './errors.js';
import { Identity } from './identity.js';
import { INBOX_SUB_ID } from './inbox.js';
import type { RelayLink } from './relay-link.js';

/**
 * Switches the agent to the step's key: checks that the step extends the agent's log, keeps the old key to read
 * (and authenticate as) until its window ends, and makes the agent's Identity adopt the new key. Then, on every
 * connected relay, it re-authenticates (NIP-42) as the new key and re-sends the inbox REQ (new and old keys,
 * from the cursor), and only after that publishes the key event: nothing can be addressed to the new key before
 * the inbox asks for it, and the cursor and seen ids keep everything else exactly once. Wake channels are
 * registered again and the session's card is republished by the new key. Links down now do all this on connect.
 */
export async function adoptKeyStep({ event, current }: KeyStep, host: KeyStepHost): Promise<KeyLog> {
  const { agent } = host;
  const events: NostrEvent[] = [...host.events, event];
  const log = verifyKeyLog(agent.aid as string, events);
  if (typeof log === 'string' || log.current !== current.pubkey || log.head.id !== event.id) {
    throw new ClientError('ROOST_ERR_KEY_FILE', `the key source's event does not extend this agent's log to ${current.pubkey}`);
  }
  const old = Identity.fromSecretKey(agent.identity.exportSecretKey(), agent.identity.crypto);
  const until = log.keys.find((k) => k.pubkey === old.pubkey)?.until;
  if (until !== undefined) host.retire(old, until);
  agent.identity.adopt(current);
  host.setLog(events, log);
  agent.keyLogs.add(log.aid, [event]);
  host.log.info({ aid: log.aid.slice(0, 16), seq: log.head.seq, pubkey: current.pubkey }, 'key rotated in place');
  const ready = host.links.filter((l) => l.isReady);
  await Promise.all(
    ready.map(async (link) => {
      if (link.authed && !(await authenticated(link, current.pubkey))) {
        host.log.warn({ relay: link.url }, 'relay did not take the new key’s authentication');
      }
      link.resubscribe(INBOX_SUB_ID);
    }),
  );
  // Through the outbox: durable, and sent to relays that are down now when they come back.
  const published = await agent.publishSigned(event).catch((err: Error) => err);
  if (published instanceof Error) agent.emit('error', published);
  const results = await host.wake.reregister().catch((err: Error) => {
    agent.emit('error', err);
    return [];
  });
  for (const r of results) if (!r.accepted) host.log.warn({ relay: r.relay, reason: r.reason }, 'relay refused the wake registration of the new key');
  await host.presence.republishCard().catch((err: Error) => agent.emit('error', err));
  return log;
}

/** Re-answers the link's challenge as the new key; resolves once the relay accepted it (false: refused, dropped or 10 s passed). */
function authenticated(link: RelayLink, pubkey: string): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      offAuth();
      offDown();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 10_000);
    const offAuth = link.on('auth', (pk) => pk === pubkey && done(true));
    const offDown = link.on('disconnected', () => done(false));
    link.reauthenticate();
  });
}
