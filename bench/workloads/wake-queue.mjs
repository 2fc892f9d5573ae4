// HOOK — wake-queue throughput (issue 10, push subsystem). Not implemented yet: the push subsystem is
// being written. The lead fills this in; run.mjs already calls it and prints its figures.
//
// Contract: `runWakeQueue({ size, startRelay, spec, log })` is called once per relay under test
// (spec is 'roost', 'nostr-relay' or a ws:// URL; `startRelay(spec, opts)` from lib/relay-process.mjs
// starts a fresh child). Resolve with `null` when the relay has no wake queue (every peer), else with
// `{ figures: { 'wake-queue wakes/s': number, 'wake-queue p50 ms': number, ... }, notes: string[] }`.
// Suggested shape: N sleeping agents registered with push tokens and a fake APNs/FCM sender on
// 127.0.0.1, publishers addressing them; measure wakes queued → sent per second and publish → push
// latency. Keep every loop bounded in count and time.

/** Wake-queue throughput; resolves null until the push subsystem exists (see contract above). */
export async function runWakeQueue(_ctx) {
  return null;
}
