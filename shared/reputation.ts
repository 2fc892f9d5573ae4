import type { EventTemplate, NostrEvent } from './event.js';
import { isKeyValidAt, type KeyLog } from './identity-log.js';
import type { TaskChain } from './tasks.js';

/**
 * Reputation from signed history only (docs/identity.md#reputation): a pure function of task chains
 * and attestations anyone can fetch, never of what an agent says about itself. Keys are grouped into
 * identities by their key event logs, so a score follows the agent across rotations.
 *
 *   t(i) = C / (C + F + TASK_PRIOR)                       task standing: C completed, F failed tasks as worker
 *   u(i) = Σ over attesters a ≠ i of t(a) · rating(a → i)   newest attestation per attester, rating in [0, 1]
 *   r(i) = (1 − ATTESTATION_CAP) · t(i) + ATTESTATION_CAP · min(1, u(i) / ATTESTATION_SATURATION)
 *
 * An attester weighs by its own *task* standing (not its reputation), so attestations cannot lift one
 * another: keys with no completed tasks weigh nothing, and all attestations together add at most
 * ATTESTATION_CAP.
 */

/** Kind of a signed attestation by one agent about another (regular, after the key event log's 4346–4348). */
export const ATTESTATION_KIND = 4349;

/** Failures-equivalent prior of the task standing: five completed tasks and none failed give 0.5. */
export const TASK_PRIOR = 5;

/** Most that attestations add to a score. */
export const ATTESTATION_CAP = 0.2;

/** Weighted attestation (Σ standing × rating) at which the attestation part is full. */
export const ATTESTATION_SATURATION = 2;

/** One identity's reputation and what it was computed from. */
export interface Reputation {
  /** The agent id when the keys belong to a key event log, else the key. */
  id: string;
  score: number;
  completed: number;
  failed: number;
  /** t(i) above. */
  taskStanding: number;
  /** u(i) above, before the cap. */
  support: number;
}

/** An attestation template: `rating` in [0, 1] about `subject` (its key), optionally for one task. */
export function makeAttestation(o: { subject: string; rating: number; task?: string; note?: string }, createdAt: number): EventTemplate {
  const tags = [
    ['p', o.subject],
    ['rating', String(Math.min(1, Math.max(0, o.rating)))],
  ];
  if (o.task !== undefined) tags.push(['e', o.task, '', 'task']);
  return { kind: ATTESTATION_KIND, created_at: createdAt, content: o.note ?? '', tags };
}

/** The attestation in an event, or undefined when malformed. */
export function getAttestation(ev: NostrEvent): { attester: string; subject: string; rating: number; createdAt: number } | undefined {
  if (ev.kind !== ATTESTATION_KIND) return undefined;
  const subject = ev.tags.find((t) => t[0] === 'p')?.[1];
  const raw = ev.tags.find((t) => t[0] === 'rating')?.[1];
  if (subject === undefined || !/^[0-9a-f]{64}$/.test(subject) || raw === undefined || !/^(0(\.\d{1,6})?|1(\.0{1,6})?)$/.test(raw)) return undefined;
  return { attester: ev.pubkey, subject, rating: Number(raw), createdAt: ev.created_at };
}

/** Maps keys to identities (agent id, or the key itself) from verified key event logs. */
export function makeIdentityResolver(logs: readonly KeyLog[]): { identityOf(pubkey: string): string; speaks(pubkey: string, at: number): boolean } {
  const byKey = new Map<string, KeyLog>();
  for (const log of logs) for (const k of log.keys) byKey.set(k.pubkey, log);
  return {
    identityOf: (pubkey) => byKey.get(pubkey)?.aid ?? pubkey,
    // A key of a log speaks only inside its window (a revoked or expired key cannot attest for the identity).
    speaks: (pubkey, at) => {
      const log = byKey.get(pubkey);
      return log === undefined || isKeyValidAt(log, pubkey, at);
    },
  };
}

/**
 * Every identity's reputation from task chains (checked with getTaskChain), attestation events and the
 * key event logs of the keys involved (verified with verifyKeyLog). Same inputs, same output, anywhere.
 */
export function computeReputation(input: {
  tasks: readonly TaskChain[];
  attestations: readonly NostrEvent[];
  logs?: readonly KeyLog[];
}): Map<string, Reputation> {
  const { identityOf, speaks } = makeIdentityResolver(input.logs ?? []);
  const out = new Map<string, Reputation>();
  const entry = (id: string): Reputation => {
    let r = out.get(id);
    if (!r) {
      r = { id, score: 0, completed: 0, failed: 0, taskStanding: 0, support: 0 };
      out.set(id, r);
    }
    return r;
  };
  const seenTasks = new Set<string>();
  for (const c of input.tasks) {
    if (c.worker === undefined || (c.state !== 'completed' && c.state !== 'failed') || seenTasks.has(c.request.id)) continue;
    seenTasks.add(c.request.id);
    const worker = identityOf(c.worker);
    // A worker's own request proves nothing about it, whichever of its keys made it.
    if (worker === identityOf(c.request.requester)) continue;
    const r = entry(worker);
    if (c.state === 'completed') r.completed++;
    else r.failed++;
  }
  for (const r of out.values()) r.taskStanding = r.completed / (r.completed + r.failed + TASK_PRIOR);

  const newest = new Map<string, { subject: string; attester: string; rating: number; at: number; id: string }>();
  for (const ev of input.attestations) {
    const a = getAttestation(ev);
    if (!a || !speaks(a.attester, a.createdAt)) continue;
    const attester = identityOf(a.attester);
    const subject = identityOf(a.subject);
    if (attester === subject) continue;
    const key = `${attester}\u0000${subject}`;
    const prev = newest.get(key);
    if (!prev || a.createdAt > prev.at || (a.createdAt === prev.at && ev.id > prev.id))
      newest.set(key, { subject, attester, rating: a.rating, at: a.createdAt, id: ev.id });
  }
  // Summed in one order (subject, attester) so every party gets the same floating-point result.
  const sorted = [...newest.values()].sort((x, y) => (x.subject < y.subject ? -1 : x.subject > y.subject ? 1 : x.attester < y.attester ? -1 : 1));
  for (const a of sorted) {
    const weight = out.get(a.attester)?.taskStanding ?? 0;
    if (weight > 0) entry(a.subject).support += weight * a.rating;
  }
  for (const r of out.values()) {
    r.score = (1 - ATTESTATION_CAP) * r.taskStanding + ATTESTATION_CAP * Math.min(1, r.support / ATTESTATION_SATURATION);
  }
  return out;
}
