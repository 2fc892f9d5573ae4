import type { NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { type KeyLog, makePriorKeys, type PriorKeys } from '../shared/identity-log.js';
import { ATTESTATION_KIND, computeReputation, makeIdentityResolver, type Reputation } from '../shared/reputation.js';
import { getTaskChain, getTaskRequest, getTaskStep, TaskKind, type TaskChain } from '../shared/tasks.js';
import type { KeyLogs } from './key-logs.js';

/**
 * Gathers what reputation is computed from (shared/reputation.ts) for some keys, from the relays:
 * their identities' key event logs, the attestations about any of their keys, the attesters' logs and
 * the task chains in which any of these keys worked. Everything is verified here; nothing is taken
 * from the agents themselves.
 */
export async function fetchReputation(
  deps: { fetch(filters: Filter[], timeoutMs: number): Promise<NostrEvent[]>; keyLogs: Pick<KeyLogs, 'lookupMany'> },
  pubkeys: readonly string[],
  timeoutMs = 5000,
): Promise<Map<string, Reputation>> {
  const subjects = [...new Set(pubkeys)];
  const out = new Map<string, Reputation>();
  if (subjects.length === 0) return out;
  const logs = new Map<string, KeyLog>();
  const addLogs = (list: readonly KeyLog[]) => {
    for (const l of list) logs.set(l.aid, l);
  };
  addLogs(await deps.keyLogs.lookupMany(subjects, timeoutMs));
  const subjectKeys = keysOf(subjects, logs);
  const attestations = await deps.fetch([{ kinds: [ATTESTATION_KIND], '#p': subjectKeys }], timeoutMs);
  const attesters = [...new Set(attestations.map((a) => a.pubkey))];
  addLogs(await deps.keyLogs.lookupMany(attesters, timeoutMs));
  const workers = keysOf([...subjectKeys, ...attesters], logs);
  const tasks = await fetchTaskChains(deps.fetch, workers, timeoutMs, makePriorKeys(logs.values()));
  const all = computeReputation({ tasks, attestations, logs: [...logs.values()] });
  const { identityOf } = makeIdentityResolver([...logs.values()]);
  for (const pk of subjects) {
    const id = identityOf(pk);
    out.set(pk, all.get(id) ?? { id, score: 0, completed: 0, failed: 0, taskStanding: 0, support: 0 });
  }
  return out;
}

/** Every key of the identities of `pubkeys` (a key without a log stands for itself). */
function keysOf(pubkeys: readonly string[], logs: ReadonlyMap<string, KeyLog>): string[] {
  const keys = new Set(pubkeys);
  for (const log of logs.values()) if (log.keys.some((k) => keys.has(k.pubkey))) for (const k of log.keys) keys.add(k.pubkey);
  return [...keys];
}

/** The chains of the tasks in which `workers` signed a step (a worker signs its completion or failure). */
async function fetchTaskChains(
  fetch: (filters: Filter[], timeoutMs: number) => Promise<NostrEvent[]>,
  workers: readonly string[],
  timeoutMs: number,
  priorKeys: PriorKeys,
): Promise<TaskChain[]> {
  if (workers.length === 0) return [];
  const steps = await fetch([{ kinds: [TaskKind.Step], authors: [...workers] }], timeoutMs);
  const roots = [...new Set(steps.flatMap((s) => getTaskStep(s)?.root ?? []))];
  if (roots.length === 0) return [];
  const events = await fetch([{ ids: roots }, { kinds: [TaskKind.Offer, TaskKind.Step], '#e': roots }], timeoutMs);
  const byRoot = new Map<string, NostrEvent[]>();
  for (const ev of events) {
    const root = ev.tags.find((t) => t[0] === 'e' && t[3] === 'root')?.[1];
    if (root !== undefined) byRoot.set(root, [...(byRoot.get(root) ?? []), ev]);
  }
  const chains: TaskChain[] = [];
  for (const ev of events) {
    const request = ev.kind === TaskKind.Request ? getTaskRequest(ev) : undefined;
    // A worker that rotated mid-task completed it with its successor key (the logs gathered above say so).
    if (request) chains.push(getTaskChain(request, byRoot.get(request.id) ?? [], priorKeys));
  }
  return chains;
}
