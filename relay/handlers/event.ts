import type { NostrEvent } from '../../shared/event.js';
import { isEphemeralKind } from '../../shared/kinds.js';
import { makeAuthFrame, makeOkFrame } from '../../shared/messages/relay.js';
import { makeReason } from '../../shared/reason.js';
import type { Connection } from '../connection.js';
import { countRejection, type RelayContext } from '../context.js';
import { firstEventRejection } from '../policies/types.js';
import { DELETED_REASONS, isPending } from '../store/types.js';
import type { IngestTrace } from '../tracing.js';

/**
 * EVENT: policies, signature, duplicate check, then either a kind handler, live-only delivery
 * (ephemeral) or a group-committed write. `OK true` is sent only after the commit.
 */
export async function handleEvent(ctx: RelayContext, conn: Connection, event: NostrEvent): Promise<void> {
  ctx.stats.eventsReceived++;
  // Off, tracing costs this one check per frame; on, an event nobody asked to trace costs a scan of its tags.
  const t = ctx.tracing.enabled ? ctx.tracing.startIngest(event, ctx.privateKinds.has(event.kind)) : undefined;
  if (!t) return ingestEvent(ctx, conn, event, undefined);
  return t.run(() => ingestEvent(ctx, conn, event, t));
}

async function ingestEvent(ctx: RelayContext, conn: Connection, event: NostrEvent, t: IngestTrace | undefined): Promise<void> {
  const refuse = (reason: string) => {
    ctx.stats.eventsRejected++;
    countRejection(ctx.stats, reason);
    // The challenge comes first, so a client that authenticates on it can re-send at once (NIP-42).
    if (reason.startsWith('auth-required:')) conn.send(makeAuthFrame(conn.challenge));
    answer(conn, event.id, t, false, reason);
  };
  const unproven = () => {
    for (const hook of ctx.hooks.onEventUnproven) hook(event);
  };
  const policyCtx = { authed: conn.authed, ip: conn.ip, now: ctx.now() };
  // Only a hook reading a networked store answers later; on SQLite there is nothing to wait for.
  const verdict = conn.verdictsPending ? decideAfterEarlierEvents(ctx, conn, event, policyCtx) : firstEventRejection(ctx.hooks.rejectEvent, event, policyCtx);
  const rejected = isPending(verdict) ? await decidedInOrder(conn, verdict) : verdict;
  if (rejected) {
    unproven();
    return refuse(rejected);
  }

  // The signature is checked before anything about stored events is said: answering `duplicate:` or
  // "deleted" to an unverified event would let anyone who learnt an id ask whether a private event is
  // stored here (a forgery reusing the id with a zero signature). Only a sender holding the signed
  // event itself learns that, and it has the content already. A new event is verified anyway, so the
  // order costs only honest re-sends their verification.
  // The event is the edge schema's output (dispatch), so the verifier does not check its shape again.
  const checked = await ctx.verifier.verify(event, true);
  t?.mark('verified');
  if (!checked.ok) {
    unproven();
    return refuse(checked.reason);
  }
  const verified = checked.event;

  const special = ctx.hooks.kindHandlers.get(event.kind);
  const ephemeral = special === undefined && isEphemeralKind(event.kind);
  // A stored kind is not probed here: the write checks duplicates and deleted ids inside its transaction
  // anyway (it must: the same event may be queued twice), and answers them with the same reasons below.
  if (special || ephemeral) {
    const maybeKnown = ctx.store.isKnown(event.id, event.pubkey);
    const known = isPending(maybeKnown) ? await maybeKnown : maybeKnown;
    if (known === 'stored') {
      unproven();
      ctx.stats.eventsDuplicate++;
      answer(conn, event.id, t, true, makeReason('duplicate', 'already have this event'));
      return;
    }
    if (known === 'deleted') {
      unproven();
      return refuse(DELETED_REASONS.event);
    }
  }

  if (special) {
    // Its synchronous part is a step of the ingest: the lines it logs carry the trace ids.
    const r = await (t ? t.within(() => special(verified, conn)) : special(verified, conn));
    t?.mark('kind_handled');
    if (!r.accepted) return refuse(r.reason);
    answer(conn, event.id, t, true, r.reason);
    return;
  }

  if (ephemeral) {
    ctx.stats.eventsEphemeral++;
    const raw = JSON.stringify(verified);
    ctx.fanOut(verified, raw, undefined);
    t?.mark('fanned_out');
    answer(conn, event.id, t, true, '');
    return;
  }

  let result: Awaited<ReturnType<typeof ctx.store.write>>;
  if (t) result = await t.store(event.id, () => ctx.store.write(verified));
  else result = await ctx.store.write(verified);
  switch (result.status) {
    case 'stored':
      answer(conn, event.id, t, true, '');
      return;
    case 'duplicate':
      unproven();
      ctx.stats.eventsDuplicate++;
      answer(conn, event.id, t, true, makeReason('duplicate', 'already have this event'));
      return;
    case 'rejected':
      // A deleted id, found by the write now instead of a probe before it: freed as that probe did.
      if (result.reason === DELETED_REASONS.event) unproven();
      if (result.reason.startsWith('error:')) {
        const line = () => ctx.log.error({ eventId: event.id, reason: result.reason }, 'write failed');
        if (t) t.within(line);
        else line();
      }
      return refuse(result.reason);
  }
}

/**
 * Verdicts that answer later are given in the connection's arrival order (a quota edge or a task chain
 * sent in one burst is decided as on SQLite): while one is pending, later events of the connection
 * start their policies only after it, each in turn.
 */
function decidedInOrder(conn: Connection, verdict: Promise<string | undefined>): Promise<string | undefined> {
  const settled = verdict.then(
    () => undefined,
    () => undefined,
  );
  conn.verdictsPending = settled;
  void settled.then(() => {
    if (conn.verdictsPending === settled) conn.verdictsPending = undefined;
  });
  return verdict;
}

async function decideAfterEarlierEvents(
  ctx: RelayContext,
  conn: Connection,
  event: NostrEvent,
  policyCtx: Parameters<typeof firstEventRejection>[2],
): Promise<string | undefined> {
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  const earlier = conn.verdictsPending;
  conn.verdictsPending = mine;
  try {
    await earlier;
    return await firstEventRejection(ctx.hooks.rejectEvent, event, policyCtx);
  } finally {
    done();
    if (conn.verdictsPending === mine) conn.verdictsPending = undefined;
  }
}

/** Sends the OK frame, recording the outcome on the ingest span when there is one. */
function answer(conn: Connection, id: string, t: IngestTrace | undefined, accepted: boolean, reason: string): void {
  t?.outcome(accepted, reason);
  conn.send(makeOkFrame(id, accepted, reason));
}
